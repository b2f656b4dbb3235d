/**
 * One "participant" per implementation (and portmap backend) of a plugin:
 * it knows how to run each verb on a fresh pod of its own network, so the
 * latency tables (alternate.mjs) and the per-process figures (peak RSS,
 * children) drive the same calls.
 *
 *   participant.call(verb, round, wrap?)  ADD makes a new attachment; CHECK
 *                                         and DEL use the last ADD's result as
 *                                         prevResult; VERSION needs nothing
 *   participant.setup() / teardown()      unmeasured preparation (portmap's target pod)
 *
 * `wrap` is an argv prefix (strace, GNU time) for the per-process figures.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CNI_VERSION, callPlugin, mustCall } from './cni.mjs';
import { PREFIX, addNamespaces, bridgeConfig, loopbackConfig, newPod, portmapConfig } from './network.mjs';
import { mustSh, sh } from './proc.mjs';

/** Verbs every plugin gets, in the order they are run in a round. */
export const VERBS = ['ADD', 'CHECK', 'DEL', 'VERSION'];

/** The plugins measured in section 1, in report order. */
export const PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback', 'ptp', 'macvlan', 'static', 'ipvlan', 'vlan', 'host-device'];

/** The plugins of section 4 (start-up, peak RSS, children): one per kind of work; the others share their code paths. */
export const PROCESS_PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback'];

/**
 * Plugins that run inside a bench-made "node" namespace of their own (a
 * master or device there, never the host's uplink), so the pods present on
 * the real node do not change their figures.
 */
export const ISOLATED_PLUGINS = ['ptp', 'macvlan', 'ipvlan', 'vlan', 'host-device'];

/** Plugins whose figures cannot depend on the pods present (isolated, or touching nothing): measured at the first level only. */
export const FIRST_LEVEL_ONLY = [...ISOLATED_PLUGINS, 'static'];

/** Link kinds some plugins need from the kernel; without the driver there is no figure ("driver absent"). */
const DRIVERS = { ipvlan: 'ipvlan', vlan: 'vlan' };
const driverCache = new Map();

/**
 * Why `plugin` cannot run on this kernel ("ipvlan driver absent"), or '' when
 * it can: a link of its kind is tried on a veth in a throwaway namespace.
 */
export function driverAbsent(plugin) {
  const kind = DRIVERS[plugin];
  if (!kind) return '';
  if (!driverCache.has(kind)) {
    const ns = `${PREFIX}probe`;
    sh(['ip', 'netns', 'add', ns]);
    try {
      sh(['ip', '-n', ns, 'link', 'add', 'tbp0', 'type', 'veth', 'peer', 'name', 'tbp1']);
      const r = sh(['ip', '-n', ns, 'link', 'add', 'link', 'tbp0', 'name', 'tbp2', 'type', kind, ...(kind === 'vlan' ? ['id', '5'] : [])]);
      driverCache.set(kind, r.code === 0 ? '' : `${kind} driver absent`);
    } finally {
      sh(['ip', 'netns', 'del', ns]);
    }
  }
  return driverCache.get(kind);
}

/** The common fields of a participant; setup and teardown do nothing unless overridden. */
function base(net, plugin, extra = {}) {
  const impl = net.impl;
  return { key: impl.key, label: impl.label, impl, net, plugin, setup: async () => {}, teardown: async () => {}, ...extra };
}

/**
 * The participants for `plugin` on `nets` (one network per implementation),
 * with `level` pods present on the node. portmap also gets our nftables
 * backend as a third participant (the reference has none).
 */
export function participantsFor(plugin, nets, level = 0) {
  const list = [];
  for (const net of nets) {
    if (plugin === 'portmap') {
      list.push(portmapParticipant(net, 'iptables'));
      if (net.impl.key === 'ours') list.push(portmapParticipant(net, 'nftables'));
    } else if (plugin === 'host-local') {
      list.push(hostLocalParticipant(net, level));
    } else if (plugin === 'static') {
      list.push(staticParticipant(net));
    } else if (ISOLATED_PLUGINS.includes(plugin)) {
      list.push(isolatedParticipant(net, plugin));
    } else {
      list.push({ bridge: bridgeParticipant, loopback: loopbackParticipant }[plugin](net));
    }
  }
  return list;
}

/** Container IDs stay unique for the whole run, across levels and sections. */
let seq = 0;

