/** Golden tests: names, tags and rendered rule text must match the Go reference byte for byte. */
import { describe, expect, it } from 'vitest';
import { formatChainName, formatComment } from '../../../../lib/firewall/naming.ts';
import {
  masqJump,
  missingMasq,
  parseMasqComment,
  parsePostrouting,
  renderMasqSetup,
  renderMasqTeardown,
  renderMasqTeardownExact,
  splitRuleWords,
} from '../../../../lib/firewall/masquerade-iptables.ts';
import { commentForInstance, parseNftRules, renderNftDeleteRules, renderNftMasqSetup } from '../../../../lib/firewall/masquerade-nftables.ts';

describe('chain names and comments (reference values from pkg/utils tests)', () => {
  it('hashes name+id into a 28-character chain name', () => {
    expect(formatChainName('test', '1234')).toBe('CNI-2bbe0c48b91a7d1b8a6753a8');
    expect(formatChainName('testalongnamethatdoesnotmakesense', '1234')).toBe('CNI-374f33fe84ab0ed84dcdebe3');
    expect(formatChainName('test', '1234', 'PREFIX-')).toBe('CNI-PREFIX-2bbe0c48b91a7d1b8');
  });
  it('formats the iptables comment with Go %q quoting', () => {
    expect(formatComment('tscni-tb', 'abc')).toBe('name: "tscni-tb" id: "abc"');
  });
  it('formats the nftables comment (reference values from ipmasq_nftables tests)', () => {
    expect(commentForInstance('unit-test', 'eth0', 'one')).toBe('6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one');
    expect(commentForInstance('alternate', 'net1', 'three')).toBe('82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three');
  });
});

