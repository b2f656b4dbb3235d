/**
 * What one host joining and leaving costs with 3, 10 and 50 hosts: records
 * in a real etcd, entries programmed in real namespaces. Reports, never
 * asserts; not part of `npm test`. Run as root, under the network lock:
 *
 *   flock /tmp/tscni-net.lock node_modules/.bin/bun test/netns/overlay/scale.ts [3 10 50]
 *
 * Each simulated host is a namespace with an underlay veth on a bridge in
 * one more namespace and its own VXLAN device; etcd runs on 127.0.0.1. One process
 * plays every host's agent with the agent's own code (listSubnets,
 * planDevice, applyChanges), host after host, so each figure is the work one
 * agent does for one event:
 *   sync   a host's first reconcile: list the N records, 3(N-1) kernel calls
 *   resync the periodic one when nothing changed: list, diff, no kernel call
 *   join   a new record's watch event: diff against the kernel, 3 kernel calls
 *   leave  a deleted record's watch event: diff, 3 deletions
 * In the cluster the N agents do their share in parallel, each on its own
 * watch event; etcd sends N events per join or leave (watch fan-out).
 */
import { spawnSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { listSubnets, type HeldSubnet, type LeaseState } from '../../../ipam/etcd-subnet/lease.ts';
import { encodeRecord, subnetKey, vtepMacFor } from '../../../ipam/etcd-subnet/subnets.ts';
import { parseCidr, type Cidr } from '../../../lib/ip/cidr.ts';
import { Rtnl } from '../../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns, type NetnsHandle } from '../../../lib/netns.ts';
import { applyChanges, ensureDevice, planDevice } from '../../../plugins/vxlan/device.ts';
import { startEtcd } from './etcd.ts';

const TAG = Math.random().toString(16).slice(2, 6);
const UL = `tscni-o-sul-${TAG}`;
const PREFIX = '/tscni-o-scale/net';
const SPEC = { name: 'tscni.7', vni: 7, port: 4789 };

function sh(...argv: string[]): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const max = (xs: number[]) => Math.max(...xs);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

interface SimHost {
  ns: string;
  handle: NetnsHandle;
  nl: Rtnl;
  lease: LeaseState;
  index: number;
}

function leaseFor(i: number): LeaseState {
  const subnet = `10.252.${128 + i}.0/24`;
  return {
    network: 'net',
    hostId: `to-s${i}`,
    subnet,
    clusterCIDR: '10.252.128.0/17',
    leaseId: '0',
    leaseTTL: 60,
    publicIp: `172.31.250.${10 + i}`,
    vtepMac: vtepMacFor(parseCidr(subnet) as Cidr),
    etcd: { endpoints: [], prefix: PREFIX },
  };
}

async function putRecord(client: Etcd3, l: LeaseState, leaseId: string): Promise<void> {
  await client.put(subnetKey(PREFIX, parseCidr(l.subnet) as Cidr)).value(encodeRecord({ hostId: l.hostId, publicIp: l.publicIp as string, vtepMac: l.vtepMac })).lease(leaseId).exec();
}

/**
 * One agent's reaction: with `known` (a watch event applied to its copy of
 * the subnets) diff and apply; without, list from etcd first (start, resync).
 */
async function react(client: Etcd3, h: SimHost, known?: HeldSubnet[]): Promise<{ ms: number; calls: number }> {
  const t0 = process.hrtime.bigint();
  const held = known ?? (await listSubnets(client, PREFIX));
  const calls = applyChanges(h.nl, h.index, planDevice(h.nl, h.index, h.lease, held));
  return { ms: ms(t0), calls };
}

async function run(n: number, client: Etcd3): Promise<string> {
  const hosts: SimHost[] = [];
  const namespaces: string[] = [];
  try {
    const grant = await client.leaseClient.leaseGrant({ TTL: 600 });
    for (let i = 0; i < n; i++) {
      const ns = `tscni-o-s${n}x${i}-${TAG}`;
      sh('ip', 'netns', 'add', ns);
      namespaces.push(ns);
      sh('ip', 'netns', 'exec', UL, 'ip', 'link', 'add', `tos${n}x${i}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', ns);
      sh('ip', 'netns', 'exec', UL, 'ip', 'link', 'set', `tos${n}x${i}`, 'master', 'toul0', 'up');
      sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `172.31.250.${10 + i}/24`, 'dev', 'ul0');
      sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'ul0', 'up');
      const lease = leaseFor(i);
      await putRecord(client, lease, grant.ID);
      const handle = openNetns(`/run/netns/${ns}`);
      const nl = Rtnl.in(handle);
      hosts.push({ ns, handle, nl, lease, index: ensureDevice(nl, SPEC, lease) });
    }
    const sync = [];
    for (const h of hosts) sync.push(await react(client, h));
    const again = [];
    for (const h of hosts) again.push(await react(client, h));

    // Join: host n appears in etcd.
    const joiner = leaseFor(n);
    const jl = await client.leaseClient.leaseGrant({ TTL: 600 });
    const tPut = process.hrtime.bigint();
    await putRecord(client, joiner, jl.ID);
    const putMs = ms(tPut);
    const withJoiner = await listSubnets(client, PREFIX); // each agent's copy after the put event
    const join = [];
    for (const h of hosts) join.push(await react(client, h, withJoiner));
    // Leave: its lease goes.
    const tRevoke = process.hrtime.bigint();
    await client.leaseClient.leaseRevoke({ ID: jl.ID });
    const revokeMs = ms(tRevoke);
    const afterLeave = withJoiner.filter((x) => x.leaseId !== String(jl.ID));
    const leave = [];
    for (const h of hosts) leave.push(await react(client, h, afterLeave));
    await client.leaseClient.leaseRevoke({ ID: grant.ID });

    const f = (xs: Array<{ ms: number }>) => `${median(xs.map((x) => x.ms)).toFixed(1)} / ${max(xs.map((x) => x.ms)).toFixed(1)}`;
    const calls = (xs: Array<{ calls: number }>) => `${median(xs.map((x) => x.calls))}`;
    return `| ${n} | ${3 * (n - 1)} | ${f(sync)} (${calls(sync)} calls) | ${f(again)} (${calls(again)}) | ${putMs.toFixed(1)} + ${f(join)} (${calls(join)}) | ${revokeMs.toFixed(1)} + ${f(leave)} (${calls(leave)}) |`;
  } finally {
    for (const h of hosts) {
      h.nl.close();
      closeNetns(h.handle);
    }
    for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns]);
  }
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 1);
  const ns = sizes.length ? sizes : [3, 10, 50];
  if (Math.max(...ns) > 120) throw new Error('at most 120 hosts (172.31.250.10-.130 and 10.252.128-255.0/24)');
  const used = spawnSync('ip', ['route'], { encoding: 'utf8' }).stdout;
  if (/10\.252\.|172\.31\.250\./.test(used)) throw new Error(`the test ranges are in use:\n${used}`);
  sh('ip', 'netns', 'add', UL);
  let etcd;
  let client: Etcd3 | undefined;
  try {
    sh('ip', 'netns', 'exec', UL, 'ip', 'link', 'add', 'toul0', 'type', 'bridge');
    sh('ip', 'netns', 'exec', UL, 'ip', 'addr', 'add', '172.31.250.1/24', 'dev', 'toul0');
    sh('ip', 'netns', 'exec', UL, 'ip', 'link', 'set', 'toul0', 'up');
    // etcd on 127.0.0.1 here: this one process plays every host's agent, the hosts themselves never talk to it.
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.url });
    process.stdout.write('| hosts | entries per host | first sync per agent: median / max ms | resync, nothing changed | join: etcd put + per agent | leave: lease revoke + per agent |\n|---|---|---|---|---|---|\n');
    for (const n of ns) process.stdout.write(`${await run(n, client)}\n`);
  } finally {
    client?.close();
    await etcd?.stop();
    spawnSync('ip', ['netns', 'del', UL]);
  }
}

await main();
