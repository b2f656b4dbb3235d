/**
 * A host's subnet lease in etcd, and its local copy.
 *
 * A subnet is taken by one etcd transaction: "if <key> was never created,
 * put <key> = record with lease L" (compare create_revision == 0). Two hosts
 * racing for one subnet cannot both win: conflicts are impossible by
 * construction, not avoided by reading first. The record is attached to an
 * etcd lease with the configured TTL, so a host that stops renewing loses its
 * subnet (and every other host drops its entries) one TTL later.
 *
 * The local copy, <dataDir>/<network>.lease.json, lets a restarted host ask
 * for the same subnet again and lets the vxlan plugin and the agent find the
 * subnet and the etcd settings without their own config.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { processStartTime } from '../../lib/file-lock.ts';
import { readJsonOr, writeFileAtomic } from '../../lib/fs.ts';
import { parseCidr, type Cidr } from '../../lib/ip/cidr.ts';
import { logDebug, logWarn } from '../../lib/log.ts';
import type { EtcdConfig, EtcdSubnetConfig } from './config.ts';
import { withTimeout } from './etcd-client.ts';
import { candidateOrder, cidrKey, decodeRecord, encodeRecord, subnetFromKey, subnetKey, subnetsPrefix, vtepMacFor, type SubnetRecord } from './subnets.ts';

/** The local copy of a lease: what the vxlan plugin and the overlay agent read. */
export interface LeaseState {
  network: string;
  hostId: string;
  /** "10.252.193.0/24" */
  subnet: string;
  clusterCIDR: string;
  /** The etcd lease ID (decimal string, as etcd3 gives it). */
  leaseId: string;
  leaseTTL: number;
  publicIp?: string;
  vtepMac: string;
  etcd: EtcdConfig;
}

const CALL_TIMEOUT_MS = 3_000;

export function leaseStatePath(dataDir: string, network: string): string {
  return join(dataDir, `${network}.lease.json`);
}

/** The saved lease, or undefined when there is none or it is unreadable. */
export function readLeaseState(dataDir: string, network: string): LeaseState | undefined {
  const s = readJsonOr<LeaseState | undefined>(leaseStatePath(dataDir, network), undefined);
  if (!s || typeof s.subnet !== 'string' || typeof s.leaseId !== 'string' || !parseCidr(s.subnet)) return undefined;
  return s;
}

export function writeLeaseState(dataDir: string, s: LeaseState): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  writeFileAtomic(leaseStatePath(dataDir, s.network), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
}

function stateFor(cfg: EtcdSubnetConfig, subnet: Cidr, leaseId: string): LeaseState {
  return {
    network: cfg.network,
    hostId: cfg.hostId,
    subnet: cidrKey(subnet),
    clusterCIDR: cidrKey(cfg.clusterCidr),
    leaseId,
    leaseTTL: cfg.leaseTtl,
    ...(cfg.publicIp ? { publicIp: cfg.publicIp } : {}),
    vtepMac: vtepMacFor(subnet),
    etcd: cfg.etcd,
  };
}

function recordFor(cfg: EtcdSubnetConfig, subnet: Cidr): SubnetRecord {
  return { hostId: cfg.hostId, ...(cfg.publicIp ? { publicIp: cfg.publicIp } : {}), vtepMac: vtepMacFor(subnet) };
}

/** Renew a lease once; its remaining TTL (0 when it has expired or never existed). */
export async function keepaliveOnce(client: Etcd3, leaseId: string): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive();
  try {
    const res = await withTimeout(
      new Promise<{ TTL: string }>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        stream.write({ ID: leaseId });
      }),
      CALL_TIMEOUT_MS,
      'lease keepalive',
    );
    return Number(res.TTL);
  } finally {
    stream.end();
  }
}

/** One subnet's record with its lease, as etcd holds it. */
export interface HeldSubnet {
  subnet: Cidr;
  record: SubnetRecord | undefined;
  leaseId: string;
}

/** Every subnet leased in this network (records that are not ours decode as undefined). */
export async function listSubnets(client: Etcd3, prefix: string): Promise<HeldSubnet[]> {
  const res = await withTimeout(client.getAll().prefix(subnetsPrefix(prefix)).exec(), CALL_TIMEOUT_MS, 'listing subnets');
  const out: HeldSubnet[] = [];
  for (const kv of res.kvs) {
    const subnet = subnetFromKey(prefix, kv.key.toString('utf8'));
    if (subnet) out.push({ subnet, record: decodeRecord(kv.value.toString('utf8')), leaseId: String(kv.lease) });
  }
  return out;
}

/** Create the key only if it was never created (or has been deleted); true when this call took it. */
async function tryTake(client: Etcd3, key: string, value: string, leaseId: string): Promise<boolean> {
  const res = await withTimeout(client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).commit(), CALL_TIMEOUT_MS, 'taking a subnet');
  return res.succeeded;
}

async function grantLease(client: Etcd3, ttl: number): Promise<string> {
  const res = await withTimeout(client.leaseClient.leaseGrant({ TTL: ttl }), CALL_TIMEOUT_MS, 'granting a lease');
  return String(res.ID);
}

