/**
 * Pieces every plugin of the ptp/macvlan/ipvlan/vlan/host-device/dummy
 * family shares: the undo stack of a failed ADD, error aggregation for DEL
 * and GC, config field readers (pure, code 7 naming the field) and the IPAM
 * block. They live here, next to the first plugin that needed them, until
 * they move to lib/ (see the issue 16 report).
 */
import { CniError, ErrorCode, toCniError } from '../../lib/cni/errors.ts';
import type { Dns, NetConf, ValidAttachment } from '../../lib/cni/types.ts';

/** Undo steps of an ADD, run newest first when a later step fails. */
export class UndoStack {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = [];
  constructor(private readonly plugin: string) {}

  push(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  /** Undo everything, newest first; failures are logged to stderr, never thrown (the original error wins). */
  async unwind(): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        process.stderr.write(`[tscni] ${this.plugin} rollback: ${s.what} failed: ${(e as Error).message}\n`);
      }
    }
    this.steps.length = 0;
  }
}

/** Run `fn`; on failure unwind `undo` and rethrow the original error. */
export async function withUndo<T>(undo: UndoStack, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    await undo.unwind();
    throw e;
  }
}

/** Settle every task and throw one error for all failures (the only one as is; several joined, code 999). */
export async function settleAll(tasks: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const errors = (await Promise.allSettled(tasks)).flatMap((r) => (r.status === 'rejected' ? [toCniError(r.reason)] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new CniError(ErrorCode.Internal, errors.map((e) => e.message).join('; '));
}

/** GC's `cni.dev/valid-attachments` (libcni sends null for none). Throws code 7 on a malformed list. */
export function validAttachments(config: NetConf): ValidAttachment[] {
  const raw = config['cni.dev/valid-attachments'];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new CniError(ErrorCode.InvalidNetworkConfig, 'cni.dev/valid-attachments: must be an array');
  return raw.map((a, i) => {
    const o = a as Record<string, unknown> | null;
    if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cni.dev/valid-attachments[${i}]: needs "containerID" and "ifname" strings`);
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

export const badConfig = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

type Raw = Record<string, unknown>;

/** An optional boolean key (absent/null = false). */
export function readBool(raw: Raw, key: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw badConfig(`invalid "${key}": must be a boolean`, `got ${JSON.stringify(v)}`);
  return v;
}

/** An optional integer key (absent/null = 0). */
export function readInt(raw: Raw, key: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badConfig(`invalid "${key}": must be an integer`, `got ${JSON.stringify(v)}`);
  return v;
}

/** An optional string key (absent/null = ""). */
export function readString(raw: Raw, key: string): string {
  const v = raw[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw badConfig(`invalid "${key}": must be a string`, `got ${JSON.stringify(v)}`);
  return v;
}

const IFNAME_RE = /^[^/:\s]{1,15}$/u;

/** An interface name as the kernel accepts it (1-15 bytes, no "/", ":" or whitespace, not "." or ".."). */
export function isIfName(v: string): boolean {
  return IFNAME_RE.test(v) && Buffer.byteLength(v) <= 15 && v !== '.' && v !== '..';
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** A MAC address ("aa:bb:cc:dd:ee:ff", lower-cased) or undefined when empty; code 7 naming `where` otherwise. */
export function readMac(where: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw badConfig(`invalid MAC address in ${where}`, JSON.stringify(v));
  return v.toLowerCase();
}

/** The IPAM plugin type, or undefined when there is no (typed) ipam block. */
export function ipamTypeOf(conf: NetConf): string | undefined {
  const ipam = conf.ipam as unknown;
  if (ipam === undefined || ipam === null) return undefined;
  if (typeof ipam !== 'object' || Array.isArray(ipam)) throw badConfig('invalid "ipam": must be an object');
  const t = (ipam as Raw).type;
  if (t === undefined || t === null || t === '') return undefined;
  if (typeof t !== 'string') throw badConfig('invalid "ipam.type": must be a string');
  return t;
}

/** The config's `dns` when any field is set (the reference's dnsConfSet), else undefined. */
export function dnsOf(conf: NetConf): Dns | undefined {
  const d = conf.dns;
  if (!d || typeof d !== 'object') return undefined;
  const set = d.nameservers !== undefined || d.search !== undefined || d.options !== undefined || !!d.domain;
  return set ? d : undefined;
}
