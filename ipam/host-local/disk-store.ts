/**
 * The on-disk store, laid out exactly like the reference so a node can switch
 * between the two plugins at any moment:
 *
 *   <dataDir>/<network>/
 *     <ip>                  "<containerID>\r\n<ifname>" (older versions: "<containerID>")
 *     last_reserved_ip.<n>  the last address handed out from range set n
 *     lock                  the reference's flock file (created, never locked by us)
 *   and our own files, which the reference ignores (their names are not IPs and
 *   their content never equals "<id>\r\n<ifname>" or "<id>"):
 *     .tscni-lock           our lock (see file-lock.ts)
 *     .tscni-attach-<hash>  attachment index: the IPs of one container+ifname
 *     .tscni-index          index marker: which last_reserved_ip.<n> versions
 *                           the index has seen (see ensureIndex)
 *     .tscni-tmp-*          temp files of atomic writes (stale ones are removed)
 *
 * Crash safety: a reservation is a complete temp file link()ed to the IP
 * name (exclusive like O_EXCL, but never empty); last_reserved_ip and the
 * index are written to a temp file and renamed. The attachment index is
 * written BEFORE the reservation (an intent), so a crash can leave an index
 * entry without a reservation (ignored: every entry is verified against the
 * IP file it names) but never a reservation its DEL cannot find. Empty or
 * garbled reservation files (the reference creates the file empty, then
 * writes it) are reclaimable once older than RECLAIM_AGE_MS.
 *
 * Scale: ADD/DEL/CHECK read only the attachment's index file, not the
 * whole directory. The index is authoritative only while nobody else wrote
 * reservations: the reference updates last_reserved_ip.<n> in place on every
 * reservation, so the marker keeps (inode, mtime, size) of each
 * last_reserved_ip file as we left it; any difference means another writer
 * (or a crash of ours) and triggers one full scan that rebuilds the index.
 * Reservation files added by hand without touching last_reserved_ip are
 * not seen by DEL/CHECK until then; delete .tscni-index to force a rescan.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { formatIp, parseIp, type Ip } from '../../lib/ip/cidr.ts';
import { ownerContent, ownerIsValid, parseOwner, type Owner, type Store } from './allocator.ts';
import { FileLock, LOCK_FILE, lockTempPid, processStartTime, STEAL_FILE } from './file-lock.ts';

export const LAST_IP_PREFIX = 'last_reserved_ip.';
export const REFERENCE_LOCK = 'lock';
export const INDEX_MARKER = '.tscni-index';
export const ATTACH_PREFIX = '.tscni-attach-';
export const TMP_PREFIX = '.tscni-tmp-';
const LOCK_TMP_PREFIX = '.tscni-tmp-lock-';
/** An empty or garbled reservation younger than this may be a reference ADD between create and write. */
export const RECLAIM_AGE_MS = 5_000;

const ATTACH_HEADER = 'tscni-attachment 1';
const LEGACY_HEADER = 'tscni-legacy-id 1';

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

function tryUnlink(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'EISDIR') return undefined;
    throw e;
  }
}

/** A file name that is an address in the reference's canonical spelling. */
export function ipFromName(name: string): Ip | undefined {
  if (name.startsWith('.') || name.startsWith(LAST_IP_PREFIX) || name === REFERENCE_LOCK) return undefined;
  const ip = parseIp(name);
  return ip && formatIp(ip) === name ? ip : undefined;
}

/** An attachment key: ifname null = the id-only records of older versions. */
interface Key {
  id: string;
  ifname: string | null;
}

function keyHash(k: Key): string {
  return createHash('sha256')
    .update(k.ifname === null ? k.id : `${k.id}\r\n${k.ifname}`)
    .digest('hex')
    .slice(0, 32);
}

function ownerMatches(owner: Owner, k: Key): boolean {
  if (k.ifname === null) return owner.kind === 'legacy' && owner.id === k.id;
  return owner.kind === 'attachment' && owner.id === k.id && owner.ifname === k.ifname;
}

