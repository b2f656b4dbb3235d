/**
 * The only module that starts processes. argv arrays only, never a shell:
 * interface names, paths and comments come from outside.
 *
 * In the executables (Bun) a child is started with Bun.spawn: node:child_process
 * costs about 4 ms more per plugin call there (measured on a compiled program
 * that starts /bin/true once: 5.9 ms with Bun.spawn, 10.1 ms with
 * child_process). Node (the unit tests) uses node:child_process.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';

// Loaded on first use, not at module top level: the executable is a V8
// startup snapshot and child_process is not snapshot-safe.
function spawnProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv | undefined, timeout: number | undefined): ChildProcessWithoutNullStreams {
  const cp = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  return cp.spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'], shell: false, timeout });
}

export interface RunOptions {
  /** Bytes for the child's stdin. */
  input?: string | Buffer;
  /** Full environment for the child (defaults to this process's). */
  env?: Record<string, string | undefined>;
  /** Run inside the network namespace at this path (any nsfs path, not only /run/netns names). */
  netns?: string;
  /** Resolve instead of throwing when the exit code is not zero. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface RunResult {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export class ExecError extends Error {
  readonly argv: string[];
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;

  constructor(argv: string[], code: number, stdout: string, stderr: string, reason?: string) {
    const what = reason ?? `exited with code ${code}`;
    const tail = stderr.trim() ? `: ${stderr.trim()}` : '';
    super(`${argv.join(' ')} ${what}${tail}`);
    this.name = 'ExecError';
    this.argv = argv;
    this.code = code;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** The argv that runs `argv` inside the network namespace at `netnsPath`. */
export function inNetns(netnsPath: string, argv: string[]): string[] {
  return ['nsenter', `--net=${netnsPath}`, '--', ...argv];
}

/** `full` started with Bun.spawn; the same results and errors as the child_process path below. */
async function runWithBun(full: string[], opts: RunOptions): Promise<RunResult> {
  const env = opts.env ? (Object.fromEntries(Object.entries(opts.env).filter(([, v]) => v !== undefined)) as Record<string, string>) : undefined;
  const input = opts.input === undefined || opts.input.length === 0 ? 'ignore' : typeof opts.input === 'string' ? Buffer.from(opts.input) : opts.input;
  let child: Bun.Subprocess<'ignore' | Buffer, 'pipe', 'pipe'>;
  try {
    child = Bun.spawn(full, { env, stdin: input, stdout: 'pipe', stderr: 'pipe', ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}) });
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    const reason = errno === 'ENOENT' ? `failed: command not found (${full[0]})` : `failed to start: ${(e as Error).message}`;
    throw Object.assign(new ExecError(full, -1, '', '', reason), { errno });
  }
  const [stdout, stderr, exited] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const signal = child.signalCode;
  const exitCode = signal ? 128 : exited;
  if (exitCode !== 0 && !opts.allowFailure) throw new ExecError(full, exitCode, stdout, stderr, signal ? `killed by ${signal}` : undefined);
  return { argv: full, code: exitCode, stdout, stderr };
}

/**
 * Run `argv` (in `opts.netns` through nsenter) with `opts.input` on stdin;
 * resolves to { argv, code, stdout, stderr }. Rejects with ExecError when it
 * cannot start (`errno` set: ENOENT, ETXTBSY, ...) or exits non-zero (unless
 * `allowFailure`); a child killed by a signal (e.g. the timeout) counts as code 128.
 */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = opts.netns ? inNetns(opts.netns, argv) : argv;
  const [cmd, ...rest] = full;
  if (!cmd) return Promise.reject(new Error('run: empty argv'));
  if (typeof Bun !== 'undefined') return runWithBun(full, opts);
  return new Promise((resolve, reject) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawnProcess(cmd, rest, opts.env as NodeJS.ProcessEnv | undefined, opts.timeoutMs);
    } catch (e) {
      // Some exec failures (ETXTBSY, EACCES) are thrown synchronously rather than emitted.
      const code = (e as NodeJS.ErrnoException).code;
      reject(Object.assign(new ExecError(full, -1, '', '', `failed to start: ${(e as Error).message}`), { errno: code }));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      const reason = e.code === 'ENOENT' ? `failed: command not found (${cmd})` : `failed to start: ${e.message}`;
      reject(Object.assign(new ExecError(full, -1, '', '', reason), { errno: e.code }));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      const exitCode = code ?? (signal ? 128 : -1);
      if (exitCode !== 0 && !opts.allowFailure) {
        reject(new ExecError(full, exitCode, stdout, stderr, signal ? `killed by ${signal}` : undefined));
        return;
      }
      resolve({ argv: full, code: exitCode, stdout, stderr });
    });
    // EPIPE when the child exits without reading stdin is not our error to report.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Run and return stdout; throws ExecError on a non-zero exit. */
export async function runText(argv: string[], opts: RunOptions = {}): Promise<string> {
  return (await run(argv, opts)).stdout;
}

/** Run a command that prints JSON (`ip -json ...`) and parse it. */
export async function runJson<T>(argv: string[], opts: RunOptions = {}): Promise<T> {
  const text = (await run(argv, opts)).stdout.trim();
  return (text ? JSON.parse(text) : []) as T;
}

/**
 * Run with this process's stdin/stdout/stderr (the runner CLI's `exec`).
 * Resolves with the exit code (128 + signal number when killed).
 */
export function runInherit(argv: string[], opts: Pick<RunOptions, 'env' | 'netns'> = {}): Promise<number> {
  const full = opts.netns ? inNetns(opts.netns, argv) : argv;
  const [cmd, ...rest] = full;
  if (!cmd) return Promise.reject(new Error('runInherit: empty argv'));
  const cp = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  const os = process.getBuiltinModule('node:os') as typeof import('node:os');
  return new Promise((resolve, reject) => {
    const child = cp.spawn(cmd, rest, { env: opts.env as NodeJS.ProcessEnv | undefined, stdio: 'inherit', shell: false });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new ExecError(full, -1, '', '', e.code === 'ENOENT' ? `failed: command not found (${cmd})` : `failed to start: ${e.message}`));
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}
