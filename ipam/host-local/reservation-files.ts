/**
 * The files of a network directory, laid out exactly like the reference's
 * (containernetworking/plugins, plugins/ipam/host-local/backend/disk) so a
 * node can switch between the two plugins at any moment:
 *
 *   <dataDir>/<network>/
 *     <ip>                  "<containerID>\r\n<ifname>" (older versions: "<containerID>")
 *     last_reserved_ip.<n>  the last address handed out from range set n
 *     lock                  the reference's flock file: both implementations lock it
 *   and temp files of our own, which the reference ignores (their names are
 *   not IPs):
 *     .tscni-tmp-*          temp files of atomic writes (stale ones are removed)
 * Our attachment index (.tscni-idx-*, .tscni-index) is attachment-index.ts's.
 *
 * This module knows the names, the owner recorded in a reservation (its
 * format: parseOwner, ownerContent, ownerIsValid), and how a
 * reservation is made crash-safe and how an empty or garbled one is taken
 * over. It keeps no state: every function takes the network directory.
 * Each write is followed by a crashpoint (crashpoint.ts; test build only).
 *
 * Crash safety: a reservation is a complete temp file link()ed to the IP
 * name (exclusive like O_EXCL, but never empty); other rewrites go to a temp
 * file and are renamed. Empty or garbled reservation files (the reference
 * creates the file empty, then writes it) are reclaimable once older than
 * RECLAIM_AGE_MS.
 */
import { digest } from '../../lib/digest.ts';
import { closeSync, linkSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatIp, parseIp, type Ip } from '../../lib/ip/cidr.ts';
import { crashpoint } from './crashpoint.ts';
import { markerSignature } from './marker-signature.ts';

// ---- the owner recorded in a reservation (pure) ----

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export type Owner = { kind: 'attachment'; id: string; ifname: string } | { kind: 'legacy'; id: string } | { kind: 'garbled' };

/** Classify a reservation file's content: `<id>\r\n<ifname>`, old id-only, or empty/garbled. */
export function parseOwner(content: string): Owner {
  const t = content.trim();
  if (t === '') return { kind: 'garbled' };
  const nl = t.indexOf('\r\n');
  if (nl < 0) return ID_RE.test(t) ? { kind: 'legacy', id: t } : { kind: 'garbled' };
  const id = t.slice(0, nl);
  const ifname = t.slice(nl + 2);
  if (!ID_RE.test(id) || ifname === '' || /[\s/:]/.test(ifname) || Buffer.byteLength(ifname) > 15) return { kind: 'garbled' };
  return { kind: 'attachment', id, ifname };
}

/** What a reservation file holds, as the reference writes it: `<id>\r\n<ifname>` (containernetworking/plugins host-local disk backend). */
export function ownerContent(id: string, ifname: string): string {
  return `${id.trim()}\r\n${ifname}`;
}

/** Whether the owner recorded in a reservation is still a valid attachment (GC). */
export function ownerIsValid(owner: Owner, valid: ReadonlyArray<{ containerID: string; ifname: string }>): boolean {
  if (owner.kind === 'garbled') return false;
  if (owner.kind === 'legacy') return valid.some((a) => a.containerID === owner.id);
  return valid.some((a) => a.containerID === owner.id && a.ifname === owner.ifname);
}

// ---- names ----

export const LAST_IP_PREFIX = 'last_reserved_ip.';
export const REFERENCE_LOCK = 'lock';
export const TMP_PREFIX = '.tscni-tmp-';
/** Temp files of the pid-file lock of older versions. */
export const LOCK_TMP_PREFIX = '.tscni-tmp-lock-';
/** Lock files of versions before the flock(2) lock; GC removes them. */
export const LEGACY_LOCK_FILES = ['.tscni-lock', '.tscni-lock-steal'];
/** An empty or garbled reservation younger than this may be a reference ADD between create and write. */
export const RECLAIM_AGE_MS = 5_000;

export function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** Remove a file; false when it was not there. Other errors throw. */
export function tryUnlink(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** A file's text, or undefined when it does not exist or is a directory. Other errors throw. */
export function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'EISDIR') return undefined;
    throw e;
  }
}

/** A file name that is an address in the reference's canonical spelling (Go's net.IP.String()). */
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

/** sha256 of the key spelled as its reservation content ("<id>\r\n<ifname>", or "<id>"). */
export function keyDigest(k: Key): Buffer {
  return Buffer.from(digest('sha256', k.ifname === null ? k.id : `${k.id}\r\n${k.ifname}`));
}

