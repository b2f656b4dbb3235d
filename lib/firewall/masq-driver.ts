/**
 * What a masquerade backend does, behind one interface (as portmap's
 * drivers and netavark's firewall drivers): masquerade.ts dispatches to
 * masq-iptables.ts or masq-nftables.ts, each owning its listing and
 * rendering calls.
 */
import type { Family } from '../ip/prefix.ts';

export interface TeardownTarget {
  network: string;
  ifname: string;
  containerId: string;
  /** Families to clean in iptables; both when unknown (no prevResult). */
  families: readonly Family[];
  /** The attachment's addresses when known (prevResult): lets iptables delete by exact spec without listing. */
  cidrs?: readonly string[];
  /**
   * The backend ADD used (the config's ipMasqBackend, or the detected one):
   * only its rules are looked for, which saves an `nft` listing per DEL on
   * iptables nodes. Undefined: both backends.
   */
  backend?: 'iptables' | 'nftables';
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface MasqDriver {
  /** Is the backend's tool installed? */
  available(): boolean;
  /** Masquerade traffic from `cidrs` (the pod's addresses), tagged with the attachment. */
  setup(cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<void>;
  /** Remove the attachment's rules (found by their tags); nothing there is success. */
  teardown(t: TeardownTarget): Promise<void>;
  /** Remove the rules of `network` whose attachment is not in `valid`. */
  gc(network: string, valid: readonly Attachment[]): Promise<void>;
  /** The addresses of `cidrs` whose rule is missing (CHECK). */
  missing(cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<string[]>;
}
