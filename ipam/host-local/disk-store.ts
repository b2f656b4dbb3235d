/**
 * The on-disk store, laid out exactly like the reference so a node can switch
 * between the two plugins at any moment:
 *
 *   <dataDir>/<network>/
 *     <ip>                  "<containerID>\r\n<ifname>" (older versions: "<containerID>")
 *     last_reserved_ip.<n>  the last address handed out from range set n
 *     lock                  the reference's flock file: both implementations lock it
 *   and our own files, which the reference ignores (their names are not IPs and
 *   their content never equals "<id>\r\n<ifname>" or "<id>"):
 *     .tscni-idx-<xx>       attachment index, 256 buckets by hash of the
 *                           attachment: lines "<ip> <id> <ifname>" ("<ip> <id>"
 *                           for id-only records)
 *     .tscni-index          index marker: which last_reserved_ip.<n> versions
 *                           the index has seen (see ensureIndex)
 *     .tscni-tmp-*          temp files of atomic writes (stale ones are removed)
 *
 * Crash safety: a reservation is a complete temp file link()ed to the IP
 * name (exclusive like O_EXCL, but never empty); last_reserved_ip and
 * rewritten buckets go to a temp file and are renamed. The index line of a
 * reservation is appended BEFORE the reservation is made (an intent), so a
 * crash can leave an index line without a reservation (harmless: every line
 * is verified against the IP file it names) but never a reservation its DEL
 * cannot find. Each append starts with a newline, so even a torn append
 * cannot swallow the next line. Empty or garbled reservation files (the
 * reference creates the file empty, then writes it) are reclaimable once
 * older than RECLAIM_AGE_MS.
 *
 * Scale: ADD/DEL/CHECK read one bucket (about n/256 lines), never the whole
 * directory. The index is authoritative only while nobody else wrote
 * reservations: the reference updates last_reserved_ip.<n> in place on every
 * reservation, so the marker keeps (inode, mtime, size, content) of each
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
import { FileLock } from '../../lib/file-lock.ts';

export const LAST_IP_PREFIX = 'last_reserved_ip.';
export const REFERENCE_LOCK = 'lock';
export const INDEX_MARKER = '.tscni-index';
export const BUCKET_PREFIX = '.tscni-idx-';
export const TMP_PREFIX = '.tscni-tmp-';
const LOCK_TMP_PREFIX = '.tscni-tmp-lock-';
/** Lock files of versions before the flock(2) lock; GC removes them. */
const LEGACY_LOCK_FILES = ['.tscni-lock', '.tscni-lock-steal'];
/** An empty or garbled reservation younger than this may be a reference ADD between create and write. */
export const RECLAIM_AGE_MS = 5_000;

const BUCKETS = 256;

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
export interface Key {
  id: string;
  ifname: string | null;
}

function keyDigest(k: Key): Buffer {
  return createHash('sha256')
    .update(k.ifname === null ? k.id : `${k.id}\r\n${k.ifname}`)
    .digest();
}

function bucketOf(k: Key): string {
  return `${BUCKET_PREFIX}${((keyDigest(k)[0] as number) % BUCKETS).toString(16).padStart(2, '0')}`;
}

/** The reservation temp of one attachment: only its ADD writes it (under the lock), its DEL removes it. */
export function reservationTemp(k: Key): string {
  return `${TMP_PREFIX}r-${keyDigest(k).subarray(0, 16).toString('hex')}`;
}

/** One index line: an intent or record that `ip` belongs to the key. */
interface IndexLine {
  ip: string;
  k: Key;
}

function renderLine(l: IndexLine): string {
  return l.k.ifname === null ? `${l.ip} ${l.k.id}` : `${l.ip} ${l.k.id} ${l.k.ifname}`;
}

interface Bucket {
  /** Live lines after applying tombstones. */
  lines: IndexLine[];
  /** Lines in the file, tombstones included (decides compaction). */
  raw: number;
  exists?: boolean;
}

/** Lines "<ip> <id> [<ifname>]" add an entry, "- <ip> <id> [<ifname>]" (tombstones) remove it; anything else is skipped. */
function parseBucket(text: string): Bucket {
  const live = new Map<string, IndexLine>();
  let raw = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    raw++;
    const f = line.split(' ');
    const dead = f[0] === '-';
    if (dead) f.shift();
    if ((f.length !== 2 && f.length !== 3) || !ipFromName(f[0] as string) || !f[1]) continue;
    const l: IndexLine = { ip: f[0] as string, k: { id: f[1], ifname: f.length === 3 ? (f[2] as string) : null } };
    const key = renderLine(l);
    live.delete(key);
    if (!dead) live.set(key, l);
  }
  return { lines: [...live.values()], raw };
}

