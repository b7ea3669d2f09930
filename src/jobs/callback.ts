// Delivering callbacks: POSTing a finished job to the URL its submitter
// gave, outside the job slots.
//
// A queue hands a delivery over only once the job's final outcome is
// durably recorded (SQLite commit; the Redis script that ends the job), and
// keeps it marked pending there until delivered, so a node that stops
// with deliveries in hand loses none: local.ts picks them up at start,
// redis.ts by a lease other nodes take over. One recorded outcome, one
// delivery: its Idempotency-Key (job id + the outcome's attempt number)
// and its body do not change between delivery attempts.
//
// Deliveries have slots of their own (--callback-concurrency) and a cap
// per tenant (--callback-tenant-concurrency), taken in turn across tenants,
// and a slot is held only while an HTTP attempt runs (--callback-timeout),
// not through the backoff between attempts: a tenant whose webhook hangs
// uses its own cap of slots and no job slot, so other tenants' jobs and
// callbacks go on.
//
// Each attempt resolves the host again, refuses it if any address is not
// allowed (destination.ts), and connects to the vetted address itself --
// fetch("http://<ip>:port/path") with the original Host header, and for
// https `tls.serverName` (Bun's fetch sends it as SNI and verifies the
// certificate against it) -- so a name rebound to an inside address
// between the check and the connect is never reached. Redirects are not
// followed. What the job records is coarse on purpose: "HTTP 503", "could
// not connect" (refused, reset, unreachable, TLS, timeout, DNS: all one),
// or "callback address not allowed". Telling refused from timed out, or
// reporting a connect error's text, would let a tenant map ports and hosts
// through thaw; the operator's log has the error code.

import type { ServerConfig } from "../config.ts";
import { ConfigError } from "../config.ts";
import type { Logger } from "../log.ts";
import { formatHost, parseIP } from "./address.ts";
import { AddressNotAllowed, bareHost, CallbackPolicy, type Resolver } from "./destination.ts";
import { type CallbackStatus, type JobState, type JobStatus, viewOf } from "./job.ts";
import { CallbackSecrets, fixedSecret, type SecretSource, signature } from "./secret.ts";

export interface CallbackSettings {
  /** --callback-allow: CIDR ranges and host names callbacks may reach besides public addresses. */
  allow: string[];
  /** Deliveries in flight on this node. */
  concurrency: number;
  /** Deliveries in flight per tenant on this node. */
  tenantConcurrency: number;
  /** One delivery attempt, connect to response headers (ms). */
  timeoutMs: number;
  /** Attempts per delivery. */
  attempts: number;
  /** Backoff before the second attempt (ms); it doubles after every attempt. */
  backoffMs: number;
  /** The node-wide signing secret; generated and kept if unset. */
  secret?: string;
}

export const CALLBACK_DEFAULTS: CallbackSettings = {
  allow: [],
  concurrency: 8,
  tenantConcurrency: 2,
  timeoutMs: 5000,
  attempts: 3,
  backoffMs: 1000,
};

export function callbackSettings(config: ServerConfig): CallbackSettings {
  if (config.callbackSecret !== undefined && config.callbackSecret.length < 16)
    throw new ConfigError("--callback-secret (THAW_CALLBACK_SECRET) must be at least 16 characters");
  try {
    new CallbackPolicy(config.callbackAllow);
  } catch (e) {
    throw new ConfigError(`--${(e as Error).message} (THAW_CALLBACK_ALLOW)`);
  }
  return {
    allow: config.callbackAllow,
    concurrency: config.callbackConcurrency,
    tenantConcurrency: config.callbackTenantConcurrency,
    timeoutMs: config.callbackTimeout,
    attempts: config.callbackAttempts,
    backoffMs: config.callbackBackoff,
    secret: config.callbackSecret,
  };
}

/** One delivery: a recorded final outcome of a job, for its callback URL. */
export interface Delivery {
  jobId: string;
  tenant: string;
  url: string;
  /** Idempotency-Key: the same for every attempt of this delivery. */
  key: string;
  status: JobStatus;
  /** The JSON body, fixed when the delivery is created. */
  body: string;
}

