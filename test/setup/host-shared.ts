/**
 * The whole run's safety net for portmap's shared scaffolding (the
 * CNI-HOSTPORT-* chains and jumps, the nft table inet tscni_portmap): each
 * test file that publishes ports removes it at its end if it made it, and this
 * removes whatever is still there at the end of the run that was not there at
 * its start, saying so on stderr (a file that left it is a test defect to find).
 */
import { removeSharedIfNew, snapshotShared } from '../../scripts/lib/portmap-shared.mjs';

export default function setup(): (() => void) | undefined {
  if (process.getuid?.() !== 0 || process.env.TSCNI_UNIT_ONLY) return undefined;
  const before = snapshotShared();
  return () => {
    const after = snapshotShared();
    const left = (['iptables', 'ip6tables', 'nft'] as const).filter((k) => !before[k] && after[k]);
    if (left.length === 0) return;
    process.stderr.write(`test run: portmap's shared ${left.join(', ')} scaffolding was left by a test file; removed\n`);
    removeSharedIfNew(before);
  };
}