/**
 * This host's subnet: the saved one when etcd still holds it for us (renewed
 * once), else the saved one again if it is free, else a free one. Runs under
 * a per-network lock on this host so two ADDs never take two subnets.
 */
export async function ensureSubnet(client: Etcd3, cfg: EtcdSubnetConfig): Promise<LeaseState> {
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o755 });
  return withLeaseLock(join(cfg.dataDir, `${cfg.network}.lease.lock`), () => ensureSubnetLocked(client, cfg));
}

const LOCK_WAIT_MS = 30_000;
/** A lock file that stays empty this long lost its creator between create and write. */
const EMPTY_LOCK_STALE_MS = 5_000;

function lockHolderGone(path: string, content: string): boolean {
  const m = /^(\d+) (\d+)$/.exec(content.trim());
  if (m) return processStartTime(Number(m[1])) !== m[2];
  try {
    return Date.now() - statSync(path).mtimeMs > EMPTY_LOCK_STALE_MS;
  } catch {
    return false; // gone already: the next create decides
  }
}

/**
 * Run `fn` holding this host's lease lock: an exclusively created file with
 * "<pid> <start time>", removed when the holder dies (checked by the next
 * waiter). Cross-host uniqueness never rests on it (the etcd transaction
 * decides); it only keeps two ADDs on one host from taking two subnets.
 */
export async function withLeaseLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const me = `${process.pid} ${processStartTime(process.pid) ?? '0'}`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, me);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let held = '';
    try {
      held = readFileSync(path, 'utf8');
    } catch {
      continue; // released meanwhile
    }
    if (lockHolderGone(path, held)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new CniError(ErrorCode.TryAgainLater, `timed out after ${LOCK_WAIT_MS} ms waiting for ${path}`, `held by ${held.trim()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(path, 'utf8') === me) rmSync(path, { force: true });
    } catch {
      // Gone: nothing to release.
    }
  }
}

async function ensureSubnetLocked(client: Etcd3, cfg: EtcdSubnetConfig): Promise<LeaseState> {
  const saved = readLeaseState(cfg.dataDir, cfg.network);
  const savedSubnet = saved && saved.hostId === cfg.hostId && saved.clusterCIDR === cidrKey(cfg.clusterCidr) ? parseCidr(saved.subnet) : undefined;
  const held = await listSubnets(client, cfg.etcd.prefix);

  // 1. etcd still holds a subnet for this host (the saved one, or one whose local copy was lost): keep it.
  const mine = held.filter((h) => h.record?.hostId === cfg.hostId);
  const keep = mine.find((h) => savedSubnet && cidrKey(h.subnet) === cidrKey(savedSubnet)) ?? mine[0];
  if (keep) {
    const ttl = await keepaliveOnce(client, keep.leaseId);
    if (ttl > 0) {
      const state = stateFor(cfg, keep.subnet, keep.leaseId);
      if (JSON.stringify(state) !== JSON.stringify(saved)) writeLeaseState(cfg.dataDir, state);
      return state;
    }
    logDebug(`etcd-subnet: lease ${keep.leaseId} of ${cidrKey(keep.subnet)} expired under us; taking a subnet again`);
  }

  // 2. Take one: the saved subnet first (a restart keeps its pods' addresses), then the free ones.
  const taken = new Set(held.map((h) => cidrKey(h.subnet)));
  const order = candidateOrder(cfg.clusterCidr, cfg.subnetLen, cfg.hostId, taken);
  if (savedSubnet) {
    if (taken.has(cidrKey(savedSubnet)) && !mine.some((h) => cidrKey(h.subnet) === cidrKey(savedSubnet))) {
      logWarn(`etcd-subnet: the saved subnet ${cidrKey(savedSubnet)} of ${cfg.network} now belongs to another host; taking a new one`);
    } else {
      order.unshift(savedSubnet);
    }
  }
  const leaseId = await grantLease(client, cfg.leaseTtl);
  for (const subnet of order) {
    if (await tryTake(client, subnetKey(cfg.etcd.prefix, subnet), encodeRecord(recordFor(cfg, subnet)), leaseId)) {
      const state = stateFor(cfg, subnet, leaseId);
      writeLeaseState(cfg.dataDir, state);
      return state;
    }
    logDebug(`etcd-subnet: ${cidrKey(subnet)} was taken meanwhile, trying the next`);
  }
  await client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined); // nothing hangs on it; it would expire anyway
  throw new CniError(ErrorCode.NotAvailable, `no free /${cfg.subnetLen} subnet left in ${cidrKey(cfg.clusterCidr)} for network ${cfg.network}`);
}

/** Give the subnet back: revoke the lease (etcd deletes the record with it). */
export async function releaseSubnet(client: Etcd3, state: LeaseState): Promise<void> {
  await withTimeout(client.leaseClient.leaseRevoke({ ID: state.leaseId }), CALL_TIMEOUT_MS, 'revoking the lease');
}
