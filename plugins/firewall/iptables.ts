/**
 * The firewall plugin's iptables layout (filter table), exactly as the
 * reference lays it out (plugins/meta/firewall/iptables.go and
 * ingresspolicy.go), so a node can switch implementations with pods running.
 * Pure: rules as data, a parser for `iptables -S`, and planners that turn
 * "what is there" + "what we want" into one iptables-restore batch (quoting
 * and word splitting from lib/firewall/iptables-restore.ts; inserts carry a
 * position here, which its RestoreOp does not).
 *
 *   filter FORWARD
 *     1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
 *     2 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
 *   filter CNI-FORWARD
 *     -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN      (first)
 *     -d <pod ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT         (per address)
 *     -s <pod ip>/32 -j ACCEPT
 *   filter CNI-ADMIN                                                              (the admin's; never written)
 *   filter CNI-ISOLATION-STAGE-1                                                  (per bridge, prepended)
 *     -i <br> ! -o <br> -m comment --comment "... (ingressPolicy: <policy>)" -j CNI-ISOLATION-STAGE-2
 *     -i <br> -o <br> -m comment --comment "... (ingressPolicy: isolated)" -j DROP   (isolated only)
 *     -m comment --comment "... (ingressPolicy: same-bridge|isolated)" -j RETURN    (last)
 *   filter CNI-ISOLATION-STAGE-2
 *     -o <br> -m comment --comment "... (ingressPolicy: same-bridge|isolated)" -j DROP
 *     -m comment --comment "... (ingressPolicy: same-bridge|isolated)" -j RETURN
 *
 * Unlike the reference, teardown removes a bridge's isolation rules when its
 * last attachment leaves, and the chains (and their jumps) once they hold
 * nothing but their fixed RETURN / admin jump.
 */
import { restoreArg, splitRuleWords } from '../../lib/firewall/iptables-restore.ts';
import { familyOf, type Family } from '../../lib/ip/prefix.ts';
import type { IngressPolicy } from './config.ts';

export const FORWARD = 'FORWARD';
export const PRIV_CHAIN = 'CNI-FORWARD';
export const STAGE1_CHAIN = 'CNI-ISOLATION-STAGE-1';
export const STAGE2_CHAIN = 'CNI-ISOLATION-STAGE-2';
export const FILTER_COMMENT = 'CNI firewall plugin rules';
export const ADMIN_COMMENT = 'CNI firewall plugin admin overrides';
export const DEFAULT_POLICY_COMMENT = 'CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)';

/** One rule: its chain and its arguments in `iptables -S` order (after `-A <chain>`). */
export interface FilterRule {
  chain: string;
  args: string[];
}

const comment = (c: string) => ['-m', 'comment', '--comment', c];
const policyComment = (p: IngressPolicy) => `CNI firewall plugin rules (ingressPolicy: ${p})`;

/** FORWARD -> CNI-FORWARD. */
export const privJump = (): FilterRule => ({ chain: FORWARD, args: [...comment(FILTER_COMMENT), '-j', PRIV_CHAIN] });
/** CNI-FORWARD -> admin chain (first rule of CNI-FORWARD). */
export const adminJump = (admin: string): FilterRule => ({ chain: PRIV_CHAIN, args: [...comment(ADMIN_COMMENT), '-j', admin] });
/** FORWARD -> CNI-ISOLATION-STAGE-1 (before the CNI-FORWARD jump). */
export const stage1Jump = (): FilterRule => ({ chain: FORWARD, args: [...comment(DEFAULT_POLICY_COMMENT), '-j', STAGE1_CHAIN] });
export const stageReturn = (chain: string): FilterRule => ({ chain, args: [...comment(DEFAULT_POLICY_COMMENT), '-j', 'RETURN'] });

