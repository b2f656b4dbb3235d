/**
 * bridge: Docker-style bridge networking. ADD reads as a fixed recipe:
 * config -> IPAM -> host batch (bridge, veth, port flags, gateway) -> pod
 * (sysctls, addresses, routes) -> forwarding -> masquerade -> port up ->
 * result. Every step that changes something pushes its undo; any failure
 * unwinds the stack, so a failed ADD leaves no veth, reservation or rule.
 */
import { CniError, ErrorCode, toCniError } from '../../lib/cni/errors.ts';
import { delegate, delegateAdd } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { IpConfig, Result, ValidAttachment } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { ExecError, run } from '../../lib/exec.ts';
import { detectMasqBackend, familiesOf, gcMasquerade, missingMasquerade, setupMasquerade, teardownMasquerade } from '../../lib/firewall/masquerade.ts';
import { setupSpoofCheck, spoofRefId, teardownSpoofCheck } from '../../lib/firewall/spoofcheck.ts';
import { ipJson, type AddrInfo, type IpLink } from '../../lib/ip/ip.ts';
import { familyOf, type Family } from '../../lib/ip/prefix.ts';
import { logDebug } from '../../lib/log.ts';
import { inspectNetns } from '../../lib/netns.ts';
import { sysctlArgv, writeSysctl } from '../../lib/sysctl.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { checkAttachment } from './check.ts';
import { parseBridgeConfig, type BridgeConfig } from './config.ts';
import { failedBatchLines, ipBatchRaw, linkState, randomMac, randomVethName, readLinkFile, readLinkFileTarget, waitOperUp } from './links.ts';
import {
  CONTAINER_IF_INDEX,
  batchArg,
  planBridgeAddrs,
  planGateways,
  podSysctls,
  renderHostBatch,
  renderPodAddrs,
  renderPodRoutes,
  renderPortVlans,
  type GatewayPlan,
} from './render.ts';

/**
 * TEST-ONLY failure injection: TSCNI_TEST_FAIL_AT=<step> makes ADD fail
 * right after that step (after-ipam, after-veth, after-pod, after-masq,
 * before-result), so tests can prove that rollback leaves nothing behind.
 */
function failpoint(args: CmdArgs, step: string): void {
  if (args.env.TSCNI_TEST_FAIL_AT === step) throw new CniError(ErrorCode.Internal, `injected failure at ${step} (TSCNI_TEST_FAIL_AT)`);
}

class UndoStack {
  private readonly steps: Array<{ what: string; fn: () => Promise<unknown> }> = [];

  push(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /** Undo everything, newest first; errors are logged, never thrown (the original error wins). */
  async unwind(): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        process.stderr.write(`[tscni] bridge rollback: ${s.what} failed: ${(e as Error).message}\n`);
      }
    }
    this.steps.length = 0;
  }
}

async function deleteHostLink(name: string): Promise<void> {
  await run(['ip', 'link', 'del', 'dev', name], { allowFailure: true });
}

