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
import { writeSync } from 'node:fs';
import { basename } from 'node:path';
import { registerInProcessPlugins } from './lib/cni/invoke.ts';
import { runPlugin } from './lib/cni/run.ts';
import { PLUGIN_LOADERS } from './plugins/registry.ts';

const CLI_NAMES = new Set(['tscni', 'main.ts', 'main.js']);

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
  // A name we do not know, called the way a runtime calls a plugin: answer in the protocol, not with usage text.
  if (process.env.CNI_COMMAND && !CLI_NAMES.has(invokedAs)) {
    const msg = `unknown plugin "${invokedAs}": this tscni executable provides ${[...PLUGIN_LOADERS.keys()].join(', ')}`;
    writeSync(1, `${JSON.stringify({ cniVersion: '1.1.0', code: 7, msg }, null, 4)}\n`);
    process.exit(1);
  }
  void import('./cli/main.ts');
}

main();
