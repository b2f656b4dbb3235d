/**
 * Network namespaces by file descriptor. CNI_NETNS may be any nsfs path
 * (/run/netns/x, /proc/<pid>/ns/net, a bind mount elsewhere); it is checked,
 * opened once per call, and used through that descriptor everywhere: link
 * creation (IFLA_NET_NS_FD), netlink sockets bound to the namespace, and
 * sysctl writes, so a path swapped after the check cannot redirect us.
 *
 * withNetns() moves the calling thread only (setns(2)), runs a synchronous
 * function and always moves the thread back, in `finally`. It refuses an
 * async function: an await would let other work run in the wrong namespace.
 * Nothing here spawns a process.
 */
import { closeSync, openSync, readFileSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import type { NetnsState } from './cni/skel.ts';
import { closeFd, setNetns } from './netlink/ffi.ts';

const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

/** Classify CNI_NETNS: a live namespace, this process's own one, gone, or not a namespace at all. */
export function inspectNetns(path: string): NetnsState {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 'missing';
  }
  let fsType: number;
  try {
    fsType = statfsSync(path).type;
  } catch {
    return 'missing';
  }
  if (fsType !== NSFS_MAGIC && fsType !== PROC_SUPER_MAGIC) return 'not-netns';
  try {
    const own = statSync('/proc/self/ns/net');
    if (own.ino === st.ino && own.dev === st.dev) return 'own';
  } catch {
    // No /proc/self: cannot compare, treat the path as a valid foreign namespace.
  }
  return 'ok';
}

/** An open network namespace: the path it was opened by (for messages) and its descriptor. */
export interface NetnsHandle {
  readonly path: string;
  readonly fd: number;
}

/**
 * Open the namespace at `path` (read-only, close-on-exec). Throws an Error
 * naming the path when it cannot be opened; setns() later rejects a file
 * that is not a network namespace (EINVAL).
 */
export function openNetns(path: string): NetnsHandle {
  try {
    return { path, fd: openSync(path, 'r') };
  } catch (e) {
    throw new Error(`failed to open netns "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function closeNetns(ns: NetnsHandle | undefined): void {
  if (!ns) return;
  try {
    closeSync(ns.fd);
  } catch {
    // Already closed: nothing to release.
  }
}

let home: NetnsHandle | undefined;

/** The namespace the process started in (opened once, kept open: the way back). */
function homeNetns(): NetnsHandle {
  home ??= openNetns('/proc/thread-self/ns/net');
  return home;
}

/**
 * Run `fn` with the calling thread in `ns`, then return the thread to the
 * namespace it started in, whether `fn` returns or throws. `fn` must be
 * synchronous. If the way back fails the process cannot continue safely:
 * the error says so and is rethrown (the plugin reports it and exits).
 */
export function withNetns<T>(ns: NetnsHandle, fn: () => T): T {
  const back = homeNetns();
  setNetns(ns.fd, ns.path);
  try {
    const out = fn();
    if (out instanceof Promise) throw new Error('withNetns: the function must be synchronous');
    return out;
  } finally {
    try {
      setNetns(back.fd, 'the original netns');
    } catch (e) {
      // Fatal: continuing would act on the wrong namespace.
      process.stderr.write(`[tscni] fatal: could not return to the original netns: ${(e as Error).message}\n`);
      process.exit(70);
    }
  }
}

/** Close what this module keeps open (tests). */
export function closeHomeNetns(): void {
  if (home) closeFd(home.fd);
  home = undefined;
}

/** Path of a sysctl key under /proc/sys; keys use "/" so names with dots (eth0.100) stay intact. */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replace(/^\/+/, '')}`;
}

/**
 * Write sysctls inside `ns` (per-namespace keys under /proc/sys/net are
 * resolved by the writing thread's namespace). Keys that do not exist are
 * skipped, as `sysctl -e` does (IPv6 disabled, an old kernel); any other
 * failure throws naming the key.
 */
export function writeSysctlsIn(ns: NetnsHandle, settings: ReadonlyArray<readonly [string, string]>): void {
  withNetns(ns, () => {
    for (const [key, value] of settings) {
      try {
        writeFileSync(sysctlPath(key), value);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new Error(`failed to set sysctl ${key}=${value} in ${ns.path}: ${(e as Error).message}`);
      }
    }
  });
}

/** Read a sysctl inside `ns`; undefined when the key does not exist. */
export function readSysctlIn(ns: NetnsHandle, key: string): string | undefined {
  return withNetns(ns, () => {
    try {
      return readFileSync(sysctlPath(key), 'utf8').trim();
    } catch {
      return undefined;
    }
  });
}
