/**
 * The benchmark's networks and pods. Each implementation gets its own bridge
 * network (bridge named like the network, own subnet, own IPAM dataDir, own
 * host-port range), so the two never share a store or a port and every call
 * can alternate between them. Everything is named with PREFIX, and cleanup
 * (cleanup.mjs) finds it by that name.
 *
 * A pod is { cid, ns, ifname, hostPort, result }: `result` is what libcni
 * would cache (the last plugin's result) and pass as prevResult on DEL.
 */
import { join } from 'node:path';
import { CNI_VERSION, callPlugin } from './cni.mjs';
import { mustSh, pool, progress } from './proc.mjs';

/** Prefix of every network, bridge and namespace name the benchmark creates. */
export const PREFIX = 'tscnib-';

/** Fill pods share a namespace in groups of this size (eth0..eth9), to keep setup cheap. */
const PODS_PER_FILL_NS = 10;

/**
 * A network of one implementation. `name` (<= 15 characters) is also the bridge
 * name; `subnet`/`gateway` an IPv4 range nothing else uses; host ports are
 * handed out from `portBase` up; state lives under `tmp`.
 */
export function makeNetwork(impl, { name, subnet, gateway, portBase, tmp }) {
  if (!name.startsWith(PREFIX) || name.length > 15) throw new Error(`bad network name ${name}`);
  return { impl, name, bridge: name, subnet, gateway, dataDir: join(tmp, 'ipam', name), stateDir: join(tmp, 'portmap', name), nextPort: portBase, seq: 0, pods: [], namespaces: new Set() };
}

/** The bridge config of `net`: gateway, default route, masquerade, hairpin, host-local IPAM. */
export function bridgeConfig(net) {
  return {
    cniVersion: CNI_VERSION,
    name: net.name,
    type: 'bridge',
    bridge: net.bridge,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipam: { type: 'host-local', dataDir: net.dataDir, ranges: [[{ subnet: net.subnet, gateway: net.gateway }]] },
  };
}

/**
 * The portmap config of `net` with one TCP mapping hostPort -> 80, bound to the
 * network's gateway address (so the rules match only our private subnet, never
 * traffic to the host's own addresses). Ours also gets its backend and a private
 * stateDir; the reference has the iptables backend only.
 */
export function portmapConfig(net, { backend = 'iptables', prevResult, hostPort }) {
  const conf = {
    cniVersion: CNI_VERSION,
    name: net.name,
    type: 'portmap',
    capabilities: { portMappings: true },
    snat: true,
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp', hostIP: net.gateway }] },
    prevResult,
  };
  if (net.impl.key === 'ours') Object.assign(conf, { backend, stateDir: join(net.stateDir, backend) });
  else if (backend !== 'iptables') throw new Error('the reference portmap has no nftables backend');
  return conf;
}

/** The loopback config (the same for both). */
export function loopbackConfig() {
  return { cniVersion: CNI_VERSION, name: `${PREFIX}lo`, type: 'loopback' };
}

/** /run/netns/<name>. */
export function nsPath(name) {
  return `/run/netns/${name}`;
}

/** Create the namespaces of `net` that do not exist yet (one `ip -batch`); returns their paths. */
export function addNamespaces(net, names) {
  const fresh = names.filter((n) => !net.namespaces.has(n));
  if (fresh.length) {
    mustSh(['ip', '-batch', '-'], fresh.map((n) => `netns add ${n}\n`).join(''));
    for (const n of fresh) net.namespaces.add(n);
  }
  return names.map(nsPath);
}

/** A new pod description in namespace `nsName` (created if needed), with the next host port. */
export function newPod(net, nsName, ifname = 'eth0') {
  const [ns] = addNamespaces(net, [nsName]);
  return { cid: `${net.name}-${net.seq++}`, ns, ifname, hostPort: net.nextPort++, result: null };
}

/**
 * The pod chain as libcni runs it on ADD: bridge (with host-local), then
 * portmap with bridge's result as prevResult. Resolves to
 * { ok, ms, bridgeMs, portmapMs, err }; on success pod.result is the cached result.
 */
export async function chainAdd(net, pod) {
  const t0 = process.hrtime.bigint();
  const opts = { cid: pod.cid, netns: pod.ns, ifname: pod.ifname };
  const b = await callPlugin(net.impl, 'bridge', 'ADD', { ...opts, config: bridgeConfig(net) });
  if (!b.ok) return { ok: false, ms: b.ms, bridgeMs: b.ms, err: b.err };
  pod.result = b.result;
  const p = await callPlugin(net.impl, 'portmap', 'ADD', { ...opts, config: portmapConfig(net, { prevResult: b.result, hostPort: pod.hostPort }) });
  if (p.ok) pod.result = p.result;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ok: p.ok, ms, bridgeMs: b.ms, portmapMs: p.ms, err: p.err };
}

/** DEL in reverse order (portmap, then bridge), each with the cached result as prevResult. */
export async function chainDel(net, pod) {
  const t0 = process.hrtime.bigint();
  const opts = { cid: pod.cid, netns: pod.ns, ifname: pod.ifname };
  const p = await callPlugin(net.impl, 'portmap', 'DEL', { ...opts, config: portmapConfig(net, { prevResult: pod.result, hostPort: pod.hostPort }) });
  const b = await callPlugin(net.impl, 'bridge', 'DEL', { ...opts, config: { ...bridgeConfig(net), prevResult: pod.result } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ok: p.ok && b.ok, ms, portmapMs: p.ms, bridgeMs: b.ms, err: [p.err, b.err].filter(Boolean).join('; ') };
}

/**
 * Add pods to `net` until it holds `count`, with the full chain, `concurrency`
 * in flight. Fill pods are real: veths, addresses, rules and reservations made
 * by the implementation itself, PODS_PER_FILL_NS per namespace. Throws on the
 * first failure (the caller's cleanup removes everything).
 */
export async function fillTo(net, count, concurrency) {
  const start = net.pods.length;
  if (count <= start) return;
  const index = Array.from({ length: count - start }, (_, k) => start + k);
  addNamespaces(net, [...new Set(index.map((i) => `${net.name}-f${Math.floor(i / PODS_PER_FILL_NS)}`))]);
  let done = 0;
  await pool(index, concurrency, async (i) => {
    const pod = newPod(net, `${net.name}-f${Math.floor(i / PODS_PER_FILL_NS)}`, `eth${i % PODS_PER_FILL_NS}`);
    const r = await chainAdd(net, pod);
    if (!r.ok) throw new Error(`fill: ${r.err}`);
    net.pods.push(pod);
    if (++done % 100 === 0) progress(`${net.name}: ${start + done}/${count} pods`);
  });
}
