/**
 * Link I/O for the bridge plugin: reads from /sys (no process) where it
 * can, writes through one `ip -batch` per namespace.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ExecError, run } from '../../lib/exec.ts';

export type BridgeState = 'absent' | 'bridge' | 'not-bridge';

export function linkState(name: string): BridgeState {
  if (!existsSync(`/sys/class/net/${name}`)) return 'absent';
  return existsSync(`/sys/class/net/${name}/bridge`) ? 'bridge' : 'not-bridge';
}

export function readLinkFile(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Name of the link a /sys/class/net/<name>/<file> symlink points at (e.g. "master" -> the bridge). */
export function readLinkFileTarget(name: string, file: string): string | undefined {
  try {
    return readlinkSync(`/sys/class/net/${name}/${file}`).split('/').pop();
  } catch {
    return undefined;
  }
}

/** Host veth name: "veth" + 8 random hex digits, as the reference. */
export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Failed line numbers reported by `ip -force -batch` ("Command failed -:N"). */
export function failedBatchLines(stderr: string): number[] {
  return [...stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
}

/**
 * How to run `ip` in a namespace: a path under /run/netns (what runtimes
 * use) becomes `ip -n <name>`, which switches namespace itself and saves the
 * nsenter process; any other nsfs path goes through nsenter.
 */
export function ipInNetns(netns: string | undefined): { prefix: string[]; netns: string | undefined } {
  if (!netns) return { prefix: ['ip'], netns: undefined };
  const m = /^\/(?:var\/)?run\/netns\/([A-Za-z0-9_.-]+)$/.exec(netns);
  if (m && m[1] !== '.' && m[1] !== '..') return { prefix: ['ip', '-n', m[1] as string], netns: undefined };
  return { prefix: ['ip'], netns };
}

/** Split a batch line into words: "double" or 'single' quoted words keep their spaces. */
export function batchWords(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

/**
 * Run an `ip -batch`; throws ExecError with the failing line in the message.
 * iproute2 cuts batch lines at "#" even inside quotes, so a line carrying a
 * name with "#" (legal in Linux interface names) runs as its own `ip` argv.
 */
export async function ipBatchRaw(lines: readonly string[], netns?: string, opts: { json?: boolean; force?: boolean; details?: boolean } = {}): Promise<string> {
  if (!opts.force && lines.some((l) => l.includes('#'))) {
    let out = '';
    for (const line of lines) {
      const where = ipInNetns(netns);
      const argv = [...where.prefix, ...(opts.json ? ['-json'] : []), ...(opts.details ? ['-details'] : []), ...batchWords(line)];
      const r = await run(argv, { netns: where.netns });
      if (r.stdout.trim()) out += `${r.stdout.trim()}\n`;
    }
    return out;
  }
  const where = ipInNetns(netns);
  const argv = [...where.prefix];
  if (opts.json) argv.push('-json');
  if (opts.details) argv.push('-details');
  if (opts.force) argv.push('-force');
  argv.push('-batch', '-');
  const r = await run(argv, { input: `${lines.join('\n')}\n`, netns: where.netns, allowFailure: !!opts.force });
  if (opts.force && r.code !== 0 && !opts.json) throw new ExecError(r.argv, r.code, r.stdout, r.stderr);
  return r.stdout;
}

/** Sleep without blocking the event loop. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Wait until the host end of the veth reports operstate "up" (the container
 * end is up by now). Polls /sys: no process, short steps.
 */
export async function waitOperUp(name: string, timeoutMs = 2500): Promise<void> {
  const start = Date.now();
  let delay = 1;
  for (;;) {
    const state = readLinkFile(name, 'operstate');
    if (state === 'up') return;
    if (Date.now() - start > timeoutMs) throw new Error(`bridge port in error state: ${state ?? 'missing'}`);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}
