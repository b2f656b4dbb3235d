/**
 * Delegation against real executables: small shell scripts that play an IPAM
 * plugin, so the exec path (CNI_PATH lookup, stdin, env, exit codes) is real.
 */
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { delegate, delegateAdd, findInPath } from '../../../lib/cni/invoke.ts';

let dir: string;
let dir2: string;

function writePlugin(where: string, name: string, body: string): string {
  const p = join(where, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tscni-invoke-'));
  dir2 = mkdtempSync(join(tmpdir(), 'tscni-invoke-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(dir2, { recursive: true, force: true });
});

const STDIN = Buffer.from('{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"fake-ipam"}}');
const env = () => ({ PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH: `${dir}:${dir2}`, OTHER: 'kept' });

describe('findInPath', () => {
  it('finds the first executable regular file along CNI_PATH', () => {
    writePlugin(dir2, 'p', 'exit 0');
    expect(findInPath('p', `${dir}:${dir2}`)).toBe(join(dir2, 'p'));
    writePlugin(dir, 'p', 'exit 0');
    expect(findInPath('p', `${dir}:${dir2}`)).toBe(join(dir, 'p'));
  });

  it('names the plugin and the path when it is missing', () => {
    expect(() => findInPath('nope', dir)).toThrow(expect.objectContaining({ code: 7, msg: `failed to find plugin "nope" in path [${dir}]` }));
  });

  it('refuses names with a slash', () => {
    expect(() => findInPath('../bin/sh', dir)).toThrow(/invalid plugin name/);
  });

  it('complains about an empty CNI_PATH', () => {
    expect(() => findInPath('x', '')).toThrow(/no paths provided in CNI_PATH/);
  });
});

describe('delegate', () => {
  it('runs the plugin with the same stdin bytes and env, only CNI_COMMAND changed', async () => {
    const dump = join(dir, 'dump');
    writePlugin(dir2, 'fake-ipam', `cat > ${dump}.stdin; env > ${dump}.env; echo '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.240.1.2/24"}]}'`);
    const e = { ...env(), CNI_COMMAND: 'DEL' };
    const result = await delegate('ADD', 'fake-ipam', STDIN, e);
    expect(result).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.240.1.2/24' }] });
    expect(readFileSync(`${dump}.stdin`)).toEqual(STDIN);
    const childEnv = readFileSync(`${dump}.env`, 'utf8');
    expect(childEnv).toContain('CNI_COMMAND=ADD');
    expect(childEnv).toContain('CNI_CONTAINERID=c1');
    expect(childEnv).toContain('OTHER=kept');
  });

  it('returns nothing for DEL and passes the command through', async () => {
    writePlugin(dir, 'fake-ipam', `[ "$CNI_COMMAND" = DEL ] || exit 3`);
    await expect(delegate('DEL', 'fake-ipam', STDIN, env())).resolves.toBeUndefined();
  });

  it('turns the plugin\'s error JSON into a CniError with its code', async () => {
    writePlugin(dir, 'fake-ipam', `echo '{"code":50,"msg":"pool exhausted","details":"10.240.1.0/30"}'; exit 1`);
    await expect(delegateAdd('fake-ipam', STDIN, env())).rejects.toMatchObject({ code: 50, msg: 'pool exhausted', details: '10.240.1.0/30' });
  });

  it('falls back to stderr text when the plugin prints no error JSON', async () => {
    writePlugin(dir, 'fake-ipam', `echo 'segfault-ish' >&2; exit 2`);
    await expect(delegateAdd('fake-ipam', STDIN, env())).rejects.toMatchObject({ code: 999, msg: expect.stringContaining('segfault-ish') });
  });

  it('rejects a result that is not JSON with code 6', async () => {
    writePlugin(dir, 'fake-ipam', `echo 'hello'`);
    await expect(delegateAdd('fake-ipam', STDIN, env())).rejects.toMatchObject({ code: 6 });
  });

  it('retries while the plugin binary is busy being written ("text file busy")', async () => {
    const p = writePlugin(dir, 'fake-ipam', `echo '{"cniVersion":"1.0.0","ips":[{"address":"10.240.1.3/24"}]}'`);
    const fd = openSync(p, 'r+');
    writeSync(fd, '#'); // keep a writer open: exec now fails with ETXTBSY
    const closer = setTimeout(() => closeSync(fd), 120);
    try {
      await expect(delegateAdd('fake-ipam', STDIN, env())).resolves.toMatchObject({ ips: [{ address: '10.240.1.3/24' }] });
    } finally {
      clearTimeout(closer);
      try {
        closeSync(fd);
      } catch {
        // already closed by the timer
      }
    }
  });
});
