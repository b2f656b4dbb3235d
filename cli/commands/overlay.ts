/**
 * `tscni overlay agent`: the long-running keeper of a multi-host network on
 * this host (plugins/vxlan/agent.ts). The vxlan plugin starts it when it is
 * not running; a systemd unit can run it too (conf-examples/tscni-overlay@.service).
 */
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_DATA_DIR } from '../../ipam/etcd-subnet/config.ts';

interface AgentArgs {
  network: string;
  'data-dir': string;
  device?: string;
  vni: number;
  port: number;
}

/** The `overlay` command group. */
export function overlayCommand(): CommandModule {
  return {
    command: 'overlay <action>',
    describe: 'multi-host networks (VXLAN over etcd subnet leases)',
    builder: (y: Argv) =>
      y
        .command({
          command: 'agent',
          describe: "renew this host's subnet lease, watch etcd, keep the VXLAN routes, ARP and FDB entries in step (runs until stopped)",
          builder: (a: Argv) =>
            a
              .option('network', { type: 'string', demandOption: true, describe: 'the network name (the conflist "name")' })
              .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: "the etcd-subnet IPAM's dataDir" })
              .option('device', { type: 'string', describe: 'the VXLAN device (default tscni.<vni>)' })
              .option('vni', { type: 'number', default: 1 })
              .option('port', { type: 'number', default: 4789 }),
          handler: async (raw) => {
            const a = raw as unknown as AgentArgs;
            const { runAgent } = await import('../../plugins/vxlan/agent.ts');
            try {
              await runAgent({ network: a.network, dataDir: a['data-dir'], name: a.device ?? `tscni.${a.vni}`, vni: a.vni, port: a.port });
            } catch (e) {
              process.stderr.write(`tscni overlay agent: ${(e as Error).message}\n`);
              process.exit(1);
            }
            process.exit(0);
          },
        })
        .demandCommand(1, 'name an overlay action: agent'),
    handler: () => undefined,
  };
}
