/**
 * Which firewall backend a rule user (masquerade, portmap, firewall) takes
 * when its config leaves the choice open, decided once per call and the same
 * way everywhere: iptables when iptables-restore is installed, nftables when
 * only nft is, as the reference's utils.DetectBackend does.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export type FirewallBackend = 'iptables' | 'nftables';

/** Is `cmd` an executable in PATH? A file check, no process. */
export function hasCommand(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** As the reference: iptables unless only nftables is available. */
export function detectBackend(): FirewallBackend {
  if (!hasCommand('iptables-restore') && hasCommand('nft')) return 'nftables';
  return 'iptables';
}
