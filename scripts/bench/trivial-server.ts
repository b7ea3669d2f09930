// The peer for `bun run bench invoke`: the smallest Elysia app, one POST
// route answering a constant, on a free loopback port. Prints the port as its
// only stdout line once listening; runs until killed.

import { Elysia } from "elysia";

const app = new Elysia().post("/", () => "Hello, world!\n").listen({ hostname: "127.0.0.1", port: Number(process.argv[2] ?? 0) });
console.log(app.server!.port);
