/**
 * `ctr run --cni` against a private containerd (containerd.ts). ctr's go-cni
 * uses fixed paths (the first conflist in /etc/cni/net.d, plugins in
 * /opt/cni/bin, cache in /var/lib/cni), so ctr runs in a private mount
 * namespace where /etc and /opt are overlays (the machine's folders are only
 * read) with the test's conf dir and wrapper bin dir bind-mounted over
 * /etc/cni/net.d and /opt/cni/bin.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Containerd } from './containerd.ts';

/** The shell steps run inside the private mount namespace before exec'ing ctr ($1 = scratch dir, $2 = conf dir, $3 = bin dir). */
const SETUP = `set -e
for d in etc opt; do
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$1/$d-upper,workdir=$1/$d-work" "/$d"
done
mkdir -p /etc/cni/net.d /opt/cni/bin
mount --bind "$2" /etc/cni/net.d
mount --bind "$3" /opt/cni/bin
shift 3
exec ctr "$@"`;

function argv(h: Containerd, args: string[]): string[] {
  const scratch = join(h.dir, 'ctr-mnt');
  for (const d of ['etc-upper', 'etc-work', 'opt-upper', 'opt-work']) mkdirSync(join(scratch, d), { recursive: true });
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', SETUP, 'sh', scratch, h.confDir, h.binDir, '--address', h.socket, '--namespace', 'k8s.io', ...args];
}

/** Start `ctr <args>` (e.g. a foreground `run --cni`) in the private mount namespace; the child is ctr itself (sh execs it). */
export function spawnCtr(h: Containerd, args: string[]): ChildProcess {
  const a = argv(h, args);
  return spawn(a[0] as string, a.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Run `ctr <args>` to completion in the private mount namespace. */
export function runCtr(h: Containerd, args: string[]): { code: number; stdout: string; stderr: string } {
  const a = argv(h, args);
  const r = spawnSync(a[0] as string, a.slice(1), { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
