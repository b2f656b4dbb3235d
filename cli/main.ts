/**
 * tscni: the runner CLI. cnitool-compatible verbs (add, check, del, gc,
 * status) plus netns, exec, up, down, ps, inspect and install.
 *
 * Not part of the plugins' hot path: it ships as a separate bundle inside the
 * executable and is loaded only when the executable is invoked as `tscni`.
 */
import { basename } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { runInherit } from '../lib/exec.ts';
import { ConfError } from '../lib/libcni/conf.ts';
import { CniError } from '../lib/cni/errors.ts';
import { PLUGIN_NAMES } from '../plugins/registry.ts';
import { runCniCommand, type CniVerb } from './commands/cni.ts';
import { gatherInspect } from './commands/inspect.ts';
import { install } from './commands/install.ts';
import { firewallReload, renderFindings } from './commands/firewall.ts';
import { podDown, podUp } from './commands/pods.ts';
import { contextFromEnv, UsageError, type CliContext } from './context.ts';
import { createNamedNetns, deleteNamedNetns, listNamedNetns, resolveNetns } from './netns-util.ts';
import { listPods, podFilesDir, POD_FILES, readPod, renderPsTable } from './pods.ts';
import { networkCommand, type ActionFn } from './commands/network.ts';
import { dnsCommand } from './commands/dns.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { renderDot, renderSvg, renderText } from './topology.ts';
import { overlayCommand } from './commands/overlay.ts';

const out = (s: string) => process.stdout.write(s);
const say = (s: string) => process.stderr.write(`${s}\n`);

function fail(e: unknown, json: boolean): never {
  if (json) {
    const err = e instanceof CniError ? { code: e.code, msg: e.msg, details: e.details || undefined } : { code: 1, msg: (e as Error).message };
    out(`${JSON.stringify(err, null, 2)}\n`);
  } else if (e instanceof CniError) {
    say(`tscni: ${e.message} (CNI error code ${e.code})`);
  } else if (e instanceof UsageError || e instanceof ConfError) {
    say(`tscni: ${e.message}`);
  } else {
    say(`tscni: ${(e as Error).message ?? String(e)}`);
    if (process.env.TSCNI_DEBUG) say((e as Error).stack ?? '');
  }
  process.exit(1);
}

type Handler<T> = (ctx: CliContext, argv: T & { json: boolean }) => Promise<void>;

/** A command handler with the context built and every error reported the same way. */
function action<T>(fn: Handler<T>) {
  return async (raw: unknown): Promise<void> => {
    const argv = raw as T & { json: boolean };
    try {
      await fn(contextFromEnv(process.env, process.execPath), argv);
    } catch (e) {
      fail(e, argv.json);
    }
  };
}

function cniVerb(verb: CniVerb, describe: string) {
  const netnsRequired = verb === 'add' || verb === 'check' || verb === 'del';
  return {
    command: `${verb} <network> ${netnsRequired ? '<netns>' : '[netns]'}`,
    describe,
    builder: (y: Argv): Argv => {
      let b = y
        .positional('network', { type: 'string', demandOption: true, describe: 'network name (from NETCONFPATH)' })
        .positional('netns', { type: 'string', describe: 'path of the network namespace' })
        .option('ifname', { alias: 'i', type: 'string', describe: 'interface name (default: $CNI_IFNAME or eth0)' });
      if (verb === 'gc') {
        b = b
          .option('valid', { type: 'string', array: true, describe: 'an attachment to keep, containerID/ifname (repeatable)' })
          .option('live', { type: 'boolean', default: false, describe: 'keep every cached attachment whose netns still exists' });
      }
      return b;
    },
    handler: action<{ network: string; netns?: string; ifname?: string; valid?: string[]; live?: boolean }>(async (ctx, a) => {
      const result = await runCniCommand(ctx, { verb, network: a.network, netns: a.netns, ifname: a.ifname, valid: a.valid, live: a.live });
      if (result) out(`${JSON.stringify(result, null, 4)}\n`);
    }),
  };
}

