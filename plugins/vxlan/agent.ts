/**
 * The overlay keeper, `tscni overlay agent`: one long-running process per
 * host and network. It renews the host's etcd lease (every TTL/3), follows a
 * watch on the network's subnets and reconciles the VXLAN device's routes,
 * ARP and FDB entries on every change: a watch event updates its copy of the
 * subnets by itself (no etcd read); a full list replaces the copy on start,
 * on a watch reconnect and every TTL (in case an event was missed). While etcd is unreachable the kernel entries stay as they
 * are: running pods keep talking. When the lease has expired meanwhile, it
 * takes the saved subnet again (etcd-subnet's ensureSubnet).
 *
 * A pid file (<dataDir>/<network>.agent.pid: "pid start-time"), created
 * exclusively, makes it one per host and network; the plugin starts the
 * agent when that file names no live agent.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { EtcdSubnetConfig } from '../../ipam/etcd-subnet/config.ts';
import { openEtcd } from '../../ipam/etcd-subnet/etcd-client.ts';
import { ensureSubnet, keepaliveOnce, listSubnets, readLeaseState, type HeldSubnet, type LeaseState } from '../../ipam/etcd-subnet/lease.ts';
import { cidrKey, decodeRecord, subnetFromKey, subnetsPrefix } from '../../ipam/etcd-subnet/subnets.ts';
import { processStartTime } from '../../lib/file-lock.ts';
import { parseCidr, type Cidr } from '../../lib/ip/cidr.ts';
import { withRtnl } from '../../lib/netlink/rtnl.ts';
import { ensureDevice, reconcile, type DeviceSpec } from './device.ts';

export interface AgentOptions extends DeviceSpec {
  network: string;
  dataDir: string;
}

export const agentPidPath = (dataDir: string, network: string) => join(dataDir, `${network}.agent.pid`);
export const agentLogPath = (dataDir: string, network: string) => join(dataDir, `${network}.agent.log`);

/** The pid of the live agent named by the pid file, or undefined (no file, dead, or the pid reused by another process). */
export function runningAgent(dataDir: string, network: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(agentPidPath(dataDir, network), 'utf8');
  } catch {
    return undefined;
  }
  const m = /^(\d+) (\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const pid = Number(m[1]);
  return processStartTime(pid) === m[2] ? pid : undefined;
}

/** Take the pid file exclusively; false when a live agent holds it. */
function claimPidFile(path: string): boolean {
  for (let i = 0; i < 3; i++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid} ${processStartTime(process.pid) ?? '0'}\n`);
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const text = existsSync(path) ? readFileSync(path, 'utf8').trim() : '';
      const m = /^(\d+) (\d+)$/.exec(text);
      if (m && processStartTime(Number(m[1])) === m[2]) return false;
      rmSync(path, { force: true }); // a dead agent's file
    }
  }
  return false;
}

/**
 * Start the agent detached (its own session, output to the log file) when
 * none is running; true when one was started. The executable is `tscni`
 * next to the running one (every name is a link to the same file).
 */
export function ensureAgent(o: AgentOptions): boolean {
  if (runningAgent(o.dataDir, o.network) !== undefined) return false;
  const exe = join(dirname(process.execPath), 'tscni');
  const log = openSync(agentLogPath(o.dataDir, o.network), 'a', 0o644);
  try {
    const child = spawn(exe, ['overlay', 'agent', '--network', o.network, '--data-dir', o.dataDir, '--device', o.name, '--vni', String(o.vni), '--port', String(o.port)], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...(process.env.TSCNI_DEBUG ? { TSCNI_DEBUG: process.env.TSCNI_DEBUG } : {}) },
    });
    child.unref();
  } finally {
    closeSync(log);
  }
  return true;
}

/** Stop the running agent (SIGTERM, then SIGKILL after `waitMs`); true when one was running. */
export async function stopAgent(dataDir: string, network: string, waitMs = 2_000): Promise<boolean> {
  const pid = runningAgent(dataDir, network);
  if (pid === undefined) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false; // gone meanwhile
  }
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline && processStartTime(pid) !== undefined) await new Promise((r) => setTimeout(r, 20));
  if (processStartTime(pid) !== undefined) process.kill(pid, 'SIGKILL');
  rmSync(agentPidPath(dataDir, network), { force: true });
  return true;
}

/** The etcd-subnet config a saved lease stands for (to take the subnet again after the lease expired). */
export function configFromLease(s: LeaseState, dataDir: string): EtcdSubnetConfig {
  return {
    network: s.network,
    cniVersion: '1.1.0',
    etcd: s.etcd,
    clusterCidr: parseCidr(s.clusterCIDR) as Cidr,
    subnetLen: Number(s.subnet.split('/')[1]),
    hostId: s.hostId,
    ...(s.publicIp ? { publicIp: s.publicIp } : {}),
    leaseTtl: s.leaseTTL,
    dataDir,
    routes: [],
  };
}

const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} tscni overlay agent: ${msg}\n`);

