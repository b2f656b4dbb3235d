/**
 * `tscni dns serve --network NAME` (started by the dnsname plugin, detached)
 * and `tscni dns status` (which networks have a server, and whether it runs).
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { dnsDirFor, readNetworkInfo, readRecords, runningServer } from '../../plugins/dns/state.ts';
import { serve } from '../../plugins/dns/server.ts';
import type { Argv, CommandModule } from 'yargs';
import type { CliContext } from '../context.ts';
import { renderColumns, type ActionFn } from './network.ts';

export async function dnsServe(ctx: CliContext, network: string): Promise<void> {
  await serve(dnsDirFor(ctx.env, network), network);
}

export interface DnsHealth {
  network: string;
  gateways: string[];
  records: number;
  pid?: number;
  running: boolean;
}

/** One row per network with name state: its server's pid and health. */
export function dnsStatus(ctx: CliContext): DnsHealth[] {
  const base = dirname(dnsDirFor(ctx.env, 'x'));
  let nets: string[];
  try {
    nets = readdirSync(base)
      .filter((n) => !n.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
  return nets.map((network) => {
    const dir = dnsDirFor(ctx.env, network);
    const pid = runningServer(dir, network);
    return { network, gateways: readNetworkInfo(dir)?.gateways ?? [], records: readRecords(dir).length, pid, running: pid !== undefined };
  });
}

/** `tscni dns serve|status`. */
export function dnsCommand(action: ActionFn): CommandModule {
  return {
    command: 'dns <action>',
    describe: "the networks' name servers",
    builder: (y: Argv) =>
      y
        .command(
          'serve',
          "run a network's name server in the foreground (the dnsname plugin starts it detached)",
          (b) => b.option('network', { type: 'string', demandOption: true }),
          action<{ network: string }>(async (ctx, a) => dnsServe(ctx, a.network)),
        )
        .command(
          'status',
          'each network with a name server: records, pid, running',
          (b) => b,
          action<object>(async (ctx, a) => {
            const rows = dnsStatus(ctx);
            if (a.json) {
              process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
              return;
            }
            process.stdout.write(renderColumns([['NETWORK', 'LISTEN', 'RECORDS', 'SERVER'], ...rows.map((r) => [r.network, r.gateways.join(',') || '-', String(r.records), r.running ? `running (pid ${r.pid})` : 'not running'])]));
          }),
        )
        .demandCommand(1),
    handler: () => undefined,
  };
}