/** Runs VERSION, or ADD/CHECK/DEL with `conf(prevResult)` on a fresh container ID per ADD. */
function verbRunner(p, { ns, ifname, conf, tag, inNetns = '' }) {
  let cid = '';
  let prev = null;
  return async (verb, _round, wrap) => {
    if (verb === 'VERSION') return callPlugin(p.impl, p.plugin, 'VERSION', { wrap });
    if (verb === 'ADD') {
      cid = `${p.net.name}-${tag}${seq++}`;
      prev = null;
    }
    const r = await callPlugin(p.impl, p.plugin, verb, { cid, netns: ns(), ifname, config: conf(verb === 'ADD' ? undefined : prev), wrap, inNetns });
    if (verb === 'ADD' && r.ok) prev = r.result;
    return r;
  };
}

/** `config` with prevResult added when there is one (CHECK and DEL). */
function withPrev(config, prevResult) {
  return prevResult ? { ...config, prevResult } : config;
}

/** bridge (+ its host-local) on a measurement namespace of its own network. */
function bridgeParticipant(net) {
  const p = base(net, 'bridge');
  const [ns] = addNamespaces(net, [`${net.name}-m`]);
  p.call = verbRunner(p, { ns: () => ns, ifname: 'eth0', tag: 'b', conf: (prev) => withPrev(bridgeConfig(net), prev) });
  return p;
}

/**
 * host-local alone, on a store of its own holding `reservations` addresses
 * (each bridge holds only half the node's pods; the IPAM figure is for a
 * store with all of them). The store is written in host-local's on-disk
 * format, as the reference leaves it: one file per address containing
 * "<containerID>\r\n<ifname>", and last_reserved_ip.0.
 */
function hostLocalParticipant(net, reservations) {
  const p = base(net, 'host-local');
  const [ns] = addNamespaces(net, [`${net.name}-m`]);
  const dataDir = `${net.dataDir}-hostlocal-${reservations}`;
  const config = () => ({ ...bridgeConfig(net), ipam: { ...bridgeConfig(net).ipam, dataDir } });
  p.setup = async () => writeReservations(join(dataDir, net.name), net.subnet, reservations);
  p.teardown = async () => rmSync(dataDir, { recursive: true, force: true });
  p.call = verbRunner(p, { ns: () => ns, ifname: 'eth0', tag: 'h', conf: (prev) => withPrev(config(), prev) });
  return p;
}

/** Reserve the first `count` addresses of `subnet` after the gateway, as host-local records them. */
function writeReservations(dir, subnet, count) {
  mkdirSync(dir, { recursive: true });
  const [a, b, c, d] = subnet.split('/')[0].split('.').map(Number);
  const base = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const ip = (n) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
  for (let i = 0; i < count; i++) writeFileSync(join(dir, ip(base + 2 + i)), `hostlocal-fill-${i}\r\neth0`);
  if (count) writeFileSync(join(dir, 'last_reserved_ip.0'), ip(base + 1 + count));
}

/** loopback in a namespace of its own. */
function loopbackParticipant(net) {
  const p = base(net, 'loopback');
  const [ns] = addNamespaces(net, [`${net.name}-lo`]);
  p.call = verbRunner(p, { ns: () => ns, ifname: 'lo', tag: 'l', conf: (prev) => withPrev(loopbackConfig(), prev) });
  return p;
}

/**
 * portmap: a target pod made by the network's own bridge (unmeasured) is the
 * prevResult; every ADD maps a new host port for a new container ID.
 */
function portmapParticipant(net, backend) {
  const nft = backend === 'nftables';
  const p = base(net, 'portmap', { backend, key: nft ? `${net.impl.key}-nft` : net.impl.key, label: nft ? `${net.impl.label} (nftables)` : net.impl.label });
  let target = null;
  let port = 0;
  p.setup = async () => {
    target = newPod(net, `${net.name}-${nft ? 'pn' : 'pm'}`);
    target.result = (await mustCall(net.impl, 'bridge', 'ADD', { cid: target.cid, netns: target.ns, ifname: 'eth0', config: bridgeConfig(net) })).result;
  };
  p.teardown = async () => {
    if (target) await callPlugin(net.impl, 'bridge', 'DEL', { cid: target.cid, netns: target.ns, ifname: 'eth0', config: withPrev(bridgeConfig(net), target.result) });
  };
  const run = verbRunner(p, {
    ns: () => target.ns,
    ifname: 'eth0',
    tag: nft ? 'n' : 'p',
    conf: (prev) => ({ ...portmapConfig(net, { backend, prevResult: prev ?? target.result, hostPort: port }) }),
  });
  p.call = (verb, round, wrap) => {
    if (verb === 'ADD') port = net.nextPort++;
    return run(verb, round, wrap);
  };
  return p;
}

