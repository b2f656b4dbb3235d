/**
 * A private etcd for one test file: Debian's etcd-server with its own data
 * dir, one member, client and peer URLs on 127.0.0.1 at free ports (or on an
 * address inside a namespace), stopped by pid and its data dir removed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestEtcd {
  url: string;
  pid: number;
  dataDir: string;
  /** Stop it (SIGKILL by pid) and wait for the exit; the data dir stays (restart() reuses it). */
  kill(): Promise<void>;
  /** Start it again on the same URL and data dir. */
  restart(): Promise<void>;
  /** Stop it and remove the data dir. */
  stop(): Promise<void>;
}

/** Server TLS for etcd: clients must present a certificate signed by `ca`. */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
  /** A client certificate for the health probe. */
  clientCert: string;
  clientKey: string;
}

/**
 * A throwaway CA with a server certificate for 127.0.0.1 and a client
 * certificate, in `dir` (openssl; EC keys, one day).
 */
export function makeTestPki(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (n: string) => join(dir, n);
  const ossl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=tscni-o test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  for (const [name, ext] of [
    ['server', 'subjectAltName=DNS:etcd.tscni-o.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=tscni-o ${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ossl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

/** A TCP port nobody listens on at this moment. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether etcd answers /health, asked from inside `netns` (python3's urllib there) or from here. */
async function healthy(url: string, netns: string | undefined, tls?: EtcdTls): Promise<boolean> {
  if (netns || tls) {
    const ctx = tls ? `ctx=ssl.create_default_context(cafile='${tls.ca}');ctx.load_cert_chain('${tls.clientCert}','${tls.clientKey}')` : 'ctx=None';
    const code = `import urllib.request,json,ssl;${ctx};print(json.load(urllib.request.urlopen('${url}/health',timeout=0.5,context=ctx))['health'])`;
    const r = spawnSync(netns ? 'ip' : 'python3', netns ? ['netns', 'exec', netns, 'python3', '-c', code] : ['-c', code], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() === 'true';
  }
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false; // not listening yet
  }
}

async function waitHealthy(url: string, netns: string | undefined, tls: EtcdTls | undefined, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr().slice(-2000)}`);
    if (await healthy(url, netns, tls)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${url} not healthy in 15 s: ${stderr().slice(-2000)}`);
}

/**
 * Start etcd. `netns` runs it inside that named namespace (`ip netns exec`) on
 * `host`; the default is 127.0.0.1 in the test's own namespace.
 */
export async function startEtcd(opts: { netns?: string; host?: string; tls?: EtcdTls } = {}): Promise<TestEtcd> {
  const host = opts.host ?? '127.0.0.1';
  const scheme = opts.tls ? 'https' : 'http';
  const clientPort = opts.netns ? 2379 : await freePort();
  const peerPort = opts.netns ? 2380 : await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tscni-o-etcd-'));
  const url = `${scheme}://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  const argv = [
    'etcd',
    '--name', 'tscni-o',
    '--data-dir', dataDir,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `tscni-o=${peer}`,
    '--log-level', 'error',
    ...(opts.tls ? ['--cert-file', opts.tls.cert, '--key-file', opts.tls.key, '--trusted-ca-file', opts.tls.ca, '--client-cert-auth'] : []),
  ];
  let child: ChildProcess | undefined;
  let err = '';
  const launch = async () => {
    const full = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
    err = '';
    const c = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child = c;
    try {
      await waitHealthy(url, opts.netns, opts.tls, c, () => err);
    } catch (e) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); // never leave it behind
      throw e;
    }
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    process.kill(c.pid as number, 'SIGKILL');
    await exited;
  };
  try {
    await launch();
  } catch (e) {
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    url,
    get pid() {
      return child?.pid ?? -1;
    },
    dataDir,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
