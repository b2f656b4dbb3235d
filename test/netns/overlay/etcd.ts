/**
 * A private etcd for one test file: Debian's etcd-server with its own data
 * dir, one member, client and peer URLs on 127.0.0.1 at free ports (or on an
 * address inside a namespace), stopped by pid and its data dir removed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
async function healthy(url: string, netns: string | undefined): Promise<boolean> {
  if (netns) {
    const code = `import urllib.request,json;print(json.load(urllib.request.urlopen('${url}/health',timeout=0.5))['health'])`;
    const r = spawnSync('ip', ['netns', 'exec', netns, 'python3', '-c', code], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() === 'true';
  }
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false; // not listening yet
  }
}

async function waitHealthy(url: string, netns: string | undefined, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr().slice(-2000)}`);
    if (await healthy(url, netns)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${url} not healthy in 15 s: ${stderr().slice(-2000)}`);
}

/**
 * Start etcd. `netns` runs it inside that named namespace (`ip netns exec`) on
 * `host`; the default is 127.0.0.1 in the test's own namespace.
 */
export async function startEtcd(opts: { netns?: string; host?: string } = {}): Promise<TestEtcd> {
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.netns ? 2379 : await freePort();
  const peerPort = opts.netns ? 2380 : await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tscni-o-etcd-'));
  const url = `http://${host}:${clientPort}`;
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
      await waitHealthy(url, opts.netns, c, () => err);
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
