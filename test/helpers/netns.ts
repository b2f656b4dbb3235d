/**
 * Throwaway network namespaces for tests. Every name carries the "tscni-t"
 * prefix and the test's pid, and everything is removed in afterEach/afterAll
 * even when a test fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const TEST_PREFIX = 'tscni-t';

export function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Run and return exit code + output without throwing. */
export function tryRun(argv: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', input });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function uniqueName(tag: string): string {
  return `${TEST_PREFIX}-${tag}-${randomBytes(3).toString('hex')}`;
}

export interface TestNetns {
  name: string;
  path: string;
  /** argv to run a command inside this namespace. */
  exec(argv: string[]): string;
  tryExec(argv: string[]): { code: number; stdout: string; stderr: string };
  remove(): void;
}

const created = new Set<string>();

export function createNetns(tag: string): TestNetns {
  const name = uniqueName(tag);
  sh(['ip', 'netns', 'add', name]);
  created.add(name);
  const path = `/run/netns/${name}`;
  return {
    name,
    path,
    exec: (argv) => sh(['ip', 'netns', 'exec', name, ...argv]),
    tryExec: (argv) => tryRun(['ip', 'netns', 'exec', name, ...argv]),
    remove: () => {
      tryRun(['ip', 'netns', 'del', name]);
      created.delete(name);
    },
  };
}

/** Remove every namespace this test file created (call from afterAll/afterEach). */
export function removeAllNetns(): void {
  for (const name of [...created]) {
    tryRun(['ip', 'netns', 'del', name]);
    created.delete(name);
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
