/**
 * The on-disk store of host-local: the reference's layout (see
 * reservation-files.ts) plus our attachment index (see attachment-index.ts),
 * composed into the Store the allocator uses (allocator.ts) and the
 * commands DEL, CHECK, GC and STATUS need.
 *
 * Crash safety: a reservation is made complete or not at all
 * (linkReservation); last_reserved_ip and rewritten buckets go to a temp
 * file and are renamed. The index line of a reservation is appended BEFORE
 * the reservation is made (an intent), so a crash can leave an index line
 * without a reservation (harmless: every line is verified against the IP
 * file it names) but never a reservation its DEL cannot find.
 *
 * Scale: ADD/DEL/CHECK read one bucket, never the whole directory. The
 * index is authoritative only while nobody else wrote reservations: the
 * reference updates last_reserved_ip.<n> in place on every reservation, so
 * the marker keeps the markerSignature (inode, mtime, size, content) of each
 * last_reserved_ip file as we left it; any difference means another writer
 * (or a crash of ours) and triggers one full scan that rebuilds the index.
 * Reservation files added by hand without touching last_reserved_ip are
 * not seen by DEL/CHECK until then; delete .tscni-index to force a rescan.
 *
 * Every write is followed by a crashpoint (crashpoint.ts): the test build
 * can be killed after any of them, and test/netns/host-local/crash-points.test.ts
 * proves that the next call recovers from each.
 */
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatIp, parseIp, type Ip } from '../../lib/ip/cidr.ts';
import type { Store } from './allocator.ts';
import { FileLock } from '../../lib/file-lock.ts';
import {
  addressesOf,
  BUCKET_PREFIX,
  bucketOf,
  buildIndex,
  INDEX_MARKER,
  markerSets,
  parseBucket,
  parseMarker,
  planAppend,
  planForget,
  renderBucket,
  renderMarker,
  type Bucket,
  type IndexLine,
  type Marker,
} from './attachment-index.ts';
import { crashpoint } from './crashpoint.ts';
import { markerSignature, markerSignatureAt, NO_FILE } from './marker-signature.ts';
import {
  errCode,
  ipFromName,
  keyOfOwner,
  LAST_IP_PREFIX,
  LEGACY_LOCK_FILES,
  linkReservation,
  ownerIsValid,
  ownerMatches,
  RECLAIM_AGE_MS,
  readOrUndefined,
  readOwner,
  reclaimable,
  REFERENCE_LOCK,
  removeStaleTemp,
  reservationTemp,
  TMP_PREFIX,
  tryUnlink,
  writeAtomic,
  type Key,
  type Owner,
} from './reservation-files.ts';

// Callers (plugin.ts, vxlan, tests) import these from here.
export { BUCKET_PREFIX, INDEX_MARKER, ipFromName, LAST_IP_PREFIX, RECLAIM_AGE_MS, REFERENCE_LOCK, reservationTemp, TMP_PREFIX, type Key };

