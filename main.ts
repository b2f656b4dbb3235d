/**
 * The entry point of the one standalone executable (a Bun single-file
 * executable). Like busybox it dispatches on the name it was invoked as:
 * dist/bin/bridge, host-local, portmap, loopback ... are links to one file;
 * `tscni` is the runner CLI.
 *
 * The CLI (yargs and the runner) is bundled into the same file but loaded
 * with a dynamic import, so its module bodies run only when invoked as
 * `tscni`: a plugin call never evaluates them.
 */
import { basename } from 'node:path';
import { registerInProcessPlugins } from './cni/invoke.ts';
import { runPlugin } from './cni/run.ts';
import { PLUGIN_LOADERS } from '../plugins/registry.ts';

const CLI_NAMES = new Set(['tscni', 'entry.ts', 'entry.js']);

function main(): void {
  registerInProcessPlugins(process.execPath, PLUGIN_LOADERS);
  const invokedAs = basename(process.argv0 || process.execPath);
  const load = PLUGIN_LOADERS.get(invokedAs);
  if (load) {
    void load().then(runPlugin);
    return;
  }
  // Busybox style: `tscni-plugins loopback` runs the loopback plugin.
  const named = process.argv[2] ? PLUGIN_LOADERS.get(process.argv[2]) : undefined;
  if (named && !CLI_NAMES.has(invokedAs)) {
    void named().then(runPlugin);
    return;
  }
  void import('../cli/main.ts');
}

main();