export async function main(args: string[]): Promise<void> {
  await yargs(args)
    .scriptName('tscni')
    .parserConfiguration({ 'populate--': true })
    .usage('tscni <command> ...\n\nRuns CNI plugins the way a container runtime does (cnitool-compatible), and more.')
    .option('json', { type: 'boolean', default: false, global: true, describe: 'machine-readable output (results and errors as JSON)' })
    .command(cniVerb('add', 'attach the network to a namespace (ADD every plugin, cache the result)'))
    .command(cniVerb('check', 'CHECK an attachment against the cached result'))
    .command(cniVerb('del', 'detach (DEL every plugin in reverse order with the cached result)'))
    .command(cniVerb('gc', 'DEL stale cached attachments of the network, then GC every plugin'))
    .command(cniVerb('status', 'STATUS of every plugin of the network'))
    .command(
      'firewall <action>',
      'after a firewall reload or flush: re-apply (reload) or report (check) the masquerade, port-mapping and firewall rules of every live attachment',
      (y) => y.positional('action', { choices: ['reload', 'check'] as const, demandOption: true }),
      action<{ action: 'reload' | 'check' }>(async (ctx, a) => {
        const findings = await firewallReload({ cacheDir: ctx.cacheDir, check: a.action === 'check' });
        out(a.json ? `${JSON.stringify(findings, null, 2)}\n` : renderFindings(findings));
        if (findings.some((f) => f.state === 'error' || (a.action === 'check' && f.state === 'missing'))) process.exitCode = 1;
      }),
    )
    .command('netns <action>', 'manage network namespaces', (y) =>
      y
        .command(
          'add <name>',
          'create /run/netns/<name>',
          (b) => b.positional('name', { type: 'string', demandOption: true }),
          action<{ name: string }>(async (_ctx, a) => {
            const path = await createNamedNetns(a.name);
            if (a.json) out(`${JSON.stringify({ name: a.name, path })}\n`);
            else say(`created ${path}`);
          }),
        )
        .command(
          'del <name>',
          'delete /run/netns/<name>',
          (b) => b.positional('name', { type: 'string', demandOption: true }),
          action<{ name: string }>(async (_ctx, a) => {
            await deleteNamedNetns(a.name);
          }),
        )
        .command(
          'list',
          'list named network namespaces',
          (b) => b,
          action<object>(async (_ctx, a) => {
            const list = await listNamedNetns();
            if (a.json) out(`${JSON.stringify(list)}\n`);
            else for (const n of list) out(`${n.name}\n`);
          }),
        )
        .demandCommand(1),
    )
    .command(
      'exec <netns> [cmd..]',
      'run a command inside a namespace (pod name, netns name or path): tscni exec web -- ip addr',
      (y) => y.positional('netns', { type: 'string', demandOption: true }).positional('cmd', { type: 'string', array: true }),
      action<{ netns: string; cmd?: string[]; '--'?: string[] }>(async (ctx, a) => {
        const cmd = [...(a.cmd ?? []), ...(a['--'] ?? [])].map(String);
        if (cmd.length === 0) throw new UsageError('exec needs a command: tscni exec <netns> -- cmd ...');
        const netns = resolveNetns(ctx.stateDir, a.netns);
        // A pod in container mode sees the files of the pod whose namespace it shares.
        const files = a.netns.includes('/') ? undefined : podFilesDir(ctx.stateDir, readPod(ctx.stateDir, a.netns)?.sharesWith ?? a.netns);
        if (files && existsSync(join(files, 'hosts'))) {
          // The pod's hosts/resolv.conf/hostname are bound over /etc in a private mount (and UTS) namespace.
          process.exitCode = await runInherit(['unshare', '--mount', '--uts', '--propagation', 'private', '--', process.execPath, 'pod-exec-mounted', files, '--', ...cmd], { netns });
          return;
        }
        process.exitCode = await runInherit(cmd, { netns });
      }),
    )
    .command(
      'pod-exec-mounted <dir> [cmd..]',
      false,
      (y) => y.positional('dir', { type: 'string', demandOption: true }).positional('cmd', { type: 'string', array: true }),
      action<{ dir: string; cmd?: string[]; '--'?: string[] }>(async (_ctx, a) => {
        const cmd = [...(a.cmd ?? []), ...(a['--'] ?? [])].map(String);
        for (const f of POD_FILES) {
          if (existsSync(join(a.dir, f)) && existsSync(`/etc/${f}`)) await run(['mount', '--bind', join(a.dir, f), `/etc/${f}`]);
        }
        if (existsSync(join(a.dir, 'hostname'))) await run(['hostname', '-F', join(a.dir, 'hostname')], { allowFailure: true });
        process.exitCode = await runInherit(cmd);
      }),
    )
    .command(
      'up <net> <name>',
      'create a pod (a netns) and attach it to network <net>; again with another network for a second NIC',
      (y) =>
        y
          .positional('net', { type: 'string', demandOption: true, describe: 'network name (from NETCONFPATH)' })
          .positional('name', { type: 'string', demandOption: true, describe: 'pod name (also the netns name under /run/netns)' })
          .option('publish', { alias: 'p', type: 'string', array: true, default: [], describe: 'publish a port: [ip:]hostPort:containerPort[/tcp|udp|sctp]' })
          .option('ip', { type: 'string', array: true, default: [], describe: 'request this address (the ips capability)' })
          .option('network', { type: 'string', describe: "container:<pod> shares that pod's namespace (container mode)" })
          .option('ifname', { alias: 'i', type: 'string', describe: 'interface name (default eth0, eth1, ... in order of attachment)' })
          .option('hostname', { type: 'string', describe: "the pod's hostname (default: its name)" })
          .option('add-host', { type: 'string', array: true, default: [], describe: 'an /etc/hosts entry name:ip (repeatable)' })
          .option('dns', { type: 'string', array: true, default: [], describe: "a nameserver for the pod's resolv.conf (default: the network's name server, else the host's)" })
          .option('dns-search', { type: 'string', array: true, default: [], describe: 'a search domain for resolv.conf' })
          .option('dns-option', { type: 'string', array: true, default: [], describe: 'a resolv.conf option (ndots:2 ...)' })
          .option('alias', { type: 'string', array: true, default: [], describe: "another name for the pod on this network's name server" })
          .option('link', { type: 'string', array: true, default: [], describe: "pod[:alias]: that pod's addresses in this pod's hosts file" }),
      action<{ net: string; name: string; publish: string[]; ip: string[]; ifname?: string; network?: string; hostname?: string; addHost: string[]; dns: string[]; dnsSearch: string[]; dnsOption: string[]; alias: string[]; link: string[] }>(async (ctx, a) => {
        const r = await podUp(ctx, {
          network: a.net,
          name: a.name,
          publish: a.publish.map(String),
          ip: a.ip.map(String),
          mode: a.network,
          ifname: a.ifname,
          hostname: a.hostname,
          addHost: a.addHost.map(String),
          dns: a.dns.map(String),
          dnsSearch: a.dnsSearch.map(String),
          dnsOption: a.dnsOption.map(String),
          alias: a.alias.map(String),
          link: a.link.map(String),
        });
        if (a.json) {
          out(`${JSON.stringify({ pod: r.pod, result: r.result }, null, 2)}\n`);
          return;
        }
        if (r.pod.sharesWith) {
          say(`${r.pod.name}: shares the network namespace of ${r.pod.sharesWith} (${r.pod.netns})`);
          return;
        }
        const ips = ((r.result?.ips as { address: string }[] | undefined) ?? []).map((i) => i.address).join(' ');
        say(`${r.pod.name}: ${r.attachment?.ifName} on ${a.net}${ips ? ` ${ips}` : ''} (netns ${r.pod.netns})`);
      }),
    )
    .command(
      'down <name>',
      'detach a pod from every network and delete its namespace',
      (y) => y.positional('name', { type: 'string', demandOption: true }),
      action<{ name: string }>(async (ctx, a) => {
        const r = await podDown(ctx, a.name);
        if (a.json) out(`${JSON.stringify(r)}\n`);
        if (r.errors.length) throw new UsageError(`could not remove ${a.name} completely (run down again):\n  ${r.errors.join('\n  ')}`);
        if (!a.json) say(`removed ${r.removed.join(', ')}`);
      }),
    )
    .command(
      'ps',
      'list pods made with `tscni up`',
      (y) => y,
      action<object>(async (ctx, a) => {
        const pods = listPods(ctx.stateDir);
        if (a.json) {
          out(`${JSON.stringify(pods, null, 2)}\n`);
          return;
        }
        out(renderPsTable(pods));
      }),
    )
    .command(
      'inspect <name>',
      'show the wiring of a pod: interfaces, addresses, routes, host veth, bridge, ports, firewall rules',
      (y) =>
        y
          .positional('name', { type: 'string', demandOption: true })
          .option('format', { alias: 'f', choices: ['text', 'json', 'dot', 'svg'] as const, default: 'text' as const }),
      action<{ name: string; format: 'text' | 'json' | 'dot' | 'svg' }>(async (ctx, a) => {
        const report = await gatherInspect(ctx, a.name);
        const format = a.json ? 'json' : a.format;
        if (format === 'json') out(`${JSON.stringify(report, null, 2)}\n`);
        else if (format === 'dot') out(renderDot(report));
        else if (format === 'svg') out(renderSvg(report));
        else out(renderText(report));
      }),
    )
    .command(networkCommand(action as ActionFn))
    .command(dnsCommand(action as ActionFn))
    .command(
      'install',
      'install the executable under every plugin name, and an example conflist',
      (y) =>
        y
          .option('dir', { type: 'string', default: '/opt/cni/bin', describe: 'CNI bin directory' })
          .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', describe: 'CNI config directory ("" to skip the example)' })
          .option('force', { type: 'boolean', default: false, describe: 'replace an existing example conflist' }),
      action<{ dir: string; confDir: string; force: boolean }>(async (_ctx, a) => {
        if (['node', 'bun'].includes(basename(process.execPath))) throw new UsageError('run install from the built executable (dist/bin/tscni install)');
        const r = install({ source: process.execPath, dir: a.dir, confDir: a.confDir || undefined, names: PLUGIN_NAMES, force: a.force });
        if (a.json) {
          out(`${JSON.stringify(r)}\n`);
          return;
        }
        say(`installed ${r.binaries.join(' ')}`);
        if (r.conflist) say(`wrote ${r.conflist}`);
        if (r.conflistSkipped) say(`kept the existing ${r.conflistSkipped} (--force replaces it)`);
      }),
    )
    .command(overlayCommand())
    .demandCommand(1, 'name a command (tscni --help lists them)')
    .strict()
    .fail((msg, err) => {
      if (err) fail(err, process.argv.includes('--json'));
      say(`tscni: ${msg}\nRun tscni --help for usage.`);
      process.exit(2);
    })
    .help()
    .version(false)
    .parseAsync();
}

void main(process.argv.slice(2));
