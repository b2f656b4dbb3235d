/** The cross-process lock file (lib/file-lock.ts), against a real temp directory, in-process. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock, processStartTime } from '../../../lib/file-lock.ts';

let root: string;
let net: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tscni-lock-unit-'));
  net = join(root, 'n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('FileLock', () => {
  it('excludes, releases, and steals the lock of a dead holder', () => {
    mkdirSync(net);
    const a = new FileLock(net);
    a.acquire();
    expect(readFileSync(join(net, '.tscni-lock'), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}`);
    a.release();
    expect(existsSync(join(net, '.tscni-lock'))).toBe(false);
    const p = spawnSync('sh', ['-c', 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'], { encoding: 'utf8' });
    writeFileSync(join(net, '.tscni-lock'), p.stdout.trim());
    const b = new FileLock(net);
    b.acquire(2_000);
    expect(readFileSync(join(net, '.tscni-lock'), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}`);
    b.release();
  });

  it('is re-entrant: a nested acquire holds the lock until the outermost release', () => {
    mkdirSync(net);
    const l = new FileLock(net);
    l.acquire();
    l.acquire();
    l.release();
    expect(existsSync(join(net, '.tscni-lock'))).toBe(true);
    l.release();
    expect(existsSync(join(net, '.tscni-lock'))).toBe(false);
  });

  it('gets past a thief that died inside the steal section', () => {
    mkdirSync(net);
    const p = spawnSync('sh', ['-c', 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'], { encoding: 'utf8' });
    writeFileSync(join(net, '.tscni-lock'), p.stdout.trim());
    writeFileSync(join(net, '.tscni-lock-steal'), p.stdout.trim());
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(net, '.tscni-lock-steal'), old, old);
    const l = new FileLock(net);
    l.acquire(5_000);
    expect(readFileSync(join(net, '.tscni-lock'), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}`);
    expect(existsSync(join(net, '.tscni-lock-steal'))).toBe(false);
    l.release();
  });

  it('times out with code 11 while a live holder keeps it', () => {
    mkdirSync(net);
    writeFileSync(join(net, '.tscni-lock'), `1 ${processStartTime(1)}`); // pid 1 is alive
    let code = 0;
    try {
      new FileLock(net).acquire(50);
    } catch (e) {
      code = (e as { code: number }).code;
    }
    expect(code).toBe(11);
    expect(readFileSync(join(net, '.tscni-lock'), 'utf8')).toBe(`1 ${processStartTime(1)}`);
    try {
      new FileLock(net).acquire(50);
    } catch (e) {
      expect((e as Error).message).toContain('timed out after 50 ms waiting for the lock');
    }
  });
});
