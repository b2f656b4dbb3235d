/**
 * Host sysctls are plain files under /proc/sys (no process needed). Sysctls
 * inside a pod's namespace: writeSysctlsIn in lib/netns.ts. Keys use "/"
 * separators so interface names with dots (eth0.100) stay intact.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { sysctlPath } from './netns.ts';

export { sysctlPath };

export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(sysctlPath(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Write a host sysctl. Returns false instead of throwing when the key does not exist. */
export function writeSysctl(key: string, value: string, { ifChanged = false } = {}): boolean {
  if (ifChanged && readSysctl(key) === value) return true;
  try {
    writeFileSync(sysctlPath(key), value);
    return true;
  } catch {
    return false;
  }
}
