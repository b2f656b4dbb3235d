/**
 * A cross-process lock: flock(2) on a lock file, through the FFI layer.
 *
 * host-local locks `<dataDir>/<network>/lock`, the very file the reference
 * plugin flock()s, so ours and the reference exclude each other on a node
 * running both; portmap locks `<stateDir>/lock`. A kernel lock belongs to
 * the open file, so it vanishes with its holder (kill -9, a crash): no pid
 * files, no stealing, and it holds across PID namespaces.
 *
 * Re-entrant within a process (a depth count: portmap's parallel IPv4/IPv6
 * setup nests). Waiting is bounded: then the call fails with code 11 (try
 * again later). Uniqueness of addresses never depends on this lock: every
 * reservation is an exclusive create; the lock serialises round-robin state.
 *
 * Node has no flock(2): there (the unit tests of the index logic, one
 * process) the lock is process-local. The executables always run on Bun.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { CniError, ErrorCode } from './cni/errors.ts';
import { ffiAvailable, tryFlockExclusive, unflock } from './netlink/ffi.ts';

export const LOCK_FILE = 'lock';

/**
 * Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined when
 * the process is gone or a zombie: with the pid, it identifies a process in
 * a pid file (the overlay agent's), since pids are reused.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class FileLock {
  readonly path: string;
  private fd = -1;
  /** Nesting depth: acquire inside acquire holds until the outermost release. */
  private depth = 0;

  /** A lock on the file at `path` (created when missing, mode 0600). */
  constructor(path: string) {
    this.path = path;
  }

  acquire(timeoutMs = 30_000): void {
    if (this.depth > 0) {
      this.depth++;
      return;
    }
    const fd = openSync(this.path, 'a', 0o600);
    if (!ffiAvailable()) {
      this.fd = fd;
      this.depth = 1;
      return;
    }
    const deadline = Date.now() + timeoutMs;
    let delay = 1;
    try {
      while (!tryFlockExclusive(fd, this.path)) {
        if (Date.now() > deadline) throw new CniError(ErrorCode.TryAgainLater, `timed out after ${timeoutMs} ms waiting for the lock ${this.path}`, 'another plugin call holds it');
        sleepMs(delay);
        delay = Math.min(delay * 2, 20);
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.fd = fd;
    this.depth = 1;
  }

  /** Run `fn` holding the lock (released however `fn` ends). */
  with<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }

  /** Run async `fn` holding the lock until its promise settles. */
  async withAsync<T>(fn: () => Promise<T>): Promise<T> {
    this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  release(): void {
    if (this.depth === 0) return;
    this.depth--;
    if (this.depth > 0) return;
    if (ffiAvailable()) unflock(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }
}
