// The hand-written msgpack of job payloads and results (src/jobs/payload.ts)
// against msgpackr, which unpacks them in both queues and which producers
// outside thaw may use: the same values come back, field for field and in
// order, whatever the lengths (each msgpack size class), characters and
// numbers.

import { describe, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { decodePayload, type JobResult, type JobSpec } from "../src/jobs/job.ts";
import { packPayload, packResult } from "../src/jobs/payload.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A value with its bytes as plain arrays, so toEqual compares Buffer and Uint8Array alike. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v];
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
}

describe("job payload", () => {
  const specs: JobSpec[] = [
    { tenant: "default", function: "hello", body: new Uint8Array() },
    { tenant: "t", function: "f", body: new Uint8Array(300).fill(7), env: { A: "1", ü: "é".repeat(40) }, callbackUrl: `https://example.com/${"x".repeat(300)}`, retryFunctionErrors: true, requestId: "req-1" },
    { tenant: "ténant", function: "f".repeat(70_000), body: new Uint8Array(70_000).fill(1), retryFunctionErrors: false },
    { tenant: "a", function: "b", body: new Uint8Array(5), env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`K${i}`, `v${i}`])) },
  ];

  test("msgpackr reads what thaw packs as the map thaw used to pack with it, and decodePayload checks it the same", () => {
    for (const spec of specs) {
      const bytes = packPayload(spec);
      const defined = Object.fromEntries(Object.entries({ v: 1, ...spec }).filter(([, v]) => v !== undefined));
      expect(plain(packr.unpack(bytes))).toEqual(plain(defined));
      expect(Object.keys(packr.unpack(bytes))).toEqual(Object.keys(defined));
      expect(plain(decodePayload(bytes))).toEqual(plain(decodePayload(packr.pack({ v: 1, ...spec }))));
    }
  });

  test("an env of more than 65,535 entries gets a map 32 header (msgpackr's own packer refuses it)", () => {
    const env = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`K${i}`, "v"]));
    const unpacked = packr.unpack(packPayload({ tenant: "a", function: "b", body: new Uint8Array(1), env })) as { env: Record<string, string> };
    expect(Object.keys(unpacked.env).length).toBe(70_000);
    expect(unpacked.env.K69999).toBe("v");
  });
});

describe("job result", () => {
  const results: JobResult[] = [
    { outcome: "ok", exitCode: 0, body: new Uint8Array([1, 2, 3]), contentType: "text/plain", stderr: "", durationMs: 0.123456, cold: false, version: 3 },
    { outcome: "overloaded", exitCode: -1, body: new Uint8Array(70_000).fill(9), contentType: "application/json; charset=utf-8", stderr: "é".repeat(5000), durationMs: 12, cold: true, version: 123_456 },
    { outcome: "internal", exitCode: 255, body: new Uint8Array(), contentType: "x", stderr: "s", durationMs: 1e12 + 0.5, cold: false, version: 2 ** 33 },
    { outcome: "shutting_down", exitCode: -100_000, body: new Uint8Array(), contentType: "x", stderr: "s".repeat(300), durationMs: -3, cold: false, version: 0 },
  ];

  test("msgpackr reads what thaw packs as what it packs itself", () => {
    for (const r of results) {
      const ours = packr.unpack(packResult(r));
      expect(plain(ours)).toEqual(plain(packr.unpack(packr.pack(r))));
      expect(Object.keys(ours)).toEqual(Object.keys(r));
    }
  });
});
