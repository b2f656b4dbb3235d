/**
 * Host sysctls are plain files under /proc/sys (no process needed). Sysctls
 * inside a pod namespace go through `sysctl` run with nsenter; sysctlArgv
 * renders that one command. Keys use "/" separators so interface names with
 * dots (eth0.100) stay intact.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replace(/^\/+/, '')}`;
}

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

/** argv of one `sysctl` call setting several keys; -e ignores keys that do not exist. */
export function sysctlArgv(settings: ReadonlyArray<readonly [string, string]>): string[] {
  return ['sysctl', '-q', '-e', '-w', ...settings.map(([k, v]) => `${k}=${v}`)];
}
