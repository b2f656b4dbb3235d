/**
 * dnsname: names for the pods of a network (chained after the main plugin;
 * keys compatible with podman's dnsname: `domainName`, `capabilities:
 * {"aliases": true}`).
 *
 *   ADD    record name + aliases + prevResult's addresses; ensure the host's
 *          name server runs and listens for the network; result = prevResult +
 *          dns {nameservers: gateways}
 *   DEL    remove exactly that record; with the network's last one, remove the
 *          network's directory (under the network's lock, as ADD), and with
 *          the host's last network, stop the server
 *   CHECK  the record exists, the server runs (restarted if it was killed) and
 *          answers the pod's name with prevResult's addresses
 *   GC     drop records of attachments not in cni.dev/valid-attachments
 *
 * The pod's name: K8S_POD_NAME from CNI_ARGS (what containerd, CRI-O, podman
 * and `tscni up` pass), else the container ID.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { validAttachments } from '../../lib/cni/attachments.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { NetConf, Result } from '../../lib/cni/types.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import {
  deleteRecord,
  dnsDirFor,
  networkLock,
  networkSig,
  nudgeServer,
  pidFile,
  readNetworkInfo,
  readRecords,
  removeIfUnused,
  runningServer,
  servedBy,
  serverLock,
  stopLegacyServers,
  writeNetworkInfo,
  writeRecord,
  type NameRecord,
  type NetworkInfo,
} from './state.ts';

export const DEFAULT_DOMAIN = 'dns.podman';
const LABEL_RE = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*$/;

interface DnsConf {
  network: string;
  domainName: string;
  aliases: string[];
}

/** Parse and validate (pure). */
export function parseDnsConf(config: NetConf): DnsConf {
  const domainName = config.domainName === undefined ? DEFAULT_DOMAIN : config.domainName;
  if (typeof domainName !== 'string' || (domainName !== '' && !LABEL_RE.test(domainName))) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid "domainName": ${JSON.stringify(domainName)}`);
  }
  const byNet = (config.runtimeConfig?.aliases ?? {}) as Record<string, unknown>;
  const raw = byNet[config.name];
  const aliases = Array.isArray(raw) ? raw.filter((a): a is string => typeof a === 'string' && LABEL_RE.test(a)) : [];
  return { network: config.name, domainName, aliases };
}

/** K8S_POD_NAME from CNI_ARGS when it is a valid DNS name, else the container ID. */
export function podNameFrom(cniArgs: string, containerId: string): string {
  for (const pair of cniArgs.split(';')) {
    const [k, v] = pair.split('=');
    if (k === 'K8S_POD_NAME' && v && LABEL_RE.test(v)) return v;
  }
  return containerId;
}

const LOG_ROTATE_BYTES = 1 << 20;

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Start `tscni dns serve --dir BASE` detached; its stderr goes to BASE/server.log. */
function spawnServer(base: string, env: Record<string, string | undefined>): void {
  // The one process this plugin starts, and it must outlive the plugin
  // (detached: its own session), which lib/exec's run() is not for. It is this
  // same executable invoked as `tscni` (argv0 picks the CLI), so it works
  // whatever name the plugin was installed under.
  const cp = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  mkdirSync(base, { recursive: true });
  const logPath = join(base, 'server.log');
  // The log outlives servers (it is where a failed start is explained); one older generation is kept.
  if (sizeOf(logPath) > LOG_ROTATE_BYTES) renameSync(logPath, `${logPath}.1`);
  const logFd = openSync(logPath, 'a', 0o644);
  try {
    const child = cp.spawn(process.execPath, ['dns', 'serve', '--dir', base], {
      argv0: 'tscni',
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TSCNI_DNS_DIR: base, ...(env.TSCNI_DNS_UPSTREAM ? { TSCNI_DNS_UPSTREAM: env.TSCNI_DNS_UPSTREAM } : {}) },
    });
    child.on('error', () => undefined);
    child.unref();
  } finally {
    closeSync(logFd);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Make sure the host's server listens for the network in `dir` as `info` says:
 * nothing to do when the network's pid file names a live server listening so;
 * else, under the server lock, start the server (or nudge the running one to
 * re-read the networks) and wait until it has bound (it writes the network's
 * pid file then). A server that dies meanwhile is started again, twice at most.
 * Throws CniError 999 naming the server's log when it does not listen within 5 s.
 */
async function ensureServed(dir: string, info: NetworkInfo, env: Record<string, string | undefined>): Promise<void> {
  const sig = networkSig(info);
  if (servedBy(dir, sig)) return;
  const base = dirname(dir);
  await serverLock(base).withAsync(async () => {
    // Servers of an older tscni (one per network) hold the gateways' port.
    stopLegacyServers(base);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!nudgeServer(base)) spawnServer(base, env);
      for (let waited = 0; waited < 5000; waited += 20) {
        if (servedBy(dir, sig)) return;
        await sleep(20);
        // Died (killed, or it exited idle just before our nudge): start another.
        if (waited % 200 === 180 && runningServer(base) === undefined) break;
      }
    }
    throw new CniError(ErrorCode.Internal, `the name server does not listen for ${info.network} on ${info.gateways.join(', ')} port 53 (see ${join(base, 'server.log')})`);
  });
}

function gatewaysOf(prev: Result): string[] {
  const out: string[] = [];
  for (const ip of prev.ips ?? []) if (ip.gateway && !out.includes(ip.gateway)) out.push(ip.gateway);
  return out;
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseDnsConf(args.config);
  const prev = args.config.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'dnsname is a chained plugin: it needs a prevResult (put it after bridge or ptp)');
  const gateways = gatewaysOf(prev);
  if (gateways.length === 0) throw new CniError(ErrorCode.InvalidNetworkConfig, 'dnsname: prevResult has no gateway to serve names on (bridge needs isGateway)');
  const dir = dnsDirFor(args.env, conf.network);
  return networkLock(dir).withAsync(() => addLocked(args, conf, prev, gateways, dir));
}

async function addLocked(args: CmdArgs, conf: DnsConf, prev: Result, gateways: string[], dir: string): Promise<Result> {
  let info = readNetworkInfo(dir);
  if (!info || info.domainName !== conf.domainName || info.gateways.join() !== gateways.join()) {
    // New, or recreated with other addresses: the server re-reads network.json when ensureServed nudges it.
    info = { network: conf.network, gateways, domainName: conf.domainName };
    writeNetworkInfo(dir, info);
    rmSync(pidFile(dir), { force: true });
  }
  const record: NameRecord = {
    containerId: args.containerId,
    ifName: args.ifName,
    name: podNameFrom(args.args, args.containerId),
    aliases: conf.aliases,
    ips: (prev.ips ?? []).map((i) => i.address.replace(/\/\d+$/, '')),
  };
  writeRecord(dir, record);
  try {
    await ensureServed(dir, info, args.env);
  } catch (e) {
    deleteRecord(dir, args.containerId, args.ifName);
    throw e;
  }
  return {
    ...prev,
    dns: { nameservers: gateways, ...(conf.domainName ? { domain: conf.domainName, search: [conf.domainName] } : {}) },
  };
}

/** Run `fn` under the network's lock. */
function locked<T>(dir: string, fn: () => T): T {
  return networkLock(dir).with(fn);
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseDnsConf(args.config);
  const dir = dnsDirFor(args.env, conf.network);
  locked(dir, () => {
    deleteRecord(dir, args.containerId, args.ifName);
    removeIfUnused(dir);
  });
}

/** Ask the server at `server`:53 (UDP, three tries: a lost datagram is not a failure) for `name`; the addresses of type `type`. */
async function queryServer(server: string, name: string, type: 'A' | 'AAAA'): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await queryOnce(server, name, type, 700);
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

async function queryOnce(server: string, name: string, type: 'A' | 'AAAA', timeoutMs: number): Promise<string[]> {
  const { default: dnsPacket } = await import('dns-packet');
  const dgram = process.getBuiltinModule('node:dgram') as typeof import('node:dgram');
  const q = dnsPacket.encode({ type: 'query', id: (Math.random() * 65535) | 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new CniError(ErrorCode.Internal, `dnsname: the name server at ${server} did not answer for ${name}`));
    }, timeoutMs);
    sock.on('message', (m) => {
      clearTimeout(timer);
      sock.close();
      const answers = (dnsPacket.decode(m).answers ?? []) as { type: string; data: unknown }[];
      resolve(answers.filter((a) => a.type === type).map((a) => String(a.data)));
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      sock.close();
      reject(new CniError(ErrorCode.Internal, `dnsname: query to ${server}: ${e.message}`));
    });
    sock.send(q, 53, server);
  });
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseDnsConf(args.config);
  const dir = dnsDirFor(args.env, conf.network);
  const record = readRecords(dir).find((r) => r.containerId === args.containerId && r.ifName === args.ifName);
  if (!record) throw new CniError(ErrorCode.Internal, `dnsname: no name record for ${args.containerId}/${args.ifName} on ${conf.network}`);
  await networkLock(dir).withAsync(async () => {
    const info = readNetworkInfo(dir);
    if (!info) throw new CniError(ErrorCode.Internal, `dnsname: no network.json for ${conf.network} in ${dir}`);
    await ensureServed(dir, info, args.env);
  });
  // The name must resolve, through the server, to the addresses the runtime has for the pod.
  const prev = args.config.prevResult;
  const expected = (prev?.ips ?? []).map((i) => i.address.replace(/\/\d+$/, ''));
  const gateway = prev ? gatewaysOf(prev)[0] : readNetworkInfo(dir)?.gateways[0];
  if (!gateway || expected.length === 0) return;
  const name = conf.domainName ? `${record.name}.${conf.domainName}` : record.name;
  for (const type of ['A', 'AAAA'] as const) {
    const want = expected.filter((ip) => (type === 'A') !== ip.includes(':')).sort();
    if (want.length === 0) continue;
    const got = (await queryServer(gateway, name, type)).sort();
    if (got.join() !== want.join()) {
      throw new CniError(ErrorCode.Internal, `dnsname: ${name} resolves to ${got.join(', ') || 'nothing'} (${type}), expected ${want.join(', ')}`);
    }
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const conf = parseDnsConf(args.config);
  const dir = dnsDirFor(args.env, conf.network);
  const valid = validAttachments(args.config);
  locked(dir, () => {
    for (const r of readRecords(dir)) {
      if (!valid.some((v) => v.containerID === r.containerId && v.ifname === r.ifName)) deleteRecord(dir, r.containerId, r.ifName);
    }
    removeIfUnused(dir);
  });
}

export const dnsnamePlugin: Plugin = {
  name: 'dnsname',
  about: `tscni dnsname plugin v${TSCNI_VERSION}`,
  hostOnly: true,
  add,
  del,
  check,
  gc,
  // The server is started on demand by ADD; nothing must exist beforehand.
  status: async () => {},
};
