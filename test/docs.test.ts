// The API docs as a person sees them: /openapi opened in headless Chromium
// (Debian's package, driven by playwright-core) renders Swagger UI from the
// assets the server itself serves -- no internet -- and lists the routes;
// the full-page screenshot is kept in test-output/swagger-ui.png. Also: the
// OpenAPI document names every route.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { ROOT } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

const CHROMIUM = process.env.THAW_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT = join(ROOT, "test-output", "swagger-ui.png");
const ROUTES = [
  "/v1/functions",
  "/v1/functions/{name}",
  "/v1/functions/{name}/invoke",
  "/v1/functions/{name}/jobs",
  "/v1/jobs/{id}",
  "/v1/jobs/{id}/result",
  "/v1/functions/{name}/logs",
  "/v1/jobs/{id}/retry",
  "/function/{name}",
  "/async-function/{name}",
  "/v1/callback-secret",
  "/v1/nodes",
  "/fn/{name}/*",
  "/healthz",
  "/readyz",
  "/metrics",
];

let server: ServerProcess;

beforeAll(async () => {
  server = await startServer({ args: ["--shutdown-timeout", "3000"] });
});

afterAll(async () => {
  await server?.stop();
});

describe("API docs", () => {
  test("/openapi/json lists every route", async () => {
    const res = await fetch(`${server.url}/openapi/json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    const paths = Object.keys(doc.paths);
    for (const route of ROUTES) expect(paths).toContain(route);
  });

  test(
    "Swagger UI renders in headless Chromium",
    async () => {
      if (!existsSync(CHROMIUM)) {
        throw new Error(
          `Chromium not found at ${CHROMIUM}: this test needs it (apt-get install -y --no-install-recommends chromium), or set THAW_CHROMIUM`,
        );
      }
      let browser: Browser | undefined;
      try {
        // launch() gives the browser a fresh temporary --user-data-dir and removes it on close.
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
          ],
          timeout: 60_000,
        });
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const failed: string[] = [];
        page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
        page.on("pageerror", (e) => failed.push(`page error: ${e.message}`));

        const res = await page.goto(`${server.url}/openapi`, { waitUntil: "load" });
        expect(res?.status()).toBe(200);

        // Swagger UI has fetched /openapi/json and drawn one block per operation.
        const invoke = page.locator(".opblock-summary-path", { hasText: "/v1/functions/{name}/invoke" });
        await invoke.first().waitFor({ state: "visible", timeout: 30_000 });
        const listed = (await page.locator(".opblock-summary-path").allTextContents()).map((t) =>
          t.replace(/\u200b/g, "").trim(),
        );
        for (const route of ROUTES) expect(listed).toContain(route);
        expect(await page.locator(".info .title").first().textContent()).toContain("thaw");
        expect(failed).toEqual([]);

        mkdirSync(join(ROOT, "test-output"), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
        console.log(`screenshot: ${SCREENSHOT}`);
      } finally {
        await browser?.close();
      }
    },
    120_000,
  );
});
