/**
 * lib/file-lock.ts under Node: the process-local lock the unit tests of the
 * index logic run with (Node has no flock). The kernel lock itself is tested
 * under Bun, across processes: test/netns/runtime/flock.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock, processStartTime } from '../../../lib/file-lock.ts';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tscni-lock-unit-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('FileLock (process-local under Node)', () => {
  it('is re-entrant and creates its lock file', () => {
    const l = new FileLock(join(root, 'lock'));
    l.acquire();
    l.acquire();
    l.release();
    l.release();
    l.release(); // extra releases are harmless
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(2 ** 22 + 7)).toBeUndefined();
  });
});
