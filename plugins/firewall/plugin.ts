/**
 * firewall: accepts forwarded traffic to and from the pod (the reference's
 * CNI-FORWARD / CNI-ADMIN layout, or our nftables table), and isolates
 * bridges from each other (`same-bridge`) or pods on one bridge from each
 * other too (`isolated`, Docker's --icc=false). Chained only; never enters
 * the pod's namespace.
 *
 *   ADD    parse -> record (locked) -> one batch per family / one nft transaction -> prevResult through
 *   DEL    from the record, else prevResult: exactly this attachment's rules; a bridge's isolation
 *          rules with its last attachment; our chains / table once nothing uses them
 *   CHECK  every rule of the attachment and its shared chains is there
 *   GC     records of the network not in cni.dev/valid-attachments are torn down
 *   STATUS the backend's tool is installed and its table can be listed
 */
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Result, ValidAttachment } from '../../lib/cni/types.ts';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version.ts';
import { run } from '../../lib/exec.ts';
import { detectMasqBackend, hasCommand } from '../../lib/firewall/masquerade.ts';
import { applyNft, ensureIptables, missingIptables, missingNft, teardownIptables } from './apply.ts';
import { bridgeOf, hostPrefixes, parseFirewallConfig, type FirewallBackend, type FirewallConfig } from './config.ts';
import { FirewallState, sameHolder, type FirewallRecord, type Holder } from './state.ts';
import { familyOf, type Family } from '../../lib/ip/prefix.ts';
import { readSysctl, writeSysctl } from '../../lib/sysctl.ts';

const BRIDGE_NF: Record<Family, string> = { 4: 'net/bridge/bridge-nf-call-iptables', 6: 'net/bridge/bridge-nf-call-ip6tables' };

/**
 * `isolated` drops traffic between two ports of one bridge, which the IP
 * firewall sees only through br_netfilter with bridge-nf-call-ip(6)tables=1
 * (what Docker's --icc=false relies on, and sets). Loads the module when its
 * sysctls are missing, turns them on when off; without them ADD fails with
 * code 50 rather than report an isolation that does not happen.
 */
async function ensureBridgeNetfilter(families: readonly Family[]): Promise<void> {
  if (readSysctl(BRIDGE_NF[4]) === undefined) await run(['modprobe', 'br_netfilter'], { allowFailure: true }).catch(() => undefined); // checked just below
  for (const f of families) {
    if (readSysctl(BRIDGE_NF[f]) === undefined) throw new CniError(ErrorCode.NotAvailable, 'ingressPolicy "isolated" needs br_netfilter', `${BRIDGE_NF[f].replaceAll('/', '.')} does not exist: modprobe br_netfilter`);
    if (!writeSysctl(BRIDGE_NF[f], '1', { ifChanged: true })) throw new CniError(ErrorCode.NotAvailable, `ingressPolicy "isolated" needs ${BRIDGE_NF[f].replaceAll('/', '.')}=1`, 'it could not be set');
  }
}

const backendOf = (cfg: FirewallConfig): FirewallBackend => cfg.backend ?? detectMasqBackend();

/** The record ADD writes for this call (validates the bridge for same-bridge/isolated). */
function recordFor(cfg: FirewallConfig, args: CmdArgs, result: Result): FirewallRecord {
  const rec: FirewallRecord = {
    network: cfg.name,
    containerId: args.containerId,
    ifName: args.ifName,
    backend: backendOf(cfg),
    adminChain: cfg.adminChain,
    policy: cfg.policy,
    prefixes: hostPrefixes(result),
  };
  const bridge = bridgeOf(result, cfg.policy);
  if (bridge) rec.bridge = bridge;
  if (args.netns.startsWith('/')) rec.netns = args.netns;
  return rec;
}

const holderOf = (cfg: FirewallConfig, args: CmdArgs): Holder => ({ network: cfg.name, containerId: args.containerId, ifName: args.ifName });

