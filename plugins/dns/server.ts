/**
 * The host's name server: `tscni dns serve [--dir BASE]`, one process for every
 * network with names (as aardvark-dns), started detached by the dnsname
 * plugin when missing. For each network in BASE (a directory with a
 * network.json) it listens on the network's gateway addresses, port 53 (UDP
 * and TCP), and answers A/AAAA/PTR for that network's pods only, from the
 * record files (re-read when records/ changes): the socket a query arrives on
 * decides the network, so a pod never learns another network's names. Every
 * other name goes to the host's resolvers (/etc/resolv.conf, or
 * $TSCNI_DNS_UPSTREAM, never one of its own addresses), over the transport
 * the client used (UDP, or TCP after a truncated reply).
 *
 * Its life: BASE/server.pid written at start; a network's pid file
 * (BASE/<network>/server.pid: pid and what it listens as) once it listens for
 * it. It re-reads the networks on SIGHUP (the plugin sends one after writing a
 * network.json or removing a network) and every second, closing the sockets
 * of removed networks before binding new ones. SIGTERM (from the plugin when
 * the last network goes) closes it; it also exits when BASE disappears or has
 * held no network for 10 s. Killed any other way, the next plugin call starts
 * a new one; it holds no state of its own.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:net';
import dnsPacket from 'dns-packet';
import { writeFileAtomic } from '../../lib/fs.ts';
import { answerLocal, parseNameservers, type LocalAnswer } from './answer.ts';
import { networkSig, networksIn, pidFile, readNetworkInfo, readRecords, recordsStamp, runningServer, type NameRecord, type NetworkInfo } from './state.ts';

const AA = 0x400;
const RD = 0x100;
const RA = 0x80;
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const FORWARD_TIMEOUT_MS = 2500;

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} tscni-dns[${process.pid}]: ${msg}\n`);
}

/** What the server knows of one network: where its records are, and the last ones read. */
export interface ServerState {
  dir: string;
  domainName: string;
  upstreams: string[];
  records: NameRecord[];
  /** records/'s mtime (ms) when last read; -1: never read. */
  stamp: number;
  /** When records/ was last read (ms since the epoch). */
  readAt?: number;
  /** The network's gateways: the host asking (its source address for a local destination is the gateway). */
  gateways?: string[];
  /** Who may ask (the gateways, the pods' addresses), rebuilt with the records. */
  clients?: Set<string>;
  /** Every network the server serves (this one too): a pod on several networks learns the names of all of them. */
  peers?: () => Iterable<ServerState>;
  /** The container IDs of the records, by address, and all of them: rebuilt with the records. */
  owners?: Map<string, string[]>;
  ids?: Set<string>;
}

/** How close (ms) a records/ mtime may be to the last read and still hide a change (mtimes tick coarsely). */
const STAMP_SLACK_MS = 100;

function currentRecords(s: ServerState): NameRecord[] {
  const stamp = recordsStamp(s.dir);
  // Directory mtimes are as coarse as the kernel's clock tick: a change in the
  // same tick as the last read keeps the stamp, so a stamp that is not clearly
  // older than the last read means read again.
  if (stamp !== s.stamp || (s.readAt ?? 0) - stamp < STAMP_SLACK_MS) {
    s.readAt = Date.now();
    s.records = readRecords(s.dir);
    s.stamp = stamp;
    s.clients = new Set([...(s.gateways ?? []), ...s.records.flatMap((r) => r.ips)]);
    s.owners = new Map();
    for (const r of s.records) for (const ip of r.ips) s.owners.set(ip, [...(s.owners.get(ip) ?? []), r.containerId]);
    s.ids = new Set(s.records.map((r) => r.containerId));
  }
  return s.records;
}

/**
 * Whether `client` may ask this network's server: one of the network's pods
 * (an address in its records), the host through the gateway, or loopback. A
 * pod of another network that sends its query to this gateway directly is
 * refused, so it never learns these names (aardvark-dns also answers by the
 * asking container's address). Undefined `client`: not checked (unit tests).
 * Call after currentRecords(s), which keeps the set of clients.
 */
