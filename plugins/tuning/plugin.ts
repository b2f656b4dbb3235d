/**
 * tuning: sysctls and link attributes of the pod's interface (MAC, MTU,
 * promiscuous, all-multicast, transmit queue length), applied inside the
 * pod's namespace in-process (netlink, /proc/sys written from a thread in
 * the namespace). Chained only.
 *
 *   ADD    parse -> read the originals -> save them (dataDir, the reference's
 *          file name and fields) -> apply -> prevResult with the new MAC;
 *          on failure the originals are put back
 *   DEL    restore the originals from the file (netns gone: just forget it)
 *   CHECK  every configured value is what the kernel shows
 *   GC     backup files of this network's attachments not in valid-attachments go
 *   STATUS dataDir can be created
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validAttachments } from '../../lib/cni/attachments.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import { writeFileAtomic } from '../../lib/fs.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Result } from '../../lib/cni/types.ts';
import { withRtnl, type Rtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns, sysctlPath, withNetns, type NetnsHandle } from '../../lib/netns.ts';
import { changesLink, parseTuningConfig, type TuningConfig } from './config.ts';

/** The backup file: the reference's fields (so either implementation restores it), plus ours. */
export interface TuningBackup {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
  /** Ours: original sysctl values by path under /proc/sys. */
  sysctls?: Record<string, string>;
  /** Ours: the network, so GC only touches its own files. */
  network?: string;
}

/** <dataDir>/<containerID>_<ifname>.json, as the reference names it. */
export const backupPath = (dataDir: string, cid: string, ifName: string) => join(dataDir, `${cid}_${ifName}.json`);

function readSysctl(path: string): string {
  try {
    return readFileSync(sysctlPath(path), 'utf8').trim();
  } catch (e) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `sysctl ${path.replaceAll('/', '.')} cannot be read in the pod's namespace`, (e as Error).message);
  }
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(sysctlPath(path), value);
  } catch (e) {
    throw new CniError(ErrorCode.Internal, `failed to set sysctl ${path.replaceAll('/', '.')} to ${JSON.stringify(value)} in the pod's namespace`, (e as Error).message);
  }
}

