// Series kept in plain numbers on the hot paths (calls.ts, jobs.ts) and
// handed to prom-client's registry when scraped, in the shape its own
// metrics give it (get()), so the text exposition is the same line for
// line. Why not prom-client's Counter and Histogram there: their inc() and
// observe() take the series' labels on every call and validate and hash
// them, which under load was microseconds per call (calls.ts).

import type { Registry } from "prom-client";

/** One series of a metric as the registry renders it (prom-client's MetricValue). */
export interface Value {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  metricName?: string;
}

export class Latency {
  /** Observations per bucket (not cumulative); the last counts those above every bound. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }

  /** Cumulative buckets, +Inf, sum and count, as prom-client's Histogram exports them. */
  values(name: string, labels: Record<string, string>): Value[] {
    let acc = 0;
    const rows: Value[] = this.bounds.map((le, i) => {
      acc += this.buckets[i]!;
      return { labels: { le }, sharedLabels: labels, value: acc, metricName: `${name}_bucket` };
    });
    rows.push(
      { labels: { le: "+Inf" }, sharedLabels: labels, value: this.count, metricName: `${name}_bucket` },
      { labels: {}, sharedLabels: labels, value: this.sum, metricName: `${name}_sum` },
      { labels: {}, sharedLabels: labels, value: this.count, metricName: `${name}_count` },
    );
    return rows;
  }
}

/** Counts by one label's value, in order of first occurrence. */
export class Counts {
  private readonly byValue = new Map<string, number>();

  add(value: string): void {
    this.byValue.set(value, (this.byValue.get(value) ?? 0) + 1);
  }

  entries(): IterableIterator<[string, number]> {
    return this.byValue.entries();
  }
}

/** A metric whose series `values` computes at each scrape. */
export function registerPlain(registry: Registry, name: string, help: string, type: "counter" | "histogram", values: () => Value[]): void {
  const metric = { name, help, type, aggregator: "sum", get: () => ({ name, help, type, values: values(), aggregator: "sum" }) };
  registry.registerMetric(metric as never);
}