/** Remove `gone` from the kernel given the records that stay (caller holds the lock). */
export async function teardownRecords(gone: readonly FirewallRecord[], remaining: readonly FirewallRecord[]): Promise<void> {
  const ipt = gone.filter((g) => g.backend === 'iptables');
  const nft = gone.filter((g) => g.backend === 'nftables');
  await Promise.all([
    ipt.length ? teardownIptables(ipt, remaining) : undefined,
    nft.length ? applyNft(remaining.filter((r) => r.backend === 'nftables'), [], nft) : undefined,
  ]);
}

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parseFirewallConfig(args.config);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'missing prevResult from earlier plugin');
  const rec = recordFor(cfg, args, cfg.prevResult);
  if (rec.policy === 'isolated') await ensureBridgeNetfilter([...new Set(rec.prefixes.map((p) => familyOf(p)))]);
  const state = new FirewallState(cfg.stateDir);
  await state.locked(async () => {
    const previous = state.read(rec);
    state.write(rec);
    try {
      const others = state.all().filter((r) => !sameHolder(r, rec));
      // A re-ADD replaces what the previous ADD of this attachment programmed.
      if (previous) await teardownRecords([previous], [...others, rec]);
      if (rec.backend === 'iptables') await ensureIptables([rec]);
      else await applyNft([...others.filter((r) => r.backend === 'nftables'), rec], [rec], []);
    } catch (e) {
      // Leave nothing behind: this attachment's rules and its record.
      state.remove(rec);
      await teardownRecords([rec], state.all()).catch(() => undefined); // the ADD error is the one to report
      throw e;
    }
  });
  return cfg.prevResult;
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = parseFirewallConfig(args.config);
  const holder = holderOf(cfg, args);
  const state = new FirewallState(cfg.stateDir);
  await state.locked(async () => {
    const stored = state.read(holder);
    // No record (the reference or an older tscni added the pod): what prevResult says.
    let rec = stored;
    if (!rec && cfg.prevResult) {
      try {
        rec = recordFor(cfg, args, cfg.prevResult);
      } catch {
        // No bridge in prevResult: the per-address rules can still go.
        rec = { ...recordFor({ ...cfg, policy: 'open' }, args, cfg.prevResult) };
      }
    }
    if (!rec) return;
    const remaining = state.all().filter((r) => !sameHolder(r, holder));
    await teardownRecords([rec], remaining);
    state.remove(holder);
  });
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parseFirewallConfig(args.config);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'missing prevResult from earlier plugin');
  const rec = recordFor(cfg, args, cfg.prevResult);
  const state = new FirewallState(cfg.stateDir);
  const missing =
    rec.backend === 'iptables'
      ? await missingIptables(rec)
      : await missingNft(rec, [...state.all().filter((r) => r.backend === 'nftables' && !sameHolder(r, rec)), rec]);
  if (missing.length) throw new CniError(ErrorCode.Internal, `firewall rules of ${rec.containerId}/${rec.ifName} are missing`, missing.join('; '));
}

function validAttachments(raw: unknown): ValidAttachment[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid "cni.dev/valid-attachments": must be an array');
  return raw.filter((a): a is ValidAttachment => typeof a === 'object' && a !== null && typeof (a as ValidAttachment).containerID === 'string');
}

async function gc(args: CmdArgs): Promise<void> {
  const cfg = parseFirewallConfig(args.config);
  const valid = validAttachments((args.config as Record<string, unknown>)['cni.dev/valid-attachments']);
  const state = new FirewallState(cfg.stateDir);
  await state.locked(async () => {
    const all = state.all();
    const gone = all.filter((r) => r.network === cfg.name && !valid.some((v) => v.containerID === r.containerId && v.ifname === r.ifName));
    if (gone.length === 0) return;
    const remaining = all.filter((r) => !gone.includes(r));
    try {
      await teardownRecords(gone, remaining);
    } catch (e) {
      throw new CniError(ErrorCode.Internal, 'firewall GC failed', `${gone.map((g) => `${g.containerId}/${g.ifName}`).join(', ')}: ${(e as Error).message}`);
    }
    for (const g of gone) state.remove(g);
  });
}

async function status(args: CmdArgs): Promise<void> {
  const cfg = parseFirewallConfig(args.config);
  const backend = backendOf(cfg);
  const argv = backend === 'nftables' ? ['nft', 'list', 'tables'] : ['iptables', '-w', '-t', 'filter', '-S', 'FORWARD'];
  const tool = backend === 'nftables' ? 'nft' : 'iptables-restore';
  if (!hasCommand(tool)) throw new CniError(ErrorCode.NotAvailable, `firewall cannot work: ${tool} is not installed`);
  const r = await run(argv, { allowFailure: true });
  if (r.code !== 0) throw new CniError(ErrorCode.NotAvailable, `firewall cannot work: ${argv.join(' ')} failed`, r.stderr.trim());
}

export const firewallPlugin: Plugin = {
  hostOnly: true,
  name: 'firewall',
  about: 'tscni firewall: forward accept rules and network isolation (iptables or nftables)',
  supportedVersions: SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, '0.4.0')),
  add,
  del,
  check,
  gc,
  status,
};
