/** Names: the resolver's local answers and wire replies, the plugin's config, and the pod's /etc files (pure). */
import dnsPacket from 'dns-packet';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAddHost, reachableHostNameservers, renderHosts, renderPodFiles, renderPsTable, renderResolvConf, type PodRecord } from '../../../cli/pods.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { answerLocal, localKey, parseNameservers, reverseName } from '../../../plugins/dns/answer.ts';
import { parseDnsConf, podNameFrom } from '../../../plugins/dns/plugin.ts';
import { respond, upstreamsFrom, type ServerState } from '../../../plugins/dns/server.ts';
import { deleteRecord, hasRecords, networkSig, networksIn, readRecords, recordFileName, servedBy, writeNetworkInfo, writeRecord, type NameRecord } from '../../../plugins/dns/state.ts';

const records: NameRecord[] = [
  { containerId: 'c1', ifName: 'eth0', name: 'web1', aliases: ['www'], ips: ['10.89.0.2', 'fd10:89::2'] },
  { containerId: 'c2', ifName: 'eth0', name: 'db', aliases: [], ips: ['10.89.0.3'] },
];

describe('answerLocal', () => {
  it('A and AAAA by name, alias and name.domain, case-insensitive, trailing dot', () => {
    expect(answerLocal('web1', 'A', records, 'dns.podman')).toEqual({ rcode: 'NOERROR', answers: [{ name: 'web1', type: 'A', ttl: 60, data: '10.89.0.2' }] });
    expect(answerLocal('WWW.dns.podman.', 'AAAA', records, 'dns.podman')?.answers.map((a) => a.data)).toEqual(['fd10:89::2']);
    expect(answerLocal('db.dns.podman', 'ANY', records, 'dns.podman')?.answers.map((a) => a.data)).toEqual(['10.89.0.3']);
  });

  it('a known name without an address of that family: NOERROR, no answers', () => {
    expect(answerLocal('db', 'AAAA', records, 'dns.podman')).toEqual({ rcode: 'NOERROR', answers: [] });
  });

  it('unknown names under the domain and unknown single labels are NXDOMAIN (never forwarded); others are forwarded', () => {
    expect(answerLocal('ghost.dns.podman', 'A', records, 'dns.podman')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(answerLocal('ghost', 'A', records, 'dns.podman')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(answerLocal('example.org', 'A', records, 'dns.podman')).toBeUndefined();
    expect(localKey('a.B.example.', 'b.example')).toEqual({ key: 'a', inDomain: true });
  });

  it("PTR for a pod's addresses (IPv4 and IPv6); other reverse names are forwarded", () => {
    expect(reverseName('10.89.0.2')).toBe('2.0.89.10.in-addr.arpa');
    expect(reverseName('fd10:89::2')).toBe('2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.8.0.0.0.1.d.f.ip6.arpa');
    expect(answerLocal('2.0.89.10.in-addr.arpa.', 'PTR', records, 'dns.podman')).toEqual({ rcode: 'NOERROR', answers: [{ name: '2.0.89.10.in-addr.arpa.', type: 'PTR', ttl: 60, data: 'web1.dns.podman' }] });
    expect(answerLocal(reverseName('fd10:89::2'), 'PTR', records, 'dns.podman')?.answers[0]?.data).toBe('web1.dns.podman');
    expect(answerLocal('9.0.89.10.in-addr.arpa', 'PTR', records, 'dns.podman')).toBeUndefined();
  });

  it('nameservers to forward to: resolv.conf order, without our own addresses; an override or none', () => {
    const rc = '# x\nsearch corp.example\nnameserver 10.89.0.1\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\n';
    expect(parseNameservers(rc, ['10.89.0.1'])).toEqual(['192.0.2.53', 'fe80::1']);
    expect(upstreamsFrom('none', rc, [])).toEqual([]);
    expect(upstreamsFrom('10.246.0.1,10.89.0.1', rc, ['10.89.0.1'])).toEqual(['10.246.0.1']);
    expect(upstreamsFrom(undefined, rc, ['10.89.0.1'])).toEqual(['192.0.2.53', 'fe80::1']);
  });
});

describe('respond (wire format through dns-packet)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tscni-tn-unit-'));
  const state: ServerState = { dir, domainName: 'dns.podman', upstreams: [], records: [], stamp: -1 };
  for (const r of records) writeRecord(dir, r);
  /** The decoded reply; dns-packet's types lack rcode and the answers' union hides data. */
  const decode = (b: Buffer | undefined) => dnsPacket.decode(b as Buffer) as Omit<dnsPacket.DecodedPacket, 'answers'> & { rcode: string; answers?: { type: string; data: unknown }[] };
  const query = (name: string, type: 'A' | 'AAAA') => dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });

  it('answers a local name authoritatively with the query id', async () => {
    const r = decode(await respond(state, query('web1.dns.podman', 'A')));
    expect(r).toMatchObject({ id: 4242, type: 'response', flag_aa: true, flag_rd: true, rcode: 'NOERROR' });
    expect(r.answers?.map((a) => [a.type, a.data])).toEqual([['A', '10.89.0.2']]);
  });

  it('NXDOMAIN in the domain; SERVFAIL for outside names with no upstream; garbage is dropped', async () => {
    expect(decode(await respond(state, query('ghost.dns.podman', 'A'))).rcode).toBe('NXDOMAIN');
    expect(decode(await respond(state, query('example.org', 'A'))).rcode).toBe('SERVFAIL');
    expect(await respond(state, Buffer.from([1, 2, 3]))).toBeUndefined();
  });

  it("refuses a client that is neither one of the network's pods nor the host (gateway, loopback)", async () => {
    const gated: ServerState = { ...state, records: [], stamp: -1, gateways: ['10.89.0.1'] };
    expect(decode(await respond(gated, query('web1.dns.podman', 'A'), false, '10.90.0.7')).rcode).toBe('REFUSED');
    expect(decode(await respond(gated, query('example.org', 'A'), true, '10.90.0.7')).rcode).toBe('REFUSED');
    for (const client of ['10.89.0.2', '::ffff:10.89.0.2', '10.89.0.1', '127.0.0.1']) {
      expect(decode(await respond(gated, query('web1.dns.podman', 'A'), false, client)).rcode, client).toBe('NOERROR');
    }
  });

  it("a pod on two networks learns the names of both; the host and the other network's pods only the network asked", async () => {
    const dirA = mkdtempSync(join(tmpdir(), 'tscni-tn-unit-'));
    const dirB = mkdtempSync(join(tmpdir(), 'tscni-tn-unit-'));
    try {
      writeRecord(dirA, { containerId: 'multi', ifName: 'eth0', name: 'multi', aliases: [], ips: ['10.89.0.9'] });
      writeRecord(dirA, { containerId: 'a1', ifName: 'eth0', name: 'a1', aliases: [], ips: ['10.89.0.2'] });
      writeRecord(dirB, { containerId: 'multi', ifName: 'eth1', name: 'multi', aliases: [], ips: ['10.90.0.9'] });
      writeRecord(dirB, { containerId: 'b1', ifName: 'eth0', name: 'b1', aliases: [], ips: ['10.90.0.2'] });
      const all: ServerState[] = [];
      const a: ServerState = { dir: dirA, domainName: 'dns.podman', upstreams: [], records: [], stamp: -1, gateways: ['10.89.0.1'], peers: () => all };
      const b: ServerState = { dir: dirB, domainName: 'b.test', upstreams: [], records: [], stamp: -1, gateways: ['10.90.0.1'], peers: () => all };
      all.push(a, b);
      const ask = async (on: ServerState, name: string, client: string) => decode(await respond(on, query(name, 'A'), false, client));
      expect((await ask(a, 'b1', '10.89.0.9')).answers?.map((x) => x.data)).toEqual(['10.90.0.2']);
      expect((await ask(a, 'b1.b.test', '10.89.0.9')).answers?.map((x) => x.data)).toEqual(['10.90.0.2']);
      expect((await ask(a, 'a1', '10.89.0.9')).answers?.map((x) => x.data)).toEqual(['10.89.0.2']);
      // a1 is on A only; the host asks through A's gateway: B's names stay B's.
      expect((await ask(a, 'b1', '10.89.0.2')).rcode).toBe('NXDOMAIN');
      expect((await ask(a, 'b1', '10.89.0.1')).rcode).toBe('NXDOMAIN');
      expect((await ask(a, 'nobody', '10.89.0.9')).rcode).toBe('NXDOMAIN');
    } finally {
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });

  it('sees a record removed (the records directory changed)', async () => {
    deleteRecord(dir, 'c2', 'eth0');
    expect(decode(await respond(state, query('db.dns.podman', 'A'))).rcode).toBe('NXDOMAIN');
    expect(readRecords(dir).map((r) => r.name)).toEqual(['web1']);
    expect(recordFileName('cnitool-ab/../x', 'eth0')).toBe('cnitool-ab_.._x-eth0.json');
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('dnsname config', () => {
  const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'web', type: 'dnsname', ...extra }) as NetConf;
  it('podman keys: domainName, aliases by network name', () => {
    expect(parseDnsConf(conf())).toEqual({ network: 'web', domainName: 'dns.podman', aliases: [] });
    expect(parseDnsConf(conf({ domainName: 'corp.test', runtimeConfig: { aliases: { web: ['www', 'bad name'], other: ['x'] } } }))).toEqual({ network: 'web', domainName: 'corp.test', aliases: ['www'] });
    expect(() => parseDnsConf(conf({ domainName: 'bad domain' }))).toThrow(/invalid "domainName"/);
  });
  it('the pod name: K8S_POD_NAME when a valid name, else the container ID', () => {
    expect(podNameFrom('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web1', 'cid')).toBe('web1');
    expect(podNameFrom('K8S_POD_NAME=no_end-', 'cid')).toBe('cid');
    expect(podNameFrom('', 'cid')).toBe('cid');
  });
});

describe("a pod's /etc files", () => {
  it('hosts (golden)', () => {
    expect(renderHosts('web1', ['10.89.0.2/24', 'fd10:89::2/64'], [{ name: 'db', ip: '10.1.2.3' }])).toBe(
      '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.89.0.2\tweb1\nfd10:89::2\tweb1\n10.1.2.3\tdb\n',
    );
  });
  it('resolv.conf (golden)', () => {
    expect(renderResolvConf(['10.89.0.1'], ['dns.podman'], ['ndots:1'])).toBe('# written by tscni up\nsearch dns.podman\nnameserver 10.89.0.1\noptions ndots:1\n');
    expect(renderResolvConf(['192.0.2.53'], [])).toBe('# written by tscni up\nnameserver 192.0.2.53\n');
  });
  it('--add-host name:ip, IPv6 too; bad ones refused', () => {
    expect(parseAddHost('db:10.1.2.3')).toEqual({ name: 'db', ip: '10.1.2.3' });
    expect(parseAddHost('v6:fd00::1')).toEqual({ name: 'v6', ip: 'fd00::1' });
    expect(() => parseAddHost('nocolon')).toThrow(/invalid --add-host/);
  });
  it("resolv.conf: --dns wins, then the network's name server, then the host's reachable servers", () => {
    const pod: PodRecord = { name: 'p', netns: '/run/netns/p', ownsNetns: true, attachments: [{ network: 'web', ifName: 'eth0', containerId: 'c', addresses: ['10.89.0.2/24'] }] };
    const host = 'nameserver 127.0.0.53\nnameserver 192.0.2.53\n';
    expect(reachableHostNameservers(host)).toEqual(['192.0.2.53']);
    expect(renderPodFiles(pod, host)['resolv.conf']).toBe('# written by tscni up\nnameserver 192.0.2.53\n');
    const withDns: PodRecord = { ...pod, attachments: [{ ...pod.attachments[0]!, dns: { nameservers: ['10.89.0.1'], search: ['dns.podman'] } }] };
    expect(renderPodFiles(withDns, host)['resolv.conf']).toBe('# written by tscni up\nsearch dns.podman\nnameserver 10.89.0.1\n');
    const files = renderPodFiles({ ...withDns, names: { hostname: 'h1', dns: ['9.9.9.9'], dnsSearch: ['corp.test'] } }, host);
    expect(files['resolv.conf']).toBe('# written by tscni up\nsearch corp.test\nnameserver 9.9.9.9\n');
    expect(files.hostname).toBe('h1\n');
    expect(files.hosts).toContain('10.89.0.2\th1\n');
  });
  it('ps table (golden)', () => {
    const pods: PodRecord[] = [
      { name: 'web1', netns: '/run/netns/web1', ownsNetns: true, attachments: [{ network: 'web', ifName: 'eth0', containerId: 'c', addresses: ['10.89.0.2/24'], portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }] },
      { name: 'side', netns: '/run/netns/web1', ownsNetns: false, sharesWith: 'web1', attachments: [] },
    ];
    expect(renderPsTable(pods)).toBe(
      [
        'POD   NETNS            NETWORK         IFACE  ADDRESSES     PORTS',
        'web1  /run/netns/web1  web             eth0   10.89.0.2/24  8080->80/tcp',
        'side  /run/netns/web1  container:web1  -      -             -',
        '',
      ].join('\n'),
    );
  });
});

describe('the name server state shared by the plugin and the host server (state.ts)', () => {
  it('networksIn lists directories with a network.json; hasRecords looks at records/ only', () => {
    const base = mkdtempSync(join(tmpdir(), 'tscni-tn-unit-'));
    try {
      writeNetworkInfo(join(base, 'b'), { network: 'b', gateways: ['10.89.1.1'], domainName: 'dns.podman' });
      writeNetworkInfo(join(base, 'a'), { network: 'a', gateways: ['10.89.0.1'], domainName: '' });
      mkdirSync(join(base, 'half'));
      mkdirSync(join(base, '.locks'));
      writeFileSync(join(base, 'server.log'), '');
      expect(networksIn(base)).toEqual(['a', 'b']);
      expect(networksIn(join(base, 'missing'))).toEqual([]);
      expect(hasRecords(join(base, 'a'))).toBe(false);
      writeRecord(join(base, 'a'), records[0] as NameRecord);
      expect(hasRecords(join(base, 'a'))).toBe(true);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('servedBy trusts a pid file only when it names a live server of the base listening as the network says', () => {
    const base = mkdtempSync(join(tmpdir(), 'tscni-tn-unit-'));
    try {
      const dir = join(base, 'a');
      const info = { network: 'a', gateways: ['10.89.0.1'], domainName: 'dns.podman' };
      writeNetworkInfo(dir, info);
      expect(servedBy(dir)).toBeUndefined();
      // This test process is no `tscni dns serve`: a pid file naming it is not trusted.
      writeFileSync(join(dir, 'server.pid'), `${process.pid}\n${networkSig(info)}\n`);
      expect(servedBy(dir, networkSig(info))).toBeUndefined();
      expect(networkSig(info)).toBe(networkSig({ ...info }));
      expect(networkSig(info)).not.toBe(networkSig({ ...info, gateways: ['10.89.0.1', 'fd10:89::1'] }));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