/** The original values of everything `cfg` changes (inside `ns`). */
function readOriginals(ns: NetnsHandle, nl: Rtnl, cfg: TuningConfig, ifName: string): { index: number; backup: TuningBackup } {
  const cur = nl.getLinkTuning(ifName);
  if (!cur) throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to get "${ifName}": no such interface in ${ns.path}`);
  const b: TuningBackup = { network: cfg.name };
  if (cfg.mac) b.mac = cur.link.mac;
  if (cfg.promisc) b.promisc = cur.link.promisc;
  if (cfg.mtu) b.mtu = cur.link.mtu;
  if (cfg.allmulti !== undefined) b.allmulti = cur.allmulti;
  if (cfg.txQLen !== undefined && cur.txQLen !== undefined) b.txQLen = cur.txQLen;
  if (cfg.sysctls.length) b.sysctls = withNetns(ns, () => Object.fromEntries(cfg.sysctls.map((s) => [s.path, readSysctl(s.path)])));
  return { index: cur.link.index, backup: b };
}

/** Put `b`'s values back on the link (inside `ns`); collects errors and keeps going. */
function restore(ns: NetnsHandle, nl: Rtnl, index: number, b: TuningBackup): string[] {
  const errors: string[] = [];
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      errors.push(`failed to restore ${what}: ${(e as Error).message}`);
    }
  };
  if (b.mtu) step('MTU', () => nl.setLink(index, { mtu: b.mtu }));
  if (b.mac) step('MAC address', () => nl.setLink(index, { mac: b.mac }));
  if (b.promisc !== undefined) step('promiscuous mode', () => nl.setLink(index, { promisc: b.promisc }));
  if (b.allmulti !== undefined || b.txQLen !== undefined) step('all-multicast / transmit queue length', () => nl.setLinkTuning(index, { allmulti: b.allmulti, txQLen: b.txQLen }));
  for (const [path, value] of Object.entries(b.sysctls ?? {})) step(`sysctl ${path}`, () => withNetns(ns, () => writeSysctl(path, value)));
  return errors;
}

function writeBackup(file: string, b: TuningBackup): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, JSON.stringify(b, null, 1), { mode: 0o600 });
}

function readBackup(file: string): TuningBackup | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TuningBackup;
  } catch {
    return undefined;
  }
}

function withPod<T>(netns: string, fn: (ns: NetnsHandle, nl: Rtnl) => T): T {
  const ns = openNetns(netns);
  try {
    return withRtnl(ns, (nl) => fn(ns, nl));
  } finally {
    closeNetns(ns);
  }
}

/** prevResult with the new MAC on the interface of that name (reference: updateResultsMacAddr). */
function withMac(result: Result, ifName: string, mac: string | undefined): Result {
  if (!mac) return result;
  return { ...result, interfaces: result.interfaces?.map((i) => (i.name === ifName ? { ...i, mac } : i)) };
}

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parseTuningConfig(args.config, args.args, args.ifName);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing');
  if (!changesLink(cfg) && cfg.sysctls.length === 0) return cfg.prevResult;
  const file = backupPath(cfg.dataDir, args.containerId, args.ifName);
  withPod(args.netns, (ns, nl) => {
    const { index, backup } = readOriginals(ns, nl, cfg, args.ifName);
    // A re-ADD keeps the first originals: they are the ones DEL must restore.
    writeBackup(file, readBackup(file) ?? backup);
    try {
      withNetns(ns, () => {
        for (const s of cfg.sysctls) writeSysctl(s.path, s.value);
      });
      if (cfg.mac) nl.setLink(index, { mac: cfg.mac });
      if (cfg.promisc) nl.setLink(index, { promisc: true });
      if (cfg.mtu) nl.setLink(index, { mtu: cfg.mtu });
      if (cfg.allmulti !== undefined || cfg.txQLen !== undefined) nl.setLinkTuning(index, { allmulti: cfg.allmulti, txQLen: cfg.txQLen });
    } catch (e) {
      // Leave the interface as we found it; the ADD error is the one to report.
      restore(ns, nl, index, backup);
      rmSync(file, { force: true });
      throw e;
    }
  });
  return withMac(cfg.prevResult, args.ifName, cfg.mac);
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = parseTuningConfig(args.config, args.args, args.ifName);
  const file = backupPath(cfg.dataDir, args.containerId, args.ifName);
  const b = readBackup(file);
  if (!b) {
    rmSync(file, { force: true });
    return;
  }
  // The namespace or the interface may be gone (the pod is being removed): nothing left to restore.
  if (args.netns && args.netnsState !== 'missing') {
    let errors: string[] = [];
    try {
      errors = withPod(args.netns, (ns, nl) => {
        const link = nl.getLink(args.ifName);
        return link ? restore(ns, nl, link.index, b) : [];
      });
    } catch (e) {
      errors = [`cannot enter ${args.netns}: ${(e as Error).message}`];
    }
    if (errors.length) process.stderr.write(`[tscni] warning: tuning DEL: ${errors.join('; ')}\n`);
  }
  rmSync(file, { force: true });
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parseTuningConfig(args.config, args.args, args.ifName);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing');
  const problems = withPod(args.netns, (ns, nl) => {
    const cur = nl.getLinkTuning(args.ifName);
    if (!cur) return [`interface ${args.ifName} not found`];
    const out: string[] = [];
    if (cfg.mac && cur.link.mac !== cfg.mac) out.push(`MAC is ${cur.link.mac}, not ${cfg.mac}`);
    if (cfg.promisc && !cur.link.promisc) out.push('promiscuous mode is off');
    if (cfg.mtu && cur.link.mtu !== cfg.mtu) out.push(`MTU is ${cur.link.mtu}, not ${cfg.mtu}`);
    if (cfg.allmulti !== undefined && cur.allmulti !== cfg.allmulti) out.push(`all-multicast is ${cur.allmulti ? 'on' : 'off'}`);
    if (cfg.txQLen !== undefined && cur.txQLen !== cfg.txQLen) out.push(`transmit queue length is ${cur.txQLen}, not ${cfg.txQLen}`);
    withNetns(ns, () => {
      for (const s of cfg.sysctls) {
        const v = readSysctl(s.path);
        if (v !== s.value.trim()) out.push(`sysctl ${s.key} is ${JSON.stringify(v)}, not ${JSON.stringify(s.value)}`);
      }
    });
    return out;
  });
  if (problems.length) throw new CniError(ErrorCode.Internal, `tuning of ${args.ifName} does not match the config`, problems.join('; '));
}

async function gc(args: CmdArgs): Promise<void> {
  const cfg = parseTuningConfig(args.config, '', 'IFNAME');
  const valid = new Set(validAttachments(args.config).map((a) => `${a.containerID}_${a.ifname}.json`));
  let files: string[] = [];
  try {
    files = readdirSync(cfg.dataDir);
  } catch {
    return; // no data dir: nothing recorded
  }
  for (const f of files) {
    if (!f.endsWith('.json') || valid.has(f)) continue;
    // Only files this network wrote (the reference's carry no network: left alone).
    if (readBackup(join(cfg.dataDir, f))?.network === cfg.name) rmSync(join(cfg.dataDir, f), { force: true });
  }
}

async function status(args: CmdArgs): Promise<void> {
  const cfg = parseTuningConfig(args.config, '', 'IFNAME');
  try {
    mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CniError(ErrorCode.NotAvailable, `tuning cannot save original values: ${cfg.dataDir}: ${(e as Error).message}`);
  }
}

export const tuningPlugin: Plugin = {
  name: 'tuning',
  about: 'tscni tuning: sysctls and link attributes of the pod interface',
  add,
  del,
  check,
  gc,
  status,
};