export function sameKey(a: Key, b: Key): boolean {
  return a.id === b.id && a.ifname === b.ifname;
}

/** The key a reservation's owner is indexed under; undefined for an empty/garbled one. */
export function keyOfOwner(owner: Owner): Key | undefined {
  if (owner.kind === 'garbled') return undefined;
  return owner.kind === 'legacy' ? { id: owner.id, ifname: null } : { id: owner.id, ifname: owner.ifname };
}

/** Whether a reservation's owner is exactly the key (an id-only key matches only id-only records). */
export function ownerMatches(owner: Owner, k: Key): boolean {
  if (k.ifname === null) return owner.kind === 'legacy' && owner.id === k.id;
  return owner.kind === 'attachment' && owner.id === k.id && owner.ifname === k.ifname;
}

/** The reservation temp of one attachment: only its ADD writes it (under the lock), its DEL removes it. */
export function reservationTemp(k: Key): string {
  return `${TMP_PREFIX}r-${keyDigest(k).subarray(0, 16).toString('hex')}`;
}

/** The owner recorded in file `name` of `dir`, or undefined when there is no such file. */
export function readOwner(dir: string, name: string): Owner | undefined {
  const text = readOrUndefined(join(dir, name));
  return text === undefined ? undefined : parseOwner(text);
}

/** An existing reservation file that may be taken over: a regular file, empty or garbled, and older than RECLAIM_AGE_MS. */
export function reclaimable(dir: string, name: string): boolean {
  let st;
  try {
    st = lstatSync(join(dir, name));
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
  if (!st.isFile() || Date.now() - st.mtimeMs < RECLAIM_AGE_MS) return false;
  const owner = readOwner(dir, name);
  return owner !== undefined && owner.kind === 'garbled';
}

/**
 * Make reservation file `name` of `dir` for id+ifname, complete or not at
 * all: the content goes to the attachment's reservation temp, which is then
 * link()ed to the name (fails if it exists, like the reference's O_EXCL
 * create, but the name never appears empty), or, with `takeover`, renamed
 * over the empty/garbled file being reclaimed. Returns false when the name
 * exists (another writer was first). The temp is removed in every case.
 * Caller holds the lock.
 */
export function linkReservation(dir: string, id: string, ifname: string, name: string, takeover: boolean): boolean {
  const tmp = join(dir, reservationTemp({ id, ifname }));
  const target = join(dir, name);
  writeFileSync(tmp, ownerContent(id, ifname), { mode: 0o600 });
  crashpoint('host-local:after-reservation-temp');
  try {
    if (takeover) {
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
    crashpoint('host-local:after-link');
  } finally {
    tryUnlink(tmp);
  }
  crashpoint('host-local:after-reservation-temp-removed');
  return true;
}

/**
 * Replace file `name` of `dir` atomically: write `content` to the fixed temp
 * TMP_PREFIX + `tmpName` (the caller holds the lock, so nobody else writes
 * it), then rename it over the name. Returns the markerSignature of what was
 * written, taken before the rename (same inode). Crash points: `<step>-temp`
 * once the temp is written, `<step>` once it is renamed.
 */
export function writeAtomic(dir: string, name: string, tmpName: string, content: string, step: string): string {
  const tmp = join(dir, `${TMP_PREFIX}${tmpName}`);
  const fd = openSync(tmp, 'w+', 0o600);
  let sig: string;
  try {
    writeSync(fd, content);
    sig = markerSignature(fd);
  } finally {
    closeSync(fd);
  }
  crashpoint(`${step}-temp`);
  renameSync(tmp, join(dir, name));
  crashpoint(step);
  return sig;
}

/**
 * Remove temp file `name` of `dir` left by a killed writer. Temps of writers
 * holding the lock are stale whenever we hold it; the lock temps of older
 * versions (pid-file locks, never written now) only once older than
 * RECLAIM_AGE_MS. Returns whether a file was removed.
 */
export function removeStaleTemp(dir: string, name: string): boolean {
  try {
    if (name.startsWith(LOCK_TMP_PREFIX) && Date.now() - lstatSync(join(dir, name)).mtimeMs < RECLAIM_AGE_MS) return false;
    if (!tryUnlink(join(dir, name))) return false;
    crashpoint('host-local:after-cleanup');
    return true;
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
    return false;
  }
}
