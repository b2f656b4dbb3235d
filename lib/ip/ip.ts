/**
 * Reading and writing links and addresses with iproute2: read with
 * `ip -json`, write with one rendered `ip -batch -` script per namespace.
 */
import { run, runJson } from '../exec.ts';

export interface AddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  master?: string;
  operstate?: string;
  link_type?: string;
  addr_info?: AddrInfo[];
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_data?: Record<string, unknown> };
  [key: string]: unknown;
}

/** Run a batch of `ip` commands (one per line) and parse any JSON they print. */
export async function ipBatch(lines: readonly string[], netns?: string, json = false): Promise<IpLink[]> {
  const argv = json ? ['ip', '-json', '-batch', '-'] : ['ip', '-batch', '-'];
  const r = await run(argv, { input: `${lines.join('\n')}\n`, netns });
  const text = r.stdout.trim();
  if (!json || !text) return [];
  // Each command that prints emits one JSON array; join them.
  const out: IpLink[] = [];
  for (const chunk of text.split(/\n(?=\[)/)) out.push(...(JSON.parse(chunk) as IpLink[]));
  return out;
}

export async function ipJson<T = IpLink[]>(args: readonly string[], netns?: string): Promise<T> {
  return runJson<T>(['ip', '-json', ...args], { netns });
}

export function isUp(link: IpLink): boolean {
  return link.flags.includes('UP');
}
