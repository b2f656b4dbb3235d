/** lib/firewall/iptables-restore.ts: rules as data rendered to restore text, and `iptables -S` read back. */
import { describe, expect, it } from 'vitest';
import { parseRules, parseTagComment, renderRestore, restoreArg, splitRuleWords } from '../../../../lib/firewall/iptables-restore.ts';

describe('iptables-restore text', () => {
  it('renders a batch in order, quoting only what needs it', () => {
    expect(
      renderRestore({
        table: 'nat',
        ops: [
          { op: 'declare', chain: 'CNI-X' },
          { op: 'delete', chain: 'POSTROUTING', args: ['-s', '10.0.0.2', '-j', 'CNI-X'] },
          { op: 'flush', chain: 'CNI-X' },
          { op: 'append', chain: 'CNI-X', args: ['-m', 'comment', '--comment', 'name: "n" id: "c"', '-j', 'ACCEPT'] },
          { op: 'insert', chain: 'OUTPUT', args: ['-j', 'CNI-X'] },
          { op: 'deleteChain', chain: 'CNI-Y' },
        ],
      }),
    ).toBe(
      [
        '*nat',
        ':CNI-X - [0:0]',
        '-D POSTROUTING -s 10.0.0.2 -j CNI-X',
        '-F CNI-X',
        '-A CNI-X -m comment --comment "name: \\"n\\" id: \\"c\\"" -j ACCEPT',
        '-I OUTPUT -j CNI-X',
        '-X CNI-Y',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(restoreArg('plain')).toBe('plain');
    expect(restoreArg('a b')).toBe('"a b"');
    expect(restoreArg('back\\slash')).toBe('"back\\\\slash"');
  });

  it('reads `iptables -S` back: words, chain, target, comment, and the reference tags', () => {
    const text = ['-N CNI-X', '-A CNI-X -d 10.0.0.0/24 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j ACCEPT', '-P OUTPUT ACCEPT'].join('\n');
    const [r] = parseRules(text);
    expect(parseRules(text)).toHaveLength(1);
    expect(r).toEqual({ chain: 'CNI-X', args: ['-d', '10.0.0.0/24', '-m', 'comment', '--comment', 'name: "n" id: "c"', '-j', 'ACCEPT'], target: 'ACCEPT', comment: 'name: "n" id: "c"' });
    // What was read renders back to the same text.
    expect(renderRestore({ table: 'nat', ops: [{ op: 'delete', chain: r!.chain, args: r!.args }] }).split('\n')[1]).toBe(`-D ${text.split('\n')[1]!.slice(3)}`);
    expect(splitRuleWords('-A X --comment "a \\"b\\" c"   -j Y')).toEqual(['-A', 'X', '--comment', 'a "b" c', '-j', 'Y']);
    expect(parseTagComment('name: "n" id: "c"')).toEqual({ name: 'n', id: 'c' });
    expect(parseTagComment('dnat name: "n\\"q" id: "c"', 'dnat')).toEqual({ name: 'n"q', id: 'c' });
    expect(parseTagComment('dnat name: "n" id: "c"')).toBeUndefined();
  });
});
