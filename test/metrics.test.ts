// The series kept in plain numbers (src/metrics/plain.ts) must scrape as
// the same text as prom-client's own Counter and Histogram given the same
// observations: dashboards and alerts written against one read the other.

import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { CallMetrics } from "../src/metrics/calls.ts";
import { JobMetrics } from "../src/metrics/jobs.ts";

const BOUNDS = [0.001, 0.01, 0.1, 1, 10];

describe("plain metrics", () => {
  test("job metrics scrape as prom-client's, empty and after jobs", async () => {
    const peer = new Registry();
    const plain = new Registry();
    const attempts = new Counter({ name: "thaw_job_attempts_total", help: "Async job attempts run on this node, by how they ended (finished, retry, dead)", labelNames: ["result"], registers: [peer] });
    const finished = new Counter({ name: "thaw_jobs_finished_total", help: "Async jobs that reached a final status on this node (succeeded, failed, dead)", labelNames: ["status"], registers: [peer] });
    const queue = new Histogram({ name: "thaw_job_queue_seconds", help: "From a job's acceptance to the start of its last attempt, for jobs finished on this node", buckets: BOUNDS, registers: [peer] });
    const jobs = new JobMetrics(plain, BOUNDS);
    expect(await plain.metrics()).toBe(await peer.metrics());
    const seen: [string, string | undefined, number | undefined][] = [
      ["finished", "succeeded", 0.003], ["retry", undefined, undefined], ["dead", "dead", undefined], ["finished", "failed", 2], ["finished", "succeeded", 0.0005],
    ];
    for (const [result, status, queueSeconds] of seen) {
      attempts.inc({ result });
      jobs.attempt(result);
      if (!status) continue;
      finished.inc({ status });
      if (queueSeconds !== undefined) queue.observe(queueSeconds);
      jobs.finish(status, queueSeconds);
    }
    expect(await plain.metrics()).toBe(await peer.metrics());
  });

  test("call metrics scrape as prom-client's", async () => {
    const peer = new Registry();
    const plain = new Registry();
    const fn = ["tenant", "function"];
    const calls = new Counter({ name: "thaw_calls_total", help: "Function calls by outcome (ok, or an error code)", labelNames: [...fn, "outcome"], registers: [peer] });
    const errors = new Counter({ name: "thaw_call_errors_total", help: "Calls that ended in an error, by error code", labelNames: [...fn, "code"], registers: [peer] });
    const cold = new Counter({ name: "thaw_cold_starts_total", help: "Calls that found no warm instance and restored one", labelNames: fn, registers: [peer] });
    const latency = new Histogram({ name: "thaw_call_duration_seconds", help: "Call latency inside thaw (acquire + run + reset)", labelNames: [...fn, "cold"], buckets: BOUNDS, registers: [peer] });
    const metrics = new CallMetrics(plain, BOUNDS);
    const seen: [string, string, string, boolean, number | undefined][] = [
      ["a", "hello", "ok", false, 0.00002], ["a", "hello", "ok", true, 0.0004], ["a", "hello", "function_trap", false, 0.002],
      ["b", "json", "ok", false, 0.5], ["b", "json", "overloaded", false, undefined],
    ];
    for (const [tenant, name, outcome, isCold, seconds] of seen) {
      calls.inc({ tenant, function: name, outcome });
      if (outcome !== "ok") errors.inc({ tenant, function: name, code: outcome });
      const f = metrics.of(tenant, name);
      f.count(outcome);
      if (seconds === undefined) continue;
      if (isCold) cold.inc({ tenant, function: name });
      latency.observe({ tenant, function: name, cold: String(isCold) }, seconds);
      f.observe(isCold, seconds);
    }
    expect(await plain.metrics()).toBe(await peer.metrics());
  });
});
