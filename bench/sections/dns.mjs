/**
 * Section 5: names. The host's name server (`tscni dns serve`, started by the
 * dnsname plugin's first ADD) listening for one bench network on the bridge
 * tscnib-dns0 (10.241.120.1/24: an address of this host, so every query stays
 * on it). Measured at 100 and 1000 records (pods with names):
 *
 *   - dnsname's own cost in a pod's ADD and DEL: one plugin process per call
 *     with a prevResult, the server running (the first ADD, which starts it,
 *     is reported once);
 *   - a local answer (A of a random pod's name.domain): the latency of one
 *     query at a time (p50, p99), and the throughput with 64 queries in flight;
 *   - the server's resident memory (VmRSS, and the peak VmHWM) after the load.
 *
 * There is no reference to alternate with (the reference plugins have no name
 * server); the figures stand against absolute targets. Records beyond the
 * measured ADDs are written in the plugin's own format (one JSON file per
 * attachment, temp + rename), as the plugin would have.
 */
import { createSocket } from 'node:dgram';
import { clearInterval, setInterval } from 'node:timers';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { CNI_VERSION, callPlugin } from '../lib/cni.mjs';
import { mustSh, progress, sh } from '../lib/proc.mjs';
import { summarize } from '../lib/stats.mjs';

const NETWORK = 'tscnib-dns';
const BRIDGE = 'tscnib-dns0';
const GATEWAY = '10.241.120.1';
const DOMAIN = 'dns.bench';

/** Pod i's address: data in its record only (10.241.104.0/21), never a destination. */
const podIp = (i) => `10.241.${104 + Math.floor(i / 256)}.${i % 256}`;
const podName = (i) => `pod-${i}`;
const cidOf = (i) => `dnsbench${String(i).padStart(8, '0')}`;

