// The jobs a node finished lately whose record can no longer change, kept
// in memory for status reads: a job that succeeded or failed with no
// callback stays as it is until it expires (only dead jobs can be retried,
// and there is no delivery to record), and a status read usually comes
// soon after, from the node the job was submitted to. Both queues answer
// those reads from here, with no round trip to Redis or SQLite.
//
// Bounded by the bytes of the results kept; past the bound the oldest go,
// until a quarter of it is free: a Map iterates past the slots of deleted
// entries until it rehashes, so dropping one entry per job would walk them
// all every time.

import type { JobState } from "./job.ts";

/** What a node remembers of the jobs it finished: bytes of results, at most. */
export const RECENT_BYTES = 8 << 20;

/** What a remembered job costs besides its result body and stderr. */
const OVERHEAD = 512;

const sizeOf = (s: JobState) => OVERHEAD + (s.result ? s.result.body.length + s.result.stderr.length : 0);

export class RecentJobs {
  private readonly jobs = new Map<string, JobState>();
  private bytes = 0;

  constructor(private readonly maxBytes = RECENT_BYTES) {}

  get(id: string): JobState | undefined {
    return this.jobs.get(id);
  }

  /** Keep a finished job, if it is one whose record can no longer change. */
  add(state: JobState): void {
    if (state.callback || (state.status !== "succeeded" && state.status !== "failed")) return;
    const before = this.jobs.get(state.id);
    if (before) this.bytes -= sizeOf(before);
    this.jobs.set(state.id, state);
    this.bytes += sizeOf(state);
    if (this.bytes <= this.maxBytes) return;
    for (const [id, old] of this.jobs) {
      if (this.bytes <= this.maxBytes * 0.75) break;
      this.jobs.delete(id);
      this.bytes -= sizeOf(old);
    }
  }
}