/** Run until SIGTERM/SIGINT (the vxlan plugin sends SIGTERM when the host's last pod leaves). */
export async function runAgent(o: AgentOptions): Promise<void> {
  const pidPath = agentPidPath(o.dataDir, o.network);
  let lease = readLeaseState(o.dataDir, o.network);
  if (!lease) throw new Error(`no saved lease for network ${o.network} in ${o.dataDir}: the etcd-subnet IPAM has not run on this host`);
  if (!claimPidFile(pidPath)) {
    log(`another agent runs for ${o.network}; exiting`);
    return;
  }
  const client: Etcd3 = await openEtcd(lease.etcd, 2_000);
  let stopping = false;
  let pending: ReturnType<typeof setTimeout> | undefined;
  const timers: Array<ReturnType<typeof setInterval>> = [];

  // The subnets as last seen: a full list on start, on a watch (re)connect and every TTL;
  // in between each watch event updates it by itself, so an event costs no etcd read.
  let held = new Map<string, HeldSubnet>();
  const reconcileNow = async (why: string, relist: boolean) => {
    if (stopping || !lease) return;
    try {
      if (relist) held = new Map((await listSubnets(client, lease.etcd.prefix)).map((h) => [cidrKey(h.subnet), h]));
      const l = lease;
      const n = withRtnl(undefined, (nl) => reconcile(nl, ensureDevice(nl, o, l), l, [...held.values()]));
      if (n) log(`reconciled (${why}): ${n} change(s), ${held.size} subnet(s) in etcd`);
    } catch (e) {
      log(`reconcile (${why}) failed: ${(e as Error).message}`);
    }
  };
  let pendingRelist = false;
  const schedule = (why: string, relist = false) => {
    pendingRelist ||= relist;
    if (pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      const r = pendingRelist;
      pendingRelist = false;
      void reconcileNow(why, r);
    }, 20);
  };
  /** Apply one watch event to the map (a key outside the subnets, or not ours, is ignored). */
  const onEvent = (kind: 'put' | 'delete', kv: IKeyValue) => {
    if (!lease) return;
    const subnet = subnetFromKey(lease.etcd.prefix, kv.key.toString('utf8'));
    if (!subnet) return;
    if (kind === 'put') held.set(cidrKey(subnet), { subnet, record: decodeRecord(kv.value.toString('utf8')), leaseId: String(kv.lease) });
    else held.delete(cidrKey(subnet));
    schedule(`watch: ${kind} ${cidrKey(subnet)}`);
  };
  const renew = async () => {
    if (stopping || !lease) return;
    try {
      const ttl = await keepaliveOnce(client, lease.leaseId);
      if (ttl > 0) return;
      log(`lease ${lease.leaseId} expired; taking the subnet again`);
      lease = await ensureSubnet(client, configFromLease(lease, o.dataDir));
      log(`subnet ${lease.subnet}, lease ${lease.leaseId}`);
      schedule('lease re-taken', true);
    } catch (e) {
      log(`lease renewal failed: ${(e as Error).message}`);
    }
  };

  const watcher = client.watch().prefix(subnetsPrefix(lease.etcd.prefix));
  const w = await watcher.create().catch((e: unknown) => {
    log(`watch not established yet: ${(e as Error).message}`);
    return undefined;
  });
  w?.on('put', (kv: IKeyValue) => onEvent('put', kv));
  w?.on('delete', (kv: IKeyValue) => onEvent('delete', kv));
  w?.on('connected', () => schedule('watch: (re)connected', true));
  w?.on('error', (e: Error) => log(`watch error: ${e.message}`));

  const period = Math.max(1, Math.floor(lease.leaseTTL / 3)) * 1000;
  timers.push(setInterval(() => void renew(), period));
  timers.push(setInterval(() => schedule('periodic', true), lease.leaseTTL * 1000));
  await renew();
  await reconcileNow('start', true);
  log(`running for ${o.network}: subnet ${lease.subnet}, device ${o.name}, VNI ${o.vni}`);

  await new Promise<void>((resolve) => {
    const stop = () => {
      stopping = true;
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  for (const t of timers) clearInterval(t);
  if (pending) clearTimeout(pending);
  await w?.cancel().catch(() => undefined);
  client.close();
  rmSync(pidPath, { force: true });
  log('stopped');
}
