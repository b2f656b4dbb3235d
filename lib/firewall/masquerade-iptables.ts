/**
 * Outbound masquerade with iptables, exactly as the reference bridge lays it
 * out (same chain names and comments, so either implementation can remove
 * what the other created):
 *
 *   nat POSTROUTING
 *     -s <pod ip> -j CNI-<hash(net+cid)>        comment: name: "<net>" id: "<cid>"
 *   nat CNI-<hash>
 *     -d <pod subnet> -j ACCEPT                 (one per subnet of this family)
 *     ! -d 224.0.0.0/4 -j MASQUERADE            (ff00::/8 for IPv6)
 *
 * Rules are data (RestoreOp) rendered by lib/firewall/iptables-restore.ts
 * and applied with ONE `iptables-restore --noflush -w` per family. Teardown
 * never lists the whole nat table: it reads POSTROUTING only and deletes by
 * the chain's name.
 */
import { addrOf, familyOf, networkOf, type Family } from '../ip/prefix.ts';
import { parseRules, parseTagComment, renderRestore, restoreArg, splitRuleWords, type RestoreOp } from './iptables-restore.ts';

export { splitRuleWords };

export const MULTICAST_NET: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

/** Quote one iptables-restore argument (comments contain spaces and quotes). */
export const quoteRestoreArg = restoreArg;

const tagged = (comment: string) => ['-m', 'comment', '--comment', comment];
const jump = (chain: string, comment: string, cidr: string): string[] => ['-s', addrOf(cidr), '-j', chain, ...tagged(comment)];

/** The rules of one attachment for one family, as data: the chain's ACCEPT and MASQUERADE, the POSTROUTING jumps. */
export function masqRules(family: Family, chain: string, comment: string, cidrs: readonly string[]): RestoreOp[] {
  const ops: RestoreOp[] = [];
  for (const net of new Set(cidrs.map(networkOf))) ops.push({ op: 'append', chain, args: ['-d', net, '-j', 'ACCEPT', ...tagged(comment)] });
  ops.push({ op: 'append', chain, args: ['!', '-d', MULTICAST_NET[family], '-j', 'MASQUERADE', ...tagged(comment)] });
  for (const cidr of cidrs) ops.push({ op: 'append', chain: 'POSTROUTING', args: jump(chain, comment, cidr) });
  return ops;
}

/** iptables-restore input that creates the chain and hooks it for the given addresses (all of one family). */
export function renderMasqSetup(family: Family, chain: string, comment: string, cidrs: readonly string[]): string {
  return renderRestore({ table: 'nat', ops: [{ op: 'declare', chain }, ...masqRules(family, chain, comment, cidrs)] });
}

export interface PostroutingRule {
  /** The rule's arguments as printed by `iptables -S`, after "-A POSTROUTING". */
  args: string[];
  target: string | undefined;
  comment: string | undefined;
}

/** Parse `iptables -t nat -S POSTROUTING` output. */
export function parsePostrouting(text: string): PostroutingRule[] {
  return parseRules(text)
    .filter((r) => r.chain === 'POSTROUTING')
    .map((r) => ({ args: r.args, target: r.target, comment: r.comment }));
}

/** Parse a reference comment `name: "<net>" id: "<cid>"`. */
export function parseMasqComment(comment: string | undefined): { name: string; id: string } | undefined {
  return parseTagComment(comment);
}

/**
 * iptables-restore input removing every POSTROUTING jump to `chain` (found
 * in `rules`) and the chain itself. Declaring the chain first makes `-X`
 * succeed whether or not it still exists.
 */
export function renderMasqTeardown(chains: readonly string[], rules: readonly PostroutingRule[]): string {
  const wanted = new Set(chains);
  const ops: RestoreOp[] = rules.filter((r) => r.target && wanted.has(r.target)).map((r) => ({ op: 'delete', chain: 'POSTROUTING', args: r.args }));
  for (const chain of chains) ops.push({ op: 'declare', chain });
  for (const chain of chains) ops.push({ op: 'deleteChain', chain });
  return renderRestore({ table: 'nat', ops });
}

/**
 * Teardown by exact rule specs when the addresses are known (prevResult):
 * no listing at all. iptables-restore is atomic, so when any rule is not
 * there the whole batch fails and the caller falls back to listing POSTROUTING.
 */
export function renderMasqTeardownExact(chain: string, comment: string, cidrs: readonly string[]): string {
  const ops: RestoreOp[] = cidrs.map((cidr) => ({ op: 'delete', chain: 'POSTROUTING', args: jump(chain, comment, cidr) }));
  ops.push({ op: 'declare', chain }, { op: 'deleteChain', chain });
  return renderRestore({ table: 'nat', ops });
}

/** Whether `args` (one listed rule) holds `flag value`, negated when `negated`. */
function hasMatch(args: readonly string[], flag: string, value: string, negated = false): boolean {
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] === flag && args[i + 1] === value) return negated === (args[i - 1] === '!');
  }
  return false;
}

/** The POSTROUTING jump of one address, as `iptables -C` takes it (the rule masqRules appends). */
export function masqJump(chain: string, comment: string, cidr: string): string[] {
  return ['POSTROUTING', ...jump(chain, comment, cidr)];
}

/**
 * CHECK, pure: the addresses (of one family) whose masquerade is not in place,
 * given `iptables -t nat -S <chain>` output ('' when the chain does not exist)
 * and the addresses whose POSTROUTING jump `iptables -C` found (`jumped`). An
 * address counts as in place when its jump is there AND the chain holds every
 * rule masqRules makes (ACCEPT per pod subnet, MASQUERADE but multicast): a
 * flushed chain masquerades nothing although the jump is there. Nothing here
 * lists POSTROUTING, whose length grows with the pods on the node.
 */
export function missingMasq(family: Family, chain: string, comment: string, cidrs: readonly string[], chainText: string, jumped: readonly string[]): string[] {
  const own = parseRules(chainText).filter((r) => r.chain === chain && r.comment === comment);
  const chainOk =
    [...new Set(cidrs.map(networkOf))].every((net) => own.some((r) => r.target === 'ACCEPT' && hasMatch(r.args, '-d', net))) &&
    own.some((r) => r.target === 'MASQUERADE' && hasMatch(r.args, '-d', MULTICAST_NET[family], true));
  return cidrs.filter((c) => !chainOk || !jumped.includes(c));
}

export function familyOfCidrs(cidrs: readonly string[], family: Family): string[] {
  return cidrs.filter((c) => familyOf(c) === family);
}
