/**
 * lib/netns moves only the calling thread (setns) and must always bring it
 * back. The fixture runs under Bun (bun:ffi) and fails half-way inside a
 * pod namespace in three ways; after each, the thread is in the namespace it
 * started in, and the errors name the operation and the object.
 */
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns } from '../../helpers/netns.ts';

afterAll(removeAllNetns);

const BUN = join(ROOT, 'node_modules', '.bin', 'bun');

describe('namespace switching', () => {
  it('returns the JS thread to the host namespace after a failure half-way', () => {
    const ns = createNetns('thread');
    const hostNs = readlinkSync('/proc/self/ns/net');
    const r = spawnSync(BUN, [join(import.meta.dirname, 'fixtures', 'netns-failure.ts'), ns.path], { encoding: 'utf8', env: { ...process.env, BUN_BE_BUN: undefined } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { before: string; end: string; steps: Array<{ step: string; error: string; inside: string; after: string }> };
    // The fixture starts in the test's own namespace (the host's here).
    expect(out.before).toBe(hostNs);
    expect(out.steps.map((s) => s.step)).toEqual(['throw inside', 'sysctl refused', 'netlink refused']);
    for (const s of out.steps) {
      expect(s.error, s.step).not.toBe('');
      expect(s.after, s.step).toBe(out.before);
    }
    // It really was inside the pod's namespace when things failed.
    expect(out.steps[0]!.inside).not.toBe(out.before);
    expect(out.steps[1]!.inside).toBe(out.steps[0]!.inside);
    expect(out.steps[1]!.error).toBe(`failed to set sysctl net/ipv4/conf/lo/arp_notify=not-a-number in ${ns.path}: EINVAL: invalid argument, write`);
    expect(out.steps[2]!.error).toBe(`failed to create veth "tsthr0" (peer tsthr2): File exists`);
    expect(out.end).toBe(out.before);
    // Nothing left inside the pod namespace by the failed sequence.
    expect(ns.exec(['ip', '-o', 'link', 'show'])).not.toContain('tsthr');
  });
});
