/**
 * The executables must run on a host without Node.js. In a private mount
 * namespace every `node` on this machine is hidden behind /dev/null and PATH
 * holds only system directories; the plugin must still work.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, sh } from '../../helpers/netns.ts';

afterAll(removeAllNetns);

const HIDE_NODE = 'for n in $(which -a node nodejs 2>/dev/null) "$NODE_BIN"; do [ -e "$n" ] && mount --bind /dev/null "$n"; done; ';

function withoutNode(script: string, env: Record<string, string>, input = '') {
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', HIDE_NODE + script], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NODE_BIN: process.execPath, ...env },
    input,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('standalone executable', () => {
  it('really hides node in the test environment', () => {
    const r = withoutNode(`node -e 0 && echo still-there; "$NODE_BIN" -e 0 && echo still-there; true`, {});
    expect(r.stdout).not.toContain('still-there');
  });

  it('runs loopback ADD with no node reachable', () => {
    const ns = createNetns('standalone');
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'tscni-lo', type: 'loopback' });
    const r = withoutNode(`exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=${ns.path} CNI_IFNAME=eth0 CNI_PATH=/nonexistent ${binPath('loopback')}`, {}, conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.1.0', interfaces: [{ name: 'lo', sandbox: ns.path }] });
    expect(sh(['ip', 'netns', 'exec', ns.name, 'ip', '-o', 'link', 'show', 'lo'])).toContain('UP');
  });

  it('answers VERSION with no node reachable and an empty environment', () => {
    const r = withoutNode(`exec env -i CNI_COMMAND=VERSION ${binPath('loopback')}`, {});
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.1.0' });
  });

  it('runs the tscni CLI (yargs bundle inside the executable) with no node reachable', () => {
    const help = withoutNode(`exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ${binPath('tscni')} --help`, {});
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('tscni up <net> <name>');
    const ns = createNetns('standalone');
    const exec = withoutNode(`exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ${binPath('tscni')} exec ${ns.path} -- ip -o link show lo`, {});
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toContain('lo:');
  });
});
