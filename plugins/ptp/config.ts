/**
 * ptp configuration: parse + validate, pure (no kernel access). Keys as the
 * reference plugins/main/ptp/ptp.go: ipMasq, ipMasqBackend, mtu, ipam, dns.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Dns, NetConf } from '../../lib/cni/types.ts';
import type { MasqBackend } from '../../lib/firewall/masquerade.ts';
import { badConfig, dnsOf, ipamTypeOf, readBool, readInt } from '../../lib/cni/config-read.ts';

export interface PtpConfig {
  name: string;
  cniVersion: string;
  ipMasq: boolean;
  /** undefined = auto-detect as the reference does. */
  ipMasqBackend: MasqBackend | undefined;
  /** 0 = kernel default. */
  mtu: number;
  ipamType: string;
  dns: Dns | undefined;
}

/** Parse and validate; code 7 naming the field (code 2 for an unknown ipMasqBackend). */
export function parsePtpConfig(conf: NetConf): PtpConfig {
  const raw = conf as Record<string, unknown>;
  let ipMasqBackend: MasqBackend | undefined;
  if (raw.ipMasqBackend !== undefined && raw.ipMasqBackend !== null) {
    if (raw.ipMasqBackend !== 'iptables' && raw.ipMasqBackend !== 'nftables') {
      throw new CniError(ErrorCode.UnsupportedField, `unknown ipmasq backend "${String(raw.ipMasqBackend)}"`, 'ipMasqBackend must be "iptables" or "nftables"');
    }
    ipMasqBackend = raw.ipMasqBackend;
  }
  const mtu = readInt(raw, 'mtu');
  if (mtu < 0 || mtu > 65535) throw badConfig(`invalid "mtu" ${mtu}`, 'must be between 0 and 65535');
  const ipamType = ipamTypeOf(conf);
  if (!ipamType) throw badConfig('ptp: "ipam" with a "type" is required (the pod and host addresses come from IPAM)');
  return { name: conf.name, cniVersion: conf.cniVersion, ipMasq: readBool(raw, 'ipMasq'), ipMasqBackend, mtu, ipamType, dns: dnsOf(conf) };
}