function sameKey(a: Key, b: Key): boolean {
  return a.id === b.id && a.ifname === b.ifname;
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
  /** An empty bucket made this call rebuild the index already (once is enough). */
  private rebuiltForEmpty = false;
  private marker: Record<string, string> | undefined;
  private indexChecked = false;
  private readonly bucketCache = new Map<string, Bucket>();

  constructor(dataDir: string, network: string, setCount: number) {
    this.dir = join(dataDir, network);
    this.setCount = setCount;
    this.lock = new FileLock(join(this.dir, REFERENCE_LOCK));
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
    return this.lock.with(fn);
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

  /** In place: a torn marker only fails to parse, which means a rescan. */
  private writeMarker(): void {
    writeFileSync(this.path(INDEX_MARKER), `${JSON.stringify({ tscniIndex: 1, last: this.marker ?? {} })}\n`, { mode: 0o600 });
  }

  // -------------------------------------------------------------------------
  // The attachment index
  // -------------------------------------------------------------------------

  private readBucket(name: string): Bucket {
    const cached = this.bucketCache.get(name);
    if (cached) return cached;
    const text = readOrUndefined(this.path(name));
    // Every write leaves at least one line and an empty bucket is removed: an empty file is damage
    // (a truncation, an ADD killed between create and append). Trust nothing: rebuild the index once.
    if (text === '' && !this.rebuiltForEmpty) {
      this.rebuiltForEmpty = true;
      this.rebuildIndex();
      return this.readBucket(name);
    }
    const bucket = { ...parseBucket(text ?? ''), exists: text !== undefined };
    this.bucketCache.set(name, bucket);
    return bucket;
  }

  /** Append lines; the leading newline ends any torn previous append. */
  private appendRaw(name: string, text: string[]): void {
    const fd = openSync(this.path(name), 'a', 0o600);
    try {
      writeSync(fd, `\n${text.join('\n')}`);
    } finally {
      closeSync(fd);
    }
  }

  /** Append an intent line for a reservation about to be made. */
  private appendLine(l: IndexLine): void {
    const name = bucketOf(l.k);
    const bucket = this.readBucket(name);
    if (bucket.lines.some((x) => x.ip === l.ip && sameKey(x.k, l.k))) return;
    this.appendRaw(name, [renderLine(l)]);
    bucket.lines.push(l);
    bucket.raw++;
  }

  /** Atomically rewrite a bucket with only its live lines (or remove it when none are left). */
  private writeBucket(name: string, lines: IndexLine[], atomic: boolean): void {
    this.bucketCache.set(name, { lines, raw: lines.length });
    if (lines.length === 0) {
      tryUnlink(this.path(name));
      return;
    }
    const text = `${lines.map(renderLine).join('\n')}\n`;
    if (atomic) this.writeAtomic(name, `b-${name.slice(BUCKET_PREFIX.length)}`, text);
    else writeFileSync(this.path(name), text, { mode: 0o600 });
  }

  /**
   * Drop the key's lines (all, or only those naming `ips`): append
   * tombstones, and compact the bucket once dead lines dominate, so a DEL
   * costs an append, amortised.
   */
  private forget(k: Key, ips?: string[]): void {
    const name = bucketOf(k);
    const bucket = this.readBucket(name);
    const gone = bucket.lines.filter((l) => sameKey(l.k, k) && (ips === undefined || ips.includes(l.ip)));
    if (gone.length === 0) {
      // An ADD killed between creating the bucket and appending to it leaves it empty.
      if (bucket.raw === 0 && bucket.exists) this.writeBucket(name, [], false);
      return;
    }
    const keep = bucket.lines.filter((l) => !gone.includes(l));
    if (keep.length === 0 || bucket.raw + gone.length > 2 * keep.length + 32) {
      this.writeBucket(name, keep, true);
      return;
    }
    this.appendRaw(
      name,
      gone.map((l) => `- ${renderLine(l)}`),
    );
    this.bucketCache.set(name, { lines: keep, raw: bucket.raw + gone.length });
  }

  private ownerOf(ipName: string): Owner | undefined {
    const text = readOrUndefined(this.path(ipName));
    return text === undefined ? undefined : parseOwner(text);
  }

  /** Addresses the index lists for k whose reservation file really belongs to k. */
  private verified(k: Key): string[] {
    const ips = this.readBucket(bucketOf(k))
      .lines.filter((l) => sameKey(l.k, k))
      .map((l) => l.ip);
    return [...new Set(ips)].filter((ip) => {
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

  /**
   * Full scan: index every reservation from scratch (stale lines go), drop
   * stale temp files, then record the marker. The marker is removed first,
   * so a crash in the middle means another rescan, never a trusted partial index.
   */
  rebuildIndex(): void {
    tryUnlink(this.path(INDEX_MARKER));
    // Signatures first: a reservation written during the scan changes them, and the next call scans again.
    this.marker = {};
    const sigs: Record<string, string> = {};
    for (const i of this.markerSets()) sigs[String(i)] = statSig(this.path(`${LAST_IP_PREFIX}${i}`));
    const names = readdirSync(this.dir);
    for (const n of names) if (n.startsWith(LAST_IP_PREFIX)) sigs[n.slice(LAST_IP_PREFIX.length)] ??= statSig(this.path(n));
    const buckets = new Map<string, IndexLine[]>();
    for (const name of names) {
      if (name.startsWith(BUCKET_PREFIX)) {
        if (!buckets.has(name)) buckets.set(name, []);
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
      const b = bucketOf(k);
      const list = buckets.get(b) ?? [];
      list.push({ ip: name, k });
      buckets.set(b, list);
    }
    this.bucketCache.clear();
    for (const [name, lines] of buckets) {
      lines.sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0));
      const text = lines.length ? `${lines.map(renderLine).join('\n')}\n` : '';
      // An empty bucket (an ADD killed between creating it and appending) is removed, not kept.
      if (lines.length === 0 || (readOrUndefined(this.path(name)) ?? '') !== text) this.writeBucket(name, lines, false);
      else this.bucketCache.set(name, { lines, raw: lines.length });
    }
    this.marker = sigs;
    this.writeMarker();
  }

  /** Temp files of writers holding the lock are stale whenever we hold it; lock temps only when old. */
  private removeStaleTemp(name: string): void {
    try {
      // Lock temps and the lock file of older versions (pid-file locks) are never written now: stale once old.
      if (name.startsWith(LOCK_TMP_PREFIX) && Date.now() - lstatSync(this.path(name)).mtimeMs < RECLAIM_AGE_MS) return;
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
    this.appendLine({ ip: name, k });

    const tmp = this.path(reservationTemp(k));
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
    this.forget(k, names);
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
    this.forget(exact);
    if (released.length === 0) {
      const legacy: Key = { id, ifname: null };
      released = this.verified(legacy).filter((n) => tryUnlink(this.path(n)));
      this.forget(legacy);
    }
    // Leftover of an ADD of this attachment killed between writing and linking its reservation.
    tryUnlink(this.path(reservationTemp(exact)));
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
   * Release every reservation written before `bootTimeMs` (its file's
   * mtime): its pod cannot have survived the reboot, and no DEL will come
   * for it. Caller holds the lock. Returns the released address names.
   */
  reclaimFromEarlierBoot(bootTimeMs: number): string[] {
    if (!this.exists()) return [];
    const released: string[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!ipFromName(name)) continue;
      const st = lstatSync(this.path(name), { throwIfNoEntry: false });
      if (st?.isFile() && st.mtimeMs < bootTimeMs && tryUnlink(this.path(name))) released.push(name);
    }
    if (released.length) this.rebuildIndex();
    return released;
  }

  /**
   * GC: release every reservation whose owner is not a valid attachment and
   * drop stale temp files, continuing past errors (all are returned); then
   * rebuild the index from what is left, which also drops stale lines.
   */
  gc(valid: ReadonlyArray<{ containerID: string; ifname: string }>): GcOutcome {
    const released: string[] = [];
    const errors: string[] = [];
    if (!this.exists()) return { released, errors };
    for (const name of readdirSync(this.dir)) {
      try {
        if (name.startsWith(TMP_PREFIX)) {
          this.removeStaleTemp(name);
          continue;
        }
        // The pid-file lock of older versions: nothing takes it any more (we flock `lock`).
        if (LEGACY_LOCK_FILES.includes(name)) {
          tryUnlink(this.path(name));
          continue;
        }
        // lock, last_reserved_ip.*, our lock/marker/buckets and foreign files are not reservations.
        if (!ipFromName(name)) continue;
        if (!lstatSync(this.path(name)).isFile()) throw new Error('not a regular file, cannot release it');
        const owner = this.ownerOf(name);
        if (!owner || ownerIsValid(owner, valid)) continue;
        // A fresh empty file may be a reference ADD between create and write.
        if (owner.kind === 'garbled' && Date.now() - lstatSync(this.path(name)).mtimeMs < RECLAIM_AGE_MS) continue;
        if (tryUnlink(this.path(name))) released.push(name);
      } catch (e) {
        errors.push(`${name}: ${(e as Error).message}`);
      }
    }
    try {
      this.rebuildIndex();
    } catch (e) {
      errors.push(`index: ${(e as Error).message}`);
    }
    return { released, errors };
  }
}