/** A bucket as read: `exists` is false when there is no file. */
interface CachedBucket extends Bucket {
  exists?: boolean;
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
  private marker: Marker | undefined;
  private indexChecked = false;
  private readonly bucketCache = new Map<string, CachedBucket>();

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
    if (existsSync(ref)) return;
    closeSync(openSync(ref, 'a', 0o644));
    crashpoint('host-local:after-create');
  }

  withLock<T>(fn: () => T): T {
    return this.lock.with(fn);
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  /** In place: a torn marker only fails to parse, which means a rescan. */
  private writeMarker(step: string): void {
    writeFileSync(this.path(INDEX_MARKER), renderMarker(this.marker ?? {}), { mode: 0o600 });
    crashpoint(step);
  }

  /** Remove reservation file `name`; false when it was not there. */
  private unlinkReservation(name: string): boolean {
    if (!tryUnlink(this.path(name))) return false;
    crashpoint('host-local:after-release');
    return true;
  }

  // -------------------------------------------------------------------------
  // The attachment index
  // -------------------------------------------------------------------------

  private readBucket(name: string): CachedBucket {
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

  /** Append text to a bucket file (created if missing). */
  private appendRaw(name: string, text: string): void {
    const fd = openSync(this.path(name), 'a', 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }

  /** Append an intent line for a reservation about to be made. */
  private appendLine(l: IndexLine): void {
    const name = bucketOf(l.k);
    const plan = planAppend(this.readBucket(name), l);
    if (!plan) return;
    this.appendRaw(name, plan.text);
    this.bucketCache.set(name, plan.after);
    crashpoint('host-local:after-intent');
  }

  /** Rewrite a bucket with only its live lines (atomically, or in place during a rebuild), or remove it when none are left. */
  private writeBucket(name: string, lines: IndexLine[], atomic: boolean): void {
    this.bucketCache.set(name, { lines, raw: lines.length });
    if (lines.length === 0) {
      if (tryUnlink(this.path(name))) crashpoint('host-local:after-bucket-removed');
      return;
    }
    const text = renderBucket(lines);
    if (atomic) {
      writeAtomic(this.dir, name, `b-${name.slice(BUCKET_PREFIX.length)}`, text, 'host-local:after-compact');
    } else {
      writeFileSync(this.path(name), text, { mode: 0o600 });
      crashpoint('host-local:after-rebuild-bucket');
    }
  }

  /** Drop the key's lines (all, or only those naming `ips`): tombstones, or a compaction (planForget). */
  private forget(k: Key, ips?: string[]): void {
    const name = bucketOf(k);
    const bucket = this.readBucket(name);
    const plan = planForget(bucket, k, ips);
    if (plan.kind === 'none') {
      // An ADD killed between creating the bucket and appending to it leaves it empty.
      if (bucket.raw === 0 && bucket.exists) this.writeBucket(name, [], false);
    } else if (plan.kind === 'compact') {
      this.writeBucket(name, plan.lines, true);
    } else {
      this.appendRaw(name, plan.text);
      this.bucketCache.set(name, plan.after);
      crashpoint('host-local:after-tombstones');
    }
  }

  /** Addresses the index lists for k whose reservation file really belongs to k. */
  private verified(k: Key): string[] {
    return addressesOf(this.readBucket(bucketOf(k)), k).filter((ip) => {
      const owner = readOwner(this.dir, ip);
      return owner !== undefined && ownerMatches(owner, k);
    });
  }

  /**
   * Make sure the attachment index covers every reservation. Cheap when the
   * marker matches every last_reserved_ip file; otherwise one full scan.
   */
  private ensureIndex(): void {
    if (this.indexChecked) return;
    const marker = parseMarker(readOrUndefined(this.path(INDEX_MARKER)));
    this.marker = marker;
    const valid =
      marker !== undefined && markerSets(this.setCount, marker).every((i) => (marker[String(i)] ?? NO_FILE) === markerSignatureAt(this.path(`${LAST_IP_PREFIX}${i}`)));
    if (!valid) this.rebuildIndex();
    this.indexChecked = true;
  }

  /**
   * Full scan: index every reservation from scratch (stale lines go), drop
   * stale temp files, then record the marker. The marker is removed first,
   * so a crash in the middle means another rescan, never a trusted partial index.
   */
  rebuildIndex(): void {
    if (tryUnlink(this.path(INDEX_MARKER))) crashpoint('host-local:after-marker-unlink');
    // Signatures first: a reservation written during the scan changes them, and the next call scans again.
    this.marker = {};
    const sigs: Marker = {};
    for (const i of markerSets(this.setCount, this.marker)) sigs[String(i)] = markerSignatureAt(this.path(`${LAST_IP_PREFIX}${i}`));
    const names = readdirSync(this.dir);
    for (const n of names) if (n.startsWith(LAST_IP_PREFIX)) sigs[n.slice(LAST_IP_PREFIX.length)] ??= markerSignatureAt(this.path(n));
    const reservations: IndexLine[] = [];
    for (const name of names) {
      if (name.startsWith(TMP_PREFIX)) {
        removeStaleTemp(this.dir, name);
        continue;
      }
      if (!ipFromName(name)) continue;
      const owner = readOwner(this.dir, name);
      const k = owner && keyOfOwner(owner);
      if (k) reservations.push({ ip: name, k });
    }
    this.bucketCache.clear();
    const buckets = buildIndex(
      reservations,
      names.filter((n) => n.startsWith(BUCKET_PREFIX)),
    );
    for (const [name, lines] of buckets) {
      // An empty bucket (an ADD killed between creating it and appending) is removed, not kept.
      if (lines.length === 0 || (readOrUndefined(this.path(name)) ?? '') !== renderBucket(lines)) this.writeBucket(name, lines, false);
      else this.bucketCache.set(name, { lines, raw: lines.length });
    }
    this.marker = sigs;
    this.writeMarker('host-local:after-rebuild-marker');
  }

  // -------------------------------------------------------------------------
  // Store
  // -------------------------------------------------------------------------

  lastReservedIp(setIndex: number): Ip | undefined {
    const text = readOrUndefined(this.path(`${LAST_IP_PREFIX}${setIndex}`));
    return text === undefined ? undefined : parseIp(text);
  }

  reserve(id: string, ifname: string, ip: Ip, setIndex: number): boolean {
    this.ensureIndex();
    const name = formatIp(ip);
    const taken = existsSync(this.path(name));
    if (taken && !reclaimable(this.dir, name)) return false;
    // Intent first: DEL must be able to find whatever a crash leaves behind.
    this.appendLine({ ip: name, k: { id, ifname } });
    if (!linkReservation(this.dir, id, ifname, name, taken)) return false;
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
    const expected = this.marker?.[String(setIndex)] ?? NO_FILE;
    let oldFd: number | undefined;
    try {
      oldFd = openSync(this.path(lastName), 'r');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
    }
    let foreign: boolean;
    let wrote: string;
    try {
      const before = oldFd === undefined ? NO_FILE : markerSignature(oldFd);
      foreign = before !== expected;
      wrote = writeAtomic(this.dir, lastName, `last.${setIndex}`, ipName, 'host-local:after-last-reserved');
      if (oldFd !== undefined && markerSignature(oldFd) !== before) foreign = true;
    } finally {
      if (oldFd !== undefined) closeSync(oldFd);
    }
    if (markerSignatureAt(this.path(lastName)) !== wrote) foreign = true;
    this.marker = { ...(this.marker ?? {}), [String(setIndex)]: foreign ? 'foreign' : wrote };
    this.writeMarker('host-local:after-marker');
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
      const owner = readOwner(this.dir, n);
      if (owner && ownerMatches(owner, k)) this.unlinkReservation(n);
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
    let released = this.verified(exact).filter((n) => this.unlinkReservation(n));
    this.forget(exact);
    if (released.length === 0) {
      const legacy: Key = { id, ifname: null };
      released = this.verified(legacy).filter((n) => this.unlinkReservation(n));
      this.forget(legacy);
    }
    // Leftover of an ADD of this attachment killed between writing and linking its reservation.
    if (tryUnlink(this.path(reservationTemp(exact)))) crashpoint('host-local:after-reservation-temp-removed');
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
        owner = readOwner(this.dir, name);
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
      if (st?.isFile() && st.mtimeMs < bootTimeMs && this.unlinkReservation(name)) released.push(name);
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
          removeStaleTemp(this.dir, name);
          continue;
        }
        // The pid-file lock of older versions: nothing takes it any more (we flock `lock`).
        if (LEGACY_LOCK_FILES.includes(name)) {
          if (tryUnlink(this.path(name))) crashpoint('host-local:after-cleanup');
          continue;
        }
        // lock, last_reserved_ip.*, our lock/marker/buckets and foreign files are not reservations.
        if (!ipFromName(name)) continue;
        if (!lstatSync(this.path(name)).isFile()) throw new Error('not a regular file, cannot release it');
        const owner = readOwner(this.dir, name);
        if (!owner || ownerIsValid(owner, valid)) continue;
        // A fresh empty file may be a reference ADD between create and write.
        if (owner.kind === 'garbled' && Date.now() - lstatSync(this.path(name)).mtimeMs < RECLAIM_AGE_MS) continue;
        if (this.unlinkReservation(name)) released.push(name);
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
