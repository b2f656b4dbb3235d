/**
 * Soak (npm run test:stress): TSCNI_SOAK_CYCLES (default 500) pod life cycles
 * through the runner, `tscni up` with a published port then `tscni down`, on
 * a bridge + host-local + portmap network. Prints the leak count per kind at
 * the end, which must be zero.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../helpers/plugin.ts';
import { tryRun } from '../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../helpers/portmap-shared.ts';
import { census, leaks } from './leaks.ts';

const CYCLES = Number(process.env.TSCNI_SOAK_CYCLES ?? 500);
const dir = mkdtempSync(join(tmpdir(), 'tscni-soak-'));
const shared = snapshotShared();
const env = {
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  NETCONFPATH: join(dir, 'net.d'),
  CNI_PATH: BIN_DIR,
  CNI_CACHE_DIR: join(dir, 'cache'),
  TSCNI_STATE_DIR: join(dir, 'state'),
};
const stateDirs = [join(dir, 'cache'), join(dir, 'state'), join(dir, 'ipam'), join(dir, 'portmap')];

afterAll(() => {
  tryRun(['ip', 'link', 'del', 'tsoak0']);
  removeSharedIfNew(shared);
  rmSync(dir, { recursive: true, force: true });
});

function tscni(args: string[]): void {
  const r = spawnSync(binPath('tscni'), args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tscni ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

describe('soak', () => {
  it(`${CYCLES} up/down cycles leave nothing`, () => {
    mkdirSync(env.NETCONFPATH, { recursive: true });
    writeFileSync(
      join(env.NETCONFPATH, '10-soak.conflist'),
      JSON.stringify({
        cniVersion: '1.1.0',
        name: 'tscni-soak',
        plugins: [
          { type: 'bridge', bridge: 'tsoak0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.244.250.0/24' }]] } },
          { type: 'portmap', capabilities: { portMappings: true }, stateDir: join(dir, 'portmap') },
        ],
      }),
    );
    // The first cycle creates the bridge and the shared chains: count from after it.
    tscni(['up', 'tscni-soak', 'tsoak-p0', '-p', '31999:80']);
    tscni(['down', 'tsoak-p0']);
    const before = census(stateDirs);
    const t0 = Date.now();
    for (let i = 1; i <= CYCLES; i++) {
      tscni(['up', 'tscni-soak', `tsoak-p${i}`, '-p', `${31000 + (i % 900)}:80`]);
      tscni(['down', `tsoak-p${i}`]);
    }
    const leaked = leaks(before, census(stateDirs));
    console.log(`soak: ${CYCLES} cycles in ${((Date.now() - t0) / 1000).toFixed(1)} s; leaks ${JSON.stringify(leaked)}`);
    expect(leaked).toEqual({ fds: 0, links: 0, netns: 0, natRules: 0, filterRules: 0, nftRules: 0, files: 0 });
  }, 1_800_000);
});
