/**
 * Property tests (fast-check) over every config parser: whatever JSON a
 * runtime or a user puts in any key, a parser either accepts it or throws a
 * CniError with an input code (1, 2, 4, 6 or 7) and a message; never a
 * TypeError, never code 999, never a hang. Each run mutates one key of a
 * valid config (wrong types, nulls, huge numbers, hostile strings) or builds
 * a whole config at random.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CniError } from '../../../lib/cni/errors.ts';
import { decodeConfig } from '../../../lib/cni/skel.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { parseResult } from '../../../lib/cni/version.ts';
import { parseHostLocalConfig } from '../../../ipam/host-local/config.ts';
import { parseStaticConfig } from '../../../ipam/static/config.ts';
import { parseBridgeConfig } from '../../../plugins/bridge/config.ts';
import { parseMacvlanConfig } from '../../../plugins/macvlan/config.ts';
import { parsePortmapConfig } from '../../../plugins/portmap/config.ts';
import { parsePtpConfig } from '../../../plugins/ptp/config.ts';

const INPUT_CODES = new Set([1, 2, 4, 6, 7]);
const RUNS = 300;

/** Hostile strings: quotes, newlines, comment and command characters, braces, very long, non-ASCII. */
const hostile = fc.oneof(
  fc.string(),
  fc.constantFrom('"', "'", '\n', '#', ';', '{', '}', '$(id)', '`id`', '\\', '\u0000', 'é', '🙂', ' ', '', '-1', '1e309', 'NaN'),
  fc.string({ minLength: 200, maxLength: 5000 }),
);
const anyValue = fc.oneof(fc.jsonValue(), hostile, fc.constantFrom(null, -1, 0, 1.5, 2 ** 53, -(2 ** 31), 65536, 4096, true, [], {}));

/** Run `parse`; it may return, or throw a CniError with an input code and a message. */
function outcome(parse: () => unknown): void {
  try {
    parse();
  } catch (e) {
    if (!(e instanceof CniError)) throw new Error(`not a CniError: ${(e as Error)?.stack ?? String(e)}`);
    expect(INPUT_CODES.has(e.code), `code ${e.code}: ${e.message}`).toBe(true);
    expect(e.msg.length).toBeGreaterThan(0);
  }
}

/** A property: each key of `base` (and nested `ipam` keys) replaced by an arbitrary value. */
function mutateEachKey(base: Record<string, unknown>, parse: (c: NetConf) => unknown): void {
  const keys = Object.keys(base);
  const ipamKeys = Object.keys((base.ipam as Record<string, unknown>) ?? {});
  fc.assert(
    fc.property(fc.constantFrom(...keys, ...ipamKeys.map((k) => `ipam.${k}`), 'runtimeConfig', 'args', 'prevResult', 'extra'), anyValue, (key, value) => {
      const conf = structuredClone(base) as Record<string, unknown>;
      if (key.startsWith('ipam.')) (conf.ipam as Record<string, unknown>)[key.slice(5)] = value;
      else conf[key] = value;
      outcome(() => parse(conf as NetConf));
    }),
    { numRuns: RUNS },
  );
}

const bridgeBase = {
  cniVersion: '1.1.0',
  name: 'n',
  type: 'bridge',
  bridge: 'br0',
  isGateway: true,
  isDefaultGateway: true,
  ipMasq: true,
  mtu: 1500,
  hairpinMode: false,
  promiscMode: false,
  vlan: 0,
  vlanTrunk: [{ id: 5 }],
  macspoofchk: false,
  enabledad: false,
  ipMasqBackend: 'iptables',
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.0.0.0/24' }]] },
};
const hostLocalBase = {
  cniVersion: '1.1.0',
  name: 'n',
  type: 'bridge',
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.1' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/tmp/x' },
};
const portmapBase = {
  cniVersion: '1.1.0',
  name: 'n',
  type: 'portmap',
  snat: true,
  markMasqBit: 13,
  backend: 'iptables',
  conditionsV4: ['-s', '1.2.3.4'],
  runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ address: '10.0.0.2/24', interface: 0 }] },
};

describe('config parsers never fail with an untyped error', () => {
  it('bridge', () => mutateEachKey(bridgeBase, (c) => parseBridgeConfig(c, '')));
  it('host-local', () => mutateEachKey(hostLocalBase, (c) => parseHostLocalConfig(c, '')));
  it('portmap', () => mutateEachKey(portmapBase, (c) => parsePortmapConfig(c, 'eth0')));
  it('ptp', () => mutateEachKey({ ...bridgeBase, type: 'ptp' }, (c) => parsePtpConfig(c)));
  it('macvlan', () => mutateEachKey({ cniVersion: '1.1.0', name: 'n', type: 'macvlan', master: 'eth0', mode: 'bridge', mtu: 1500 }, (c) => parseMacvlanConfig({ config: c, args: '' })));
  it('static', () =>
    mutateEachKey({ cniVersion: '1.1.0', name: 'n', type: 'x', ipam: { type: 'static', addresses: [{ address: '10.0.0.2/24' }], routes: [], dns: {} } }, (c) => parseStaticConfig(c, '')));

  it('CNI_ARGS of any shape', () => {
    fc.assert(
      fc.property(hostile, (args) => {
        outcome(() => parseHostLocalConfig(hostLocalBase as unknown as NetConf, args));
        outcome(() => parseBridgeConfig(bridgeBase as unknown as NetConf, args));
      }),
      { numRuns: RUNS },
    );
  });

  it('whole random configs and prevResults', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), anyValue), anyValue, (conf, prev) => {
        const c = { cniVersion: '1.1.0', name: 'n', ...conf } as unknown as NetConf;
        outcome(() => parseBridgeConfig(c, ''));
        outcome(() => parseHostLocalConfig(c, ''));
        outcome(() => parsePortmapConfig({ ...c, prevResult: prev } as NetConf, 'eth0'));
        outcome(() => parseResult(prev, '1.1.0'));
      }),
      { numRuns: RUNS },
    );
  });

  it('stdin bytes of any kind decode or fail with code 6 or 7', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array(), fc.string().map((s) => Buffer.from(s)), fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)))), (bytes) => {
        outcome(() => decodeConfig(Buffer.from(bytes)));
      }),
      { numRuns: RUNS },
    );
  });
});