describe('iptables masquerade rendering', () => {
  const chain = formatChainName('tscni-tb', 'c1');
  const comment = formatComment('tscni-tb', 'c1');
  it('renders one restore batch per family', () => {
    expect(renderMasqSetup(4, chain, comment, ['10.241.1.5/24'])).toBe(
      [
        '*nat',
        `:${chain} - [0:0]`,
        `-A ${chain} -d 10.241.1.0/24 -j ACCEPT -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\""`,
        `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\""`,
        `-A POSTROUTING -s 10.241.1.5 -j ${chain} -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\""`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderMasqSetup(6, chain, comment, ['fd10:241:0:1::5/64'])).toContain(`! -d ff00::/8 -j MASQUERADE`);
    expect(renderMasqSetup(6, chain, comment, ['fd10:241:0:1::5/64'])).toContain(`-A POSTROUTING -s fd10:241:0:1::5 -j ${chain}`);
  });
  it('parses iptables -S POSTROUTING and its quoted comments', () => {
    const text = [
      '-P POSTROUTING ACCEPT',
      `-A POSTROUTING -s 10.241.1.5/32 -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\"" -j ${chain}`,
      '-A POSTROUTING -o eth9 -j MASQUERADE',
    ].join('\n');
    const rules = parsePostrouting(text);
    expect(rules).toHaveLength(2);
    const spec = `-s 10.241.1.5/32 -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\"" -j ${chain}`;
    expect(rules[0]).toEqual({ args: ['-s', '10.241.1.5/32', '-m', 'comment', '--comment', comment, '-j', chain], target: chain, comment: comment });
    expect(parseMasqComment(rules[0]?.comment)).toEqual({ name: 'tscni-tb', id: 'c1' });
    expect(parseMasqComment('something else')).toBeUndefined();
    expect(splitRuleWords('-A X --comment "a \\"b\\" c" -j Y')).toEqual(['-A', 'X', '--comment', 'a "b" c', '-j', 'Y']);
    expect(renderMasqTeardown([chain], rules)).toBe(
      // The listed rule goes back out exactly as iptables printed it.
      ['*nat', `-D POSTROUTING ${spec}`, `:${chain} - [0:0]`, `-X ${chain}`, 'COMMIT', ''].join('\n'),
    );
  });
  it('renders an exact-spec teardown without listing', () => {
    expect(renderMasqTeardownExact(chain, comment, ['10.241.1.5/24'])).toBe(
      ['*nat', `-D POSTROUTING -s 10.241.1.5 -j ${chain} -m comment --comment "name: \\"tscni-tb\\" id: \\"c1\\""`, `:${chain} - [0:0]`, `-X ${chain}`, 'COMMIT', ''].join('\n'),
    );
  });
});

describe('iptables masquerade CHECK (missingMasq: -S <chain> text, and the addresses whose jump -C found)', () => {
  const chain = 'CNI-0123456789abcdef01234567';
  const tag = '-m comment --comment "name: \\"n\\" id: \\"c1\\""';
  const comment = 'name: "n" id: "c1"';
  const full = [`-N ${chain}`, `-A ${chain} -d 10.0.0.0/24 ${tag} -j ACCEPT`, `-A ${chain} -d 10.0.1.0/24 ${tag} -j ACCEPT`, `-A ${chain} ! -d 224.0.0.0/4 ${tag} -j MASQUERADE`].join('\n');
  const cidrs = ['10.0.0.2/24', '10.0.1.2/24'];

  it('nothing missing when the jumps and the chain\'s rules are there', () => {
    expect(missingMasq(4, chain, comment, cidrs, full, cidrs)).toEqual([]);
  });

  it('a flushed or missing chain: every address; a missing jump: that address; a missing ACCEPT or MASQUERADE: every address', () => {
    expect(missingMasq(4, chain, comment, cidrs, `-N ${chain}`, cidrs)).toEqual(cidrs);
    expect(missingMasq(4, chain, comment, cidrs, '', cidrs)).toEqual(cidrs);
    expect(missingMasq(4, chain, comment, cidrs, full, ['10.0.0.2/24'])).toEqual(['10.0.1.2/24']);
    expect(missingMasq(4, chain, comment, cidrs, full.replace(`-A ${chain} -d 10.0.1.0/24 ${tag} -j ACCEPT`, ''), cidrs)).toEqual(cidrs);
    expect(missingMasq(4, chain, comment, cidrs, full.replace('! -d 224.0.0.0/4', '-d 224.0.0.0/4'), cidrs)).toEqual(cidrs);
    expect(missingMasq(4, chain, 'name: "n" id: "other"', cidrs, full, cidrs)).toEqual(cidrs);
  });

  it('IPv6: ff00::/8', () => {
    const c6 = [`-A ${chain} -d fd10::/64 ${tag} -j ACCEPT`, `-A ${chain} ! -d ff00::/8 ${tag} -j MASQUERADE`].join('\n');
    expect(missingMasq(6, chain, comment, ['fd10::2/64'], c6, ['fd10::2/64'])).toEqual([]);
    expect(missingMasq(6, chain, comment, ['fd10::2/64'], c6.replace('ff00::/8', '224.0.0.0/4'), ['fd10::2/64'])).toEqual(['fd10::2/64']);
  });

  it('the -C of a jump is the rule masqRules appends to POSTROUTING', () => {
    expect(masqJump(chain, comment, '10.0.0.2/24')).toEqual(['POSTROUTING', '-s', '10.0.0.2', '-j', chain, '-m', 'comment', '--comment', comment]);
  });
});

describe('nftables masquerade rendering', () => {
  it('matches the reference transaction layout', () => {
    const text = renderNftMasqSetup(['192.168.1.2/24', '2001:db8::2/64'], 'unit-test', 'eth0', 'two');
    expect(text.split('\n')).toEqual([
      'add table inet cni_plugins_masquerade { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }',
      'add chain inet cni_plugins_masquerade masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }',
      'add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority 100 ; }',
      'flush chain inet cni_plugins_masquerade postrouting',
      'add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4 return',
      'add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8 return',
      'add rule inet cni_plugins_masquerade postrouting goto masq_checks',
      'add rule inet cni_plugins_masquerade masq_checks ip saddr == 192.168.1.2 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"',
      'add rule inet cni_plugins_masquerade masq_checks ip6 saddr == 2001:db8::2 ip6 daddr != 2001:db8::/64 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"',
      '',
    ]);
  });
  it('parses rule handles and renders deletes', () => {
    const json = JSON.stringify({ nftables: [{ metainfo: {} }, { chain: { name: 'masq_checks' } }, { rule: { handle: 7, comment: 'x' } }, { rule: { handle: 9 } }] });
    expect(parseNftRules(json)).toEqual([{ handle: 7, comment: 'x' }, { handle: 9, comment: undefined }]);
    expect(renderNftDeleteRules([7, 9])).toBe('delete rule inet cni_plugins_masquerade masq_checks handle 7\ndelete rule inet cni_plugins_masquerade masq_checks handle 9\n');
  });
});

describe('spoof check rendering', () => {
  it('matches the reference chain layout and tears down by handle', async () => {
    const { renderSpoofCheckSetup, renderSpoofCheckTeardown, preroutingHandles, spoofRefId } = await import('../../../../lib/firewall/spoofcheck.ts');
    const ref = spoofRefId('c1', 'eth0');
    expect(renderSpoofCheckSetup(ref, 'veth01020304', '02:00:00:00:00:01').split('\n')).toEqual([
      'add table bridge nat',
      'add chain bridge nat PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }',
      'add chain bridge nat cni-br-iface-c1-eth0',
      'add chain bridge nat cni-br-iface-c1-eth0-mac',
      'flush chain bridge nat cni-br-iface-c1-eth0',
      'flush chain bridge nat cni-br-iface-c1-eth0-mac',
      'add rule bridge nat PREROUTING iifname "veth01020304" jump cni-br-iface-c1-eth0 comment "macspoofchk-c1-eth0"',
      'add rule bridge nat cni-br-iface-c1-eth0 jump cni-br-iface-c1-eth0-mac comment "macspoofchk-c1-eth0"',
      'add rule bridge nat cni-br-iface-c1-eth0-mac ether saddr 02:00:00:00:00:01 return comment "macspoofchk-c1-eth0"',
      'add rule bridge nat cni-br-iface-c1-eth0-mac drop comment "macspoofchk-c1-eth0"',
      '',
    ]);
    const json = JSON.stringify({ nftables: [{ rule: { handle: 4, comment: 'macspoofchk-c1-eth0' } }, { rule: { handle: 5, comment: 'macspoofchk-c2-eth0' } }] });
    expect(preroutingHandles(json, ref)).toEqual([4]);
    expect(renderSpoofCheckTeardown(ref, [4])).toContain('delete rule bridge nat PREROUTING handle 4\n');
  });

  it('quotes names from outside: an interface name with # ; braces or a quote cannot change the script', async () => {
    const { renderSpoofCheckSetup, renderSpoofCheckTeardown, preroutingHandles, spoofRefId } = await import('../../../../lib/firewall/spoofcheck.ts');
    const ref = spoofRefId('c1', 'e#0;{x}"\\');
    const setup = renderSpoofCheckSetup(ref, 'veth01020304', '02:00:00:00:00:01').split('\n');
    expect(setup[2]).toBe('add chain bridge nat cni-br-iface-c1-e_0__x___');
    expect(setup[6]).toBe('add rule bridge nat PREROUTING iifname "veth01020304" jump cni-br-iface-c1-e_0__x___ comment "macspoofchk-c1-e#0;{x}__"');
    // Every line has an even number of quotes: nothing escapes its string.
    for (const line of setup) expect((line.match(/"/g) ?? []).length % 2).toBe(0);
    // DEL matches what nft stores (the same encoding), so the jump is found again.
    const json = JSON.stringify({ nftables: [{ rule: { handle: 7, comment: 'macspoofchk-c1-e#0;{x}__' } }] });
    expect(preroutingHandles(json, ref)).toEqual([7]);
    expect(renderSpoofCheckTeardown(ref, [7])).toContain('delete chain bridge nat cni-br-iface-c1-e_0__x___-mac\n');
  });
});