/** Run the host batch; when another ADD created the bridge in the meantime, run the rest again. */
async function runHostBatch(lines: string[], createsBridge: boolean, bridge: string): Promise<void> {
  try {
    await ipBatchRaw(lines);
  } catch (e) {
    if (!(e instanceof ExecError)) throw e;
    const failed = failedBatchLines(e.stderr);
    if (createsBridge && failed[0] === 1 && /File exists/.test(e.stderr) && linkState(bridge) === 'bridge') {
      await ipBatchRaw(lines.slice(1));
      return;
    }
    if (createsBridge && failed[0] === 1 && linkState(bridge) === 'not-bridge') {
      throw new CniError(ErrorCode.Internal, `failed to create bridge "${bridge}": "${bridge}" already exists but is not a bridge`);
    }
    throw new CniError(ErrorCode.Internal, `failed to set up the bridge and veth: ${e.stderr.trim() || e.message}`);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseBridgeConfig(args.config, args.args);
  const state = linkState(conf.bridge);
  if (state === 'not-bridge') {
    throw new CniError(ErrorCode.Internal, `failed to create bridge "${conf.bridge}": "${conf.bridge}" already exists but is not a bridge`);
  }
  const undo = new UndoStack();
  try {
    return await addSteps(args, conf, state === 'bridge', undo);
  } catch (e) {
    await undo.unwind();
    throw e;
  }
}

/** Await every promise, then throw the first failure (so every undo step is registered first). */
async function allOrThrow<T extends readonly unknown[]>(ps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(ps);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

async function addSteps(args: CmdArgs, conf: BridgeConfig, bridgeExists: boolean, undo: UndoStack): Promise<Result> {
  const br = conf.bridge;
  logDebug('bridge ADD: start', performance.now().toFixed(1));
  let hostVeth = randomVethName();
  // Never reuse a name that exists: the undo step below deletes this link by name.
  while (linkState(hostVeth) !== 'absent') hostVeth = randomVethName();

  // Gateway addresses go on the bridge, or on "<bridge>.<vlan>" when a VLAN is set.
  const wantsGw = conf.isGateway && !!conf.ipamType;
  const vlanGwName = conf.vlan !== 0 && wantsGw ? `${br}.${conf.vlan}` : undefined;
  const gwDev = vlanGwName ?? br;
  const gwDevExists = vlanGwName ? linkState(vlanGwName) !== 'absent' : bridgeExists;
  const vlanGw = vlanGwName ? { name: vlanGwName, peer: randomVethName(), exists: gwDevExists } : undefined;

  // Phase 1, concurrently: IPAM ADD; one host batch (bridge, veth pair with the
  // container end created straight in the pod's netns, port flags); the
  // gateway device's current addresses.
  const hostLines = renderHostBatch(conf, {
    bridgeExists,
    newBridgeMac: randomMac(),
    pinBridgeMac: undefined,
    hostVeth,
    netns: args.netns,
    ifName: args.ifName,
    addrLines: [],
    vlanGw,
  });
  undo.push('delete host veth', () => deleteHostLink(hostVeth));
  if (vlanGw && !vlanGw.exists) undo.push('delete vlan gateway veth', () => deleteHostLink(vlanGw.name));
  const ipamType = conf.ipamType;
  // Processes are spawned first: in-process IPAM may do synchronous file work that
  // would otherwise delay their start.
  const [, gwAddrs, ipam] = await allOrThrow<[void, AddrInfo[], Result | undefined]>([
    runHostBatch(hostLines, !bridgeExists, br).then(() => logDebug('bridge ADD: host batch done', performance.now().toFixed(1))),
    wantsGw && gwDevExists
      ? ipJson(['addr', 'show', 'dev', gwDev]).then((l) => {
          logDebug('bridge ADD: gateway addresses read', performance.now().toFixed(1));
          return l[0]?.addr_info ?? [];
        })
      : Promise.resolve([]),
    ipamType
      ? delegateAdd(ipamType, args.stdinData, args.env).then((r) => {
          logDebug('bridge ADD: IPAM done', performance.now().toFixed(1));
          undo.push('IPAM DEL', () => delegate('DEL', ipamType, args.stdinData, args.env));
          return r;
        })
      : Promise.resolve(undefined),
  ]);
  logDebug('bridge ADD: ipam + host batch done', performance.now().toFixed(1));
  failpoint(args, 'after-ipam');
  failpoint(args, 'after-veth');

  let plan: GatewayPlan | undefined;
  let dns = conf.dns;
  if (ipam) {
    if (!ipam.ips || ipam.ips.length === 0) throw new CniError(ErrorCode.Internal, 'IPAM plugin returned missing IP config');
    plan = planGateways(ipam, conf);
    dns = conf.dns ?? ipam.dns;
  }
  const addrLines = plan && wantsGw ? planBridgeAddrs(gwDev, gwAddrs, plan.bridgeAddrs, conf.forceAddress, !conf.enabledad) : [];

  writeSysctl(`net/ipv6/conf/${br}/accept_ra`, '0', { ifChanged: true });
  writeSysctl(`net/ipv6/conf/${hostVeth}/accept_ra`, '0');
  if (vlanGw && !vlanGw.exists) writeSysctl(`net/ipv6/conf/${vlanGw.peer}/accept_ra`, '0');

  // Phase 2, concurrently: host follow-ups (VLANs, gateway address), the pod side, masquerade.
  const tasks: Array<Promise<unknown>> = [];
  const defaultPvid = Number(readLinkFile(br, 'bridge/default_pvid') ?? '1');
  const vlanLines = renderPortVlans(hostVeth, conf.vlan, conf.vlanTrunk, conf.preserveDefaultVlan, defaultPvid);
  if (vlanGw && !vlanGw.exists) vlanLines.push(...renderPortVlans(vlanGw.peer, conf.vlan, undefined, conf.preserveDefaultVlan, defaultPvid));
  if (vlanLines.length) tasks.push(run(['bridge', '-batch', '-'], { input: `${vlanLines.join('\n')}\n` }));
  if (addrLines.length) {
    // Pin the bridge MAC once it carries an address, so it does not follow its ports.
    const mac = vlanGw ? undefined : readLinkFile(br, 'address');
    tasks.push(ipBatchRaw(mac ? [...addrLines, `link set dev ${br} address ${mac}`] : addrLines));
  }
  let contLink: IpLink | undefined;
  tasks.push(
    configurePod(args, conf, plan).then((l) => {
      contLink = l;
    }),
  );
  if (plan && conf.ipMasq) {
    const cidrs = plan.ips.map((ip) => ip.address);
    undo.push('masquerade teardown', () =>
      teardownMasquerade({ network: conf.name, ifname: args.ifName, containerId: args.containerId, families: familiesOf(cidrs), cidrs }),
    );
    tasks.push(setupMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId));
  }
  await allOrThrow(tasks);
  logDebug('bridge ADD: pod, gateway and masquerade done', performance.now().toFixed(1));
  failpoint(args, 'after-pod');
  failpoint(args, 'after-masq');

  if (conf.macspoofchk) {
    const refId = spoofRefId(args.containerId, args.ifName);
    undo.push('spoof check teardown', () => teardownSpoofCheck(refId));
    await setupSpoofCheck(refId, hostVeth, contLink?.address ?? conf.mac ?? '');
  }

  // Forwarding for every family that has a gateway.
  if (plan && conf.isGateway) {
    if (plan.bridgeAddrs[4].length) writeSysctl('net/ipv4/ip_forward', '1', { ifChanged: true });
    if (plan.bridgeAddrs[6].length) writeSysctl('net/ipv6/conf/all/forwarding', '1', { ifChanged: true });
  }

  // The port must be up before the pod starts.
  if (!conf.disableContainerInterface) await waitOperUp(hostVeth);
  logDebug('bridge ADD: port up', performance.now().toFixed(1));
  failpoint(args, 'before-result');

  const result: Result = {
    cniVersion: LATEST_VERSION,
    interfaces: [
      { name: br, mac: readLinkFile(br, 'address') ?? '' },
      { name: hostVeth, mac: readLinkFile(hostVeth, 'address') ?? '' },
      { name: args.ifName, mac: contLink?.address ?? '', sandbox: args.netns },
    ],
  };
  if (vlanGwName) result.interfaces?.push({ name: vlanGwName, mac: readLinkFile(vlanGwName, 'address') ?? '' });
  if (plan) {
    result.ips = plan.ips;
    if (plan.routes.length) result.routes = plan.routes;
  }
  if (dns) result.dns = dns;
  return result;
}

/** Pod side: sysctls and one batch (addresses, up, routes, the link's details). */
async function configurePod(args: CmdArgs, conf: BridgeConfig, plan: GatewayPlan | undefined): Promise<IpLink | undefined> {
  const lines: string[] = [];
  let sysctlP: Promise<unknown> = Promise.resolve();
  if (plan) {
    const hasV6 = plan.ips.some((ip) => familyOf(ip.address) === 6);
    sysctlP = run(sysctlArgv(podSysctls(args.ifName, conf.enabledad, hasV6)), { netns: args.netns });
    // IPv6 must be enabled before v6 addresses go on; IPv4-only pods need no ordering.
    if (hasV6) await sysctlP;
    lines.push(...renderPodAddrs(args.ifName, plan.ips, !conf.enabledad));
    if (conf.enabledad && hasV6) {
      await ipBatchRaw(lines, args.netns);
      lines.length = 0;
      await settleAddresses(args.ifName, args.netns);
    }
    lines.push(...renderPodRoutes(args.ifName, plan.ips, plan.routes));
  } else if (!conf.disableContainerInterface) {
    lines.push(`link set dev ${batchArg(args.ifName)} up`);
  }
  lines.push(`link show dev ${batchArg(args.ifName)}`);
  const [out] = await allOrThrow<[string, unknown]>([ipBatchRaw(lines, args.netns, { json: true }), sysctlP]);
  return parseJsonArrays(out).find((l) => l.ifname === args.ifName);
}

function parseJsonArrays(text: string): IpLink[] {
  const out: IpLink[] = [];
  for (const chunk of text.trim().split(/\n(?=\[)/)) if (chunk.trim()) out.push(...(JSON.parse(chunk) as IpLink[]));
  return out;
}

/** With enabledad: wait (up to 5 s, as the reference) until no IPv6 address is tentative. */
async function settleAddresses(ifName: string, netns: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const [link] = await ipJson(['-6', 'addr', 'show', 'dev', ifName], netns);
    const addrs = (link?.addr_info ?? []) as Array<{ local: string; dadfailed?: boolean; tentative?: boolean }>;
    const failed = addrs.find((a) => a.dadfailed);
    if (failed) throw new CniError(ErrorCode.Internal, `link ${ifName} has address ${failed.local} in DADFAILED state`);
    if (!addrs.some((a) => a.tentative)) return;
    if (Date.now() > deadline) throw new CniError(ErrorCode.Internal, `link ${ifName} still has tentative addresses after 5 seconds`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The host veth from prevResult, if it still exists as a port of our bridge (so it is the pod's pair, not a reused name). */
function hostVethFromPrev(args: CmdArgs, conf: BridgeConfig): string | undefined {
  const ifs = args.config.prevResult?.interfaces ?? [];
  const cont = ifs.find((i) => i.name === args.ifName && i.sandbox);
  const host = ifs.find((i) => !i.sandbox && /^veth[0-9a-f]{8}$/.test(i.name));
  if (!cont || !host) return undefined;
  const master = readLinkFileTarget(host.name, 'master');
  if (master !== conf.bridge) return undefined;
  // The host veth's MAC must still be the one the pod's ADD reported.
  if (host.mac && readLinkFile(host.name, 'address') !== host.mac) return undefined;
  return host.name;
}

function prevIps(args: CmdArgs): IpConfig[] | undefined {
  return args.config.prevResult?.ips;
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  logDebug('bridge DEL: start', performance.now().toFixed(1));
  const tasks: Array<Promise<unknown>> = [];

  // The veth pair. With prevResult naming a host veth that is still a port of
  // our bridge with the MAC the ADD reported, delete it from the host side (no
  // nsenter); otherwise delete the pod end inside the netns. Deleting either
  // end removes both. A missing netns or link is success.
  if (args.netnsState === 'ok') {
    const hostVeth = hostVethFromPrev(args, conf);
    tasks.push(
      (async () => {
        try {
          if (hostVeth) await run(['ip', 'link', 'del', 'dev', hostVeth]);
          else await ipBatchRaw([`link del dev ${batchArg(args.ifName)}`], args.netns);
        } catch (e) {
          if (e instanceof ExecError && (/Cannot find device|does not exist/.test(e.stderr) || inspectNetns(args.netns) === 'missing')) return;
          throw e;
        }
      })(),
    );
  }
  if (conf.ipamType) tasks.push(delegate('DEL', conf.ipamType, args.stdinData, args.env));
  if (conf.macspoofchk) tasks.push(teardownSpoofCheck(spoofRefId(args.containerId, args.ifName)));
  // Teardown is keyed by the rules' tags; prevResult only narrows the families to look at.
  if (conf.ipamType && conf.ipMasq) {
    const ips = prevIps(args);
    const families: Family[] = ips && ips.length ? familiesOf(ips.map((i) => i.address)) : [4, 6];
    tasks.push(teardownMasquerade({ network: conf.name, ifname: args.ifName, containerId: args.containerId, families, cidrs: ips?.map((i) => i.address) }));
  }
  const results = await Promise.allSettled(tasks.map((t, i) => t.finally(() => logDebug(`bridge DEL: task ${i} done`, performance.now().toFixed(1)))));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [toCniError(r.reason)] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new CniError(ErrorCode.Internal, errors.map((e) => e.message).join('; '));
  logDebug('bridge DEL done', args.containerId);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  if (conf.ipamType) await delegate('CHECK', conf.ipamType, args.stdinData, args.env);
  const prev = args.config.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing');
  await checkAttachment(conf, prev, args.netns, args.ifName);
  // Beyond the reference: the masquerade rules are state ADD made, so CHECK verifies them too.
  if (conf.ipamType && conf.ipMasq) {
    const cidrs = (prev.ips ?? []).map((i) => i.address);
    const missing = await missingMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId);
    if (missing.length) throw new CniError(ErrorCode.Internal, `masquerade rule missing for ${missing.join(', ')}`);
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  const raw = (args.config as Record<string, unknown>)['cni.dev/valid-attachments'];
  const valid: ValidAttachment[] = Array.isArray(raw)
    ? raw.filter((a): a is ValidAttachment => typeof a === 'object' && a !== null && typeof (a as ValidAttachment).containerID === 'string')
    : [];
  const tasks: Array<Promise<unknown>> = [gcMasquerade(conf.name, valid)];
  if (conf.ipamType) tasks.push(delegate('GC', conf.ipamType, args.stdinData, args.env));
  const errors = (await Promise.allSettled(tasks)).flatMap((r) => (r.status === 'rejected' ? [toCniError(r.reason)] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new CniError(ErrorCode.Internal, errors.map((e) => e.message).join('; '));
}

async function status(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  if (conf.ipamType) await delegate('STATUS', conf.ipamType, args.stdinData, args.env);
}

export const bridgePlugin: Plugin = {
  name: 'bridge',
  about: `tscni bridge plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};

export { CONTAINER_IF_INDEX };
