/**
 * Facts about network namespace paths. Commands are bound to a namespace by
 * path through lib/exec.ts (nsenter --net=PATH); nothing here switches the
 * namespace of this process.
 */
import { statSync, statfsSync } from 'node:fs';
import type { NetnsState } from './cni/skel.ts';

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
