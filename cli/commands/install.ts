/**
 * `tscni install`: put the executable into a CNI bin directory under every
 * plugin name (hard links to one file) and an example conflist into the
 * config directory. Existing files are replaced atomically (a runtime may be
 * executing the old plugin right now: rename, never truncate in place).
 */
import { copyFileSync, chmodSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { writeFileAtomic } from '../../lib/fs.ts';
import { join } from 'node:path';
import { EXAMPLE_CONFLIST_NAME, exampleConflist } from '../example-conf.ts';

export interface InstallArgs {
  source: string;
  dir: string;
  confDir?: string;
  names: readonly string[];
  force: boolean;
}

export interface InstallOutcome {
  binaries: string[];
  conflist?: string;
  conflistSkipped?: string;
}

function placeLink(target: string, path: string): void {
  const tmp = `${path}.tscni-tmp`;
  rmSync(tmp, { force: true });
  try {
    linkSync(target, tmp);
  } catch {
    // Hard links can fail on some file systems; a symlink picks the plugin by name just as well.
    symlinkSync(target, tmp);
  }
  renameSync(tmp, path);
}

export function install(a: InstallArgs): InstallOutcome {
  mkdirSync(a.dir, { recursive: true });
  const main = join(a.dir, 'tscni');
  const tmp = `${main}.tscni-tmp`;
  copyFileSync(a.source, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, main);
  const out: InstallOutcome = { binaries: [main] };
  for (const name of a.names) {
    const path = join(a.dir, name);
    placeLink(main, path);
    out.binaries.push(path);
  }
  if (a.confDir) {
    mkdirSync(a.confDir, { recursive: true });
    const conf = join(a.confDir, EXAMPLE_CONFLIST_NAME);
    if (existsSync(conf) && !a.force) {
      out.conflistSkipped = conf;
    } else {
      writeFileAtomic(conf, exampleConflist(), { mode: 0o644 });
      out.conflist = conf;
    }
  }
  return out;
}
