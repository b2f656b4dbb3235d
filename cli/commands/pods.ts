/**
 * Beyond cnitool: `tscni up` / `tscni down` / `tscni ps`, Docker's network
 * modes in two commands.
 *
 *   up <net> <name>                      new netns /run/netns/<name> (lo up), attached to <net> as eth0
 *   up <net2> <name>                     the same pod joins a second network as eth1 (a second NIC)
 *   up <net> <name> -p 8080:80 --ip A    port publishing (portMappings capability) and a fixed IP (ips)
 *   up <net> <name2> --network container:<name>
 *                                        container mode: <name2> shares <name>'s namespace
 *   down <name>                          DEL every attachment in reverse order, then remove the netns
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { confListFromBytes, loadNetworkConf, type NetworkConfList } from '../../lib/libcni/conf.ts';
import { containerIdForNetns, UsageError, type CliContext } from '../context.ts';
import { createPodNetns, deleteNamedNetns, NETNS_RUN_DIR } from '../netns-util.ts';
import { deletePod, deletePodFiles, listPods, parseAddHost, parsePortSpec, readPod, validatePodName, writePod, writePodFiles, type PodAttachment, type PodNames, type PodRecord } from '../pods.ts';
import { runtimeFor } from './cni.ts';
import { readCacheEntry } from '../../lib/libcni/cache.ts';

export interface UpArgs {
  network: string;
  name: string;
  publish: string[];
  ip: string[];
  mode?: string;
  ifname?: string;
  hostname?: string;
  addHost?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  /** Docker's --network-alias: more names for this pod on this network (the aliases capability). */
  alias?: string[];
  /** Docker's --link pod[:alias]: the linked pod's addresses in this pod's hosts file. */
  link?: string[];
}

export interface UpOutcome {
  pod: PodRecord;
  attachment?: PodAttachment;
  result?: Record<string, unknown>;
}

function parseMode(mode: string | undefined): string | undefined {
  if (!mode || mode === 'bridge') return undefined;
  const m = /^container:(.+)$/.exec(mode);
  if (!m?.[1]) throw new UsageError(`invalid --network ${JSON.stringify(mode)}: expected container:<name>`);
  return m[1];
}

/** --link pod[:alias]: name:ip entries for every address of that pod (and its alias). */
function linkedHosts(ctx: CliContext, spec: string): string[] {
  const [target = '', alias] = spec.split(':');
  const pod = readPod(ctx.stateDir, target);
  if (!pod) throw new UsageError(`--link ${spec}: no pod named ${target}`);
  const owner = pod.sharesWith ? readPod(ctx.stateDir, pod.sharesWith) ?? pod : pod;
  const ips = owner.attachments.flatMap((x) => x.addresses ?? []).map((c) => c.replace(/\/\d+$/, ''));
  if (ips.length === 0) throw new UsageError(`--link ${spec}: ${target} has no addresses`);
  return ips.flatMap((ip) => [`${target}:${ip}`, ...(alias ? [`${alias}:${ip}`] : [])]);
}

