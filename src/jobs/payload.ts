// Packing a job's payload and its result (job.ts) as msgpack by hand:
// every job packs one of each, and msgpackr's general packer costs about
// three times as much for these few fields (measured ~2.3 against ~0.8 µs)
// -- and more than that in the JIT, which recompiled its 11,700-bytecode
// pack() again and again under load (tens of ms each time). The bytes are
// plain msgpack (strings, binaries and maps in their smallest form; integers
// in one byte or five), which msgpackr (unpacking in both queues) and any
// other decoder read. Unpacking stays
// msgpackr's: a hand-written reader was slower than its cached-key decoder.

import type { JobResult, JobSpec } from "./job.ts";

class Writer {
  at = 0;
  constructor(readonly out: Buffer) {}

  str(s: string): void {
    const out = this.out;
    if (s.length < 32) {
      let ascii = true;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) {
          ascii = false;
          break;
        }
        out[this.at + 1 + i] = c;
      }
      if (ascii) {
        out[this.at] = 0xa0 | s.length;
        this.at += 1 + s.length;
        return;
      }
    }
    const n = Buffer.byteLength(s);
    if (n < 32) out[this.at++] = 0xa0 | n;
    else this.sized(n, 0xd9, 0xda, 0xdb);
    this.at += out.write(s, this.at, "utf8");
  }

  bin(b: Uint8Array): void {
    this.sized(b.length, 0xc4, 0xc5, 0xc6);
    this.out.set(b, this.at);
    this.at += b.length;
  }

  /** A type byte and the length `n` in 1, 2 or 4 bytes, the smallest that holds it (no 1-byte form when t8 is 0). */
  private sized(n: number, t8: number, t16: number, t32: number): void {
    const out = this.out;
    if (t8 && n < 0x100) {
      out[this.at++] = t8;
      out[this.at++] = n;
    } else if (n < 0x10000) {
      out[this.at++] = t16;
      out.writeUInt16BE(n, this.at);
      this.at += 2;
    } else {
      out[this.at++] = t32;
      out.writeUInt32BE(n, this.at);
      this.at += 4;
    }
  }

  /** An integer from -32 to 127 in one byte, any other 32-bit one in five, any other number as a float 64. */
  num(x: number): void {
    const out = this.out;
    if (Number.isInteger(x) && x >= -0x80000000 && x <= 0xffffffff) {
      if (x >= 0 && x < 0x80) out[this.at++] = x;
      else if (x < 0 && x >= -32) out[this.at++] = x & 0xff;
      else if (x >= 0) {
        out[this.at++] = 0xce;
        out.writeUInt32BE(x, this.at);
        this.at += 4;
      } else {
        out[this.at++] = 0xd2;
        out.writeInt32BE(x, this.at);
        this.at += 4;
      }
      return;
    }
    out[this.at++] = 0xcb;
    out.writeDoubleBE(x, this.at);
    this.at += 8;
  }

  mapHeader(n: number): void {
    if (n < 16) this.out[this.at++] = 0x80 | n;
    else this.sized(n, 0, 0xde, 0xdf);
  }
}

/** `{v: 1, tenant, function, body, env?, callbackUrl?, retryFunctionErrors?, requestId?}`, the absent fields left out. */
export function packPayload(p: JobSpec): Uint8Array {
  const env = p.env ? Object.entries(p.env) : undefined;
  let size = 128 + p.body.length + 3 * (p.tenant.length + p.function.length + (p.callbackUrl?.length ?? 0) + (p.requestId?.length ?? 0));
  if (env) for (const [k, v] of env) size += 10 + 3 * (k.length + v.length);
  const w = new Writer(Buffer.allocUnsafe(size));
  const fields = 4 + (env ? 1 : 0) + (p.callbackUrl !== undefined ? 1 : 0) + (p.retryFunctionErrors !== undefined ? 1 : 0) + (p.requestId !== undefined ? 1 : 0);
  w.mapHeader(fields);
  w.str("v");
  w.out[w.at++] = 1;
  w.str("tenant");
  w.str(p.tenant);
  w.str("function");
  w.str(p.function);
  w.str("body");
  w.bin(p.body);
  if (env) {
    w.str("env");
    w.mapHeader(env.length);
    for (const [k, v] of env) {
      w.str(k);
      w.str(v);
    }
  }
  if (p.callbackUrl !== undefined) {
    w.str("callbackUrl");
    w.str(p.callbackUrl);
  }
  if (p.retryFunctionErrors !== undefined) {
    w.str("retryFunctionErrors");
    w.out[w.at++] = p.retryFunctionErrors ? 0xc3 : 0xc2;
  }
  if (p.requestId !== undefined) {
    w.str("requestId");
    w.str(p.requestId);
  }
  return w.out.subarray(0, w.at);
}

/** A JobResult as msgpackr packs it: a map of its fields in their order. */
export function packResult(r: JobResult): Uint8Array {
  const w = new Writer(Buffer.allocUnsafe(160 + r.body.length + 3 * (r.outcome.length + r.contentType.length + r.stderr.length)));
  w.mapHeader(8);
  w.str("outcome");
  w.str(r.outcome);
  w.str("exitCode");
  w.num(r.exitCode);
  w.str("body");
  w.bin(r.body);
  w.str("contentType");
  w.str(r.contentType);
  w.str("stderr");
  w.str(r.stderr);
  w.str("durationMs");
  w.num(r.durationMs);
  w.str("cold");
  w.out[w.at++] = r.cold ? 0xc3 : 0xc2;
  w.str("version");
  w.num(r.version);
  return w.out.subarray(0, w.at);
}
