/**
 * The kernel lock (flock(2) through the FFI layer, under Bun as the
 * executables run): two processes exclude each other, a killed holder's
 * lock vanishes at once (no pid file, no stealing), a waiter gives up with
 * code 11, and a flock(2) on host-local's
 * `lock` file excludes our host-local ADD (the two implementations
 * serialise on one node).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, ROOT, binPath } from '../../helpers/plugin.ts';

const BUN = join(ROOT, 'node_modules', '.bin', 'bun');
const FIXTURE = join(import.meta.dirname, 'fixtures', 'flock-holder.ts');
const dir = mkdtempSync(join(tmpdir(), 'tscni-flock-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Start a holder; resolves once it printed "held". */
function holder(path: string, holdMs: number): Promise<ChildProcess> {
  const c = spawn(BUN, [FIXTURE, path, String(holdMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return new Promise((resolve, reject) => {
    c.stdout?.once('data', (b: Buffer) => (b.toString().startsWith('held') ? resolve(c) : reject(new Error(b.toString()))));
    c.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
}

/** Take the lock in another process, waiting at most `timeoutMs`; exit 3 and "error <code> ..." when it gives up. */
const waitFor = (path: string, timeoutMs: number) => spawnSync(BUN, [FIXTURE, path, '0', String(timeoutMs)], { encoding: 'utf8' });

describe('flock(2) lock', () => {
  it('excludes another process while held, and vanishes with a holder killed by SIGKILL', async () => {
    const path = join(dir, 'lock');
    const h = await holder(path, 60_000);
    // While it is held, a second process cannot take it (it gives up after its timeout, code 11).
    const blocked = waitFor(path, 300);
    expect(blocked.status).toBe(3);
    expect(blocked.stdout).toContain(`error 11 timed out after 300 ms waiting for the lock ${path}`);
    // The holder dies without releasing: the kernel releases for it; no stealing, no stale file.
    h.kill('SIGKILL');
    await new Promise((r) => h.once('exit', r));
    const after = waitFor(path, 5000);
    expect(after.status, after.stdout).toBe(0);
    expect(after.stdout).toMatch(/^held after \d+ ms/);
  });

  it("our host-local waits while the reference's lock file is held with flock(2), then proceeds", async () => {
    const data = join(dir, 'ipam');
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'tscni-flock', type: 'host-local', ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.244.254.0/24' }]] } });
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'fl1', CNI_NETNS: '/dev/null', CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR };
    expect(spawnSync(binPath('host-local'), [], { env, input: conf }).status).toBe(0);
    // What the reference does (Go's unix.Flock, LOCK_EX) on <dataDir>/<network>/lock: the same syscall, held by another process.
    const ref = await holder(join(data, 'tscni-flock', 'lock'), 60_000);
    const add = spawn(binPath('host-local'), [], { env: { ...env, CNI_CONTAINERID: 'fl2' }, stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(add);
    add.stdin.end(conf);
    const done = new Promise<number | null>((r) => add.once('exit', r));
    // While the reference holds the lock, our ADD does not finish.
    const early = await Promise.race([done.then(() => 'finished'), new Promise((r) => setTimeout(() => r('waiting'), 500))]);
    expect(early).toBe('waiting');
    ref.kill('SIGKILL');
    expect(await done).toBe(0);
  });
});
