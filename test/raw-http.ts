// One raw HTTP/1.1 exchange over a socket, for requests fetch() refuses to
// send (CR or LF inside a header value): what hostile clients can still send.

import { connect } from "node:net";

/** Sends `head` as is to the server at `url`; resolves with the response head (or what came before the close). */
export function rawRequest(url: string, head: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(head));
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => {
      data += chunk;
      if (data.includes("\r\n\r\n")) {
        socket.destroy();
        resolve(data.slice(0, data.indexOf("\r\n\r\n")));
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(data));
    socket.setTimeout(5000, () => socket.destroy());
  });
}
