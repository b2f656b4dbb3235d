/**
 * iptables rules as data, and the one text format they travel in: the
 * input of `iptables-restore --noflush -w` and the lines of `iptables -S`.
 * Every user (masquerade, portmap, firewall) builds a RestoreBatch and
 * renders it here; quoting and parsing exist once.
 *
 *   *<table>
 *   :<chain> - [0:0]          declare (create if missing, keep if present)
 *   -D <chain> <rule>         delete a rule by its exact spec
 *   -A|-I <chain> <rule>      append / insert
 *   -F <chain>, -X <chain>    flush, delete
 *   COMMIT                    one atomic transaction
 */
import type { Family } from '../ip/prefix.ts';

/** The commands per family: the rule tool and its restore tool. */
export const IPTABLES: Record<Family, { main: string; restore: string }> = {
  4: { main: 'iptables', restore: 'iptables-restore' },
  6: { main: 'ip6tables', restore: 'ip6tables-restore' },
};

/**
 * One argument of a restore line: as is when plain, else double-quoted with
 * \\ and \" escaped. A line break or NUL cannot be carried (it would end the
 * line and start another rule): callers validate; this throws as a last guard.
 */
export function restoreArg(s: string): string {
  if (/[\r\n\0]/.test(s)) throw new Error(`iptables-restore argument ${JSON.stringify(s)} contains a line break or NUL`);
  return /^[^\s"'\\]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A rule's arguments (without -A/-D and chain) as restore text. */
export const ruleText = (args: readonly string[]) => args.map(restoreArg).join(' ');

/** One line of a transaction: declare (create, or flush an existing user chain), flush, delete a chain, or a rule change. */
export type RestoreOp =
  | { op: 'declare' | 'flush' | 'deleteChain'; chain: string }
  | { op: 'append' | 'insert' | 'delete'; chain: string; args: readonly string[] };

/** One atomic transaction on one table, as data: its lines in order. */
export interface RestoreBatch {
  table: 'nat' | 'filter' | 'mangle' | 'raw';
  ops: readonly RestoreOp[];
}

const FLAG = { append: '-A', insert: '-I', delete: '-D' } as const;

/** iptables-restore input for one batch (ends with COMMIT and a newline). */
export function renderRestore(b: RestoreBatch): string {
  const out = [`*${b.table}`];
  for (const o of b.ops) {
    if (o.op === 'declare') out.push(`:${o.chain} - [0:0]`);
    else if (o.op === 'flush') out.push(`-F ${o.chain}`);
    else if (o.op === 'deleteChain') out.push(`-X ${o.chain}`);
    else if (o.op === 'append' || o.op === 'insert' || o.op === 'delete') out.push(`${FLAG[o.op]} ${o.chain} ${ruleText(o.args)}`);
  }
  out.push('COMMIT', '');
  return out.join('\n');
}

/** Words of one `iptables -S` line, honouring "quoted strings" with \" and \\ escapes. */
export function splitRuleWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      started = true;
    } else if (/\s/.test(ch)) {
      if (started) out.push(cur);
      cur = '';
      started = false;
    } else {
      cur += ch;
      started = true;
    }
  }
  if (started) out.push(cur);
  return out;
}

/** One `-A <chain> ...` line of `iptables -S`: its chain, its arguments, its -j target and its comment. */
export interface ListedRule {
  chain: string;
  args: string[];
  target: string | undefined;
  comment: string | undefined;
}

/** The `-A` lines of `iptables -S` output (other lines are skipped). */
export function parseRules(text: string): ListedRule[] {
  const out: ListedRule[] = [];
  for (const l of text.split('\n')) {
    const words = splitRuleWords(l.trim());
    if (words[0] !== '-A' || words.length < 2) continue;
    const args = words.slice(2);
    const j = args.indexOf('-j');
    const c = args.indexOf('--comment');
    out.push({ chain: words[1] as string, args, target: j >= 0 ? args[j + 1] : undefined, comment: c >= 0 ? args[c + 1] : undefined });
  }
  return out;
}

/**
 * The network and container ID of a reference tag comment
 * `[<prefix> ]name: "<net>" id: "<cid>"` (Go %q quoting), or undefined.
 */
export function parseTagComment(comment: string | undefined, prefix = ''): { name: string; id: string } | undefined {
  if (!comment) return undefined;
  const head = prefix ? `${prefix} ` : '';
  if (!comment.startsWith(head)) return undefined;
  const m = /^name: "((?:[^"\\]|\\.)*)" id: "((?:[^"\\]|\\.)*)"$/.exec(comment.slice(head.length));
  if (!m) return undefined;
  return { name: JSON.parse(`"${m[1]}"`) as string, id: JSON.parse(`"${m[2]}"`) as string };
}
