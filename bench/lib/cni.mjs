/**
 * Calling CNI plugins the way a runtime does: one process per call, the
 * network config on stdin, CNI_* in an otherwise minimal environment (so
 * neither implementation pays for the caller's environment), one JSON
 * document back on stdout.
 *
 * An implementation is { key, label, binDir }: `binDir/<plugin>` is the
 * executable and CNI_PATH, so each bridge finds its own host-local.
 */
import { join } from 'node:path';
import { SAFE_PATH, timed } from './proc.mjs';

/** The reference (Debian 1.1.1) supports spec versions up to 1.0.0; both sides get the same. */
export const CNI_VERSION = '1.0.0';

/**
 * One plugin call. `verb` is ADD, CHECK, DEL or VERSION; `config` the network
 * config object (VERSION sends {cniVersion} as libcni does); `wrap` an argv
 * prefix such as strace or GNU time (then `ms` includes the wrapper);
 * `inNetns` a namespace path the plugin runs in (nsenter's exec is in `ms`);
 * `extraEnv` more environment (e.g. TSCNI_DNS_DIR for dnsname's state).
 * Resolves to { ok, ms, result, out, err } where result is the parsed stdout.
 */
export async function callPlugin(impl, plugin, verb, { cid = 'bench', netns = '', ifname = 'eth0', config = {}, wrap = [], inNetns = '', extraEnv = {} } = {}) {
  const env = { PATH: SAFE_PATH, CNI_COMMAND: verb, ...extraEnv };
  if (verb !== 'VERSION') Object.assign(env, { CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: impl.binDir });
  const input = JSON.stringify(verb === 'VERSION' ? { cniVersion: CNI_VERSION } : config);
  // `inNetns`: the plugin runs inside that namespace (a bench-made "node"), entered by nsenter (setns + exec, nothing else).
  const enter = inNetns && verb !== 'VERSION' ? ['/usr/bin/nsenter', `--net=${inNetns}`, '--'] : [];
  const r = await timed([...wrap, ...enter, join(impl.binDir, plugin)], { env, input });
  let result = null;
  try {
    result = r.out.trim() ? JSON.parse(r.out) : null;
  } catch {
    // not JSON: reported through `err` below
  }
  const ok = r.code === 0;
  const err = ok ? '' : `${impl.label} ${plugin} ${verb} ${cid}: exit ${r.code}: ${(result?.msg ?? r.out).toString().trim()} ${r.err.trim()}`.trim();
  return { ok, ms: r.ms, result, out: r.out, err };
}

/** Like callPlugin, but throws on failure (for setup steps that are not measured). */
export async function mustCall(impl, plugin, verb, opts) {
  const r = await callPlugin(impl, plugin, verb, opts);
  if (!r.ok) throw new Error(r.err);
  return r;
}

/** The first IPv4 address (without the prefix length) of a CNI result, or null. */
export function resultIp(result) {
  const a = result?.ips?.find((ip) => ip.address?.includes('.'));
  return a ? a.address.split('/')[0] : null;
}
