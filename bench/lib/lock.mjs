/**
 * The shared lock: tests and benchmarks that change network state run one at
 * a time under `flock /tmp/tscni-net.lock`. `ensureLocked` returns when an
 * ancestor of this process (a `flock` we were started by) holds the lock;
 * otherwise it re-runs this script under flock and exits with its code.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { progress } from './proc.mjs';

export const LOCK_FILE = '/tmp/tscni-net.lock';

/** Pids holding a FLOCK on the lock file's inode, from /proc/locks. */
function lockHolders() {
  const ino = statSync(LOCK_FILE).ino;
  const holders = [];
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"
    if (f[1] === 'FLOCK' && f[5]?.endsWith(`:${ino}`)) holders.push(Number(f[4]));
  }
  return holders;
}

/** This process's ancestors, parent first. */
function ancestors() {
  const out = [];
  for (let pid = process.ppid; pid > 1 && out.length < 64; ) {
    out.push(pid);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return out;
}

/** Return if we hold the lock through an ancestor; else re-exec under flock (never returns). */
export async function ensureLocked() {
  if (!existsSync(LOCK_FILE)) writeFileSync(LOCK_FILE, '');
  const holders = lockHolders();
  const mine = ancestors();
  if (holders.some((p) => mine.includes(p))) return;
  if (process.env.TSCNI_BENCH_UNDER_FLOCK) throw new Error(`started under flock but ${LOCK_FILE} is not held by an ancestor`);
  if (holders.length) progress(`waiting for ${LOCK_FILE} (held by pid ${holders.join(', ')})`);
  // flock and the benchmark under it get a process group of their own, so a
  // signal to this process reaches the benchmark (which then cleans up).
  const child = spawn('flock', [LOCK_FILE, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, TSCNI_BENCH_UNDER_FLOCK: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        // the group is already gone
      }
    });
  }
  const code = await new Promise((resolve) => child.on('close', (c, s) => resolve(c ?? (s ? 130 : 1))));
  process.exit(code);
}