function dnsnameConfig(i) {
  return {
    cniVersion: CNI_VERSION,
    name: NETWORK,
    type: 'dnsname',
    domainName: DOMAIN,
    prevResult: { cniVersion: CNI_VERSION, interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/bench' }], ips: [{ address: `${podIp(i)}/21`, gateway: GATEWAY, interface: 0 }] },
  };
}

/** Write record i as the plugin does (temp + rename). */
function writeRecord(base, i) {
  const dir = join(base, NETWORK, 'records');
  const file = join(dir, `${cidOf(i)}-eth0.json`);
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ containerId: cidOf(i), ifName: 'eth0', name: podName(i), aliases: [], ips: [podIp(i)] })}\n`);
  renameSync(`${file}.tmp`, file);
}

/** One A query for pod i, with a 2-byte id to patch in. */
const queryFor = (i) => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `${podName(i)}.${DOMAIN}`, class: 'IN' }] });

/**
 * Queries one at a time to GATEWAY:53 for random pods below `records`:
 * { p50, p99 } in ms, and how many were lost (1 s) or answered wrongly.
 */
async function latency(records, count) {
  const sock = createSocket('udp4');
  await new Promise((r) => sock.bind(0, r));
  const samples = [];
  let lost = 0;
  let wrong = 0;
  for (let n = 0; n < count; n++) {
    const i = Math.floor(Math.random() * records);
    const q = queryFor(i);
    q.writeUInt16BE(n & 0xffff, 0);
    const t0 = process.hrtime.bigint();
    const reply = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        sock.removeListener('message', onMessage);
        resolve(undefined);
      }, 1000);
      const onMessage = (m) => {
        if (m.readUInt16BE(0) !== (n & 0xffff)) return;
        clearTimeout(timer);
        sock.removeListener('message', onMessage);
        resolve(m);
      };
      sock.on('message', onMessage);
      sock.send(q, 53, GATEWAY);
    });
    if (!reply) {
      lost++;
      continue;
    }
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const got = dnsPacket.decode(reply);
    if (got.answers?.[0]?.data !== podIp(i)) wrong++;
  }
  sock.close();
  const s = summarize(samples);
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: s.p50, p99: sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)], n: samples.length, lost, wrong };
}

/** `inflight` queries kept outstanding for `seconds`: answers per second (a query unanswered for 500 ms is replaced). */
async function throughput(records, seconds, inflight = 64) {
  const sock = createSocket('udp4');
  await new Promise((r) => sock.bind(0, r));
  const queries = Array.from({ length: Math.min(records, 1000) }, (_, k) => queryFor(Math.floor((k * records) / Math.min(records, 1000))));
  const sent = new Map();
  let id = 0;
  let answered = 0;
  const end = Date.now() + seconds * 1000;
  const send = () => {
    id = (id + 1) & 0xffff;
    const q = queries[id % queries.length];
    q.writeUInt16BE(id, 0);
    sent.set(id, Date.now());
    sock.send(q, 53, GATEWAY);
  };
  await new Promise((resolve) => {
    sock.on('message', (m) => {
      const got = m.readUInt16BE(0);
      if (!sent.delete(got)) return;
      answered++;
      if (Date.now() < end) send();
      else if (sent.size === 0) resolve();
    });
    const sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, t] of sent) if (now - t > 500) sent.delete(k);
      if (now >= end) {
        clearInterval(sweeper);
        resolve();
        return;
      }
      while (sent.size < inflight) send();
    }, 100);
    for (let k = 0; k < inflight; k++) send();
  });
  sock.close();
  return { qps: answered / seconds, inflight };
}

/** Whether `pid` is still the name server the first ADD started (not a recycled pid). */
function isServer(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve');
  } catch {
    return false;
  }
}

function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024, fileMb: kb('RssFile') / 1024 };
}

/** Section 5; resolves to { first, levels: [{ records, add, del, latency, throughput }], memory }. */
export async function measureDns(ctx) {
  const ours = ctx.impls.find((i) => i.key === 'ours');
  const base = join(ctx.tmp, 'dns');
  mkdirSync(base, { recursive: true });
  const extraEnv = { TSCNI_DNS_DIR: base, TSCNI_DNS_UPSTREAM: 'none' };
  mustSh(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  mustSh(['ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE]);
  mustSh(['ip', 'link', 'set', BRIDGE, 'up']);
  const call = async (verb, i) => {
    const r = await callPlugin(ours, 'dnsname', verb, { cid: cidOf(i), netns: '/var/run/netns/bench', config: dnsnameConfig(i), extraEnv: { ...extraEnv, CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${podName(i)}` } });
    if (!r.ok) throw new Error(r.err);
    return r.ms;
  };
  let pid;
  try {
    const first = await call('ADD', 0);
    pid = Number(readFileSync(join(base, 'server.pid'), 'utf8'));
    const out = { first, levels: [], memory: undefined };
    const samples = ctx.quick ? 20 : 50;
    const queries = ctx.quick ? 2000 : 5000;
    let present = 1;
    for (const records of [100, 1000]) {
      progress(`dns: ${records} records`);
      for (; present < records; present++) writeRecord(base, present);
      const add = [];
      const del = [];
      for (let k = 0; k < samples; k++) add.push(await call('ADD', records + k));
      for (let k = 0; k < samples; k++) del.push(await call('DEL', records + k));
      await latency(records, 1000); // warm-up: the server reads the records, the JIT settles
      const lat = await latency(records, queries);
      const tput = await throughput(records, ctx.quick ? 2 : 5);
      out.levels.push({ records, add: summarize(add), del: summarize(del), latency: lat, throughput: tput });
    }
    out.memory = memoryOf(pid);
    return out;
  } finally {
    // The server goes with its directory; SIGTERM makes it now.
    rmSync(base, { recursive: true, force: true });
    if (pid && isServer(pid)) process.kill(pid, 'SIGTERM');
    sh(['ip', 'link', 'del', BRIDGE]);
  }
}