/** The per-address rules in CNI-FORWARD (addresses as <ip>/32 or <ip>/128). */
export function podRules(prefixes: readonly string[]): FilterRule[] {
  return prefixes.flatMap((p) => [
    { chain: PRIV_CHAIN, args: ['-d', p, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'] },
    { chain: PRIV_CHAIN, args: ['-s', p, '-j', 'ACCEPT'] },
  ]);
}

/** A bridge's isolation rules: stage-1 rules (in order) and the stage-2 drop. */
export function bridgeRules(bridge: string, policy: Exclude<IngressPolicy, 'open'>): { stage1: FilterRule[]; stage2: FilterRule } {
  const stage1: FilterRule[] = [{ chain: STAGE1_CHAIN, args: ['-i', bridge, '!', '-o', bridge, ...comment(policyComment(policy)), '-j', STAGE2_CHAIN] }];
  if (policy === 'isolated') stage1.push({ chain: STAGE1_CHAIN, args: ['-i', bridge, '-o', bridge, ...comment(policyComment('isolated')), '-j', 'DROP'] });
  return { stage1, stage2: { chain: STAGE2_CHAIN, args: ['-o', bridge, ...comment(DEFAULT_POLICY_COMMENT), '-j', 'DROP'] } };
}

/** What one attachment needs, for one family. */
export interface AttachmentRules {
  admin: string;
  /** Addresses of this family, as host prefixes. */
  prefixes: string[];
  bridge?: string;
  policy: IngressPolicy;
}

/** The attachment's view restricted to `family` (its addresses of that family). */
export function forFamily(a: AttachmentRules, family: Family): AttachmentRules {
  return { ...a, prefixes: a.prefixes.filter((p) => familyOf(p) === family) };
}

/** `iptables -t filter -S` parsed: the chains that exist and each chain's rules as word arrays, in order. */
export interface FilterListing {
  chains: Set<string>;
  rules: Map<string, string[][]>;
}

/** Parse `iptables -w -t filter -S` output. */
export function parseFilterListing(text: string): FilterListing {
  const chains = new Set<string>();
  const rules = new Map<string, string[][]>();
  for (const line of text.split('\n')) {
    const words = splitRuleWords(line.trim());
    if ((words[0] === '-P' || words[0] === '-N') && words[1]) {
      chains.add(words[1]);
      if (!rules.has(words[1])) rules.set(words[1], []);
    } else if (words[0] === '-A' && words[1]) {
      if (!rules.has(words[1])) rules.set(words[1], []);
      rules.get(words[1])!.push(words.slice(2));
    }
  }
  return { chains, rules };
}

const key = (args: readonly string[]) => args.join('\u0000');
const indexOfRule = (list: readonly string[][], args: readonly string[]) => list.findIndex((r) => key(r) === key(args));

const line = (op: string, chain: string, args: readonly string[], pos?: number) => [op, chain, ...(pos ? [String(pos)] : []), ...args.map(restoreArg)].join(' ');

function clone(l: FilterListing): FilterListing {
  return { chains: new Set(l.chains), rules: new Map([...l.rules].map(([k, v]) => [k, v.map((r) => [...r])])) };
}

/**
 * The rules every attachment set (`want`) needs, as an ordered recipe:
 * chains, then head rules (each placed right after its predecessor, or
 * first), then appended rules. Shared by ADD, CHECK and reload.
 */
export function desiredRules(want: readonly AttachmentRules[]): { chains: string[]; heads: FilterRule[][]; tails: FilterRule[] } {
  const chains: string[] = [];
  const heads: FilterRule[][] = [];
  const tails: FilterRule[] = [];
  const forward: FilterRule[] = [];
  const withPods = want.filter((a) => a.prefixes.length > 0);
  if (withPods.length === 0) return { chains, heads, tails };
  const isolating = withPods.filter((a) => a.policy !== 'open' && a.bridge);
  if (isolating.length) {
    chains.push(STAGE1_CHAIN, STAGE2_CHAIN);
    forward.push(stage1Jump());
  }
  chains.push(PRIV_CHAIN);
  for (const a of withPods) if (!chains.includes(a.admin)) chains.push(a.admin);
  forward.push(privJump());
  heads.push(forward);
  for (const admin of new Set(withPods.map((a) => a.admin))) heads.push([adminJump(admin)]);
  for (const a of isolating) {
    const r = bridgeRules(a.bridge!, a.policy as Exclude<IngressPolicy, 'open'>);
    heads.push(r.stage1, [r.stage2]);
  }
  for (const a of withPods) tails.push(...podRules(a.prefixes));
  if (isolating.length) tails.push(stageReturn(STAGE1_CHAIN), stageReturn(STAGE2_CHAIN));
  return { chains, heads, tails };
}

/**
 * iptables-restore input that adds whatever of `want` is missing from
 * `current` (undefined when nothing is). Existing chains are never declared
 * (iptables-restore --noflush flushes a declared user chain). A missing head
 * rule goes right after its predecessor in the group, or first: so the
 * isolation jump always precedes the CNI-FORWARD jump, and a bridge's rules
 * precede stage 1's RETURN.
 */
export function renderEnsure(current: FilterListing, want: readonly AttachmentRules[]): string | undefined {
  const { chains, heads, tails } = desiredRules(want);
  const sim = clone(current);
  const out: string[] = [];
  for (const c of chains) {
    if (sim.chains.has(c)) continue;
    out.push(`:${c} - [0:0]`);
    sim.chains.add(c);
    sim.rules.set(c, []);
  }
  for (const group of heads) {
    let prev: FilterRule | undefined;
    for (const r of group) {
      const list = sim.rules.get(r.chain) ?? [];
      sim.rules.set(r.chain, list);
      if (indexOfRule(list, r.args) < 0) {
        const after = prev && prev.chain === r.chain ? indexOfRule(list, prev.args) : -1;
        const pos = after + 2;
        list.splice(pos - 1, 0, [...r.args]);
        out.push(line('-I', r.chain, r.args, pos));
      }
      prev = r;
    }
  }
  for (const r of tails) {
    const list = sim.rules.get(r.chain) ?? [];
    sim.rules.set(r.chain, list);
    if (indexOfRule(list, r.args) >= 0) continue;
    list.push([...r.args]);
    out.push(line('-A', r.chain, r.args));
  }
  return out.length ? ['*filter', ...out, 'COMMIT', ''].join('\n') : undefined;
}

/** The rules of `want` that are not in `current`, as `-A <chain> args` text (CHECK and `tscni firewall check`). */
export function missingRules(current: FilterListing, want: readonly AttachmentRules[]): string[] {
  const { chains, heads, tails } = desiredRules(want);
  const out: string[] = chains.filter((c) => !current.chains.has(c)).map((c) => `chain ${c}`);
  for (const r of [...heads.flat(), ...tails]) {
    if (indexOfRule(current.rules.get(r.chain) ?? [], r.args) < 0) out.push(line('-A', r.chain, r.args));
  }
  return out;
}

/**
 * iptables-restore input that removes the attachments `gone` (their
 * per-address rules; the isolation rules of each bridge in `lastOnBridge`),
 * then every chain of ours left with nothing but its fixed rules: stage
 * chains holding only their RETURN, CNI-FORWARD holding only admin jumps
 * (then an empty admin chain goes too). Rules not present are skipped, so
 * the batch never fails on what is already gone. Undefined: nothing to do.
 */
export function renderTeardown(current: FilterListing, gone: readonly AttachmentRules[], lastOnBridge: ReadonlyMap<string, IngressPolicy>): string | undefined {
  const sim = clone(current);
  const out: string[] = [];
  const del = (r: FilterRule) => {
    const list = sim.rules.get(r.chain);
    const i = list ? indexOfRule(list, r.args) : -1;
    if (i < 0 || !list) return;
    list.splice(i, 1);
    out.push(line('-D', r.chain, r.args));
  };
  for (const a of gone) for (const r of podRules(a.prefixes)) del(r);
  for (const [bridge] of lastOnBridge) {
    // Both policies' rules: the bridge may have been isolated by another network or an older config.
    const iso = bridgeRules(bridge, 'isolated');
    const same = bridgeRules(bridge, 'same-bridge');
    for (const r of [...iso.stage1, same.stage1[0]!, iso.stage2]) del(r);
  }
  const onlyFixed = (chain: string, fixed: (r: string[]) => boolean) => sim.chains.has(chain) && (sim.rules.get(chain) ?? []).every(fixed);
  const removeChain = (chain: string, jumps: FilterRule[]) => {
    for (const j of jumps) while (indexOfRule(sim.rules.get(j.chain) ?? [], j.args) >= 0) del(j);
    if ((sim.rules.get(chain) ?? []).length) out.push(`-F ${chain}`);
    out.push(`-X ${chain}`);
    sim.chains.delete(chain);
    sim.rules.delete(chain);
  };
  // A bare jump or RETURN, tagged with any of the firewall plugin's comments (older references tag them "(ingressPolicy: same-bridge)").
  const bare = (target: string) => (r: string[]) =>
    (r.length === 2 && r[0] === '-j' && r[1] === target) ||
    (r.length === 6 && r[0] === '-m' && r[1] === 'comment' && r[2] === '--comment' && (r[3] ?? '').startsWith(FILTER_COMMENT) && r[4] === '-j' && r[5] === target);
  const isReturn = bare('RETURN');
  // A chain is removed only when nothing else jumps to it.
  const referenced = (chain: string, except: readonly FilterRule[]) =>
    [...sim.rules].some(([c, list]) => list.some((r) => r[r.indexOf('-j') + 1] === chain && !except.some((e) => e.chain === c && key(e.args) === key(r))));
  // Stage chains holding nothing but RETURN (one may be gone already) go, with every bare FORWARD jump to stage 1.
  const stageEmpty = (c: string) => !sim.chains.has(c) || onlyFixed(c, isReturn);
  if ((sim.chains.has(STAGE1_CHAIN) || sim.chains.has(STAGE2_CHAIN)) && stageEmpty(STAGE1_CHAIN) && stageEmpty(STAGE2_CHAIN)) {
    const jumps = (sim.rules.get(FORWARD) ?? []).filter(bare(STAGE1_CHAIN)).map((args) => ({ chain: FORWARD, args }));
    if (!referenced(STAGE1_CHAIN, jumps) && !referenced(STAGE2_CHAIN, [])) {
      if (sim.chains.has(STAGE1_CHAIN)) removeChain(STAGE1_CHAIN, jumps);
      if (sim.chains.has(STAGE2_CHAIN)) removeChain(STAGE2_CHAIN, []);
    }
  }
  const admins = (sim.rules.get(PRIV_CHAIN) ?? []).map((r) => r[r.indexOf('-j') + 1] as string);
  const onlyAdmin = (r: string[]) => key(r) === key(adminJump(r[r.indexOf('-j') + 1] as string).args);
  if (gone.length && onlyFixed(PRIV_CHAIN, onlyAdmin) && !referenced(PRIV_CHAIN, [privJump()])) {
    removeChain(PRIV_CHAIN, [privJump()]);
    for (const admin of admins) {
      if (sim.chains.has(admin) && (sim.rules.get(admin) ?? []).length === 0 && !referenced(admin, [])) {
        out.push(`-X ${admin}`);
        sim.chains.delete(admin);
      }
    }
  }
  return out.length ? ['*filter', ...out, 'COMMIT', ''].join('\n') : undefined;
}
