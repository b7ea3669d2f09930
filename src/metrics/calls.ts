// The per-call series of /metrics -- thaw_calls_total, thaw_call_errors_total,
// thaw_cold_starts_total, thaw_call_duration_seconds -- counted in plain
// numbers per function and handed to prom-client's registry when scraped.
//
// Why not prom-client's Counter and Histogram: their inc() and observe()
// take the series' labels on every call, even through a child from
// labels(), and validate and hash them; under load that was 1.5 to 3 µs of
// the event loop's ~21 µs per call (bench invoke, CPU per request). Here a
// call adds to the numbers of its function's FunctionCalls, which the
// caller looks up once per function, and the registry reads the values at
// scrape time in the shape prom-client's own metrics give it (get()), so
// the text exposition is the same, line for line.
//
// A series exists from its first count, as with prom-client; a deleted
// function's series go with it (forget).

import type { Registry } from "prom-client";

/** One series of a metric as the registry renders it (prom-client's MetricValue). */
interface Value {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  metricName?: string;
}

class Latency {
  /** Calls per bucket (not cumulative); the last counts those above every bound. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** The counts of one function: where a call of it adds its outcome and latency. */
export class FunctionCalls {
  /** Calls by outcome ("ok" or an error code), in order of first occurrence. */
  readonly outcomes = new Map<string, number>();
  coldStarts = 0;
  warm?: Latency;
  cold?: Latency;

  constructor(
    readonly labels: { tenant: string; function: string },
    private readonly bounds: readonly number[],
  ) {}

  count(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
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
    this.register(registry, "thaw_calls_total", "Function calls by outcome (ok, or an error code)", "counter", () =>
      all().flatMap((f) => [...f.outcomes].map(([outcome, value]) => ({ value, labels: { ...f.labels, outcome } }))),
    );
    this.register(registry, "thaw_call_errors_total", "Calls that ended in an error, by error code", "counter", () =>
      all().flatMap((f) =>
        [...f.outcomes].filter(([code]) => code !== "ok").map(([code, value]) => ({ value, labels: { ...f.labels, code } })),
      ),
    );
    this.register(registry, "thaw_cold_starts_total", "Calls that found no warm instance and restored one", "counter", () =>
      all().filter((f) => f.coldStarts > 0).map((f) => ({ value: f.coldStarts, labels: { ...f.labels } })),
    );
    this.register(registry, "thaw_call_duration_seconds", "Call latency inside thaw (acquire + run + reset)", "histogram", () =>
      all().flatMap((f) => [
        ...(f.warm ? this.histogram("thaw_call_duration_seconds", f.warm, { ...f.labels, cold: "false" }) : []),
        ...(f.cold ? this.histogram("thaw_call_duration_seconds", f.cold, { ...f.labels, cold: "true" }) : []),
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

  private register(registry: Registry, name: string, help: string, type: "counter" | "histogram", values: () => Value[]): void {
    const metric = { name, help, type, aggregator: "sum", get: () => ({ name, help, type, values: values(), aggregator: "sum" }) };
    registry.registerMetric(metric as never);
  }

  /** Cumulative buckets, +Inf, sum and count, as prom-client's Histogram exports them. */
  private histogram(name: string, h: Latency, labels: Record<string, string>): Value[] {
    let acc = 0;
    const rows: Value[] = this.bounds.map((le, i) => {
      acc += h.buckets[i]!;
      return { labels: { le }, sharedLabels: labels, value: acc, metricName: `${name}_bucket` };
    });
    rows.push(
      { labels: { le: "+Inf" }, sharedLabels: labels, value: h.count, metricName: `${name}_bucket` },
      { labels: {}, sharedLabels: labels, value: h.sum, metricName: `${name}_sum` },
      { labels: {}, sharedLabels: labels, value: h.count, metricName: `${name}_count` },
    );
    return rows;
  }
}
