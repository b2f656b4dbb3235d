/**
 * Network namespaces for the runner: created and removed with iproute2 so
 * they appear in `ip netns list` and under /run/netns like any other.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { run, runJson } from '../lib/exec.ts';
import { inspectNetns } from '../lib/netns.ts';
import { UsageError } from './context.ts';
import { readPod } from './pods.ts';

export const NETNS_RUN_DIR = '/run/netns';

export async function createNamedNetns(name: string): Promise<string> {
  await run(['ip', 'netns', 'add', name]);
  return join(NETNS_RUN_DIR, name);
}

/**
 * A pod namespace as container runtimes make it: lo is up before any network
 * is attached (containerd and CRI-O do this for every pod), so containers
 * sharing the namespace reach each other on 127.0.0.1.
 */
export async function createPodNetns(name: string): Promise<string> {
  const path = await createNamedNetns(name);
  try {
    await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    await deleteNamedNetns(name).catch(() => undefined);
    throw e;
  }
  return path;
}

export async function deleteNamedNetns(name: string): Promise<void> {
  if (!existsSync(join(NETNS_RUN_DIR, name))) return;
  await run(['ip', 'netns', 'del', name]);
}

export async function listNamedNetns(): Promise<{ name: string; id?: number }[]> {
  return runJson<{ name: string; id?: number }[]>(['ip', '-json', 'netns', 'list']);
}

/**
 * A namespace given by the user: a pod name known to `tscni up`, a name under
 * /run/netns, or a path to any nsfs file (/proc/<pid>/ns/net ...).
 */
export function resolveNetns(stateDir: string, ref: string): string {
  if (!ref.includes('/')) {
    const pod = readPod(stateDir, ref);
    if (pod) return pod.netns;
    const named = join(NETNS_RUN_DIR, ref);
    if (existsSync(named)) return named;
    throw new UsageError(`no pod or network namespace named ${JSON.stringify(ref)}`);
  }
  const path = isAbsolute(ref) ? ref : resolve(ref);
  const state = inspectNetns(path);
  if (state !== 'ok' && state !== 'own') throw new UsageError(`${path} is not a network namespace (${state})`);
  return path;
}
