/**
 * What portmap remembers on disk (the reference remembers nothing, which is
 * why its DEL without portMappings leaks and why it cannot see conflicts):
 *
 *   <stateDir>/lock                                flock(2)ed to serialise index updates (lib/file-lock.ts)
 *   <stateDir>/attachments/<net>/<cid>~<ifname>    the attachment's record: what ADD programmed
 *                                                  (ifname URI-encoded; older state: <cid>_<ifname>)
 *   <stateDir>/ports/<proto>_<port>/<key>+<holder> who holds a host port; key = host IP,
 *                                                  "any" (both families), "any4" or "any6";
 *                                                  <holder> a hash of network/container/ifname
 *                                                  (older state: just <key>)
 *   <stateDir>/podnets/<family>_<subnet>/<net>_<cid>_<ifname>
 *                                                  users of a hairpin subnet (nftables)
 *
 * Every write is a complete temp file renamed into place. Lookups touch only
 * the files of the ports being asked for, so the cost does not grow with the
 * number of pods.
 */
import { digestHex } from '../../lib/digest.ts';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { readJsonOr, writeFileAtomic } from '../../lib/fs.ts';
import { join } from 'node:path';
import { FileLock } from '../../lib/file-lock.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { familyOf } from '../../lib/ip/prefix.ts';
import type { ContainerAddr, PortmapBackend, PortMapping } from './config.ts';

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifName: string;
  backend: PortmapBackend;
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain?: string;
  conditionsV4?: string[];
  conditionsV6?: string[];
  mappings: PortMapping[];
  container: Partial<Record<Family, ContainerAddr>>;
  /**
   * nftables: mappings this attachment claims but does not program, because
   * another attachment of the same container programmed the same host port
   * first (a container on two networks publishing one port). They are
   * promoted when that attachment goes.
   */
  dormant?: PortMapping[];
  /** The pod's netns path at ADD and the boot it happened in: a claim is alive only while both hold. */
  netns?: string;
  bootId?: string;
}

export interface PortHolder {
  network: string;
  containerId: string;
  ifName: string;
}

const writeAtomic = (path: string, text: string) => writeFileAtomic(path, text);
const readJson = <T>(path: string): T | undefined => readJsonOr<T | undefined>(path, undefined);

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** The key under which a mapping holds its host port, given the families it is programmed for. */
export function portKey(m: PortMapping, families: readonly Family[]): string {
  if (m.hostIP && m.hostIP !== '0.0.0.0' && m.hostIP !== '::') return m.hostIP;
  if (m.hostIP === '0.0.0.0') return 'any4';
  if (m.hostIP === '::') return 'any6';
  if (families.length === 2) return 'any';
  return families[0] === 6 ? 'any6' : 'any4';
}

function keyFamilies(key: string): Family[] {
  if (key === 'any') return [4, 6];
  if (key === 'any4') return [4];
  if (key === 'any6') return [6];
  return [familyOf(key)];
}

/** Two holders of the same protocol and port collide when both can receive the same packet. */
export function keysOverlap(a: string, b: string): boolean {
  const fa = keyFamilies(a);
  if (!keyFamilies(b).some((f) => fa.includes(f))) return false;
  return a === b || a.startsWith('any') || b.startsWith('any');
}

export const sameHolder = (a: PortHolder, b: PortHolder) => a.network === b.network && a.containerId === b.containerId && a.ifName === b.ifName;

/** This boot's ID (/proc/sys/kernel/random/boot_id); undefined when unreadable. */
export function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Why a record no longer owns its claims, or undefined while it may: it was
 * made in an earlier boot (no DEL ran before the reboot), or its pod's
 * namespace is gone (the runtime crashed or never called DEL). A record
 * without these fields (older state) is trusted.
 */
export function staleReason(rec: AttachmentRecord, bootId: string | undefined): string | undefined {
  if (rec.bootId && bootId && rec.bootId !== bootId) return `it was made before the last reboot (boot ${rec.bootId})`;
  if (rec.netns && rec.netns.startsWith('/') && !existsSync(rec.netns)) return `its network namespace ${rec.netns} is gone`;
  return undefined;
}

/** The claim file of `h` for `key`: "<key>+<hash>", so several attachments may claim one port. */
export function claimName(key: string, h: PortHolder): string {
  const id = digestHex('sha256', `${h.network}\n${h.containerId}\n${h.ifName}`).slice(0, 16);
  return `${key}+${id}`;
}

