/**
 * A private containerd for the client tests: its own root, state dir,
 * sockets and config (CRI plugin on, CNI conf dir and bin dir private, runc
 * with cgroupfs, overlayfs on the test machine's ext4), started without
 * systemd and stopped by pid. The CNI bin dir holds one small wrapper per
 * plugin name that records the environment and stdin containerd passed, then
 * execs our executable from dist/bin (or TSCNI_CLIENTS_CNI_PATH).
 *
 * The sandbox ("pause") image is built here: an OCI layout whose only layer is
 * Debian's busybox-static, entrypoint `sleep`; it is imported with `ctr`, as
 * there is no registry.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tryRun } from '../netns.ts';
import { PLUGIN_DIR } from './common.ts';
import { CriClient } from './cri-client.ts';

/** The image every test container runs: busybox, entrypoint sleep. */
export const IMAGE = 'tscni.test/busybox-sleep:1';
/** The plugin names the wrapper bin dir provides. */
const PLUGINS = ['loopback', 'bridge', 'host-local', 'portmap'];
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'sleep', 'httpd', 'wget', 'ip', 'ping', 'cat', 'echo', 'mkdir', 'hostname', 'ls', 'kill'];

export interface Containerd {
  dir: string;
  socket: string;
  confDir: string;
  binDir: string;
  /** one `<time>-<pid>.env` and `.stdin` file per plugin call */
  callLogDir: string;
  cri: CriClient;
  pid(): number;
  /** `ctr` against this containerd, in namespace k8s.io. */
  ctr(args: string[]): { code: number; stdout: string; stderr: string };
  /** Stop containerd (SIGTERM, by pid) and start it again on the same root and state. */
  restart(): Promise<void>;
  /** Stop the daemon, kill what it left (shims and their containers, by pid), unmount and delete its folders. */
  destroy(): Promise<void>;
}

function run(argv: string[], what: string): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${what}: \`${argv.join(' ')}\` failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function writeBlob(blobs: string, data: Buffer): { digest: string; size: number } {
  const hex = createHash('sha256').update(data).digest('hex');
  writeFileSync(join(blobs, hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/**
 * Build the busybox-static OCI image as a tar (an OCI layout with the
 * `io.containerd.image.name` annotation `ctr images import` names it by).
 */
export function buildImageTar(dir: string): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static (listed in .ci/apt-packages)`);
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const layerTar = join(dir, 'layer.tar');
  run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layerTar, '.'], 'building the test image');

  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layer = writeBlob(blobs, readFileSync(layerTar));
  const config = writeBlob(
    blobs,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: ['/bin/sleep', '1000000'], Env: ['PATH=/bin'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = writeBlob(
    blobs,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': '1' } }],
    }),
  );
  const out = join(dir, 'image.tar');
  run(['tar', '-C', layout, '-cf', out, '.'], 'building the test image');
  return out;
}

/** The wrapper each plugin name gets: record env and stdin, then exec the real plugin. */
function wrapper(logDir: string, name: string, target: string): string {
  return `#!/bin/sh
# Test wrapper: record what the runtime passed, then run the real plugin.
f="${logDir}/$(date +%s%N)-$$"
env > "$f.env"
echo "TSCNI_WRAPPED=${name}" >> "$f.env"
cat > "$f.stdin"
exec "${target}" < "$f.stdin"
`;
}

function configToml(d: { root: string; state: string; socket: string; confDir: string; binDir: string }): string {
  return `version = 2
root = "${d.root}"
state = "${d.state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${d.socket}"

[ttrpc]
  address = "${d.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${d.root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # This machine refuses lowering oom_score_adj (CRI asks -998 for sandboxes): keep containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_cgroup = false

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "${d.state}/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${d.binDir}"
  conf_dir = "${d.confDir}"
  max_conf_num = 1
`;
}

const live = new Set<Containerd>();

/**
 * Start a private containerd with the CRI plugin and `conflists` (file name ->
 * document) in its CNI conf dir; resolves once CRI answers Version and the
 * test image is imported.
 */
