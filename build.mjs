#!/usr/bin/env bun
/**
 * npm run build: ONE standalone executable, a Bun single-file executable
 * (`bun build --compile --bytecode`), hard-linked under every plugin name in
 * dist/bin/. It runs on hosts without Node.js or Bun.
 *
 *   dist/bin/tscni       the executable; bridge, host-local, portmap, loopback ... are hard links
 *   dist/test-bin/tscni  the same with failure injection compiled in (lib/failpoint.ts), for tests only
 *
 * Flags and why (figures in the README's performance notes):
 *   --bytecode                      precompiled bytecode: VERSION ~35 -> ~10 ms (needs ESM output)
 *   --splitting                     each plugin and the CLI are chunks inside the one file, loaded
 *                                   on import: a call loads only its plugin (~1.5 ms less start-up)
 *   --no-compile-autoload-dotenv    a root plugin must never read .env from its working directory
 *   --no-compile-autoload-bunfig    ... nor bunfig.toml (it can preload arbitrary code)
 *   --target=bun-linux-x64-baseline runs on x86-64 CPUs without AVX2
 *
 * The Bun runtime also reads a few switches from the environment before our
 * code runs: BUN_BE_BUN (the executable becomes the `bun` CLI), BUN_OPTIONS
 * (extra runtime arguments, e.g. `--version`) and BUN_INSPECT* (debugger).
 * A runtime's environment must not change what a plugin does, so the build
 * renames those variables inside the executable to names that cannot occur
 * in an environment (the first byte becomes "="), and fails if Bun stopped
 * carrying one of them (a Bun upgrade must be looked at). A test proves it.
 *
 * Usage: bun build.mjs [--if-stale] [--target linux-x64|linux-arm64]
 *   --if-stale: do nothing when the sources have not changed since the last build.
 *   --target linux-arm64: also cross-build dist/bin-arm64/ (needs the
 *     @oven/bun-linux-aarch64 package from the npm registry; fetched with npm pack).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const stampFile = join(dist, '.build-stamp');
const bunPkg = JSON.parse(readFileSync(join(root, 'node_modules/bun/package.json'), 'utf8'));
const bunVersion = bunPkg.version;

/** Environment switches of the Bun runtime that the executable must ignore. */
export const NEUTRALISED_ENV = ['BUN_BE_BUN', 'BUN_OPTIONS', 'BUN_INSPECT'];

const TARGETS = {
  'linux-x64': { bunTarget: 'bun-linux-x64-baseline', pkg: '@oven/bun-linux-x64-baseline', binDir: join(dist, 'bin') },
  'linux-arm64': { bunTarget: 'bun-linux-arm64', pkg: '@oven/bun-linux-aarch64', binDir: join(dist, 'bin-arm64') },
};

/** The test build: the same executable with failure injection compiled in (lib/failpoint.ts), for rollback tests only. */
const TEST_TARGET = { ...TARGETS['linux-x64'], binDir: join(dist, 'test-bin'), failpoints: true };

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function listSources(dir, out = []) {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) listSources(p, out);
    else if (/\.(ts|mjs|json)$/.test(ent.name)) out.push(p);
  }
  return out;
}

