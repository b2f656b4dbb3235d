/**
 * cnitool-compatible commands: tscni add|check|del|gc|status <network> <netns>.
 * Same environment, same container ID derivation, same result cache, so an
 * attachment made by one tool can be checked or removed by the other.
 */
import { resolve } from 'node:path';
import { loadNetworkConf } from '../../lib/libcni/conf.ts';
import { CniRuntime, type GcAttachment, type RuntimeConf } from '../../lib/libcni/runtime.ts';
import { listCacheEntries, readCacheEntry } from '../../lib/libcni/cache.ts';
import { inspectNetns } from '../../lib/netns.ts';
import { containerIdForNetns, UsageError, type CliContext } from '../context.ts';

export type CniVerb = 'add' | 'check' | 'del' | 'gc' | 'status';

export interface CniCommandArgs {
  verb: CniVerb;
  network: string;
  netns?: string;
  ifname?: string;
  /** gc: attachments to keep, "containerID/ifname". */
  valid?: string[];
  /** gc: keep every cached attachment whose namespace still exists. */
  live?: boolean;
}

export function runtimeFor(ctx: CliContext): CniRuntime {
  return new CniRuntime({ cniPath: ctx.cniPath, cacheDir: ctx.cacheDir, env: ctx.env });
}

export function runtimeConfFor(ctx: CliContext, netns: string, ifname: string | undefined): RuntimeConf {
  const path = resolve(netns);
  return {
    containerId: containerIdForNetns(path),
    netns: path,
    ifName: ifname || ctx.ifName || 'eth0',
    args: ctx.cniArgs,
    capabilityArgs: ctx.capabilityArgs,
  };
}

export function parseValidAttachment(spec: string): GcAttachment {
  const i = spec.lastIndexOf('/');
  if (i <= 0 || i === spec.length - 1) throw new UsageError(`invalid --valid ${JSON.stringify(spec)}: expected containerID/ifname`);
  return { containerID: spec.slice(0, i), ifname: spec.slice(i + 1) };
}

/** Runs one verb; returns the ADD result (the only command that prints one). */
export async function runCniCommand(ctx: CliContext, a: CniCommandArgs): Promise<Record<string, unknown> | undefined> {
  const list = loadNetworkConf(ctx.netDir, a.network);
  const rt = runtimeFor(ctx);
  switch (a.verb) {
    case 'status':
      await rt.status(list);
      return undefined;
    case 'gc': {
      let valid: GcAttachment[] | undefined;
      if (a.valid?.length || a.live) {
        valid = (a.valid ?? []).map(parseValidAttachment);
        if (a.live) {
          for (const c of listCacheEntries(ctx.cacheDir)) {
            if (c.network === list.name && c.netns && inspectNetns(c.netns) === 'ok') valid.push({ containerID: c.containerId, ifname: c.ifName });
          }
        }
      }
      await rt.gc(list, valid);
      return undefined;
    }
  }
  if (!a.netns) throw new UsageError(`${a.verb} needs a network namespace path`);
  const conf = runtimeConfFor(ctx, a.netns, a.ifname);
  switch (a.verb) {
    case 'add':
      return rt.add(list, conf);
    case 'check': {
      // Without CAP_ARGS, CHECK gets the capability arguments of the ADD (as containerd passes the pod's
      // port mappings again): cnitool would pass none, and portmap would then have nothing to check.
      if (!ctx.env.CAP_ARGS) {
        const cached = readCacheEntry(ctx.cacheDir, { network: list.name, containerId: conf.containerId, ifName: conf.ifName });
        if (cached?.capabilityArgs) conf.capabilityArgs = cached.capabilityArgs;
      }
      await rt.check(list, conf);
      return undefined;
    }
    case 'del':
      await rt.del(list, conf);
      return undefined;
  }
}