export async function podUp(ctx: CliContext, a: UpArgs): Promise<UpOutcome> {
  validatePodName(a.name);
  const shareWith = parseMode(a.mode);
  const existing = readPod(ctx.stateDir, a.name);

  if (shareWith) {
    if (existing) throw new UsageError(`pod ${a.name} already exists`);
    if (a.publish.length || a.ip.length) throw new UsageError('-p and --ip belong to the pod that owns the namespace, not to a container: mode pod');
    const owner = readPod(ctx.stateDir, shareWith);
    if (!owner) throw new UsageError(`container:${shareWith}: no pod named ${shareWith}`);
    const target = owner.sharesWith ? readPod(ctx.stateDir, owner.sharesWith) ?? owner : owner;
    const pod: PodRecord = { name: a.name, netns: target.netns, ownsNetns: false, sharesWith: target.name, attachments: [] };
    writePod(ctx.stateDir, pod);
    return { pod };
  }

  if (existing?.sharesWith) throw new UsageError(`pod ${a.name} shares the namespace of ${existing.sharesWith}; attach ${existing.sharesWith} instead`);
  if (existing?.attachments.some((x) => x.network === a.network)) throw new UsageError(`pod ${a.name} is already attached to ${a.network}`);
  const list = loadNetworkConf(ctx.netDir, a.network);
  const portMappings = a.publish.map(parsePortSpec);
  // libcni hands a capability argument only to plugins that declare it: an undeclared one would be dropped silently.
  const declared = new Set(list.plugins.flatMap((p) => Object.keys(p.capabilities).filter((k) => p.capabilities[k])));
  const wanted: [string, boolean, string][] = [
    ['-p', a.publish.length > 0, 'portMappings'],
    ['--ip', a.ip.length > 0, 'ips'],
    ['--alias', (a.alias?.length ?? 0) > 0, 'aliases'],
  ];
  for (const [flag, used, capability] of wanted) {
    if (used && !declared.has(capability)) throw new UsageError(`${flag}: no plugin of network ${a.network} declares the "${capability}" capability, so it would be ignored`);
  }
  (a.addHost ?? []).forEach(parseAddHost);
  const linkHosts = (a.link ?? []).flatMap((spec) => linkedHosts(ctx, spec));

  let pod: PodRecord;
  let created = false;
  if (existing) {
    pod = existing;
  } else if (existsSync(join(NETNS_RUN_DIR, a.name))) {
    pod = { name: a.name, netns: join(NETNS_RUN_DIR, a.name), ownsNetns: false, attachments: [] };
  } else {
    pod = { name: a.name, netns: await createPodNetns(a.name), ownsNetns: true, attachments: [] };
    created = true;
  }

  const ifName = a.ifname || `eth${pod.attachments.length}`;
  const containerId = containerIdForNetns(pod.netns);
  const capabilityArgs: Record<string, unknown> = { ...ctx.capabilityArgs };
  if (portMappings.length) capabilityArgs.portMappings = portMappings;
  if (a.ip.length) capabilityArgs.ips = a.ip;
  if (a.alias?.length) {
    const byNet = { ...((capabilityArgs.aliases ?? {}) as Record<string, string[]>) };
    byNet[a.network] = [...(byNet[a.network] ?? []), ...a.alias];
    capabilityArgs.aliases = byNet;
  }

  // The pod's name reaches chained plugins (dnsname) the way containerd passes it.
  const args: [string, string][] = [...ctx.cniArgs];
  if (!args.some(([k]) => k === 'K8S_POD_NAME')) {
    if (!args.some(([k]) => k === 'IgnoreUnknown')) args.push(['IgnoreUnknown', '1']);
    args.push(['K8S_POD_NAME', a.name]);
  }
  let result: Record<string, unknown>;
  try {
    result = await runtimeFor(ctx).add(list, { containerId, netns: pod.netns, ifName, args, capabilityArgs });
  } catch (e) {
    // The plugins roll back their own work; we remove the namespace we made.
    if (created) await deleteNamedNetns(a.name).catch(() => undefined);
    throw e;
  }
  const attachment: PodAttachment = { network: a.network, ifName, containerId };
  if (portMappings.length) attachment.portMappings = portMappings;
  if (a.ip.length) attachment.ips = a.ip;
  attachment.addresses = ((result.ips as { address: string }[] | undefined) ?? []).map((i) => i.address);
  const dns = result.dns as PodAttachment['dns'] | undefined;
  if (dns?.nameservers?.length) attachment.dns = { nameservers: dns.nameservers, search: dns.search, domain: dns.domain };
  pod.attachments.push(attachment);
  const names: PodNames = { ...pod.names };
  if (a.hostname) names.hostname = a.hostname;
  if (a.addHost?.length || linkHosts.length) names.addHosts = [...(names.addHosts ?? []), ...(a.addHost ?? []), ...linkHosts];
  if (a.dnsOption?.length) names.dnsOptions = a.dnsOption;
  if (a.dns?.length) names.dns = a.dns;
  if (a.dnsSearch?.length) names.dnsSearch = a.dnsSearch;
  if (Object.keys(names).length) pod.names = names;
  writePod(ctx.stateDir, pod);
  writePodFiles(ctx.stateDir, pod);
  return { pod, attachment, result };
}

