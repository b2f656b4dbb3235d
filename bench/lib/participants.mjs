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
import { callPlugin, mustCall } from './cni.mjs';
import { addNamespaces, bridgeConfig, loopbackConfig, newPod, portmapConfig } from './network.mjs';

/** Verbs every plugin gets, in the order they are run in a round. */
export const VERBS = ['ADD', 'CHECK', 'DEL', 'VERSION'];

/** The plugins measured, in report order. */
export const PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback'];

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
    } else {
      list.push({ bridge: bridgeParticipant, loopback: loopbackParticipant }[plugin](net));
    }
  }
  return list;
}

/** Container IDs stay unique for the whole run, across levels and sections. */
let seq = 0;

/** Runs VERSION, or ADD/CHECK/DEL with `conf(prevResult)` on a fresh container ID per ADD. */
function verbRunner(p, { ns, ifname, conf, tag }) {
  let cid = '';
  let prev = null;
  return async (verb, _round, wrap) => {
    if (verb === 'VERSION') return callPlugin(p.impl, p.plugin, 'VERSION', { wrap });
    if (verb === 'ADD') {
      cid = `${p.net.name}-${tag}${seq++}`;
      prev = null;
    }
    const r = await callPlugin(p.impl, p.plugin, verb, { cid, netns: ns(), ifname, config: conf(verb === 'ADD' ? undefined : prev), wrap });
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
