/**
 * The real cnitool, built offline from Debian's libcni source package
 * (golang-github-appc-cni): the source package is fetched with `apt-get
 * source` through a private source list (the machine's apt configuration is
 * not changed), unpacked with dpkg-source, and cnitool.go is compiled in
 * GOPATH mode against the libcni sources that golang-github-appc-cni-dev
 * installs under /usr/share/gocode (no module proxy needed). The binary is
 * cached under node_modules/.cache, keyed by the package version.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../plugin.ts';

const DEV_PACKAGE = 'golang-github-appc-cni-dev';
const SOURCE_PACKAGE = 'golang-github-appc-cni';
const GOCODE = '/usr/share/gocode';

function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', cwd: opts.cwd, env: { ...process.env, ...opts.env } });
  if (r.error || r.status !== 0) {
    throw new Error(`building cnitool: \`${argv.join(' ')}\` failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** The installed libcni -dev version, e.g. "1.1.2-1"; a clear error naming the packages when it is missing. */
export function libcniVersion(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', DEV_PACKAGE], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) {
    throw new Error(`cnitool needs Debian's ${DEV_PACKAGE}, golang-go and dpkg-dev (listed in .ci/apt-packages): apt-get install ${DEV_PACKAGE} golang-go dpkg-dev`);
  }
  return r.stdout.trim();
}

/**
 * Path of a cnitool binary built from the same libcni version as the
 * installed -dev package; builds it on first use (a few seconds).
 */
export function ensureCnitool(): string {
  const version = libcniVersion();
  const cacheDir = join(ROOT, 'node_modules', '.cache', 'tscni-clients', `cnitool-${version}`);
  const bin = join(cacheDir, 'cnitool');
  if (existsSync(bin)) return bin;

  const work = mkdtempSync(join(tmpdir(), 'tscni-c-cnitool-'));
  try {
    // A private source list and lists folder: `apt-get source` without touching /etc/apt.
    const lists = join(work, 'lists');
    mkdirSync(join(lists, 'partial'), { recursive: true });
    const sourcesList = join(work, 'sources.list');
    writeFileSync(sourcesList, 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n');
    const apt = ['-o', `Dir::Etc::sourcelist=${sourcesList}`, '-o', 'Dir::Etc::sourceparts=-', '-o', `Dir::State::Lists=${lists}`];
    run(['apt-get', ...apt, 'update']);
    const src = join(work, 'src');
    mkdirSync(src);
    run(['apt-get', ...apt, 'source', '--download-only', `${SOURCE_PACKAGE}=${version}`], { cwd: src });
    const dsc = readdirSync(src).find((f) => f.endsWith('.dsc'));
    if (!dsc) throw new Error(`building cnitool: apt-get source ${SOURCE_PACKAGE}=${version} fetched no .dsc`);
    run(['dpkg-source', '-x', dsc, 'tree'], { cwd: src });

    const gopath = join(work, 'gopath');
    mkdirSync(join(gopath, 'src', 'cnitool'), { recursive: true });
    copyFileSync(join(src, 'tree', 'cnitool', 'cnitool.go'), join(gopath, 'src', 'cnitool', 'cnitool.go'));
    mkdirSync(cacheDir, { recursive: true });
    run(['go', 'build', '-o', `${bin}.tmp`, 'cnitool'], {
      cwd: join(gopath, 'src', 'cnitool'),
      env: { GOPATH: `${gopath}:${GOCODE}`, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', GOCACHE: join(work, 'gocache') },
    });
    run(['mv', `${bin}.tmp`, bin]);
    return bin;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface CnitoolOut {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run cnitool `verb net netns` with NETCONFPATH and CNI_PATH set and only the
 * given extra variables (CAP_ARGS, CNI_ARGS, CNI_IFNAME). libcni 1.1.2 always
 * caches results in /var/lib/cni/results.
 */
export function cnitool(bin: string, verb: string, net: string, netns: string, env: { netDir: string; cniPath: string; extra?: Record<string, string> }): CnitoolOut {
  const r = spawnSync(bin, [verb, net, netns], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: env.netDir, CNI_PATH: env.cniPath, ...env.extra },
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
