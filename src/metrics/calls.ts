// The per-call series of /metrics -- thaw_calls_total, thaw_call_errors_total,
// thaw_cold_starts_total, thaw_call_duration_seconds -- counted in plain
// numbers per function (plain.ts) and handed to prom-client's registry when
// scraped.
//
// Why not prom-client's Counter and Histogram: their inc() and observe()
// take the series' labels on every call, even through a child from
// labels(), and validate and hash them; under load that was 1.5 to 3 µs of
// the event loop's ~21 µs per call (bench invoke, CPU per request). Here a
// call adds to the numbers of its function's FunctionCalls, which the
// caller looks up once per function.
//
// A series exists from its first count, as with prom-client; a deleted
// function's series go with it (forget).

import type { Registry } from "prom-client";
import { Counts, Latency, registerPlain } from "./plain.ts";

/** The counts of one function: where a call of it adds its outcome and latency. */
export class FunctionCalls {
  /** Calls by outcome ("ok" or an error code). */
  readonly outcomes = new Counts();
  coldStarts = 0;
  warm?: Latency;
  cold?: Latency;

  constructor(
    readonly labels: { tenant: string; function: string },
    private readonly bounds: readonly number[],
  ) {}

  count(outcome: string): void {
    this.outcomes.add(outcome);
  }

  /** A call that ran, `seconds` inside thaw; a cold one counts as a cold start too. */
  observe(cold: boolean, seconds: number): void {
    if (cold) {
      this.coldStarts++;
      (this.cold ??= new Latency(this.bounds)).observe(seconds);
    } else (this.warm ??= new Latency(this.bounds)).observe(seconds);
  }
}

export class CallMetrics {
  /** Per tenant, per function name: two lookups, no key string built per call. */
  private readonly functions = new Map<string, Map<string, FunctionCalls>>();

  constructor(
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    const all = () => [...this.functions.values()].flatMap((names) => [...names.values()]);
    registerPlain(registry, "thaw_calls_total", "Function calls by outcome (ok, or an error code)", "counter", () =>
      all().flatMap((f) => [...f.outcomes.entries()].map(([outcome, value]) => ({ value, labels: { ...f.labels, outcome } }))),
    );
    registerPlain(registry, "thaw_call_errors_total", "Calls that ended in an error, by error code", "counter", () =>
      all().flatMap((f) =>
        [...f.outcomes.entries()].filter(([code]) => code !== "ok").map(([code, value]) => ({ value, labels: { ...f.labels, code } })),
      ),
    );
    registerPlain(registry, "thaw_cold_starts_total", "Calls that found no warm instance and restored one", "counter", () =>
      all().filter((f) => f.coldStarts > 0).map((f) => ({ value: f.coldStarts, labels: { ...f.labels } })),
    );
    registerPlain(registry, "thaw_call_duration_seconds", "Call latency inside thaw (acquire + run + reset)", "histogram", () =>
      all().flatMap((f) => [
        ...(f.warm ? f.warm.values("thaw_call_duration_seconds", { ...f.labels, cold: "false" }) : []),
        ...(f.cold ? f.cold.values("thaw_call_duration_seconds", { ...f.labels, cold: "true" }) : []),
      ]),
    );
  }

  /** The counts of `tenant`'s function `name`, created at its first call. */
  of(tenant: string, name: string): FunctionCalls {
    let names = this.functions.get(tenant);
    if (!names) {
      names = new Map();
      this.functions.set(tenant, names);
    }
    let f = names.get(name);
    if (!f) {
      f = new FunctionCalls({ tenant, function: name }, this.bounds);
      names.set(name, f);
    }
    return f;
  }

  /** Drops every series of a deleted function; a holder of its FunctionCalls must look it up again. */
  forget(tenant: string, name: string): void {
    this.functions.get(tenant)?.delete(name);
  }
}
