/**
 * portmap's shared scaffolding outlives every pod, as the reference's does:
 * the CNI-HOSTPORT-DNAT/SETMARK/MASQ chains with their jumps from PREROUTING,
 * OUTPUT and POSTROUTING (iptables and ip6tables), and the nft table
 * inet tscni_portmap. The demo, the benchmark and the tests may create it;
 * each takes a snapshot first and removes it at the end only if it was not
 * there before. One copy for all three (the demo's own had drifted: it
 * forgot ip6tables and nft).
 */
import { spawnSync } from 'node:child_process';

const SHARED_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'];
const NFT_TABLE = ['inet', 'tscni_portmap'];

/** Run argv quietly; the exit code (-1 when it could not start). */
function quiet(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
  return r.status ?? -1;
}

/** Which of the shared pieces exist now: { iptables, ip6tables, nft } booleans. */
export function snapshotShared() {
  return {
    iptables: quiet(['iptables', '-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']) === 0,
    ip6tables: quiet(['ip6tables', '-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']) === 0,
    nft: quiet(['nft', 'list', 'table', ...NFT_TABLE]) === 0,
  };
}

/** Remove each shared piece that `before` (a snapshotShared()) did not have; pieces already gone are fine. */
export function removeSharedIfNew(before) {
  for (const cmd of ['iptables', 'ip6tables']) {
    if (before[cmd]) continue;
    for (const c of ['PREROUTING', 'OUTPUT']) quiet([cmd, '-w', '-t', 'nat', '-D', c, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    quiet([cmd, '-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']);
    for (const c of SHARED_CHAINS) {
      quiet([cmd, '-w', '-t', 'nat', '-F', c]);
      quiet([cmd, '-w', '-t', 'nat', '-X', c]);
    }
  }
  if (!before.nft) quiet(['nft', 'delete', 'table', ...NFT_TABLE]);
}
