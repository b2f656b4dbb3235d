import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withLeaseLock } from '../../../ipam/etcd-subnet/lease.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function lockPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'tscni-o-lock-'));
  dirs.push(d);
  return join(d, 'net.lease.lock');
}

describe('the lease lock', () => {
  it('serialises holders and is gone afterwards', async () => {
    const path = lockPath();
    const log: string[] = [];
    const holder = (n: string) =>
      withLeaseLock(path, async () => {
        log.push(`${n}+`);
        await new Promise((r) => setTimeout(r, 30));
        log.push(`${n}-`);
        return n;
      });
    expect(await Promise.all([holder('a'), holder('b')])).toEqual(['a', 'b']);
    expect(log).toEqual(['a+', 'a-', 'b+', 'b-']);
    expect(existsSync(path)).toBe(false);
  });

  it("takes over a dead holder's lock, and releases on a throw", async () => {
    const path = lockPath();
    writeFileSync(path, '999999999 12345');
    await expect(withLeaseLock(path, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(path)).toBe(false);
  });
});
