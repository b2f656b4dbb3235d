/**
 * What a stress run counts before and after: every kind of thing a pod's
 * life cycle creates on the host. A leak is any difference.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { tryRun } from '../helpers/netns.ts';

export interface Census {
  /** Open file descriptors held by processes running our executable (a leftover plugin, server or agent). */
  fds: number;
  links: number;
  netns: number;
  natRules: number;
  filterRules: number;
  nftRules: number;
  files: number;
}

function countFiles(dirs: readonly string[]): number {
  let n = 0;
  for (const d of dirs) {
    try {
      n += (readdirSync(d, { recursive: true }) as string[]).length;
    } catch {
      // not created: nothing in it
    }
  }
  return n;
}

/** Open fds of every process whose executable is one of ours (dist/bin or dist/test-bin). */
function ourFds(): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!/\/dist\/(test-)?bin\//.test(readlinkSync(`/proc/${pid}/exe`))) continue;
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return n;
}

/** Count links, namespaces, CNI rules (iptables nat/filter, nft) and files under the given state dirs. */
export function census(stateDirs: readonly string[]): Census {
  const lines = (argv: string[]) => tryRun(argv).stdout.split('\n');
  return {
    fds: ourFds(),
    links: lines(['ip', '-o', 'link', 'show']).filter(Boolean).length,
    netns: lines(['ip', 'netns', 'list']).filter(Boolean).length,
    natRules: lines(['iptables-save', '-t', 'nat']).filter((l) => l.startsWith('-A') && l.includes('CNI')).length,
    filterRules: lines(['iptables-save', '-t', 'filter']).filter((l) => l.startsWith('-A') && l.includes('CNI')).length,
    nftRules: lines(['nft', 'list', 'ruleset']).filter((l) => /^\s+(ip|ip6|meta|iifname|oifname|ether|th|tcp|udp|jump|drop|masquerade|dnat)/.test(l)).length,
    files: countFiles(stateDirs),
  };
}

/** The difference after - before, per kind (all zero when nothing leaked). */
export function leaks(before: Census, after: Census): Census {
  const out = { ...after };
  for (const k of Object.keys(out) as Array<keyof Census>) out[k] = after[k] - before[k];
  return out;
}
