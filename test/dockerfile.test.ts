// The Docker image, checked without Docker (none on CI machines): its bases
// are pinned by digest, it deploys nothing by default, what it copies from
// the build exists, and the server it starts -- with the image's
// environment -- refuses to listen on 0.0.0.0 without tokens and starts
// with one.

import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { startServer } from "./server.ts";

const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
/** The image's instructions, continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .filter((l) => l.trim() && !l.trim().startsWith("#"));
const imageEnv = Object.fromEntries(
  [...dockerfile.matchAll(/^ENV (.+)$/gm)].flatMap((m) => [...m[1]!.matchAll(/(\w+)=(\S+)/g)].map((kv) => [kv[1]!, kv[2]!])),
);

describe("Dockerfile", () => {
  test("every base image is pinned by digest", () => {
    const args = Object.fromEntries([...dockerfile.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const froms = instructions.filter((l) => l.startsWith("FROM "));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) {
      const image = from.split(/\s+/)[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? name);
      expect(image).toMatch(/^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/);
    }
  });

  test("nothing is deployed by default: no examples flag in the start command", () => {
    const start = instructions.filter((l) => /^(CMD|ENTRYPOINT) /.test(l)).join(" ");
    expect(start).toContain("serve");
    expect(start).not.toMatch(/--examples/);
  });

  test("the files it copies from the build stage exist after make -C functions", () => {
    const copy = instructions.find((l) => l.startsWith("COPY --from=build") && l.includes("functions/build"))!;
    const files = copy.split(/\s+/).filter((w) => w.startsWith("/src/functions/build/"));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(existsSync(join(ROOT, f.replace(/^\/src\//, "")))).toBe(true);
  });

  test("with the image's environment, serve refuses to start without tokens and starts with one", async () => {
    expect(imageEnv.THAW_HOST).toBe("0.0.0.0");
    const env = { ...imageEnv, THAW_DATA_DIR: mkdtempSync(join(tmpdir(), "thaw-docker-")) };
    const refused = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "serve", "--port", "0"], {
      env: { ...process.env, THAW_ADMIN_TOKEN: "", THAW_TOKENS: "", THAW_INSECURE_OPEN: "", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([refused.exited, new Response(refused.stderr).text()]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("without tokens");

    const s = await startServer({ env: { ...env, THAW_ADMIN_TOKEN: "docker-test-admin-token" } });
    try {
      expect((await fetch(`${s.url.replace("0.0.0.0", "127.0.0.1")}/healthz`)).status).toBe(200);
    } finally {
      await s.stop();
    }
  });
});
