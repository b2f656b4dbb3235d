/**
 * Running podman with a test's private containers.conf and storage.conf (in
 * `dir`), as test/netns/podman and the podman names test do.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export interface PodmanRunner {
  /** The environment every call gets: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF under `dir`. */
  env: NodeJS.ProcessEnv & { CONTAINERS_CONF: string; CONTAINERS_STORAGE_CONF: string };
  /** One podman call (60 s at most): exit code and trimmed output. */
  podman(...args: string[]): { code: number; out: string; err: string };
  /** One podman call that must succeed; its trimmed stdout. Throws naming the call and its stderr. */
  podmanOk(...args: string[]): string;
  /** A container's address on a network (podman inspect). */
  ipOf(ctr: string, net: string): string;
}

export function podmanRunner(dir: string): PodmanRunner {
  const env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf') };
  const podman = (...args: string[]) => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() };
  };
  const podmanOk = (...args: string[]) => {
    const r = podman(...args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.code}): ${r.err}`);
    return r.out;
  };
  const ipOf = (ctr: string, net: string) => podmanOk('inspect', ctr, '--format', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`);
  return { env, podman, podmanOk, ipOf };
}
