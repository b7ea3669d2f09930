// Which addresses a callback may reach: the public Internet, and nothing
// inside -- not this node, its network, its cloud's metadata service, or
// anything reached through an IPv6 form that embeds such an IPv4 address.
//
// Every address is checked as bytes, after parsing: the URL's host as the
// WHATWG URL parser normalized it (which already turns 2130706433,
// 0x7f000001, 0177.0.0.1, 127.1 and 127.0.0.1. into 127.0.0.1, and
// [::ffff:127.0.0.1] into [::ffff:7f00:1]), and every address DNS gives for
// a name. IPv4 is refused in the special-purpose ranges below; IPv6 is
// allowed only in global unicast (2000::/3) minus its special ranges, and
// the forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by
// the IPv4 address they carry. Written here rather than taken from a
// package: the table is the policy, and it is short enough to read whole.

export interface IP {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

interface Range {
  net: Uint8Array;
  bits: number;
  name: string;
}

/** Special-purpose IPv4 ranges (IANA registry, RFC 6890 and successors): none is a callback's business. */
const V4: Range[] = [
  ["0.0.0.0/8", "unspecified"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared address space (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation"],
  ["192.88.99.0/24", "reserved (6to4 relay)"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  ["240.0.0.0/4", "reserved"],
].map(([cidr, name]) => range(cidr!, name!));

/** IPv6 ranges refused inside global unicast, and the named ones outside it. */
const V6: Range[] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "IPv4-compatible (deprecated)"],
  ["::ffff:0:0:0/96", "IPv4-translated"],
  ["64:ff9b:1::/48", "local-use NAT64"],
  ["100::/64", "discard-only"],
  ["2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"],
  ["2001:db8::/32", "documentation"],
  ["3fff::/20", "documentation"],
  ["5f00::/16", "SRv6 SIDs"],
  ["fc00::/7", "unique-local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local (deprecated)"],
  ["ff00::/8", "multicast"],
].map(([cidr, name]) => range(cidr!, name!));

const GLOBAL_UNICAST_V6 = range("2000::/3", "global unicast");
const MAPPED = range("::ffff:0:0/96", "IPv4-mapped");
const NAT64 = range("64:ff9b::/96", "NAT64");
const SIX_TO_FOUR = range("2002::/16", "6to4");

function range(cidr: string, name: string): Range {
  const r = parseCidr(cidr);
  if (!r) throw new Error(`bad built-in range ${cidr}`);
  return { ...r, name };
}

/** A dotted-quad IPv4 address, decimal, no leading zeros: the one spelling URL and DNS produce. */
function parseV4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** An IPv6 address in any RFC 4291 text form (with :: and a trailing dotted quad); no zone id. */
function parseV6(s: string): Uint8Array | undefined {
  if (s.includes("%")) return undefined;
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i]!)) return undefined;
    const v = parseInt(all[i]!, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

/** An IP address (IPv6 optionally in brackets), or undefined if `s` is not one. */
export function parseIP(s: string): IP | undefined {
  const bare = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  const v4 = parseV4(bare);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = bare.includes(":") ? parseV6(bare) : undefined;
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** "addr/bits" (or a bare address: all its bits). */
export function parseCidr(s: string): { net: Uint8Array; bits: number } | undefined {
  const slash = s.indexOf("/");
  const ip = parseIP(slash < 0 ? s : s.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.bytes.length * 8;
  const bitsText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return undefined;
  return { net: ip.bytes, bits: Number(bitsText) };
}

export function inRange(bytes: Uint8Array, r: { net: Uint8Array; bits: number }): boolean {
  if (bytes.length !== r.net.length) return false;
  let bits = r.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (r.net[i]! & mask)) return false;
  }
  return true;
}

/**
 * Why a callback may not reach this address (the range's name), or
 * undefined for a public unicast address.
 */
export function forbiddenReason(ip: IP): string | undefined {
  const b = ip.bytes;
  if (ip.family === 4) return V4.find((r) => inRange(b, r))?.name;
  // Forms that carry an IPv4 address are judged by it.
  const embedded = inRange(b, MAPPED) || inRange(b, NAT64) ? b.subarray(12, 16) : inRange(b, SIX_TO_FOUR) ? b.subarray(2, 6) : undefined;
  if (embedded) {
    const reason = forbiddenReason({ family: 4, bytes: embedded });
    return reason && `${reason} (embedded in IPv6)`;
  }
  const named = V6.find((r) => inRange(b, r))?.name;
  if (named) return named;
  return inRange(b, GLOBAL_UNICAST_V6) ? undefined : "reserved (not IPv6 global unicast)";
}

/** The address in URL host form: IPv6 in brackets. */
export function formatHost(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}
