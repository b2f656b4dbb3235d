/**
 * What the benchmark needs from the machine: root, the Go reference plugins,
 * strace and GNU time (installed with apt-get on Debian as root), a private
 * copy of our executable, a compiled empty Bun executable as the start-up
 * floor, and the facts printed in the report header.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progress, sh } from './proc.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST_BIN = join(ROOT, 'dist', 'bin');
export const REF_DIR = '/usr/lib/cni';
export const REF_PACKAGE = 'containernetworking-plugins';

const isDebian = () => existsSync('/etc/debian_version');
const isRoot = () => process.getuid?.() === 0;

/** apt-get install `pkg` (one apt-get update and a retry if the first attempt fails). */
function aptInstall(pkg) {
  progress(`installing ${pkg} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => sh(['apt-get', 'install', '-y', '-q', pkg], undefined, env).code === 0;
  if (install()) return true;
  sh(['apt-get', 'update', '-q'], undefined, env);
  return install();
}

/**
 * Make sure `file` exists, installing Debian package `pkg` if we may.
 * Returns null when it is there, else a sentence for the report saying why not.
 */
export function ensureTool(file, pkg) {
  if (existsSync(file)) return null;
  if (!isRoot() || !isDebian()) return `${file} is missing (Debian package ${pkg}); not installed: not root on Debian`;
  if (aptInstall(pkg) && existsSync(file)) return null;
  return `${file} is missing and apt-get install ${pkg} failed`;
}

/** The reference plugins: null when usable, else the note explaining the missing column. */
export function ensureReference() {
  const note = ensureTool(join(REF_DIR, 'bridge'), REF_PACKAGE);
  return note ? `${note}: the reference column is skipped` : null;
}

/**
 * Copy dist/bin/tscni into `dir` and hard-link every plugin name to it, so a
 * rebuild of dist/bin during the run (it removes the directory) cannot break
 * or change the executable under test. Returns { binDir, names }.
 */
export function snapshotOurs(dir) {
  const main = join(DIST_BIN, 'tscni');
  if (!existsSync(main)) throw new Error('dist/bin/tscni is missing: run `npm run build` (under flock /tmp/tscni-net.lock)');
  const ino = statSync(main).ino;
  const names = readdirSync(DIST_BIN).filter((n) => n !== 'tscni' && statSync(join(DIST_BIN, n)).ino === ino);
  mkdirSync(dir, { recursive: true });
  copyFileSync(main, join(dir, 'tscni'));
  for (const n of names) linkSync(join(dir, 'tscni'), join(dir, n));
  return { binDir: dir, names };
}

/**
 * Compile an empty program with the same Bun runtime and flags as build.mjs:
 * the floor under our start-up. Returns its path, or null (with a progress note).
 */
export function buildBunFloor(dir) {
  mkdirSync(dir, { recursive: true });
  // Empty on purpose: the runtime's own start and exit. (Even process.stdout.write
  // costs Bun several ms of stream set-up, which is the program's cost, not the floor.)
  const src = join(dir, 'empty.mjs');
  writeFileSync(src, '\n');
  const out = join(dir, 'empty');
  const runtime = join(ROOT, 'node_modules/@oven/bun-linux-x64-baseline/bin/bun');
  const args = ['build', src, '--compile', '--bytecode', '--format=esm', '--minify-syntax', '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig', '--target=bun-linux-x64-baseline', '--outfile', out];
  if (existsSync(runtime)) args.push(`--compile-executable-path=${runtime}`);
  const r = sh([join(ROOT, 'node_modules/.bin/bun'), ...args]);
  if (r.code !== 0) {
    progress(`could not compile the Bun floor: ${r.stderr.trim()}`);
    return null;
  }
  return out;
}

/** Machine and version facts for the report header. */
export function describeHost() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const git = (args) => sh(['git', '-C', ROOT, ...args]).stdout.trim();
  const commit = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) ? ' (with uncommitted changes)' : '';
  const stampFile = join(ROOT, 'dist', '.build-stamp');
  const stamp = existsSync(stampFile) ? readFileSync(stampFile, 'utf8').slice(0, 12) : 'unknown';
  const bun = JSON.parse(readFileSync(join(ROOT, 'node_modules/bun/package.json'), 'utf8')).version;
  const ref = sh(['dpkg-query', '-W', '-f', '${Version}', REF_PACKAGE]);
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu,
    cores: availableParallelism(),
    memGb: (totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    tscni: `${commit}${dirty}, build stamp ${stamp}`,
    bun,
    reference: ref.code === 0 && ref.stdout ? `${REF_PACKAGE} ${ref.stdout}` : 'not installed',
  };
}

/** Whether we run as root (the network sections need it). */
export { isRoot };
