/**
 * The benchmark's only way to start processes: argv arrays, no shells.
 * `timed` runs one child asynchronously and measures its wall time from
 * spawn to exit; every child in flight is remembered so that an interrupt
 * can end exactly the processes this benchmark started.
 */
import { spawn, spawnSync } from 'node:child_process';

/** A fixed PATH for every child, so both implementations find the same tools. */
export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const inFlight = new Set();

/**
 * Run argv[0] with `env` (exactly, nothing inherited) and `input` on stdin.
 * Resolves to { code, ms, out, err }; never rejects (a spawn failure is code -1).
 */
export function timed(argv, { env = { PATH: SAFE_PATH }, input = '' } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    inFlight.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.stdin.on('error', () => {}); // a plugin that exits without reading stdin is not an error here
    child.on('error', (e) => {
      inFlight.delete(child);
      resolve({ code: -1, ms: 0, out, err: `${err}${e.message}` });
    });
    child.on('close', (code, signal) => {
      inFlight.delete(child);
      resolve({ code: code ?? (signal ? 128 : -1), ms: Number(process.hrtime.bigint() - t0) / 1e6, out, err });
    });
    child.stdin.end(input);
  });
}

/** Synchronous helper for setup and cleanup: { code, stdout, stderr }. */
export function sh(argv, input, env = process.env) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', input, env, maxBuffer: 256 * 1024 * 1024 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') };
}

/** Like sh, but throws with the command and its stderr on a non-zero exit. */
export function mustSh(argv, input) {
  const r = sh(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** SIGKILL every child this module started that is still running (by pid, nothing else). */
export function killInFlight() {
  for (const child of inFlight) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Run `worker(item)` over `items` with at most `limit` in flight; results in input order. */
export async function pool(items, limit, worker) {
  const results = new Array(items.length);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await worker(items[i], i);
      } catch (e) {
        failed = true; // the other lanes finish their current item and stop
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** Progress line on stderr (stdout carries the report only). */
export function progress(msg) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
