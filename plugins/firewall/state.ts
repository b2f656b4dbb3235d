/**
 * What the firewall plugin remembers (the reference remembers nothing, so
 * its DEL without prevResult cannot find the rules, and it never knows when
 * a bridge's last pod has gone):
 *
 *   <stateDir>/lock                              flock(2)ed to serialise list + apply (lib/file-lock.ts)
 *   <stateDir>/attachments/<net>/<cid>~<ifname>  one record per attachment (ifname URI-encoded)
 *
 * Records are complete JSON files renamed into place.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileLock } from '../../lib/file-lock.ts';
import { writeFileAtomic } from '../../lib/fs.ts';
import type { FirewallBackend, IngressPolicy } from './config.ts';

export interface FirewallRecord {
  network: string;
  containerId: string;
  ifName: string;
  backend: FirewallBackend;
  adminChain: string;
  policy: IngressPolicy;
  bridge?: string;
  /** Host prefixes: <ip>/32 and <ip>/128. */
  prefixes: string[];
  /** The pod's netns path at ADD (the reload skips attachments whose namespace is gone). */
  netns?: string;
}

export interface Holder {
  network: string;
  containerId: string;
  ifName: string;
}

const same = (a: Holder, b: Holder) => a.network === b.network && a.containerId === b.containerId && a.ifName === b.ifName;

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** The records of one state directory; every method that changes files is called under `locked`. */
export class FirewallState {
  readonly dir: string;
  private readonly lock: FileLock;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lock = new FileLock(join(dir, 'lock'));
  }

  /** Run `fn` holding the lock (bounded wait; code 11 when it times out). */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.withAsync(fn);
  }

  private path(h: Holder): string {
    return join(this.dir, 'attachments', h.network, `${h.containerId}~${encodeURIComponent(h.ifName)}`);
  }

  read(h: Holder): FirewallRecord | undefined {
    const r = readJson<FirewallRecord>(this.path(h));
    return r && same(r, h) ? r : undefined;
  }

  write(r: FirewallRecord): void {
    mkdirSync(join(this.dir, 'attachments', r.network), { recursive: true, mode: 0o700 });
    writeFileAtomic(this.path(r), JSON.stringify(r), { mode: 0o600 });
  }

  /** Drop `h`'s record; the network's folder goes with its last record, as portmap's does. */
  remove(h: Holder): void {
    rmSync(this.path(h), { force: true });
    try {
      rmdirSync(join(this.dir, 'attachments', h.network));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw err;
    }
  }

  /** Every record (all networks), or those of `network`. */
  all(network?: string): FirewallRecord[] {
    const root = join(this.dir, 'attachments');
    const nets = network === undefined ? listDir(root) : [network];
    return nets.flatMap((n) =>
      listDir(join(root, n))
        .filter((f) => !f.includes('.tmp-'))
        .map((f) => readJson<FirewallRecord>(join(root, n, f)))
        .filter((r): r is FirewallRecord => r !== undefined && typeof r.network === 'string' && Array.isArray(r.prefixes)),
    );
  }
}

export { same as sameHolder };
