/**
 * The entry point of the one standalone executable. Like busybox it
 * dispatches on the name it was invoked as: dist/bin/bridge, host-local,
 * portmap, loopback ... are links to one file; `tscni` is the runner CLI.
 *
 * Built as a V8 startup snapshot: module top level runs at build time, so
 * env, argv and stdin are read only inside main().
 */
import { basename } from 'node:path';
import v8 from 'node:v8';
import { registerInProcessPlugins } from './cni/invoke.ts';
import { runPlugin } from './cni/run.ts';
import { PLUGINS } from '../plugins/registry.ts';

const CLI_NAMES = new Set(['tscni', 'tscni.cjs', 'entry.cjs', 'plugins.cjs']);

function runCli(): void {
  // The CLI (yargs) cannot live in a snapshot and would slow every plugin
  // call, so it ships as a separate bundle: a SEA asset, or a file in dev.
  const req = (id: string) => process.getBuiltinModule(id);
  const sea = process.getBuiltinModule('node:sea') as typeof import('node:sea') | undefined;
  if (sea?.isSea()) {
    const code = sea.getAsset('cli.cjs', 'utf8');
    const fn = new Function('require', 'module', 'exports', '__filename', '__dirname', code);
    const mod = { exports: {} };
    fn(req, mod, mod.exports, process.execPath, process.execPath);
    return;
  }
  const { createRequire } = process.getBuiltinModule('node:module') as typeof import('node:module');
  const path = process.getBuiltinModule('node:path') as typeof import('node:path');
  createRequire(__filename)(path.join(__dirname, 'cli.cjs'));
}

function main(): void {
  registerInProcessPlugins(process.execPath, PLUGINS);
  const invokedAs = basename(process.argv0);
  const plugin = PLUGINS.get(invokedAs);
  if (plugin) {
    void runPlugin(plugin);
    return;
  }
  // Busybox style: `tscni-plugins loopback` runs the loopback plugin.
  const named = process.argv[2] ? PLUGINS.get(process.argv[2]) : undefined;
  if (named && !CLI_NAMES.has(invokedAs)) {
    void runPlugin(named);
    return;
  }
  runCli();
}

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  v8.startupSnapshot.setDeserializeMainFunction(main);
} else {
  main();
}
