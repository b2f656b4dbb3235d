/**
 * `tscni dns serve [--dir BASE]` (the host's name server, started by the
 * dnsname plugin, detached) and `tscni dns status` (each network with names,
 * and whether the server listens for it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dnsBaseFor, networksIn, readNetworkInfo, readRecords, runningServer, servedBy } from '../../plugins/dns/state.ts';
import { serve } from '../../plugins/dns/server.ts';
import type { Argv, CommandModule } from 'yargs';
import type { CliContext } from '../context.ts';
import { renderColumns, type ActionFn } from './network.ts';

/** Run the host's name server for the networks in `dir` (default: the state directory's dns/) in the foreground. */
export async function dnsServe(ctx: CliContext, dir: string | undefined): Promise<void> {
  await serve(dir ?? dnsBaseFor(ctx.env));
}

export interface DnsHealth {
  network: string;
  gateways: string[];
  records: number;
  /** The host's server, when it listens for this network. */
  pid?: number;
  running: boolean;
}

/** The host's server: pid, resident memory (kB), start time; undefined when none runs. */
export function dnsServerHealth(ctx: CliContext): { pid: number; rssKb: number } | undefined {
  const pid = runningServer(dnsBaseFor(ctx.env));
  if (!pid) return undefined;
  let rssKb = 0;
  try {
    rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    // exited meanwhile
  }
  return { pid, rssKb };
}

/** One row per network with name state: whether the host's server listens for it, and its pid. */
export function dnsStatus(ctx: CliContext): DnsHealth[] {
  const base = dnsBaseFor(ctx.env);
  return networksIn(base).map((network) => {
    const dir = join(base, network);
    const pid = servedBy(dir);
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
          "run the host's name server in the foreground, for every network in --dir (the dnsname plugin starts it detached)",
          (b) => b.option('dir', { type: 'string', describe: 'the state directory (default $TSCNI_DNS_DIR, else $TSCNI_STATE_DIR/dns, else /run/tscni/dns)' }),
          action<{ dir?: string }>(async (ctx, a) => dnsServe(ctx, a.dir)),
        )
        .command(
          'status',
          "each network with names: records, and whether the host's server listens for it",
          (b) => b,
          action<object>(async (ctx, a) => {
            const rows = dnsStatus(ctx);
            if (a.json) {
              process.stdout.write(`${JSON.stringify({ server: dnsServerHealth(ctx) ?? null, networks: rows }, null, 2)}\n`);
              return;
            }
            process.stdout.write(renderColumns([['NETWORK', 'LISTEN', 'RECORDS', 'SERVER'], ...rows.map((r) => [r.network, r.gateways.join(',') || '-', String(r.records), r.running ? `running (pid ${r.pid})` : 'not running'])]));
            const server = dnsServerHealth(ctx);
            const log = join(dnsBaseFor(ctx.env), 'server.log');
            process.stdout.write(server ? `\nserver: pid ${server.pid}, ${(server.rssKb / 1024).toFixed(1)} MB resident, log ${log}\n` : '\nserver: not running (the first dnsname ADD starts it)\n');
          }),
        )
        .demandCommand(1),
    handler: () => undefined,
  };
}
