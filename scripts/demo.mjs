#!/usr/bin/env node
/**
 * npm run demo (foundation stage): runs dist/bin/loopback the way a runtime
 * does, in a throwaway namespace, and verifies each step. Cleans up always.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const loopback = join(root, 'dist', 'bin', 'loopback');
const ns = `tscni-demo-lo-${process.pid}`;
const say = (m) => console.log(`\n==> ${m}`);
const fail = (m) => {
  console.error(`demo FAILED: ${m}`);
  process.exitCode = 1;
};

if (process.getuid?.() !== 0) {
  console.error('demo: run as root (it creates a network namespace)');
  process.exit(1);
}

function call(command, conf) {
  const r = spawnSync(loopback, [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: 'demo', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: join(root, 'dist', 'bin') },
  });
  return { code: r.status, out: r.stdout };
}

const loUp = () => execFileSync('ip', ['-n', ns, '-o', 'link', 'show', 'lo'], { encoding: 'utf8' }).includes(',UP');

try {
  say(`create network namespace ${ns} ("none" network mode: only loopback)`);
  execFileSync('ip', ['netns', 'add', ns]);
  console.log(`lo is ${loUp() ? 'UP' : 'DOWN'} in a fresh namespace`);

  say('CNI ADD with dist/bin/loopback (config on stdin, CNI_* in the environment)');
  const add = call('ADD', { cniVersion: '1.1.0', name: 'demo-lo', type: 'loopback' });
  console.log(add.out.trim());
  if (add.code !== 0 || !loUp()) fail('loopback ADD did not bring lo up');
  else console.log('verified: lo is UP');

  say('ping 127.0.0.1 inside the namespace');
  const ping = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', '127.0.0.1'], { encoding: 'utf8' });
  if (ping.status !== 0) fail(`ping failed: ${ping.stderr}`);
  else console.log('verified: loopback answers');

  say('CNI CHECK, then DEL');
  const check = call('CHECK', { cniVersion: '1.1.0', name: 'demo-lo', type: 'loopback' });
  if (check.code !== 0) fail(`CHECK failed: ${check.out}`);
  const del = call('DEL', { cniVersion: '1.1.0', name: 'demo-lo', type: 'loopback' });
  if (del.code !== 0 || loUp()) fail('DEL did not bring lo down');
  else console.log('verified: CHECK passed, DEL brought lo down');
} finally {
  spawnSync('ip', ['netns', 'del', ns]);
  say(process.exitCode ? 'demo failed (cleaned up)' : 'demo done, namespace removed');
}
