// The WAGI convention (CGI for WebAssembly): how an HTTP request becomes a
// function's environment, and how a function's stdout may carry the HTTP
// response's status and headers.
//
// Request: REQUEST_METHOD, SCRIPT_NAME (/fn/NAME), PATH_INFO (the rest of
// the path), QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH, SERVER_*, and every
// header as HTTP_<NAME> -- except Authorization, which is the platform's
// credential, not the function's.
//
// Response: if stdout starts with header lines and a blank line, they are
// the response's headers; `Status: 201 Created` sets the status and a
// `Location` without a status makes it a 302. Otherwise all of stdout is
// the body. A function's output is untrusted: a status outside 200-599
// (1xx would leave the client waiting for the real response) or a header
// value HTTP cannot carry makes the response a 502, and headers that are
// the platform's (X-Thaw-*, Date, Server) or the connection's (hop-by-hop,
// framing) are dropped, so a function can neither forge the platform's
// call metadata nor desynchronize the connection.

export function cgiEnvironment(req: Request, scriptName: string, pathInfo: string, remoteAddr = ""): Record<string, string> {
  const url = new URL(req.url);
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    REQUEST_METHOD: req.method,
    SCRIPT_NAME: scriptName,
    PATH_INFO: pathInfo,
    QUERY_STRING: url.search.slice(1),
    SERVER_NAME: url.hostname,
    SERVER_PORT: url.port,
    SERVER_PROTOCOL: "HTTP/1.1",
    REMOTE_ADDR: remoteAddr,
    X_FULL_URL: url.href,
  };
  const type = req.headers.get("content-type");
  if (type) env.CONTENT_TYPE = type;
  const length = req.headers.get("content-length");
  if (length) env.CONTENT_LENGTH = length;
  req.headers.forEach((value, key) => {
    if (key === "authorization" || key === "content-type" || key === "content-length") return;
    env[`HTTP_${key.toUpperCase().replaceAll("-", "_")}`] = value;
  });
  return env;
}

export interface CgiResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

/** The function's header block is not a valid HTTP response head. */
export class CgiResponseError extends Error {}

const HEADER_LINE = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+):[ \t]*(.*)$/;
// field-value (RFC 9110): visible ASCII, obs-text, spaces and tabs; no CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const MAX_HEADER_BYTES = 16 * 1024;
const RESERVED_HEADERS = new Set([
  "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
  "te", "trailer", "transfer-encoding", "upgrade", "content-length", "date", "server",
]);

const reservedHeader = (name: string) => RESERVED_HEADERS.has(name) || name.startsWith("x-thaw-");

/** Split a CGI header block off stdout, or undefined if there is none. */
export function parseCgiOutput(stdout: Uint8Array): CgiResponse | undefined {
  const head = new TextDecoder("latin1").decode(stdout.subarray(0, MAX_HEADER_BYTES));
  const lf = head.indexOf("\n\n");
  const crlf = head.indexOf("\r\n\r\n");
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
  if (end <= 0) return undefined;
  const lines = head.slice(0, end).split(/\r?\n/);
  const parsed = lines.map((line) => HEADER_LINE.exec(line));
  if (parsed.some((m) => !m)) return undefined;
  const headers: [string, string][] = [];
  let status: number | undefined;
  for (const m of parsed as RegExpExecArray[]) {
    const name = m[1]!;
    const value = m[2]!.trim();
    const lower = name.toLowerCase();
    if (!FIELD_VALUE.test(value)) throw new CgiResponseError(`header ${name} has a value HTTP cannot carry`);
    if (lower === "status") {
      const code = /^(\d{3})(?:\s|$)/.exec(value)?.[1];
      status = Number(code);
      if (!code || status < 200 || status > 599)
        throw new CgiResponseError(`Status "${value.slice(0, 40)}" is not a final HTTP status (200-599)`);
    } else if (!reservedHeader(lower)) headers.push([name, value]);
  }
  const hasLocation = headers.some(([n]) => n.toLowerCase() === "location");
  const bodyStart = end + (end === crlf ? 4 : 2);
  return { status: status ?? (hasLocation ? 302 : 200), headers, body: stdout.subarray(bodyStart) };
}