/** The subnet of the isolated plugins and static, per implementation (inside their own namespaces: never routed on the host). */
const ISOLATED_SUBNET = { ours: '10.241.104', ref: '10.241.105' };

/** host-local IPAM of `net` for one plugin: its own store, the implementation's isolated subnet. */
function isolatedIpam(net, plugin) {
  return { type: 'host-local', dataDir: `${net.dataDir}-${plugin}`, ranges: [[{ subnet: `${ISOLATED_SUBNET[net.impl.key]}.0/24` }]] };
}

/** Short tags for namespace and container names. */
const TAGS = { ptp: 'pt', macvlan: 'mv', ipvlan: 'iv', vlan: 'vl', 'host-device': 'hd', static: 'st' };

/** The link every isolated plugin acts on, inside its node namespace: a veth end (master or device); its peer stays there too. */
const NODE_LINK = 'tbl0';

/** The config of an isolated plugin; the link it uses is NODE_LINK in its node namespace. */
function isolatedConfig(net, plugin) {
  const common = { cniVersion: CNI_VERSION, name: `${net.name}-${TAGS[plugin]}`, type: plugin, ipam: isolatedIpam(net, plugin) };
  switch (plugin) {
    case 'ptp':
      return { ...common, ipMasq: true };
    case 'macvlan':
      return { ...common, master: NODE_LINK, mode: 'bridge' };
    case 'ipvlan':
      return { ...common, master: NODE_LINK, mode: 'l2' };
    case 'vlan':
      return { ...common, master: NODE_LINK, vlanId: 100 };
    case 'host-device':
      return { ...common, device: NODE_LINK };
    default:
      throw new Error(`no isolated config for ${plugin}`);
  }
}

/**
 * ptp, macvlan, ipvlan, vlan, host-device: the plugin runs inside a node
 * namespace of its own (nsenter), where NODE_LINK is a veth (macvlan's master,
 * host-device's device); ptp's host ends, addresses and masquerade rules land
 * there too. Every ADD attaches a pod in a measurement namespace; host-device's
 * DEL gives the device back for the next round.
 */
function isolatedParticipant(net, plugin) {
  const p = base(net, plugin);
  const tag = TAGS[plugin];
  const nodeName = `${net.name}-${tag}n`;
  const [node, pod] = addNamespaces(net, [nodeName, `${net.name}-${tag}p`]);
  p.setup = async () => {
    if (sh(['ip', '-n', nodeName, 'link', 'show', 'dev', NODE_LINK]).code === 0) return;
    mustSh(['ip', '-n', nodeName, 'link', 'set', 'lo', 'up']);
    mustSh(['ip', '-n', nodeName, 'link', 'add', NODE_LINK, 'type', 'veth', 'peer', 'name', 'tbl1']);
    mustSh(['ip', '-n', nodeName, 'link', 'set', NODE_LINK, 'up']);
    mustSh(['ip', '-n', nodeName, 'link', 'set', 'tbl1', 'up']);
  };
  p.call = verbRunner(p, { ns: () => pod, ifname: 'eth0', tag, inNetns: node, conf: (prev) => withPrev(isolatedConfig(net, plugin), prev) });
  return p;
}

/** static IPAM alone (it touches nothing: run in the bench's own namespace), one address per ADD. */
function staticParticipant(net) {
  const p = base(net, 'static');
  const [ns] = addNamespaces(net, [`${net.name}-${TAGS.static}`]);
  const sub = ISOLATED_SUBNET[net.impl.key];
  const config = { cniVersion: CNI_VERSION, name: `${net.name}-st`, type: 'static', ipam: { type: 'static', addresses: [{ address: `${sub}.50/24`, gateway: `${sub}.1` }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: [`${sub}.1`] } } };
  p.call = verbRunner(p, { ns: () => ns, ifname: 'eth0', tag: TAGS.static, conf: (prev) => withPrev(config, prev) });
  return p;
}