/**
 * The conflist to DEL with: the one in NETCONFPATH, or, when it was removed
 * or renamed since, the copy the result cache kept.
 */
function listForDel(ctx: CliContext, at: PodAttachment): NetworkConfList {
  try {
    return loadNetworkConf(ctx.netDir, at.network);
  } catch (e) {
    const cached = readCacheEntry(ctx.cacheDir, { network: at.network, containerId: at.containerId, ifName: at.ifName });
    if (cached?.config.length) return confListFromBytes(cached.config);
    throw e;
  }
}

export interface DownOutcome {
  removed: string[];
  errors: string[];
}

export async function podDown(ctx: CliContext, name: string): Promise<DownOutcome> {
  validatePodName(name);
  const pod = readPod(ctx.stateDir, name);
  if (!pod) throw new UsageError(`no pod named ${name}`);
  const out: DownOutcome = { removed: [], errors: [] };
  // Pods in container mode go with the namespace they share.
  for (const other of listPods(ctx.stateDir)) {
    if (other.sharesWith === name) {
      deletePod(ctx.stateDir, other.name);
      out.removed.push(other.name);
    }
  }
  if (pod.sharesWith) {
    deletePod(ctx.stateDir, name);
    out.removed.push(name);
    return out;
  }
  const rt = runtimeFor(ctx);
  for (const at of [...pod.attachments].reverse()) {
    // As containerd does, DEL gets the capability arguments of the ADD.
    const cached = readCacheEntry(ctx.cacheDir, { network: at.network, containerId: at.containerId, ifName: at.ifName });
    try {
      await rt.del(listForDel(ctx, at), {
        containerId: at.containerId,
        netns: pod.netns,
        ifName: at.ifName,
        args: cached?.cniArgs ?? ctx.cniArgs,
        capabilityArgs: cached?.capabilityArgs ?? {},
      });
      pod.attachments = pod.attachments.filter((x) => x !== at);
    } catch (e) {
      out.errors.push(`${at.network} (${at.ifName}): ${(e as Error).message}`);
    }
  }
  if (out.errors.length > 0) {
    // Keep what is left so that `down` can be retried.
    writePod(ctx.stateDir, pod);
    return out;
  }
  if (pod.ownsNetns) await deleteNamedNetns(pod.netns.slice(NETNS_RUN_DIR.length + 1));
  deletePodFiles(ctx.stateDir, name);
  deletePod(ctx.stateDir, name);
  out.removed.push(name);
  return out;
}

/**
 * Detach one network from a pod (`network rm --force`): DEL that attachment
 * only, keep the pod and its other networks, re-render its files.
 */
export async function podDetach(ctx: CliContext, name: string, network: string): Promise<void> {
  const pod = readPod(ctx.stateDir, name);
  if (!pod) return;
  for (const at of pod.attachments.filter((x) => x.network === network)) {
    const cached = readCacheEntry(ctx.cacheDir, { network: at.network, containerId: at.containerId, ifName: at.ifName });
    await runtimeFor(ctx).del(listForDel(ctx, at), {
      containerId: at.containerId,
      netns: pod.netns,
      ifName: at.ifName,
      args: cached?.cniArgs ?? ctx.cniArgs,
      capabilityArgs: cached?.capabilityArgs ?? {},
    });
    pod.attachments = pod.attachments.filter((x) => x !== at);
  }
  writePod(ctx.stateDir, pod);
  writePodFiles(ctx.stateDir, pod);
}
