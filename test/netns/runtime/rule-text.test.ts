/**
 * Values from outside that reach rule text (comments, condition words) are
 * encoded, never interpreted: hostile strings (quotes, backslashes, #, ;,
 * braces, long ones) are rendered by our one encoder per format, loaded by
 * the real iptables-restore and nft inside a throwaway namespace, and read
 * back: each rule says exactly what was meant. Line breaks and NUL are
 * refused before any text is rendered.
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { nftQuote, nftStoredString } from '../../../lib/firewall/nft-text.ts';
import { parseRules, renderRestore, restoreArg } from '../../../lib/firewall/iptables-restore.ts';
import { createNetns, removeAllNetns } from '../../helpers/netns.ts';

afterAll(removeAllNetns);

// What iptables' comment match accepts: up to 255 bytes, no NUL or line break.
const hostile = fc
  .oneof(
    fc.string({ maxLength: 60 }),
    fc.constantFrom('"', "'", '\\', '\\"', '#', ';', '{', '}', '$(id)', '`id`', '-j ACCEPT', ' -A INPUT ', 'é', '🙂', '"x" y "z"', '\\\\"\\'),
    fc.stringMatching(/^[ -~]{100,200}$/),
  )
  .filter((s) => !/[\r\n\0]/.test(s) && s.length > 0 && Buffer.byteLength(s) <= 250);

describe('hostile values in rule text', () => {
  it('iptables-restore: every comment comes back exactly as it was written', () => {
    const ns = createNetns('rtxt');
    const comments = fc.sample(hostile, { numRuns: 60, seed: 4242 });
    const batch = renderRestore({
      table: 'filter',
      ops: [{ op: 'declare', chain: 'TSCNI-FUZZ' }, ...comments.map((c) => ({ op: 'append' as const, chain: 'TSCNI-FUZZ', args: ['-m', 'comment', '--comment', c, '-j', 'RETURN'] }))],
    });
    const r = spawnSync('ip', ['netns', 'exec', ns.name, 'iptables-restore', '--noflush', '-w'], { input: batch, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const listed = parseRules(ns.exec(['iptables', '-w', '-t', 'filter', '-S', 'TSCNI-FUZZ']));
    expect(listed.map((l) => l.comment)).toEqual(comments);
    expect(listed.every((l) => l.target === 'RETURN')).toBe(true);
  });

  it('nft: every comment comes back in its stored form, one rule per value', () => {
    const ns = createNetns('rtxt');
    const comments = fc.sample(hostile.map((s) => s.slice(0, 120)), { numRuns: 60, seed: 4343 });
    const script = ['add table inet tscni_fuzz', 'add chain inet tscni_fuzz c', ...comments.map((c) => `add rule inet tscni_fuzz c counter comment ${nftQuote(c)}`), ''].join('\n');
    const r = spawnSync('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(ns.exec(['nft', '-j', 'list', 'chain', 'inet', 'tscni_fuzz', 'c'])) as { nftables: Array<{ rule?: { comment?: string } }> };
    const listed = doc.nftables.filter((x) => x.rule).map((x) => x.rule?.comment);
    expect(listed).toEqual(comments.map((c) => nftStoredString(c)));
  });

  it('line breaks and NUL are refused before any text exists', () => {
    for (const s of ['a\nb', 'a\rb', 'a\0b']) expect(() => restoreArg(s)).toThrow(/line break or NUL/);
  });
});
