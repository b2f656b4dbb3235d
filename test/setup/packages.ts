/**
 * vitest globalSetup: the real-kernel tests need the Debian packages listed
 * in .ci/apt-packages (iproute2, iptables, nftables, the Go reference
 * plugins, the real clients...). On a fresh Debian/Ubuntu machine as root the
 * missing ones are installed with apt-get, as `.ci/run` does; anywhere else
 * the run stops at once, naming the missing packages.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Packages named in .ci/apt-packages (comments and blank lines skipped). */
export function wantedPackages(): string[] {
  return readFileSync(join(ROOT, '.ci', 'apt-packages'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

function missing(pkgs: readonly string[]): string[] {
  return pkgs.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
}

export default function setup(): void {
  // npm run test:unit: pure logic only, no packages or privileges needed.
  if (process.env.TSCNI_UNIT_ONLY === '1') return;
  const want = wantedPackages();
  let absent = missing(want);
  if (absent.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version']).status === 0;
  if (isRoot && hasApt) {
    process.stderr.write(`test setup: installing ${absent.join(' ')} with apt-get\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...absent], { stdio: 'inherit', env });
    absent = missing(want);
    if (absent.length === 0) return;
  }
  throw new Error(
    `the real-kernel tests need these Debian packages: ${absent.join(' ')} ` +
      `(${isRoot ? 'apt-get could not install them' : 'run as root on Debian/Ubuntu, or install them'}; the list is .ci/apt-packages)`,
  );
}
