// Which calls get an access-log line ("call", at info level): --access-log.
//
//   off        none (failed calls are still call logs and metrics)
//   errors     every call that did not end "ok": function errors (exit,
//              trap, timeout, memory limit) and refusals (404, 429, 503,
//              a client that went away). The default.
//   sample:N   errors, and one successful call in N
//   all        every call
//
// Why errors by default: a line per successful call was most of what a
// loaded node did besides calls (960 MB of stdout in an 8-minute soak at
// 10.6k calls/s), and it says nothing the metrics (calls, latency, cold
// starts per function) do not. A failure is rare and is what someone will
// look for; it is always written unless logging is off. Sampling is
// deterministic (every Nth), so its cost is one counter.

export type AccessLog = { mode: "off" } | { mode: "errors" } | { mode: "all" } | { mode: "sample"; every: number };

export const ACCESS_LOG_HELP = "off, errors, sample:N (errors and one success in N) or all";

/** Parses --access-log; undefined when the value is not one of the forms. */
export function parseAccessLog(spec: string): AccessLog | undefined {
  if (spec === "off" || spec === "errors" || spec === "all") return { mode: spec };
  const m = /^sample:([1-9][0-9]{0,8})$/.exec(spec);
  return m ? { mode: "sample", every: Number(m[1]) } : undefined;
}

/** Decides, call by call, whether the call gets a line. */
export class AccessLogPolicy {
  private seen = 0;

  constructor(private readonly config: AccessLog) {}

  wants(ok: boolean): boolean {
    switch (this.config.mode) {
      case "off":
        return false;
      case "all":
        return true;
      case "errors":
        return !ok;
      case "sample":
        if (!ok) return true;
        this.seen = (this.seen + 1) % this.config.every;
        return this.seen === 0;
    }
  }
}
