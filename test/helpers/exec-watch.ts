/**
 * Watching which tools a plugin starts: wrapper scripts named like the
 * tools (ip, nsenter, sysctl, bridge, iptables*, nft) come first in PATH,
 * log each call and run the real tool, so nothing else changes.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REAL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const WATCHED = ['ip', 'nsenter', 'sysctl', 'bridge', 'iptables-restore', 'ip6tables-restore', 'iptables', 'ip6tables', 'nft'];

export interface ExecWatch {
  /** PATH for the plugin: the wrappers, then the real tools. */
  path: string;
  /** Every logged call, "<tool> <args>". */
  calls(): string[];
  /** Remove the wrappers and the log. */
  remove(): void;
}

/**
 * Make a fresh wrapper directory and log under the system tmpdir.
 * Returns the PATH to hand the plugin, a reader of the log (an empty list
 * when nothing was called) and the cleanup. Throws on any fs error.
 */
export function watchExecs(): ExecWatch {
  const work = mkdtempSync(join(tmpdir(), 'tscni-execwatch-'));
  const bin = join(work, 'bin');
  const log = join(work, 'exec.log');
  mkdirSync(bin);
  for (const name of WATCHED) {
    writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${JSON.stringify(log)}\nPATH=${REAL_PATH} exec ${name} "$@"\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return {
    path: `${bin}:${REAL_PATH}`,
    calls: () => {
      try {
        return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },
    remove: () => rmSync(work, { recursive: true, force: true }),
  };
}