/**
 * Identity of a last_reserved_ip file as we left it. The content is part of
 * it because file timestamps come from a coarse clock: a reference rewrite in
 * the same tick keeps inode and mtime, but always names another address.
 */
function statSig(path: string): string {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.ino}:${st.mtimeNs}:${st.size}:${readFileSync(path, 'utf8')}`;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return 'none';
    throw e;
  }
}

function fdSig(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  const buf = Buffer.alloc(Number(st.size));
  const n = readSync(fd, buf, 0, buf.length, 0);
  return `${st.ino}:${st.mtimeNs}:${st.size}:${buf.subarray(0, n).toString('utf8')}`;
}

export interface GcOutcome {
  released: string[];
  errors: string[];
}

export class DiskStore implements Store {
  readonly dir: string;
  private readonly setCount: number;
  private readonly lock: FileLock;
  private marker: Record<string, string> | undefined;
  private indexChecked = false;
  private readonly attachCache = new Map<string, string[]>();

  constructor(dataDir: string, network: string, setCount: number) {
    this.dir = join(dataDir, network);
    this.setCount = setCount;
    this.lock = new FileLock(this.dir);
  }

  exists(): boolean {
    return existsSync(this.dir);
  }

  /** Create the network directory and the reference's `lock` file, as the reference does. */
  create(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const ref = join(this.dir, REFERENCE_LOCK);
    if (!existsSync(ref)) closeSync(openSync(ref, 'a', 0o644));
  }

  withLock<T>(fn: () => T): T {
    this.lock.acquire();
    try {
      return fn();
    } finally {
      this.lock.release();
    }
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  // -------------------------------------------------------------------------
  // Writing
  // -------------------------------------------------------------------------

  /** Write via a fixed temp name (we hold the lock) and rename; returns the inode signature we wrote. */
  private writeAtomic(name: string, tmpName: string, content: string): string {
    const tmp = this.path(`${TMP_PREFIX}${tmpName}`);
    const fd = openSync(tmp, 'w', 0o600);
    let sig: string;
    try {
      writeSync(fd, content);
      const st = fstatSync(fd, { bigint: true });
      sig = `${st.ino}:${st.mtimeNs}:${st.size}:${content}`;
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path(name));
    return sig;
  }

  private markerSets(): number[] {
    const ids = new Set<number>();
    for (let i = 0; i < this.setCount; i++) ids.add(i);
    for (const k of Object.keys(this.marker ?? {})) if (/^\d+$/.test(k)) ids.add(Number(k));
    return [...ids];
  }

  private writeMarker(): void {
    this.writeAtomic(INDEX_MARKER, 'index', `${JSON.stringify({ tscniIndex: 1, last: this.marker ?? {} })}\n`);
  }

  // -------------------------------------------------------------------------
  // The attachment index
  // -------------------------------------------------------------------------

  private attachName(k: Key): string {
    return `${ATTACH_PREFIX}${keyHash(k)}`;
  }

  private readIndex(k: Key): string[] {
    const cacheKey = this.attachName(k);
    const cached = this.attachCache.get(cacheKey);
    if (cached) return cached;
    const text = readOrUndefined(this.path(cacheKey));
    let ips: string[] = [];
    if (text !== undefined) {
      const lines = text.split('\n');
      const header = k.ifname === null ? LEGACY_HEADER : ATTACH_HEADER;
      // A hash collision or a torn file: ignore it, the entries are advisory.
      if (lines[0] === header && lines[1] === k.id && lines[2] === (k.ifname ?? '')) {
        ips = lines.slice(3).filter((l) => ipFromName(l) !== undefined);
      }
    }
    this.attachCache.set(cacheKey, ips);
    return ips;
  }

  private writeIndex(k: Key, ips: string[], atomic: boolean): void {
    const name = this.attachName(k);
    this.attachCache.set(name, ips);
    if (ips.length === 0) {
      tryUnlink(this.path(name));
      return;
    }
    const header = k.ifname === null ? LEGACY_HEADER : ATTACH_HEADER;
    const text = `${header}\n${k.id}\n${k.ifname ?? ''}\n${ips.join('\n')}\n`;
    if (atomic) this.writeAtomic(name, `i-${keyHash(k)}`, text);
    else writeFileSync(this.path(name), text, { mode: 0o600 });
  }

  private ownerOf(ipName: string): Owner | undefined {
    const text = readOrUndefined(this.path(ipName));
    return text === undefined ? undefined : parseOwner(text);
  }

  /** Index entries of k whose reservation file really belongs to k. */
  private verified(k: Key): string[] {
    return this.readIndex(k).filter((ip) => {
      const owner = this.ownerOf(ip);
      return owner !== undefined && ownerMatches(owner, k);
    });
  }

  /**
   * Make sure the attachment index covers every reservation. Cheap when the
   * marker matches every last_reserved_ip file; otherwise one full scan.
   */
  private ensureIndex(): void {
    if (this.indexChecked) return;
    const text = readOrUndefined(this.path(INDEX_MARKER));
    let marker: Record<string, string> | undefined;
    try {
      const parsed = text ? (JSON.parse(text) as { tscniIndex?: number; last?: Record<string, string> }) : undefined;
      if (parsed?.tscniIndex === 1 && parsed.last && typeof parsed.last === 'object') marker = parsed.last;
    } catch {
      marker = undefined; // torn or foreign: rebuild
    }
    this.marker = marker;
    const valid = marker !== undefined && this.markerSets().every((i) => (marker[String(i)] ?? 'none') === statSig(this.path(`${LAST_IP_PREFIX}${i}`)));
    if (!valid) this.rebuildIndex();
    this.indexChecked = true;
  }

  /** Full scan: index every reservation, drop stale temp files, then record the marker. */
  rebuildIndex(): void {
    // Signatures first: a reservation written during the scan changes them, and the next call scans again.
    this.marker = {};
    const sigs: Record<string, string> = {};
    for (const i of this.markerSets()) sigs[String(i)] = statSig(this.path(`${LAST_IP_PREFIX}${i}`));
    const names = readdirSync(this.dir);
    for (const n of names) if (n.startsWith(LAST_IP_PREFIX)) sigs[n.slice(LAST_IP_PREFIX.length)] ??= statSig(this.path(n));
    const groups = new Map<string, { k: Key; ips: string[] }>();
    const existing = new Set<string>();
    this.attachCache.clear();
    for (const name of names) {
      if (name.startsWith(ATTACH_PREFIX)) {
        existing.add(name);
        continue;
      }
      if (name.startsWith(TMP_PREFIX)) {
        this.removeStaleTemp(name);
        continue;
      }
      if (!ipFromName(name)) continue;
      const owner = this.ownerOf(name);
      if (!owner || owner.kind === 'garbled') continue;
      const k: Key = owner.kind === 'legacy' ? { id: owner.id, ifname: null } : { id: owner.id, ifname: owner.ifname };
      const an = this.attachName(k);
      const g = groups.get(an) ?? { k, ips: [] };
      g.ips.push(name);
      groups.set(an, g);
    }
    for (const [an, g] of groups) {
      const have = existing.has(an) ? this.readIndex(g.k) : [];
      const missing = g.ips.filter((ip) => !have.includes(ip));
      if (missing.length) this.writeIndex(g.k, [...have, ...missing], false);
    }
    this.marker = sigs;
    this.writeMarker();
  }

  /** Temp files of writers holding the lock are stale whenever we hold it; lock temps only when old. */
  private removeStaleTemp(name: string): void {
    try {
      if (name.startsWith(LOCK_TMP_PREFIX)) {
        // Written without the lock by a process trying to take it: stale only once its writer is dead or it is old.
        const pid = lockTempPid(name);
        const alive = pid !== undefined && processStartTime(pid) !== undefined;
        if (alive && Date.now() - lstatSync(this.path(name)).mtimeMs < RECLAIM_AGE_MS) return;
      }
      tryUnlink(this.path(name));
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
    }
  }

  // -------------------------------------------------------------------------
  // Store
  // -------------------------------------------------------------------------

  lastReservedIp(setIndex: number): Ip | undefined {
    const text = readOrUndefined(this.path(`${LAST_IP_PREFIX}${setIndex}`));
    return text === undefined ? undefined : parseIp(text);
  }

  /** An existing reservation file that may be taken over: empty or garbled, and old enough. */
  private reclaimable(name: string): boolean {
    let st;
    try {
      st = lstatSync(this.path(name));
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw e;
    }
    if (!st.isFile() || Date.now() - st.mtimeMs < RECLAIM_AGE_MS) return false;
    const owner = this.ownerOf(name);
    return owner !== undefined && owner.kind === 'garbled';
  }

  reserve(id: string, ifname: string, ip: Ip, setIndex: number): boolean {
    this.ensureIndex();
    const name = formatIp(ip);
    const target = this.path(name);
    const k: Key = { id, ifname };
    const taken = existsSync(target);
    if (taken && !this.reclaimable(name)) return false;

    // Intent first: DEL must be able to find whatever a crash leaves behind.
    const listed = this.readIndex(k);
    if (!listed.includes(name)) this.writeIndex(k, [...listed, name], true);

    const tmp = this.path(`${TMP_PREFIX}r-${keyHash(k)}`);
    writeFileSync(tmp, ownerContent(id, ifname), { mode: 0o600 });
    try {
      if (taken) {
        // Replacing an empty/garbled file: rename is atomic and nobody can own it.
        renameSync(tmp, target);
      } else {
        try {
          linkSync(tmp, target);
        } catch (e) {
          if (errCode(e) === 'EEXIST') return false;
          throw e;
        }
      }
    } finally {
      tryUnlink(tmp);
    }
    this.recordLastReserved(setIndex, name);
    return true;
  }

  /**
   * Write last_reserved_ip.<n> and vouch for it in the marker only if no
   * other writer touched it since the index was verified: the file we
   * replace must still be the version the marker recorded, and must not
   * change while we rename over it (we watch the replaced inode through an
   * open fd, so even a reference write racing the rename is seen).
   * Otherwise leave a marker value that forces a rescan next time.
   */
  private recordLastReserved(setIndex: number, ipName: string): void {
    const lastName = `${LAST_IP_PREFIX}${setIndex}`;
    const expected = this.marker?.[String(setIndex)] ?? 'none';
    let oldFd: number | undefined;
    try {
      oldFd = openSync(this.path(lastName), 'r');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
    }
    let foreign: boolean;
    let wrote: string;
    try {
      const before = oldFd === undefined ? 'none' : fdSig(oldFd);
      foreign = before !== expected;
      wrote = this.writeAtomic(lastName, `last.${setIndex}`, ipName);
      if (oldFd !== undefined && fdSig(oldFd) !== before) foreign = true;
    } finally {
      if (oldFd !== undefined) closeSync(oldFd);
    }
    if (statSig(this.path(lastName)) !== wrote) foreign = true;
    this.marker = { ...(this.marker ?? {}), [String(setIndex)]: foreign ? 'foreign' : wrote };
    this.writeMarker();
  }

  getByAttachment(id: string, ifname: string): Ip[] {
    if (!this.exists()) return [];
    this.ensureIndex();
    const names = [...this.verified({ id, ifname }), ...this.verified({ id, ifname: null })];
    return names.map((n) => ipFromName(n) as Ip);
  }

  releaseIps(id: string, ifname: string, ips: Ip[]): void {
    const k: Key = { id, ifname };
    const names = ips.map(formatIp);
    for (const n of names) {
      const owner = this.ownerOf(n);
      if (owner && ownerMatches(owner, k)) tryUnlink(this.path(n));
    }
    this.writeIndex(
      k,
      this.readIndex(k).filter((n) => !names.includes(n)),
      true,
    );
  }

  /**
   * DEL: remove id+ifname's reservations; if there are none, the id-only
   * records of older versions (the reference's order). Returns released IPs.
   */
  releaseAttachment(id: string, ifname: string): string[] {
    if (!this.exists()) return [];
    this.ensureIndex();
    const exact: Key = { id, ifname };
    let released = this.verified(exact).filter((n) => tryUnlink(this.path(n)));
    this.writeIndex(exact, [], true);
    if (released.length === 0) {
      const legacy: Key = { id, ifname: null };
      released = this.verified(legacy).filter((n) => tryUnlink(this.path(n)));
      this.writeIndex(legacy, [], true);
    }
    // Leftovers of an ADD of this attachment killed mid-way.
    tryUnlink(this.path(`${TMP_PREFIX}r-${keyHash(exact)}`));
    tryUnlink(this.path(`${TMP_PREFIX}i-${keyHash(exact)}`));
    return released;
  }

  /** Every address file name with its owner (STATUS, GC). Empty/garbled ones carry their age. */
  listReservations(): Array<{ name: string; ip: Ip; owner: Owner; ageMs: number }> {
    if (!this.exists()) return [];
    const out: Array<{ name: string; ip: Ip; owner: Owner; ageMs: number }> = [];
    for (const name of readdirSync(this.dir)) {
      const ip = ipFromName(name);
      if (!ip) continue;
      let owner: Owner | undefined;
      let ageMs = 0;
      try {
        owner = this.ownerOf(name);
        if (owner?.kind === 'garbled') ageMs = Date.now() - lstatSync(this.path(name)).mtimeMs;
      } catch (e) {
        if (errCode(e) !== 'ENOENT') throw e;
      }
      if (owner) out.push({ name, ip, owner, ageMs });
    }
    return out;
  }

  /** Names of address files only, without reading them (STATUS fast path). */
  listReservedIps(): Ip[] {
    if (!this.exists()) return [];
    const out: Ip[] = [];
    for (const name of readdirSync(this.dir)) {
      const ip = ipFromName(name);
      if (ip) out.push(ip);
    }
    return out;
  }

  /**
   * GC: release every reservation whose owner is not a valid attachment,
   * drop index files of invalid attachments and stale temp files. Continues
   * past errors and returns them all.
   */
  gc(valid: ReadonlyArray<{ containerID: string; ifname: string }>): GcOutcome {
    const released: string[] = [];
    const errors: string[] = [];
    if (!this.exists()) return { released, errors };
    const names = readdirSync(this.dir);
    for (const name of names) {
      try {
        if (name === REFERENCE_LOCK || name === LOCK_FILE || name === STEAL_FILE || name === INDEX_MARKER || name.startsWith(LAST_IP_PREFIX)) continue;
        if (name.startsWith(TMP_PREFIX)) {
          this.removeStaleTemp(name);
          continue;
        }
        if (name.startsWith(ATTACH_PREFIX)) {
          const lines = (readOrUndefined(this.path(name)) ?? '').split('\n');
          const owner: Owner =
            lines[0] === ATTACH_HEADER && lines[1] && lines[2]
              ? { kind: 'attachment', id: lines[1], ifname: lines[2] }
              : lines[0] === LEGACY_HEADER && lines[1]
                ? { kind: 'legacy', id: lines[1] }
                : { kind: 'garbled' };
          if (!ownerIsValid(owner, valid)) tryUnlink(this.path(name));
          continue;
        }
        if (!ipFromName(name)) continue;
        const owner = this.ownerOf(name);
        if (!owner || ownerIsValid(owner, valid)) continue;
        // A fresh empty file may be a reference ADD between create and write.
        if (owner.kind === 'garbled' && Date.now() - lstatSync(this.path(name)).mtimeMs < RECLAIM_AGE_MS) continue;
        if (tryUnlink(this.path(name))) released.push(name);
      } catch (e) {
        errors.push(`${name}: ${(e as Error).message}`);
      }
    }
    this.attachCache.clear();
    return { released, errors };
  }
}