/** Two mappings publish the same host port (protocol, port and host IP). */
export const samePort = (a: PortMapping, b: PortMapping) => a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIP ?? '') === (b.hostIP ?? '');

/** The record as programmed: without its dormant mappings. */
export function activeView(rec: AttachmentRecord): AttachmentRecord {
  const dormant = rec.dormant ?? [];
  return dormant.length ? { ...rec, mappings: rec.mappings.filter((m) => !dormant.some((d) => samePort(d, m))) } : rec;
}

/** The families the pod has an address in. */
export function podFamilies(rec: AttachmentRecord): Family[] {
  return ([4, 6] as Family[]).filter((f) => rec.container[f] !== undefined);
}

/** nftables with snat and no masqAll reference-counts the pods' hairpin subnets. */
export function usesPodnets(rec: AttachmentRecord): boolean {
  return rec.backend === 'nftables' && rec.snat && !rec.masqAll;
}

/** Forget an attachment: its port claims, hairpin subnets and record (caller holds the lock). */
export function forgetAttachment(state: PortmapState, rec: AttachmentRecord): void {
  state.releasePorts(rec, rec.mappings);
  if (usesPodnets(rec)) for (const f of podFamilies(rec)) state.releasePodnet(rec, f, rec.container[f]!.net);
  state.deleteRecord(rec);
}

/** The key of a claim file name (older state has the bare key). */
export const claimKey = (name: string) => name.split('+')[0] as string;