/** Stores a delivery's progress with the job; `final` once it is delivered or given up. */
export type Recorder = (status: CallbackStatus, final: boolean) => void | Promise<void>;

export const ERR_NOT_ALLOWED = "callback address not allowed";
export const ERR_CONNECT = "callback delivery failed: could not connect";
const errHttp = (status: number) => `callback delivery failed: HTTP ${status}`;

/** The Idempotency-Key of a job's outcome: its id, and the attempt (and round of /retry) that produced it. */
export const deliveryKey = (jobId: string, attempt: number, retries = 0) => (retries > 0 ? `${jobId}:${attempt}:r${retries}` : `${jobId}:${attempt}`);

/** The callback's body: the job as GET /v1/jobs/{id} shows it, and its stdout in base64. */
export function callbackBody(state: JobState): string {
  return JSON.stringify({
    ...viewOf(state),
    callback: undefined,
    body: state.result ? Buffer.from(state.result.body).toString("base64") : undefined,
  });
}

/** A delivery the queue created, pending with the job until it is delivered or given up. */
export function pendingStatus(url: string, key: string): CallbackStatus {
  return { url, state: "pending", attempts: 0, key };
}

interface Task {
  delivery: Delivery;
  status: CallbackStatus;
  record: Recorder;
  /** False once another node owns the delivery (redis.ts's lease). */
  owned: () => boolean;
}

export class CallbackDispatcher {
  readonly policy: CallbackPolicy;
  readonly secrets: CallbackSecrets;
  /** Per tenant, deliveries waiting for a slot, oldest first; tenants are served in turn. */
  private readonly ready = new Map<string, Task[]>();
  private readonly inFlight = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly backoffs = new Set<ReturnType<typeof setTimeout>>();
  private active = 0;
  private closing = false;

  constructor(
    readonly settings: CallbackSettings,
    secretSource: SecretSource,
    private readonly log: Logger,
    resolve?: Resolver,
  ) {
    this.policy = new CallbackPolicy(settings.allow, resolve);
    this.secrets = new CallbackSecrets(settings.secret ? fixedSecret(settings.secret) : secretSource, log);
  }

  /** Take a delivery; `record` is told of every attempt. */
  enqueue(delivery: Delivery, record: Recorder, owned: () => boolean = () => true, status?: CallbackStatus): void {
    if (this.closing) return;
    const task = { delivery, status: status ?? pendingStatus(delivery.url, delivery.key), record, owned };
    this.push(task);
  }

  private push(task: Task): void {
    const q = this.ready.get(task.delivery.tenant);
    if (q) q.push(task);
    else this.ready.set(task.delivery.tenant, [task]);
    this.pump();
  }

  /** Start deliveries while there are free slots, taking tenants in turn and each within its cap. */
  private pump(): void {
    while (!this.closing && this.active < this.settings.concurrency) {
      const task = this.next();
      if (!task) return;
      const tenant = task.delivery.tenant;
      this.active++;
      this.inFlight.set(tenant, (this.inFlight.get(tenant) ?? 0) + 1);
      const run = this.attempt(task)
        .catch((e) => this.log.error("callback delivery failed unexpectedly", { job: task.delivery.jobId, error: String(e) }))
        .finally(() => {
          this.active--;
          const n = (this.inFlight.get(tenant) ?? 1) - 1;
          if (n > 0) this.inFlight.set(tenant, n);
          else this.inFlight.delete(tenant);
          this.running.delete(run);
          this.pump();
        });
      this.running.add(run);
    }
  }

  private next(): Task | undefined {
    for (const [tenant, q] of this.ready) {
      if ((this.inFlight.get(tenant) ?? 0) >= this.settings.tenantConcurrency) continue;
      const task = q.shift()!;
      // To the back of the line: the next slot goes to the next tenant.
      this.ready.delete(tenant);
      if (q.length > 0) this.ready.set(tenant, q);
      return task;
    }
    return undefined;
  }