export function mayAsk(s: ServerState, client: string | undefined): boolean {
  if (client === undefined) return true;
  const addr = client.replace(/^::ffff:/, '');
  if (addr.startsWith('127.') || addr === '::1') return true;
  return s.clients?.has(addr) ?? false;
}

/**
 * The networks whose names `client` may learn, its own first: the network the
 * query arrived on, and every other served network on which the same
 * container has a record (a pod with a NIC on each; aardvark-dns also answers
 * by the asking container's networks). The host (gateway, loopback) gets the
 * arriving network only.
 */
export function scopesFor(s: ServerState, client: string | undefined): ServerState[] {
  const addr = client?.replace(/^::ffff:/, '');
  const ids = (addr && s.owners?.get(addr)) || [];
  const out = [s];
  if (ids.length === 0) return out;
  for (const p of s.peers?.() ?? []) {
    if (p === s) continue;
    currentRecords(p);
    if (ids.some((id) => p.ids?.has(id))) out.push(p);
  }
  return out;
}

/** Send `query` to the upstreams in turn over UDP; the first reply wins. */
function forward(s: ServerState, query: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const pending = [...s.upstreams];
    let sock: Socket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (b: Buffer | undefined) => {
      if (timer) clearTimeout(timer);
      sock?.close();
      sock = undefined;
      resolve(b);
    };
    const next = () => {
      sock?.close();
      const up = pending.shift();
      if (!up) return finish(undefined);
      const sk = createSocket(up.includes(':') ? 'udp6' : 'udp4');
      sock = sk;
      sk.on('message', (msg) => finish(msg));
      sk.on('error', () => next());
      sk.send(query, 53, up);
      timer = setTimeout(next, FORWARD_TIMEOUT_MS);
    };
    next();
  });
}

/** Send `query` to the upstreams in turn over TCP (a client that asked over TCP, e.g. after a truncated UDP reply). */
function forwardTcp(s: ServerState, query: Buffer): Promise<Buffer | undefined> {
  const pending = [...s.upstreams];
  const one = (up: string) =>
    new Promise<Buffer | undefined>((resolve) => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      let buf = Buffer.alloc(0);
      const c = connect({ port: 53, host: up }, () => c.write(Buffer.concat([len, query])));
      c.setTimeout(FORWARD_TIMEOUT_MS, () => {
        c.destroy();
        resolve(undefined);
      });
      c.on('error', () => resolve(undefined));
      c.on('data', (b: Buffer) => {
        buf = Buffer.concat([buf, b]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          c.end();
          resolve(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        }
      });
      c.on('close', () => resolve(undefined));
    });
  return (async () => {
    for (const up of pending) {
      const r = await one(up);
      if (r) return r;
    }
    return undefined;
  })();
}

/**
 * One query in, one response out (undefined: drop, e.g. undecodable); `tcp`:
 * the client asked over TCP; `client`: its address, REFUSED unless mayAsk.
 */
export async function respond(s: ServerState, query: Buffer, tcp = false, client?: string): Promise<Buffer | undefined> {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(query);
  } catch {
    return undefined;
  }
  if (q.type !== 'query') return undefined;
  const question = q.questions?.[0];
  const rd = (q.flags ?? 0) & RD;
  const reply = (rcode: number, answers: dnsPacket.Answer[], aa: boolean) =>
    dnsPacket.encode({ type: 'response', id: q.id, flags: (aa ? AA : 0) | rd | RA | rcode, questions: q.questions, answers });
  if (!question) return reply(RCODE.SERVFAIL, [], false);
  currentRecords(s);
  if (!mayAsk(s, client)) return reply(RCODE.REFUSED, [], false);
  // The first network (own first) that knows the name answers; NXDOMAIN only when none does.
  let nx: LocalAnswer | undefined;
  for (const scope of scopesFor(s, client)) {
    const local = answerLocal(question.name, question.type, currentRecords(scope), scope.domainName);
    if (local?.rcode === 'NOERROR') {
      const answers = local.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, class: 'IN' as const, data: a.data }));
      return reply(RCODE.NOERROR, answers, true);
    }
    nx ??= local;
  }
  if (nx) return reply(RCODE.NXDOMAIN, [], true);
  if (s.upstreams.length === 0) return reply(RCODE.SERVFAIL, [], false);
  return (await (tcp ? forwardTcp(s, query) : forward(s, query))) ?? reply(RCODE.SERVFAIL, [], false);
}

