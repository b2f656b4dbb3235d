/** Golden tests of the firewall plugin's pure parts: config, iptables plans, nft text. */
import { describe, expect, it } from 'vitest';
import { CniError } from '../../../lib/cni/errors.ts';
import { bridgeOf, hostPrefixes, parseFirewallConfig } from '../../../plugins/firewall/config.ts';
import { missingRules, parseFilterListing, renderEnsure, renderTeardown, type AttachmentRules } from '../../../plugins/firewall/iptables.ts';
import { isolationRules, nftMissing, parseNftListing, renderNftApply, type NftAttachment } from '../../../plugins/firewall/nftables.ts';

const EMPTY = parseFilterListing('-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n');
const pod = (ip: string, extra: Partial<AttachmentRules> = {}): AttachmentRules => ({ admin: 'CNI-ADMIN', prefixes: [ip], policy: 'open', ...extra });

describe('firewall config', () => {
  const base = { cniVersion: '1.0.0', name: 'n', type: 'firewall' };
  it('defaults as the reference: detect, CNI-ADMIN, open', () => {
    expect(parseFirewallConfig({ ...base, backend: '' })).toMatchObject({ backend: undefined, adminChain: 'CNI-ADMIN', policy: 'open', stateDir: '/var/lib/cni/tscni-firewall' });
  });
  it.each([{ backend: 'firewalld' }, { backend: 'pf' }, { ingressPolicy: 'closed' }, { iptablesAdminChainName: 'has space' }, { iptablesAdminChainName: 'X'.repeat(29) }, { stateDir: 'rel' }])('rejects %j with code 7', (bad) => {
    const e = (() => {
      try {
        parseFirewallConfig({ ...base, ...bad });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(CniError);
    expect((e as CniError).code).toBe(7);
  });
  it('host prefixes of every address; the bridge is the first interface', () => {
    const r = { cniVersion: '1.1.0', interfaces: [{ name: 'br0' }, { name: 'veth1' }], ips: [{ address: '10.1.0.2/24' }, { address: 'FD00::2/64' }, { address: '10.1.0.2/24' }] };
    expect(hostPrefixes(r)).toEqual(['10.1.0.2/32', 'fd00::2/128']);
    expect(bridgeOf(r, 'same-bridge')).toBe('br0');
    expect(bridgeOf(r, 'open')).toBeUndefined();
    expect(() => bridgeOf({ cniVersion: '1.1.0' }, 'isolated')).toThrow(/chain "firewall" plugin with "bridge"/);
  });
});

describe('iptables plans', () => {
  it('ADD on an empty table: chains, jumps in order, pod rules, isolation', () => {
    expect(renderEnsure(EMPTY, [pod('10.1.0.2/32', { bridge: 'br0', policy: 'isolated' })])).toBe(
      [
        '*filter',
        ':CNI-ISOLATION-STAGE-1 - [0:0]',
        ':CNI-ISOLATION-STAGE-2 - [0:0]',
        ':CNI-FORWARD - [0:0]',
        ':CNI-ADMIN - [0:0]',
        '-I FORWARD 1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1',
        '-I FORWARD 2 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
        '-I CNI-FORWARD 1 -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
        '-I CNI-ISOLATION-STAGE-1 1 -i br0 ! -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2',
        '-I CNI-ISOLATION-STAGE-1 2 -i br0 -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP',
        '-I CNI-ISOLATION-STAGE-2 1 -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP',
        '-A CNI-FORWARD -d 10.1.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT',
        '-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN',
        '-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  const existing = parseFilterListing(
    [
      '-P FORWARD DROP',
      '-N CNI-FORWARD',
      '-N CNI-ADMIN',
      '-N CNI-ISOLATION-STAGE-1',
      '-N CNI-ISOLATION-STAGE-2',
      '-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1',
      '-A FORWARD -j DOCKER-USER',
      '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
      '-A CNI-FORWARD -d 10.1.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT',
      '-A CNI-ISOLATION-STAGE-1 -i br0 ! -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2',
      '-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN',
      '-A CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP',
      '-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN',
    ].join('\n'),
  );

  it('a missing CNI-FORWARD jump goes right after the isolation jump; nothing present is repeated', () => {
    expect(renderEnsure(existing, [pod('10.1.0.2/32', { bridge: 'br0', policy: 'same-bridge' })])).toBe(
      ['*filter', '-I FORWARD 2 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD', 'COMMIT', ''].join('\n'),
    );
    expect(missingRules(existing, [pod('10.1.0.2/32', { bridge: 'br0', policy: 'same-bridge' })])).toEqual(['-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD']);
  });

  it('the last pod leaves: its rules, the bridge rules, the stage chains and their jump go; other jumps stay', () => {
    const gone = [pod('10.1.0.2/32', { bridge: 'br0', policy: 'same-bridge' })];
    expect(renderTeardown(existing, gone, new Map([['br0', 'same-bridge']]))).toBe(
      [
        '*filter',
        '-D CNI-FORWARD -d 10.1.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-D CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT',
        '-D CNI-ISOLATION-STAGE-1 -i br0 ! -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2',
        '-D CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP',
        '-D FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1',
        '-F CNI-ISOLATION-STAGE-1',
        '-X CNI-ISOLATION-STAGE-1',
        '-F CNI-ISOLATION-STAGE-2',
        '-X CNI-ISOLATION-STAGE-2',
        '-F CNI-FORWARD',
        '-X CNI-FORWARD',
        '-X CNI-ADMIN',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('another pod keeps CNI-FORWARD; a bridge still in use keeps its rules; the admin chain with rules stays', () => {
    const withOther = parseFilterListing(`-P FORWARD ACCEPT\n-N CNI-FORWARD\n-N CNI-ADMIN\n-A CNI-ADMIN -s 1.2.3.4/32 -j DROP\n-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD\n-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN\n-A CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT\n-A CNI-FORWARD -s 10.1.0.3/32 -j ACCEPT`);
    expect(renderTeardown(withOther, [pod('10.1.0.2/32')], new Map())).toBe(['*filter', '-D CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT', 'COMMIT', ''].join('\n'));
    const last = parseFilterListing(`-P FORWARD ACCEPT\n-N CNI-FORWARD\n-N CNI-ADMIN\n-A CNI-ADMIN -s 1.2.3.4/32 -j DROP\n-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD\n-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN\n-A CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT`);
    expect(renderTeardown(last, [pod('10.1.0.2/32')], new Map())).toBe(
      ['*filter', '-D CNI-FORWARD -s 10.1.0.2/32 -j ACCEPT', '-D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD', '-F CNI-FORWARD', '-X CNI-FORWARD', 'COMMIT', ''].join('\n'),
    );
    expect(renderTeardown(EMPTY, [pod('10.1.0.2/32')], new Map())).toBeUndefined();
  });
});

describe('nftables text', () => {
  const a = (bridge: string, policy: NftAttachment['policy'], ip: string): NftAttachment => ({ network: 'n"1', containerId: 'c1', ifName: 'eth0', prefixes: [ip], bridge, policy });
  it('isolation between every pair of isolating bridges, and inside an isolated one', () => {
    expect(isolationRules([a('br0', 'same-bridge', '10.1.0.2/32'), a('br1', 'isolated', '10.2.0.2/32'), a('br2', 'open', '10.3.0.2/32')])).toEqual([
      'add rule inet tscni_firewall isolation iifname "br0" oifname { "br1" } drop',
      'add rule inet tscni_firewall isolation iifname "br1" oifname { "br0" } drop',
      'add rule inet tscni_firewall isolation iifname "br1" oifname "br1" drop',
    ]);
  });
  it('one transaction: skeleton, isolation, elements added and removed exactly; the table goes with the last', () => {
    const p1 = a('br0', 'isolated', '10.1.0.2/32');
    const p2 = { ...a('br0', 'isolated', 'fd00::2/128'), containerId: 'c2' };
    const text = renderNftApply([p1], [], [p2]);
    expect(text).toContain('add element inet tscni_firewall pods6 { fd00::2 }\ndelete element inet tscni_firewall pods6 { fd00::2 }');
    expect(text).toContain('add rule inet tscni_firewall isolation iifname "br0" oifname "br0" drop');
    expect(text).not.toContain('delete table');
    expect(renderNftApply([], [], [p1])).toMatch(/delete table inet tscni_firewall\n$/);
    expect(renderNftApply([p1], [p1], [])).toContain('add element inet tscni_firewall pods4 { 10.1.0.2 comment "n_1/c1/eth0" }');
  });
  it('CHECK reads the JSON listing', () => {
    const json = JSON.stringify({
      nftables: [
        { set: { name: 'pods4', elem: ['10.1.0.2'] } },
        ...Array.from({ length: 6 }, () => ({ rule: { chain: 'forward', expr: [] } })),
        { rule: { chain: 'isolation', expr: [{ match: { right: 'br0' } }] } },
      ],
    });
    const p1 = a('br0', 'isolated', '10.1.0.2/32');
    expect(nftMissing(parseNftListing(json), p1, [p1])).toEqual([]);
    expect(nftMissing(parseNftListing(json), { ...p1, prefixes: ['10.1.0.9/32'] }, [p1])).toEqual(['element 10.1.0.9 missing from inet tscni_firewall pods4']);
    expect(nftMissing(parseNftListing(undefined), p1, [p1]).length).toBeGreaterThan(0);
  });
});

describe('iptables teardown of what others left', () => {
  it('an older reference\'s scaffolding (its comments) and a half-removed stage pair go once nothing isolates', () => {
    const old = parseFilterListing(
      [
        '-P FORWARD ACCEPT',
        '-N CNI-ISOLATION-STAGE-1',
        '-N CNI-ISOLATION-STAGE-2',
        '-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1',
        '-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN',
        '-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN',
      ].join('\n'),
    );
    expect(renderTeardown(old, [], new Map())).toBe(
      [
        '*filter',
        '-D FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1',
        '-F CNI-ISOLATION-STAGE-1',
        '-X CNI-ISOLATION-STAGE-1',
        '-F CNI-ISOLATION-STAGE-2',
        '-X CNI-ISOLATION-STAGE-2',
        'COMMIT',
        '',
      ].join('\n'),
    );
    const half = parseFilterListing('-P FORWARD ACCEPT\n-N CNI-ISOLATION-STAGE-1\n-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1');
    expect(renderTeardown(half, [], new Map())).toBe(
      ['*filter', '-D FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1', '-X CNI-ISOLATION-STAGE-1', 'COMMIT', ''].join('\n'),
    );
    const inUse = parseFilterListing(`${'-P FORWARD ACCEPT\n-N CNI-ISOLATION-STAGE-1\n-N CNI-ISOLATION-STAGE-2\n'}-A CNI-ISOLATION-STAGE-1 -i br9 ! -o br9 -j CNI-ISOLATION-STAGE-2\n-A CNI-ISOLATION-STAGE-1 -j RETURN`);
    expect(renderTeardown(inUse, [], new Map())).toBeUndefined();
  });
});