  private async attempt(task: Task): Promise<void> {
    if (!task.owned()) return;
    const { status } = task;
    status.attempts++;
    const outcome = await this.deliverOnce(task.delivery, status.attempts);
    if (outcome === "delivered") {
      status.state = "delivered";
      delete status.lastError;
    } else {
      status.lastError = outcome.error;
      if (outcome.retry && status.attempts < this.settings.attempts && !this.closing) {
        await this.record(task, false);
        const timer = setTimeout(() => {
          this.backoffs.delete(timer);
          if (!this.closing) this.push(task);
        }, this.settings.backoffMs * 2 ** (status.attempts - 1));
        this.backoffs.add(timer);
        return;
      }
      if (outcome.retry && status.attempts < this.settings.attempts) {
        // Shutting down mid-delivery: it stays pending with the job, for whoever picks it up next.
        await this.record(task, false);
        return;
      }
      status.state = "failed";
      this.log.warn("job callback not delivered", { job: task.delivery.jobId, host: hostOf(task.delivery.url), error: status.lastError, attempts: status.attempts });
    }
    await this.record(task, true);
  }

  private async record(task: Task, final: boolean): Promise<void> {
    if (!task.owned()) return;
    try {
      await task.record({ ...task.status }, final);
    } catch (e) {
      this.log.warn("callback delivery state not recorded", { job: task.delivery.jobId, error: String(e) });
    }
  }

  /** One HTTP attempt: delivered, or the coarse error the job records and whether another attempt may help. */
  async deliverOnce(d: Delivery, attempt: number): Promise<"delivered" | { error: string; retry: boolean }> {
    const url = new URL(d.url);
    let addresses: string[];
    try {
      addresses = await this.policy.vet(url);
    } catch (e) {
      if (e instanceof AddressNotAllowed) {
        this.log.warn("callback address not allowed at delivery", { job: d.jobId, host: bareHost(url) });
        return { error: ERR_NOT_ALLOWED, retry: false };
      }
      this.log.info("callback host did not resolve", { job: d.jobId, host: bareHost(url), error: (e as Error).message });
      return { error: ERR_CONNECT, retry: true };
    }
    let key: string;
    try {
      key = await this.secrets.forTenant(d.tenant);
    } catch (e) {
      this.log.warn("callback not signed: the signing secret is unavailable", { job: d.jobId, error: String(e) });
      return { error: ERR_CONNECT, retry: true };
    }
    const t = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "thaw-callbacks/1",
      host: url.host,
      "x-thaw-job-id": d.jobId,
      "x-thaw-job-status": d.status,
      "x-thaw-delivery-attempt": String(attempt),
      "idempotency-key": d.key,
      "x-thaw-signature": signature(key, t, d.body),
    };
    const host = bareHost(url);
    const name = parseIP(host) ? undefined : host;
    const signal = AbortSignal.timeout(this.settings.timeoutMs);
    let lastCode: string | undefined;
    // The addresses in DNS order; the next one only if this one cannot be reached at all.
    for (const address of addresses.slice(0, 4)) {
      const pinned = `${url.protocol}//${formatHost(address)}${url.port ? `:${url.port}` : ""}${url.pathname}${url.search}`;
      try {
        const res = await fetch(pinned, {
          method: "POST",
          body: d.body,
          headers,
          signal,
          redirect: "manual",
          ...(url.protocol === "https:" && name ? { tls: { serverName: name } } : {}),
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) return "delivered";
        return { error: errHttp(res.status), retry: true };
      } catch (e) {
        lastCode = (e as { code?: string; name?: string }).code ?? (e as Error).name;
        if (signal.aborted) break;
      }
    }
    this.log.info("callback attempt could not connect", { job: d.jobId, host, attempt, error: lastCode });
    return { error: ERR_CONNECT, retry: true };
  }

  /** Stop taking deliveries; wait for attempts in flight until `deadline`. What is left stays pending with its job. */
  async close(deadline: number): Promise<void> {
    this.closing = true;
    for (const timer of this.backoffs) clearTimeout(timer);
    this.backoffs.clear();
    this.ready.clear();
    while (this.running.size > 0 && Date.now() < deadline)
      await Promise.race([Promise.allSettled([...this.running]), Bun.sleep(Math.max(1, deadline - Date.now()))]);
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "?";
  }
}
