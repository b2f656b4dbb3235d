/**
 * The bridge plugin's ipMasq chains (nat POSTROUTING jump to CNI-<hash>,
 * commented `name: "<network>" id: "<container>"`, as the reference writes
 * them) that a network left behind after its pods went down. Tests call
 * this after their DELs: a non-empty answer is a leak, and the rules are
 * removed so the host is left as found either way.
 */
import { tryRun } from './netns.ts';

/**
 * Remove every nat rule (iptables and ip6tables) whose comment names
 * `network`, and the CNI-* chains those rules jump to. Returns the rule
 * lines found, "<iptables|ip6tables> <rule>", empty when nothing was left.
 */
export function removeMasqueradeOf(network: string): string[] {
  const found: string[] = [];
  const tag = `name: \\"${network}\\"`;
  for (const [cmd, save] of [['iptables', 'iptables-save'], ['ip6tables', 'ip6tables-save']] as const) {
    const lines = tryRun([save, '-t', 'nat']).stdout.split('\n').filter((l) => l.startsWith('-A POSTROUTING ') && l.includes(tag));
    for (const line of lines) {
      found.push(`${cmd} ${line}`);
      const chain = / -j (CNI-[0-9a-f]+)$/.exec(line)?.[1];
      tryRun([cmd, '-w', '-t', 'nat', '-D', 'POSTROUTING', ...splitWords(line.slice('-A POSTROUTING '.length))]);
      if (chain) {
        tryRun([cmd, '-w', '-t', 'nat', '-F', chain]);
        tryRun([cmd, '-w', '-t', 'nat', '-X', chain]);
      }
    }
  }
  return found;
}

/** The words of an iptables-save rule line as argv for iptables, with "quoted \"strings\"" unquoted. */
export function splitWords(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return out;
}