function sourceStamp(targets) {
  const files = ['lib', 'plugins', 'ipam', 'cli'].flatMap((d) => (existsSync(join(root, d)) ? listSources(join(root, d)) : []));
  files.push(join(root, 'main.ts'), join(root, 'build.mjs'), join(root, 'package-lock.json'));
  const h = createHash('sha256');
  h.update(targets.join(','));
  for (const f of files.sort()) {
    h.update(f);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

/** The Bun runtime the executable is built from: the npm platform package, or for a foreign CPU one fetched with npm pack. */
function runtimeFor(target) {
  const local = join(root, 'node_modules', target.pkg, 'bin', 'bun');
  if (existsSync(local)) return local;
  const cache = join(root, 'node_modules', '.cache', 'tscni-bun', `${target.pkg.replace('/', '+')}-${bunVersion}`);
  const bin = join(cache, 'package', 'bin', 'bun');
  if (existsSync(bin)) return bin;
  mkdirSync(cache, { recursive: true });
  console.error(`build: fetching ${target.pkg}@${bunVersion} (npm pack)`);
  const tgz = execFileSync('npm', ['pack', '--silent', `${target.pkg}@${bunVersion}`, '--pack-destination', cache], { encoding: 'utf8' }).trim().split('\n').pop();
  execFileSync('tar', ['-xzf', join(cache, tgz), '-C', cache]);
  return bin;
}

/** Rename the runtime's environment switches inside the executable (see the header). */
function neutraliseEnvSwitches(file) {
  const data = readFileSync(file);
  for (const name of NEUTRALISED_ENV) {
    const needle = Buffer.from(name);
    let count = 0;
    for (let i = data.indexOf(needle); i !== -1; i = data.indexOf(needle, i + 1)) {
      data[i] = 0x3d; // "="
      count++;
    }
    if (count === 0) throw new Error(`build: ${name} not found in the Bun ${bunVersion} runtime; check what it does before shipping`);
  }
  writeFileSync(file, data, { mode: 0o755 });
}

function buildTarget(name, target) {
  const { PLUGIN_NAMES } = target.pluginNames;
  // Build beside the target directory and replace it only once the new executable is complete:
  // a failed build leaves the previous dist/bin in place.
  mkdirSync(dist, { recursive: true });
  const tmp = join(dist, `.tscni.tmp-${target.binDir.split('/').pop()}`);
  execFileSync(
    process.execPath,
    [
      'build',
      join(root, 'main.ts'),
      '--compile',
      '--splitting',
      '--bytecode',
      '--format=esm',
      '--minify-syntax',
      '--no-compile-autoload-dotenv',
      '--no-compile-autoload-bunfig',
      `--target=${target.bunTarget}`,
      `--compile-executable-path=${runtimeFor(target)}`,
      `--define=process.env.TSCNI_BUILD_WITH_FAILPOINTS=${JSON.stringify(target.failpoints ? '1' : '0')}`,
      '--outfile',
      tmp,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  neutraliseEnvSwitches(tmp);
  rmSync(target.binDir, { recursive: true, force: true });
  mkdirSync(target.binDir, { recursive: true });
  renameSync(tmp, join(target.binDir, 'tscni'));
  for (const p of PLUGIN_NAMES) linkSync(join(target.binDir, 'tscni'), join(target.binDir, p));
  const size = (statSync(join(target.binDir, 'tscni')).size / 1e6).toFixed(0);
  console.error(`build: ${target.binDir.slice(root.length + 1)}/{tscni,${PLUGIN_NAMES.join(',')}} (${name}, ${size} MB, one file)`);
}

if (!process.versions.bun) {
  console.error('build: run it with Bun (npm run build does: bun comes from devDependencies)');
  process.exit(1);
}
const wanted = ['linux-x64'];
const extra = argValue('--target');
if (extra && extra !== 'linux-x64') {
  if (!TARGETS[extra]) {
    console.error(`build: unknown --target ${extra} (linux-x64, linux-arm64)`);
    process.exit(2);
  }
  wanted.push(extra);
}
const stamp = sourceStamp(wanted);
if (process.argv.includes('--if-stale') && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(join(dist, 'bin', 'tscni'))) {
  console.error('build: dist/bin is up to date');
  process.exit(0);
}
const t0 = Date.now();
mkdirSync(dist, { recursive: true });
const pluginNames = await import('./plugins/registry.ts');
for (const name of wanted) buildTarget(name, { ...TARGETS[name], pluginNames });
buildTarget('linux-x64 test build', { ...TEST_TARGET, pluginNames });
writeFileSync(stampFile, stamp);
console.error(`build: done in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
