/**
 * Leaving the host as we found it. Everything the benchmark makes is found
 * by name (PREFIX) rather than remembered, so the same code also removes the
 * leftovers of a run that was killed:
 *
 *   namespaces  tscnib-*            (take their veth ends, and so the host ends, with them)
 *   links       tscnib-* bridges    (and any port still attached to them)
 *   nat rules   comments naming a tscnib-* network, and the CNI-* chains they jump to
 *
 * Shared state that outlives pods (CNI-HOSTPORT-* chains and their jumps, the
 * nft table inet tscni_portmap, forwarding sysctls) is removed or restored only
 * if the benchmark created or changed it: snapshotHost() before, restoreHost() after.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { PREFIX } from './network.mjs';
import { removeSharedIfNew, snapshotShared } from '../../scripts/lib/portmap-shared.mjs';
import { progress, sh } from './proc.mjs';

const SYSCTLS = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];
const SHARED_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'];

/** What exists before the run: shared chains per family, the nft table, sysctl values. */
export function snapshotHost() {
  return {
    ...snapshotShared(),
    sysctls: Object.fromEntries(SYSCTLS.filter(existsSync).map((p) => [p, readFileSync(p, 'utf8').trim()])),
  };
}

/** Our namespaces, links and nat rules as they are now (for the before/after check). */
export function listOurs() {
  const netns = sh(['ip', 'netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(PREFIX));
  const links = sh(['ip', '-o', 'link', 'show']).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0]).filter((n) => n?.startsWith(PREFIX));
  const rules = ['iptables-save', 'ip6tables-save'].flatMap((cmd) => sh([cmd, '-t', 'nat']).stdout.split('\n').filter((l) => l.includes(`name: \\"${PREFIX}`)));
  return { netns, links, rules };
}

/** Delete nat rules naming our networks, and the per-pod chains they are in or jump to, for one family. */
function removeNatRules(family) {
  const save = sh([`${family}-save`, '-t', 'nat']);
  if (save.code !== 0) return;
  const deletes = [];
  const chains = new Set();
  const builtinOrShared = (c) => /^[A-Z]+$/.test(c) || SHARED_CHAINS.includes(c);
  for (const line of save.stdout.split('\n')) {
    if (!line.startsWith('-A ') || !line.includes(`name: \\"${PREFIX}`)) continue;
    const chain = line.split(' ')[1];
    if (builtinOrShared(chain)) deletes.push(`-D ${line.slice(3)}`);
    else chains.add(chain);
    const target = / -j (CNI-[A-Za-z0-9-]+)/.exec(line)?.[1];
    if (target && !builtinOrShared(target)) chains.add(target);
  }
  if (!deletes.length && !chains.size) return;
  // Declaring a chain in --noflush mode flushes it; then it can go.
  const text = ['*nat', ...deletes, ...[...chains].map((c) => `:${c} - [0:0]`), ...[...chains].map((c) => `-X ${c}`), 'COMMIT', ''].join('\n');
  const r = sh([`${family}-restore`, '--noflush', '-w'], text);
  if (r.code !== 0) progress(`cleanup: ${family}-restore failed: ${r.stderr.trim()}`);
}

/** Delete namespaces by name, in one `ip -batch`. */
function deleteNamespaces(names) {
  if (names.length) sh(['ip', '-batch', '-'], names.map((n) => `netns del ${n}\n`).join(''));
}

/** Delete a bridge and any port still attached to it. */
function deleteBridge(bridge) {
  const ports = sh(['ip', '-o', 'link', 'show', 'master', bridge]).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0]).filter(Boolean);
  if (ports.length) sh(['ip', '-batch', '-'], ports.map((p) => `link del ${p}\n`).join(''));
  sh(['ip', 'link', 'del', bridge]);
}

/** Remove every namespace, link and nat rule of ours (idempotent; also for leftovers of a killed run). */
export function removeOurs() {
  const { netns, links } = listOurs();
  deleteNamespaces(netns);
  for (const bridge of links) deleteBridge(bridge);
  removeNatRules('iptables');
  removeNatRules('ip6tables');
}

/** Remove one network's namespaces and bridge now (the final removeOurs() catches anything else). */
export function removeNetwork(net) {
  deleteNamespaces([...net.namespaces]);
  net.namespaces.clear();
  deleteBridge(net.bridge);
}

/** Remove shared chains and the nft table if they did not exist before (scripts/lib/portmap-shared.mjs); restore changed sysctls. */
export function restoreHost(before) {
  removeSharedIfNew(before);
  for (const [path, value] of Object.entries(before.sysctls)) {
    if (readFileSync(path, 'utf8').trim() !== value) writeFileSync(path, `${value}\n`);
  }
}

