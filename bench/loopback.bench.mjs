/**
 * loopback VERSION and ADD wall time next to `node -e 0`, plus peak RSS.
 * Targets: VERSION within 5 ms of `node -e 0`; peak RSS under 60 MB.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BIN, fmt, median, peakRssMb, table, timeSpawn } from './util.mjs';

const RUNS = 40;

export async function run() {
  const loopback = join(BIN, 'loopback');
  const node = process.execPath;
  const ns = `tscni-bench-lo-${process.pid}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    const env = { PATH: process.env.PATH, CNI_CONTAINERID: 'bench', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN };
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'bench', type: 'loopback' });
    const sample = (cmd, args, opts) => {
      timeSpawn(cmd, args, opts); // warm the page cache
      return Array.from({ length: RUNS }, () => timeSpawn(cmd, args, opts).ms);
    };
    const nodeMs = median(sample(node, ['-e', '0']));
    const versionMs = median(sample(loopback, [], { env: { ...env, CNI_COMMAND: 'VERSION' } }));
    const addMs = median(sample(loopback, [], { env: { ...env, CNI_COMMAND: 'ADD' }, input: conf }));
    const rssNode = peakRssMb(node, ['-e', '0']);
    const rssVersion = peakRssMb(loopback, [], { env: { ...env, CNI_COMMAND: 'VERSION' } });
    const rssAdd = peakRssMb(loopback, [], { env: { ...env, CNI_COMMAND: 'ADD' }, input: conf });
    table([
      ['measure', `median of ${RUNS}`, 'peak RSS'],
      [`node -e 0 (${process.version})`, fmt(nodeMs), `${rssNode.toFixed(1)} MB`],
      ['loopback VERSION', fmt(versionMs), `${rssVersion.toFixed(1)} MB`],
      ['loopback ADD', fmt(addMs), `${rssAdd.toFixed(1)} MB`],
    ]);
    const delta = versionMs - nodeMs;
    console.log(`VERSION - node -e 0 = ${delta.toFixed(1)} ms (target <= 5 ms: ${delta <= 5 ? 'met' : 'NOT met'})`);
    console.log(`peak RSS ${Math.max(rssVersion, rssAdd).toFixed(1)} MB (target < 60 MB: ${Math.max(rssVersion, rssAdd) < 60 ? 'met' : 'NOT met'})`);
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}