function bindUdp(s: ServerState, addr: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    sock.once('error', reject);
    sock.on('message', (msg, rinfo) => {
      void respond(s, msg, false, rinfo.address).then((out) => {
        if (out) sock.send(out, rinfo.port, rinfo.address);
      });
    });
    sock.bind(53, addr, () => {
      sock.removeListener('error', reject);
      sock.on('error', (e) => log(`udp ${addr}: ${e.message}`));
      resolve(sock);
    });
  });
}

/** DNS over TCP: each message with a two-byte length prefix. */
function bindTcp(s: ServerState, addr: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer((conn) => {
      let buf = Buffer.alloc(0);
      conn.on('error', () => conn.destroy());
      conn.setTimeout(10_000, () => conn.destroy());
      conn.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          void respond(s, Buffer.from(msg), true, conn.remoteAddress ?? '').then((out) => {
            if (!out) return;
            const len = Buffer.alloc(2);
            len.writeUInt16BE(out.length);
            conn.write(Buffer.concat([len, out]));
          });
        }
      });
    });
    srv.once('error', reject);
    srv.listen(53, addr, () => {
      srv.removeListener('error', reject);
      resolve(srv);
    });
  });
}

/** Retry a bind while the address is not there yet (an IPv6 gateway still in DAD), for up to 10 s or until `cancelled()`. */
async function withRetry<T>(what: string, fn: () => Promise<T>, cancelled: () => boolean): Promise<T | undefined> {
  for (let i = 0; i < 40 && !cancelled(); i++) {
    try {
      return await fn();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EADDRNOTAVAIL' || i === 39) {
        log(`${what}: ${(e as Error).message}`);
        if (code === 'EADDRINUSE') throw e;
        return undefined;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return undefined;
}

/**
 * Where names that are not ours go: $TSCNI_DNS_UPSTREAM (comma-separated; "none":
 * nowhere, every outside name is SERVFAIL) or the host's resolv.conf; never
 * the server's own addresses.
 */
export function upstreamsFrom(override: string | undefined, resolvConf: string, own: readonly string[]): string[] {
  if (override === 'none') return [];
  if (override) return override.split(',').filter((u) => u && !own.includes(u));
  return parseNameservers(resolvConf, own);
}

/** One network being served: its sockets, and what it listens as. */
interface Served {
  network: string;
  sig: string;
  state: ServerState;
  closers: (() => void)[];
  closed: boolean;
  /** At least one UDP socket bound: the network's pid file is written. */
  announced: boolean;
}

/** Run the host's server for the networks in `base`; resolves never (exits the process). */
export async function serve(base: string): Promise<void> {
  const other = runningServer(base);
  if (other && other !== process.pid) {
    log(`exiting: server ${other} already serves ${base}`);
    process.exit(0);
  }
  if (!existsSync(base)) throw new Error(`${base} does not exist: no network to serve`);
  writeFileAtomic(pidFile(base), `${process.pid}\n`, { mode: 0o644 });
  let resolvConf = '';
  try {
    resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // no resolv.conf: forward nowhere, answer SERVFAIL for outside names
  }
  const served = new Map<string, Served>();
  /** Networks whose every bind failed: not retried before `at` unless their network.json changes or a SIGHUP comes. */
  const failed = new Map<string, { sig: string; at: number }>();
  let idleSince: number | undefined;

  const writeNetworkPid = (n: Served) => {
    const dir = join(base, n.network);
    if (existsSync(dir)) writeFileAtomic(pidFile(dir), `${process.pid}\n${n.sig}\n`, { mode: 0o644 });
  };
  const close = (n: Served, why: string) => {
    n.closed = true;
    for (const c of n.closers.splice(0)) c();
    const file = pidFile(join(base, n.network));
    try {
      if (readFileSync(file, 'utf8').split('\n')[0] === String(process.pid)) rmSync(file, { force: true });
    } catch {
      // the network's directory is gone with its pid file
    }
    log(`stopped serving ${n.network}: ${why}`);
  };
  const open = (network: string, info: NetworkInfo, upstreams: string[]) => {
    const n: Served = {
      network,
      sig: networkSig(info),
      state: { dir: join(base, network), domainName: info.domainName, upstreams, records: [], stamp: -1, gateways: info.gateways, peers: () => [...served.values()].map((x) => x.state) },
      closers: [],
      closed: false,
      announced: false,
    };
    served.set(network, n);
    const keep = (closer: () => void) => (n.closed ? closer() : n.closers.push(closer));
    // Every gateway binds on its own; the network's pid file (what ADD waits for) is
    // written at the first UDP success, while an IPv6 gateway still in DAD keeps retrying.
    const binds = info.gateways.flatMap((gw) => [
      withRetry(`${network}: bind udp ${gw}:53`, () => bindUdp(n.state, gw), () => n.closed).then((u) => {
        if (!u) return;
        keep(() => u.close());
        if (!n.closed && !n.announced) {
          n.announced = true;
          writeNetworkPid(n);
        }
      }),
      withRetry(`${network}: bind tcp ${gw}:53`, () => bindTcp(n.state, gw), () => n.closed).then((t) => {
        if (t) keep(() => t.close());
      }),
    ]);
    void Promise.allSettled(binds).then(() => {
      if (n.closed) return;
      if (!n.announced) {
        // Nothing bound (the port is taken, or no gateway address exists): try again later.
        close(n, 'could not listen on any gateway');
        if (served.get(network) === n) served.delete(network);
        failed.set(network, { sig: n.sig, at: Date.now() + 5000 });
        return;
      }
      log(`serving ${network} on ${info.gateways.join(', ')} port 53`);
    });
  };

  const reconcile = (nudged: boolean) => {
    if (!existsSync(base)) return stop(`${base} is gone`);
    const want = new Map<string, NetworkInfo>();
    for (const network of networksIn(base)) {
      const info = readNetworkInfo(join(base, network));
      if (info && Array.isArray(info.gateways) && info.gateways.length > 0) want.set(network, info);
    }
    const own = [...want.values()].flatMap((i) => i.gateways);
    const upstreams = upstreamsFrom(process.env.TSCNI_DNS_UPSTREAM, resolvConf, own);
    // Removed or changed networks close first: a new network may reuse a gateway.
    for (const [network, n] of served) {
      const info = want.get(network);
      if (!info || networkSig(info) !== n.sig) {
        close(n, info ? 'its network.json changed' : 'removed');
        served.delete(network);
      }
    }
    for (const [network, info] of want) {
      const n = served.get(network);
      if (n) {
        n.state.upstreams = upstreams;
        // The network's directory was removed and made again with the same addresses.
        if (n.announced && servedByUs(join(base, network)) !== n.sig) writeNetworkPid(n);
        continue;
      }
      const f = failed.get(network);
      if (f && f.sig === networkSig(info) && Date.now() < f.at && !nudged) continue;
      failed.delete(network);
      open(network, info, upstreams);
    }
    if (served.size > 0 || want.size > 0) idleSince = undefined;
    else if (idleSince === undefined) idleSince = Date.now();
    else if (Date.now() - idleSince > 10_000) stop('no network left for 10 s');
  };
  const servedByUs = (dir: string): string | undefined => {
    try {
      const [pid, sig] = readFileSync(pidFile(dir), 'utf8').split('\n');
      return pid === String(process.pid) ? sig : undefined;
    } catch {
      return undefined;
    }
  };
  const stop = (why: string) => {
    log(`stopping: ${why}`);
    for (const n of served.values()) close(n, 'the server stops');
    try {
      if (readFileSync(pidFile(base), 'utf8').trim() === String(process.pid)) rmSync(pidFile(base), { force: true });
    } catch {
      // pid file already gone
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => reconcile(true));
  log(`serving ${base}, upstreams ${upstreamsFrom(process.env.TSCNI_DNS_UPSTREAM, resolvConf, []).join(', ') || '(none)'}`);
  reconcile(true);
  setInterval(() => reconcile(false), 1000);
  await new Promise<never>(() => {});
}
