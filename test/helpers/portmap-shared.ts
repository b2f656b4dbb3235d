/**
 * portmap's shared scaffolding (the CNI-HOSTPORT-* chains and their jumps,
 * the nft table inet tscni_portmap) outlives every pod, as the reference's
 * does. Tests that may create it take a snapshot first and remove it at the
 * end only if it was not there before.
 */
import { tryRun } from './netns.ts';

export interface SharedSnapshot {
  iptables: boolean;
  ip6tables: boolean;
  nft: boolean;
}

export function snapshotShared(): SharedSnapshot {
  return {
    iptables: tryRun(['iptables', '-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']).code === 0,
    ip6tables: tryRun(['ip6tables', '-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']).code === 0,
    nft: tryRun(['nft', 'list', 'table', 'inet', 'tscni_portmap']).code === 0,
  };
}

export function removeSharedIfNew(before: SharedSnapshot): void {
  for (const cmd of ['iptables', 'ip6tables'] as const) {
    if (before[cmd]) continue;
    for (const c of ['PREROUTING', 'OUTPUT']) tryRun([cmd, '-w', '-t', 'nat', '-D', c, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    tryRun([cmd, '-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']);
    for (const c of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ']) {
      tryRun([cmd, '-w', '-t', 'nat', '-F', c]);
      tryRun([cmd, '-w', '-t', 'nat', '-X', c]);
    }
  }
  if (!before.nft) tryRun(['nft', 'delete', 'table', 'inet', 'tscni_portmap']);
}