export class PortmapState {
  readonly dir: string;
  private readonly lock: FileLock;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lock = new FileLock(join(dir, 'lock'));
  }

  /** Run `fn` holding the lock. */
  locked<T>(fn: () => T): T {
    return this.lock.with(fn);
  }

  lockedAsync<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.withAsync(fn);
  }

  /**
   * "<containerID>~<ifname, URI-encoded>": unambiguous, since a container ID
   * never holds "~". Older state used "<containerID>_<ifname>", which two
   * holders can share ("a_b"+"c", "a"+"b_c"); it is still read, and only
   * when the record inside names the same holder.
   */
  private recordPath(h: PortHolder): string {
    return join(this.dir, 'attachments', h.network, `${h.containerId}~${encodeURIComponent(h.ifName)}`);
  }

  private legacyRecordPath(h: PortHolder): string {
    return join(this.dir, 'attachments', h.network, `${h.containerId}_${h.ifName}`);
  }

  /** The record of `h`, or undefined; a record naming another holder is never returned. */
  readRecord(h: PortHolder): AttachmentRecord | undefined {
    for (const path of [this.recordPath(h), this.legacyRecordPath(h)]) {
      const rec = readJson<AttachmentRecord>(path);
      if (rec && sameHolder(rec, h)) return rec;
    }
    return undefined;
  }

  writeRecord(r: AttachmentRecord): void {
    mkdirSync(join(this.dir, 'attachments', r.network), { recursive: true, mode: 0o700 });
    writeAtomic(this.recordPath(r), JSON.stringify(r));
  }

  deleteRecord(h: PortHolder): void {
    rmSync(this.recordPath(h), { force: true });
    // The network's folder goes with its last record (rmdir fails while others remain).
    const tidy = () => {
      try {
        rmdirSync(join(this.dir, 'attachments', h.network));
      } catch {
        // Other records remain, or it is gone already.
      }
    };
    // A legacy-named file goes only if it is this holder's.
    const legacy = readJson<AttachmentRecord>(this.legacyRecordPath(h));
    if (legacy && sameHolder(legacy, h)) rmSync(this.legacyRecordPath(h), { force: true });
    tidy();
  }

  /** Every record of a network (GC). */
  recordsOf(network: string): AttachmentRecord[] {
    const dir = join(this.dir, 'attachments', network);
    return listDir(dir)
      .filter((f) => !f.includes('.tmp-'))
      .map((f) => readJson<AttachmentRecord>(join(dir, f)))
      .filter((r): r is AttachmentRecord => r !== undefined);
  }

  /**
   * Holders of other containers that collide with the wanted ports. The same
   * container is never a conflict (one container on two networks publishing
   * the same port: the first claim wins, see sharers). A holder whose record
   * is gone does not count; one whose record is stale (staleReason) is
   * returned in `stale` for the caller to reclaim.
   */
  conflicts(me: PortHolder, wanted: readonly { m: PortMapping; key: string }[], bootId = currentBootId()): { conflicts: string[]; stale: Array<{ rec: AttachmentRecord; why: string }> } {
    const out: string[] = [];
    const stale = new Map<string, { rec: AttachmentRecord; why: string }>();
    for (const { m, key } of wanted) {
      const dir = join(this.dir, 'ports', `${m.protocol}_${m.hostPort}`);
      for (const existing of listDir(dir)) {
        if (existing.includes('.tmp-') || !keysOverlap(claimKey(existing), key)) continue;
        const holder = readJson<PortHolder>(join(dir, existing));
        if (!holder || holder.containerId === me.containerId) continue;
        const rec = this.readRecord(holder);
        if (!rec) continue;
        const why = staleReason(rec, bootId);
        if (why) {
          stale.set(`${rec.network}/${rec.containerId}/${rec.ifName}`, { rec, why });
          continue;
        }
        const k = claimKey(existing);
        const where = k.startsWith('any') ? '' : `${k.includes(':') ? `[${k}]` : k}:`;
        out.push(`host port ${where}${m.hostPort}/${m.protocol} is already mapped by container ${holder.containerId} (network ${holder.network}, interface ${holder.ifName})`);
      }
    }
    return { conflicts: out, stale: [...stale.values()] };
  }

  /**
   * Other live attachments of the same container that claim the same host
   * port as `m` (with an overlapping key), oldest claim first.
   */
  sharers(me: PortHolder, m: PortMapping, key: string): AttachmentRecord[] {
    const dir = join(this.dir, 'ports', `${m.protocol}_${m.hostPort}`);
    const out: Array<{ rec: AttachmentRecord; since: number }> = [];
    for (const existing of listDir(dir)) {
      if (existing.includes('.tmp-') || !keysOverlap(claimKey(existing), key)) continue;
      const holder = readJson<PortHolder>(join(dir, existing));
      if (!holder || holder.containerId !== me.containerId || sameHolder(holder, me)) continue;
      const rec = this.readRecord(holder);
      if (!rec || out.some((r) => sameHolder(r.rec, rec))) continue;
      out.push({ rec, since: statSync(join(dir, existing), { throwIfNoEntry: false })?.mtimeMs ?? 0 });
    }
    return out.sort((a, b) => a.since - b.since).map((x) => x.rec);
  }

  claimPorts(me: PortHolder, wanted: readonly { m: PortMapping; key: string }[]): void {
    for (const { m, key } of wanted) {
      const dir = join(this.dir, 'ports', `${m.protocol}_${m.hostPort}`);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeAtomic(join(dir, claimName(key, me)), JSON.stringify(me));
    }
  }

  /** Drop this holder's claims (only files that still name it). */
  releasePorts(me: PortHolder, mappings: readonly PortMapping[]): void {
    for (const m of mappings) {
      const dir = join(this.dir, 'ports', `${m.protocol}_${m.hostPort}`);
      for (const key of listDir(dir)) {
        const holder = readJson<PortHolder>(join(dir, key));
        if (holder && sameHolder(holder, me)) rmSync(join(dir, key), { force: true });
      }
      try {
        rmdirSync(dir);
      } catch {
        // Other holders remain (or it is already gone).
      }
    }
  }

  private podnetDir(family: Family, subnet: string): string {
    return join(this.dir, 'podnets', `${family}_${subnet.replace(/[/:]/g, '_')}`);
  }

  /** Register a user of a hairpin subnet. */
  usePodnet(me: PortHolder, family: Family, subnet: string): void {
    const dir = this.podnetDir(family, subnet);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomic(join(dir, `${me.network}_${me.containerId}_${me.ifName}`), '');
  }

  /** Drop a user; true when nobody uses the subnet any more (remove its element). */
  releasePodnet(me: PortHolder, family: Family, subnet: string): boolean {
    const dir = this.podnetDir(family, subnet);
    rmSync(join(dir, `${me.network}_${me.containerId}_${me.ifName}`), { force: true });
    if (listDir(dir).length > 0) return false;
    try {
      rmdirSync(dir);
    } catch {
      // Already gone.
    }
    return true;
  }

  /** Users of a subnet other than `me`. */
  podnetUsers(me: PortHolder, family: Family, subnet: string): number {
    return listDir(this.podnetDir(family, subnet)).filter((f) => f !== `${me.network}_${me.containerId}_${me.ifName}`).length;
  }
}
