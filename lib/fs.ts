/**
 * One way to write state files: a complete temp file in the same directory,
 * renamed over the target, so a reader sees the old content or the new, never
 * a torn file, whatever kills the writer.
 *
 * Durability (fsync of the file and its directory) is opt-in: it costs about
 * 1 ms per file on this class of disk, and pod state does not outlive a power
 * loss anyway (pods are gone after a reboot, and stale state is reclaimed:
 * see staleReason in portmap and the boot check in host-local).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface WriteOptions {
  /** File mode of a new file (default 0600). */
  mode?: number;
  /** fsync the file before the rename and the directory after it. */
  durable?: boolean;
}

/** Write `data` to `path` atomically (temp file + rename). Throws the fs error; no temp file is left behind. */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: WriteOptions = {}): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const fd = openSync(tmp, 'w', opts.mode ?? 0o600);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (opts.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (opts.durable) {
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

/** Parse the JSON file at `path`, or return `fallback` when it is missing, empty or not JSON. */
export function readJsonOr<T>(path: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return fallback;
  }
}
