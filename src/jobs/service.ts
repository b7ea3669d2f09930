// Async jobs as the API offers them: submit a call, read its state and
// result, put a dead one back. Checks what can be checked at submit time
// (the function exists, the callback URL -- destination.ts -- and the
// attempts), so a client learns about a typo from the 4xx, not from a dead
// job later.

import type { Registry } from "../registry/registry.ts";
import { ThawError } from "../service/errors.ts";
import { DEFAULT_ATTEMPTS, type JobResult, type JobState, type JobView, MAX_ATTEMPTS, viewOf } from "./job.ts";
import type { JobQueue } from "./queue.ts";

export interface SubmitRequest {
  body: Uint8Array;
  callbackUrl?: string;
  attempts?: number;
  retryFunctionErrors?: boolean;
  /** The X-Request-Id of the submitting request, kept with the job. */
  requestId?: string;
}

export class JobService {
  constructor(
    readonly queue: JobQueue,
    private readonly registry: Registry,
  ) {}

  async submit(tenant: string, name: string, req: SubmitRequest): Promise<JobView> {
    if (!this.registry.get(tenant, name)) throw new ThawError("function_not_found", `no function "${name}"`);
    const attempts = req.attempts ?? DEFAULT_ATTEMPTS;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS)
      throw new ThawError("invalid_request", `attempts must be a whole number from 1 to ${MAX_ATTEMPTS}`);
    const callbackUrl = req.callbackUrl === undefined ? undefined : await this.queue.callbacks.policy.check(req.callbackUrl);
    const state = await this.queue.submit(
      { tenant, function: name, body: req.body, callbackUrl, retryFunctionErrors: req.retryFunctionErrors, requestId: req.requestId },
      attempts,
    );
    return viewOf(state);
  }

  async get(tenant: string, id: string): Promise<JobView> {
    return viewOf(await this.state(tenant, id));
  }

  /** The result body of a finished call. */
  async result(tenant: string, id: string): Promise<JobResult> {
    const state = await this.state(tenant, id);
    if (!state.result) throw new ThawError("job_not_found", `job ${id} has no result yet (status ${state.status})`);
    return state.result;
  }

  async retry(tenant: string, id: string): Promise<JobView> {
    const state = await this.state(tenant, id);
    if (state.status !== "dead") throw new ThawError("invalid_request", `only dead jobs can be retried; job ${id} is ${state.status}`);
    const again = await this.queue.retry(id);
    if (!again) throw new ThawError("job_not_found", `no job "${id}"`);
    return viewOf(again);
  }

  /** The key the tenant's callbacks are signed with (secret.ts). */
  async callbackSecret(tenant: string): Promise<string> {
    try {
      return await this.queue.callbacks.secrets.forTenant(tenant);
    } catch {
      throw new ThawError("queue_unavailable", "the callback signing secret cannot be read now (is the queue's store reachable?)", {}, 1);
    }
  }

  /** A job of the tenant; another tenant's job is as absent as a missing one. */
  private async state(tenant: string, id: string): Promise<JobState> {
    const state = await this.queue.get(id);
    if (!state || state.spec.tenant !== tenant) throw new ThawError("job_not_found", `no job "${id}"`);
    return state;
  }
}
