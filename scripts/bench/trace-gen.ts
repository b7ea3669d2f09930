// Seeded synthetic trace for the `trace` benchmark (see trace.ts for the
// model and the scaling). Pure: no I/O, no engine, same seed -> same trace.
//
//   - N functions, popularity Zipf(s) over rank: function i (1-based) gets a
//     share (1/i^s) / H(N, s) of the total mean rate `totalRate` calls/s.
//   - Bursts: each function alternates ON and OFF periods with exponential
//     durations (means onMeanMs / offMeanMs), starting in ON with the
//     stationary probability on/(on+off) and a fresh exponential residual.
//     During ON, arrivals are Poisson at rate share·totalRate / duty, where
//     duty = on/(on+off), so the long-run mean rate is the Zipf share; during
//     OFF there are none.
//   - Per function a typical duration τ_f drawn lognormal (median
//     tauMedianMs, σ = tauSigma, clamped to [tauMinMs, tauMaxMs]); per call
//     a duration lognormal around τ_f (σ = callSigma, same clamp).
//   - PRNG: mulberry32(seed).

export interface TraceConfig {
  seed: number;
  functions: number;
  zipfS: number;
  /** Mean calls/s over all functions. */
  totalRate: number;
  /** Trace length (ms of trace time). */
  durationMs: number;
  onMeanMs: number;
  offMeanMs: number;
  tauMedianMs: number;
  tauSigma: number;
  callSigma: number;
  tauMinMs: number;
  tauMaxMs: number;
}

export interface TraceCall {
  /** Arrival time, ms of trace time. */
  t: number;
  /** Function index (0 = most popular). */
  fn: number;
  /** Simulated run time of this call, ms. */
  durationMs: number;
}

export interface Trace {
  config: TraceConfig;
  /** τ_f per function, ms. */
  tau: number[];
  /** Long-run mean rate per function, calls/s. */
  rate: number[];
  /** All calls, sorted by arrival time. */
  calls: TraceCall[];
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateTrace(config: TraceConfig): Trace {
  const rnd = mulberry32(config.seed);
  const uniform = () => rnd() || Number.MIN_VALUE; // (0, 1)
  const exp = (mean: number) => -mean * Math.log(uniform());
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * rnd());
  const clamp = (x: number) => Math.min(config.tauMaxMs, Math.max(config.tauMinMs, x));

  const h = Array.from({ length: config.functions }, (_, i) => 1 / (i + 1) ** config.zipfS).reduce((a, b) => a + b, 0);
  const duty = config.onMeanMs / (config.onMeanMs + config.offMeanMs);
  const tau: number[] = [];
  const rate: number[] = [];
  const calls: TraceCall[] = [];
  for (let fn = 0; fn < config.functions; fn++) {
    const mean = (config.totalRate / (fn + 1) ** config.zipfS) / h; // calls/s
    rate.push(mean);
    const tf = clamp(config.tauMedianMs * Math.exp(config.tauSigma * normal()));
    tau.push(tf);
    const onRatePerMs = mean / duty / 1000;
    let on = rnd() < duty;
    let t = 0;
    while (t < config.durationMs) {
      const end = Math.min(config.durationMs, t + exp(on ? config.onMeanMs : config.offMeanMs));
      if (on) {
        for (let a = t + exp(1 / onRatePerMs); a < end; a += exp(1 / onRatePerMs))
          calls.push({ t: a, fn, durationMs: clamp(tf * Math.exp(config.callSigma * normal())) });
      }
      t = end;
      on = !on;
    }
  }
  calls.sort((a, b) => a.t - b.t || a.fn - b.fn);
  return { config, tau, rate, calls };
}