export async function startContainerd(conflists: Record<string, unknown> = {}): Promise<Containerd> {
  if (!existsSync('/usr/bin/containerd')) throw new Error('containerd is missing: apt-get install containerd runc (listed in .ci/apt-packages)');
  const dir = mkdtempSync(join(tmpdir(), 'tscni-c-ctrd-'));
  const d = { root: join(dir, 'root'), state: join(dir, 'state'), socket: join(dir, 'containerd.sock'), confDir: join(dir, 'net.d'), binDir: join(dir, 'bin') };
  const callLogDir = join(dir, 'calls');
  for (const p of [d.root, d.state, d.confDir, d.binDir, callLogDir]) mkdirSync(p, { recursive: true });
  for (const name of PLUGINS) {
    const w = join(d.binDir, name);
    writeFileSync(w, wrapper(callLogDir, name, join(PLUGIN_DIR, name)));
    chmodSync(w, 0o755);
  }
  // CRI reads its conf dir at start (and watches it): the network is there before containerd starts.
  for (const [file, doc] of Object.entries(conflists)) writeFileSync(join(d.confDir, file), JSON.stringify(doc, null, 2));
  const config = join(dir, 'config.toml');
  writeFileSync(config, configToml(d));

  const netnsBefore = new Set(listNetns());
  let child: ChildProcess | undefined;
  let cri = new CriClient(d.socket);
  const launch = async () => {
    const log = openSync(join(dir, 'containerd.log'), 'a');
    child = spawn('/usr/bin/containerd', ['--config', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    const end = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode}: ${readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000)}`);
      if (existsSync(d.socket)) {
        cri.close();
        cri = new CriClient(d.socket);
        try {
          await cri.version();
          return;
        } catch {
          // CRI is not serving yet.
        }
      }
      if (Date.now() > end) throw new Error(`containerd did not answer CRI Version within 20 s: ${readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    cri.close();
    const c = child;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    process.kill(c.pid, 'SIGTERM');
    const t = setTimeout(() => c.pid !== undefined && c.exitCode === null && process.kill(c.pid, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const ctr = (args: string[]) => tryRun(['ctr', '--address', d.socket, '--namespace', 'k8s.io', ...args]);

  const h: Containerd = {
    dir,
    socket: d.socket,
    confDir: d.confDir,
    binDir: d.binDir,
    callLogDir,
    get cri() {
      return cri;
    },
    pid: () => child?.pid ?? -1,
    ctr,
    restart: async () => {
      await stop();
      await launch();
    },
    destroy: async () => {
      live.delete(h);
      const ids = new Set(ctr(['containers', 'ls', '-q']).stdout.split('\n').filter(Boolean));
      if (child && child.exitCode === null) {
        // Let CRI tear the pods down (CNI DEL included) while it can.
        try {
          for (const s of await cri.listPodSandbox()) {
            ids.add(s.id);
            await cri.stopPodSandbox(s.id).catch(() => undefined);
            await cri.removePodSandbox(s.id).catch(() => undefined);
          }
        } catch {
          // containerd is not answering; fall through to killing what it left.
        }
      }
      await stop();
      killShims(d.socket);
      // What a failed teardown leaves: the sandboxes' netns mounts and libcni's cache entries.
      for (const n of listNetns()) if (!netnsBefore.has(n) && n.startsWith('cni-')) tryRun(['ip', 'netns', 'del', n]);
      for (const f of listDir(RESULTS)) if ([...ids].some((id) => f.includes(`-${id}-`))) rmSync(join(RESULTS, f), { force: true });
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
      // containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir (and ctr its fifos and runc
      // state under /run/containerd): remove these folders if we left them empty.
      for (const f of listDir('/run/containerd/fifo')) tryRun(['rmdir', join('/run/containerd/fifo', f)]);
      for (const p of ['/run/containerd/s', '/run/containerd/fifo', '/run/containerd/runc/k8s.io', '/run/containerd/runc', '/run/containerd']) tryRun(['rmdir', p]);
    },
  };
  live.add(h);
  try {
    await launch();
    const tar = buildImageTar(join(dir, 'image'));
    const imp = ctr(['images', 'import', '--snapshotter', 'overlayfs', tar]);
    if (imp.code !== 0) throw new Error(`ctr images import failed: ${imp.stderr}${imp.stdout}`);
  } catch (e) {
    await h.destroy();
    throw e;
  }
  return h;
}

/** Destroy every containerd started by startContainerd that is still alive (afterAll). */
export async function destroyAllContainerd(): Promise<void> {
  for (const h of [...live]) await h.destroy();
}

/** libcni's result cache, where containerd's go-cni keeps its entries. */
export const RESULTS = '/var/lib/cni/results';

function listDir(d: string): string[] {
  return existsSync(d) ? readdirSync(d) : [];
}

/** Names in /run/netns (where containerd 1.6 mounts sandbox namespaces, as cni-<uuid>). */
export function listNetns(): string[] {
  return listDir('/run/netns');
}

/** The network namespace path of a sandbox, from PodSandboxStatus's verbose info (runtimeSpec). */
export function netnsPathOf(info: Record<string, unknown>): string {
  const spec = info.runtimeSpec as { linux?: { namespaces?: { type: string; path?: string }[] } } | undefined;
  const path = spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  if (!path) throw new Error(`no network namespace path in the sandbox info: ${JSON.stringify(info).slice(0, 500)}`);
  return path;
}

/** Pids of processes whose command line contains `needle` as one argument. */
function pidsWithArg(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(needle)) pids.push(Number(p));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** Children of `pid` (from /proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** SIGKILL the shims that our containerd started (they carry `-address <socket>`) and their containers. */
function killShims(socket: string): void {
  for (const shim of pidsWithArg(socket)) {
    const tree = [shim];
    for (let i = 0; i < tree.length; i++) tree.push(...childrenOf(tree[i] as number));
    for (const p of tree.reverse()) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Unmount everything mounted below `dir` (rootfs overlays, shm), deepest first. */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) tryRun(['umount', '-l', m]);
}

/** One recorded plugin call: which plugin, its env, and the stdin JSON. */
export interface PluginCallRecord {
  plugin: string;
  env: Record<string, string>;
  stdin: Record<string, unknown>;
}

/** The plugin calls the wrappers recorded, oldest first. */
export function recordedCalls(h: Containerd): PluginCallRecord[] {
  return readdirSync(h.callLogDir)
    .filter((f) => f.endsWith('.env'))
    .sort()
    .map((f) => {
      const env = Object.fromEntries(
        readFileSync(join(h.callLogDir, f), 'utf8')
          .split('\n')
          .filter((l) => l.includes('='))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      const stdinText = readFileSync(join(h.callLogDir, f.replace(/\.env$/, '.stdin')), 'utf8');
      let stdin: Record<string, unknown> = {};
      try {
        stdin = JSON.parse(stdinText) as Record<string, unknown>;
      } catch {
        // VERSION calls send no config.
      }
      return { plugin: env.TSCNI_WRAPPED ?? '', env, stdin };
    });
}
