/**
 * static IPAM: addresses, routes and DNS straight from the config (reference:
 * plugins/ipam/static/main.go). It keeps no state, so DEL and GC have
 * nothing to release and STATUS is always ready; CHECK compares prevResult
 * with the configured addresses and gateways.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { parseIpOrCidrAddress, ipEquals, parseIp } from '../../lib/ip/cidr.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { parseStaticConfig } from './config.ts';

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parseStaticConfig(args.config, args.args);
  const result: Result = { cniVersion: LATEST_VERSION, ips: cfg.addresses.map((a) => (a.gateway ? { address: a.address, gateway: a.gateway } : { address: a.address })) };
  if (cfg.routes.length) result.routes = cfg.routes;
  if (cfg.dns) result.dns = cfg.dns;
  return result;
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parseStaticConfig(args.config, args.args);
  const prev = args.config.prevResult;
  if (!prev) throw new CniError(ErrorCode.Internal, 'Required prevResult missing');
  // As the reference: a configured address found in prevResult must carry the configured gateway.
  for (const a of cfg.addresses) {
    const ip = parseIpOrCidrAddress(a.address);
    const got = (prev.ips ?? []).find((p) => ipEquals(parseIpOrCidrAddress(p.address), ip));
    if (!got || !a.gateway) continue;
    if (!ipEquals(parseIp(a.gateway), got.gateway ? parseIp(got.gateway) : undefined)) {
      throw new CniError(ErrorCode.Internal, `static: Failed to match addr ${a.address.split('/')[0]} on interface ${args.ifName}`);
    }
  }
}

export const staticPlugin: Plugin = {
  name: 'static',
  about: `tscni static IPAM plugin v${TSCNI_VERSION}`,
  add,
  // No state to release; like the reference, DEL succeeds whatever the config says.
  del: async () => {},
  check,
  gc: async () => {},
  // Addresses come from the config: an ADD can always be answered.
  status: async () => {},
};
