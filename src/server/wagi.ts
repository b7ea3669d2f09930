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
// the body.

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

const HEADER_LINE = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+):[ \t]*(.*)$/;
const MAX_HEADER_BYTES = 16 * 1024;

/** Split a CGI header block off stdout, or undefined if there is none. */
export function parseCgiOutput(stdout: Uint8Array): CgiResponse | undefined {
  const head = new TextDecoder("latin1").decode(stdout.subarray(0, MAX_HEADER_BYTES));
  const lf = head.indexOf("\n\n");
  const crlf = head.indexOf("\r\n\r\n");
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
  if (end <= 0) return undefined;
  const headers: [string, string][] = [];
  let status: number | undefined;
  for (const line of head.slice(0, end).split(/\r?\n/)) {
    const m = HEADER_LINE.exec(line);
    if (!m) return undefined;
    const [, name, value] = m as unknown as [string, string, string];
    if (name.toLowerCase() === "status") {
      status = Number.parseInt(value, 10);
      if (!(status >= 100 && status <= 599)) return undefined;
    } else headers.push([name, value.trim()]);
  }
  const hasLocation = headers.some(([n]) => n.toLowerCase() === "location");
  const bodyStart = end + (end === crlf ? 4 : 2);
  return { status: status ?? (hasLocation ? 302 : 200), headers, body: stdout.subarray(bodyStart) };
}
