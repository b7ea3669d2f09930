// The client commands (deploy, invoke, job, functions) against a real server.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, wasmPath } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

let server: ServerProcess;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

function thaw(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), ...args], {
    env: { ...process.env, THAW_URL: server.url },
  });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

test("deploy, invoke, functions: a function from file to answer", () => {
  const deployed = thaw("deploy", wasmPath("wordcount"), "--name", "wc");
  expect(deployed.code).toBe(0);
  expect(deployed.stdout).toMatch(/^wc ready v1 /);
  const called = thaw("invoke", "wc", "--data", "a b a");
  expect(called.code).toBe(0);
  expect(JSON.parse(called.stdout)).toMatchObject({ words: 3, top: [["a", 2], ["b", 1]] });
  expect(thaw("functions").stdout).toMatch(/^wc\s+ready\s+v1/m);
  const missing = thaw("invoke", "nope");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toBe(`thaw: function_not_found: no function "nope"\n`);
});

test("invoke --async prints a job id; job --wait follows it to its result", () => {
  expect(thaw("deploy", wasmPath("wordcount"), "--name", "wc").code).toBe(0);
  const queued = thaw("invoke", "wc", "--async", "--data", "x y y");
  expect(queued.code).toBe(0);
  const id = queued.stdout.trim();
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect(queued.stderr).toContain(`thaw job ${id}`);
  const state = thaw("job", id, "--wait");
  expect(state.code).toBe(0);
  expect(JSON.parse(state.stdout)).toMatchObject({ id, status: "succeeded", attempts: 1 });
  const result = thaw("job", id, "--result");
  expect(JSON.parse(result.stdout)).toMatchObject({ words: 3, top: [["y", 2], ["x", 1]] });
  const unknown = thaw("job", "no-such-job");
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toStartWith("thaw: job_not_found: ");
});
