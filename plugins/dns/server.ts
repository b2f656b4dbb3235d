/**
 * The name server of one network: `tscni dns serve --network NAME`, started
 * detached by the dnsname plugin when missing. It listens on the network's
 * gateway addresses, port 53 (UDP and TCP), answers A/AAAA for the network's
 * pods from the record files (re-read when records/ changes), and forwards
 * every other name to the host's resolvers (/etc/resolv.conf, or
 * $TSCNI_DNS_UPSTREAM, never its own addresses), over the transport the
 * client used (UDP, or TCP after a truncated reply).
 *
 * Its life: pid file written once bound; SIGTERM (from the plugin when the
 * last record goes, or `network rm`) closes it; it also exits on its own when
 * its network's directory disappears. Killed any other way, the next plugin
 * call starts a new one; it holds no state of its own.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import dnsPacket from 'dns-packet';
import { writeFileAtomic } from '../../lib/fs.ts';
import { answerLocal, parseNameservers } from './answer.ts';
import { findServer, pidFile, readNetworkInfo, readRecords, recordsStamp, type NameRecord } from './state.ts';

const AA = 0x400;
const RD = 0x100;
const RA = 0x80;
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;
const FORWARD_TIMEOUT_MS = 2500;

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} tscni-dns[${process.pid}]: ${msg}\n`);
}

export interface ServerState {
  dir: string;
  domainName: string;
  upstreams: string[];
  records: NameRecord[];
  stamp: number;
}

function currentRecords(s: ServerState): NameRecord[] {
  const stamp = recordsStamp(s.dir);
  // Directory mtimes are as coarse as the kernel's clock tick: a change in the
  // same tick as the last read keeps the stamp, so recent stamps always re-read.
  if (stamp !== s.stamp || Date.now() - stamp < 2000) {
    s.records = readRecords(s.dir);
    s.stamp = stamp;
  }
  return s.records;
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

/** One query in, one response out (undefined: drop, e.g. undecodable); `tcp`: the client asked over TCP. */
export async function respond(s: ServerState, query: Buffer, tcp = false): Promise<Buffer | undefined> {
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
  const local = answerLocal(question.name, question.type, currentRecords(s), s.domainName);
  if (local) {
    const answers = local.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, class: 'IN' as const, data: a.data }));
    return reply(RCODE[local.rcode], answers, true);
  }
  if (s.upstreams.length === 0) return reply(RCODE.SERVFAIL, [], false);
  return (await (tcp ? forwardTcp(s, query) : forward(s, query))) ?? reply(RCODE.SERVFAIL, [], false);
}

function bindUdp(s: ServerState, addr: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    sock.once('error', reject);
    sock.on('message', (msg, rinfo) => {
      void respond(s, msg).then((out) => {
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
          void respond(s, Buffer.from(msg), true).then((out) => {
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

/** Retry a bind while the address is not there yet (an IPv6 gateway still in DAD). */
async function withRetry<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  for (let i = 0; i < 40; i++) {
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

/** Run the server for the network whose state is in `dir`; resolves never (exits the process). */
export async function serve(dir: string, network: string): Promise<void> {
  const info = readNetworkInfo(dir);
  if (!info || info.gateways.length === 0) throw new Error(`no network.json with gateways in ${dir}: nothing to listen on`);
  let resolvConf = '';
  try {
    resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // no resolv.conf: forward nowhere, answer SERVFAIL for outside names
  }
  const upstreams = upstreamsFrom(process.env.TSCNI_DNS_UPSTREAM, resolvConf, info.gateways);
  const s: ServerState = { dir, domainName: info.domainName, upstreams, records: [], stamp: -1 };
  const closers: (() => void)[] = [];
  // Every gateway binds on its own; the pid file (what the plugin waits for) is
  // written at the first success, while an IPv6 gateway still in DAD keeps retrying.
  let announced = false;
  const announce = () => {
    if (announced) return;
    announced = true;
    writeFileAtomic(pidFile(dir), `${process.pid}\n`, { mode: 0o644 });
  };
  const lost = (e: unknown) => {
    // Another server of this network won the race for the port: it serves, we
    // leave, and the pid file names the winner (we may have written ours).
    log(`exiting: ${(e as Error).message}`);
    for (const c of closers) c();
    const winner = findServer(dir, network);
    if (winner) writeFileAtomic(pidFile(dir), `${winner}\n`, { mode: 0o644 });
    process.exit(0);
  };
  const binds = info.gateways.flatMap((gw) => [
    withRetry(`bind udp ${gw}:53`, () => bindUdp(s, gw)).then((u) => {
      if (u) {
        closers.push(() => u.close());
        announce();
      }
    }, lost),
    withRetry(`bind tcp ${gw}:53`, () => bindTcp(s, gw)).then((t) => {
      if (t) closers.push(() => t.close());
    }, lost),
  ]);
  await Promise.race([Promise.all(binds), new Promise((r) => setTimeout(r, 1000))]);
  if (!announced) await Promise.all(binds);
  if (!announced) throw new Error(`could not listen on any of ${info.gateways.join(', ')}`);
  log(`serving ${network} on ${info.gateways.join(', ')} port 53, upstreams ${upstreams.join(', ') || '(none)'}`);
  const stop = (why: string) => {
    log(`stopping: ${why}`);
    for (const c of closers) c();
    try {
      if (readFileSync(pidFile(dir), 'utf8').trim() === String(process.pid)) rmSync(pidFile(dir), { force: true });
    } catch {
      // pid file already gone
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The network was removed (or recreated under a new dir): nothing left to serve.
  setInterval(() => {
    if (!existsSync(dir)) stop(`${dir} is gone`);
  }, 2000);
  await new Promise<never>(() => {});
}
