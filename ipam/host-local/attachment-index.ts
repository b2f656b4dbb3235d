/**
 * The attachment index, pure (text in, text out; disk-store.ts does the
 * I/O). Files of our own beside the reference's, which the reference
 * ignores (their names are not IPs and their content never equals
 * "<id>\r\n<ifname>" or "<id>"):
 *
 *   .tscni-idx-<xx>  256 buckets by hash of the attachment (the first byte of
 *                    sha256 of "<id>\r\n<ifname>", or "<id>" for id-only
 *                    records), in hex. Lines:
 *                      "<ip> <id> <ifname>"    entry ("<ip> <id>" for id-only records)
 *                      "- <ip> <id> <ifname>"  tombstone: removes that entry
 *                    Appends start with a newline, so even a torn append
 *                    cannot swallow the next line; lines that do not parse
 *                    are skipped.
 *   .tscni-index     the index marker: {"tscniIndex":1,"last":{"<n>":"<sig>"}}
 *                    plus a newline, with the markerSignature of each
 *                    last_reserved_ip.<n> as we left it ("none": absent,
 *                    "foreign": someone else wrote it, rescan).
 *
 * Scale: ADD/DEL/CHECK read one bucket (about n/256 lines), never the whole
 * directory; a DEL appends tombstones and a bucket is compacted (rewritten
 * with its live lines) once dead lines dominate, so a DEL costs an append,
 * amortised.
 */
import { ipFromName, keyDigest, sameKey, type Key } from './reservation-files.ts';

export const INDEX_MARKER = '.tscni-index';
export const BUCKET_PREFIX = '.tscni-idx-';
export const BUCKETS = 256;

/** One index line: an intent or record that reservation `ip` (a file name) belongs to the key. */
export interface IndexLine {
  ip: string;
  k: Key;
}

/** A parsed bucket. */
export interface Bucket {
  /** Live lines after applying tombstones, in file order. */
  lines: IndexLine[];
  /** Non-empty lines in the file, tombstones and unparsable ones included (decides compaction). */
  raw: number;
}

/** The bucket file name of a key: BUCKET_PREFIX + two hex digits. */
export function bucketOf(k: Key): string {
  return `${BUCKET_PREFIX}${((keyDigest(k)[0] as number) % BUCKETS).toString(16).padStart(2, '0')}`;
}

/** "<ip> <id> <ifname>", or "<ip> <id>" for an id-only key. */
export function renderLine(l: IndexLine): string {
  return l.k.ifname === null ? `${l.ip} ${l.k.id}` : `${l.ip} ${l.k.id} ${l.k.ifname}`;
}

/** A whole bucket file: one line each, newline-terminated; "" for none. */
export function renderBucket(lines: IndexLine[]): string {
  return lines.length ? `${lines.map(renderLine).join('\n')}\n` : '';
}

/** The text appended to a bucket for these lines: the leading newline ends any torn previous append. */
export function renderAppend(lines: string[]): string {
  return `\n${lines.join('\n')}`;
}

/** Parse a bucket file: entries add, tombstones remove, anything else is skipped (but counted in `raw`). */
export function parseBucket(text: string): Bucket {
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

/** The distinct addresses the bucket lists for k (unverified: a line may outlive its reservation). */
export function addressesOf(bucket: Bucket, k: Key): string[] {
  return [...new Set(bucket.lines.filter((l) => sameKey(l.k, k)).map((l) => l.ip))];
}

/** What to append to record `l` (an intent, written before the reservation), and the bucket after; undefined when already listed. */
export function planAppend(bucket: Bucket, l: IndexLine): { text: string; after: Bucket } | undefined {
  if (bucket.lines.some((x) => x.ip === l.ip && sameKey(x.k, l.k))) return undefined;
  return { text: renderAppend([renderLine(l)]), after: { lines: [...bucket.lines, l], raw: bucket.raw + 1 } };
}

/** How to drop lines from a bucket. */
export type ForgetPlan =
  /** Nothing of the key is listed. */
  | { kind: 'none' }
  /** Rewrite the bucket with only these live lines; none left: remove the file. */
  | { kind: 'compact'; lines: IndexLine[] }
  /** Append `text` (tombstones); the bucket is then `after`. */
  | { kind: 'tombstones'; text: string; after: Bucket };

/**
 * Drop k's lines (all, or only those naming `ips`): tombstones, or a
 * compaction once no live line is left or the file would hold more than
 * 2 * live + 32 lines.
 */
export function planForget(bucket: Bucket, k: Key, ips?: string[]): ForgetPlan {
  const gone = bucket.lines.filter((l) => sameKey(l.k, k) && (ips === undefined || ips.includes(l.ip)));
  if (gone.length === 0) return { kind: 'none' };
  const keep = bucket.lines.filter((l) => !gone.includes(l));
  if (keep.length === 0 || bucket.raw + gone.length > 2 * keep.length + 32) return { kind: 'compact', lines: keep };
  return {
    kind: 'tombstones',
    text: renderAppend(gone.map((l) => `- ${renderLine(l)}`)),
    after: { lines: keep, raw: bucket.raw + gone.length },
  };
}

/**
 * A whole index from scratch: the lines of every reservation, grouped by
 * bucket file and sorted by address (string order). Every name in
 * `existing` (bucket files found on disk) is in the result, with no lines
 * if nothing belongs to it, so that the caller removes it.
 */
export function buildIndex(reservations: IndexLine[], existing: string[]): Map<string, IndexLine[]> {
  const buckets = new Map<string, IndexLine[]>();
  for (const name of existing) buckets.set(name, []);
  for (const l of reservations) {
    const b = bucketOf(l.k);
    const list = buckets.get(b) ?? [];
    list.push(l);
    buckets.set(b, list);
  }
  for (const lines of buckets.values()) lines.sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0));
  return buckets;
}

/** Marker values by range set index ("0", "1", ...). */
export type Marker = Record<string, string>;

/** Parse the marker file; undefined when absent, torn or foreign (all mean: rebuild the index). */
export function parseMarker(text: string | undefined): Marker | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { tscniIndex?: number; last?: Marker } | null;
    if (parsed?.tscniIndex === 1 && parsed.last && typeof parsed.last === 'object') return parsed.last;
  } catch {
    // torn or foreign
  }
  return undefined;
}

export function renderMarker(last: Marker): string {
  return `${JSON.stringify({ tscniIndex: 1, last })}\n`;
}

/** The range set indexes the marker speaks for: 0 .. setCount-1 and every set it already lists (a config may have shrunk). */
export function markerSets(setCount: number, marker: Marker | undefined): number[] {
  const ids = new Set<number>();
  for (let i = 0; i < setCount; i++) ids.add(i);
  for (const k of Object.keys(marker ?? {})) if (/^\d+$/.test(k)) ids.add(Number(k));
  return [...ids];
}
