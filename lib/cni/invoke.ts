/**
 * Delegation to another plugin (IPAM): find it in CNI_PATH, run it with the
 * same stdin bytes and the same environment with only CNI_COMMAND changed,
 * and turn its output back into a Result or a CniError.
 *
 * When the plugin found in CNI_PATH is this very executable (our bundled
 * host-local next to our bridge), it runs in-process through the same skel
 * with the same input, which saves a ~40 ms process start.
 */
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ExecError, run } from '../exec.ts';
import { inspectNetns } from '../netns.ts';
import { CniError, ErrorCode } from './errors.ts';
import { decodeConfig, pluginMain, type Command, type Env, type Plugin } from './skel.ts';
import type { Result } from './types.ts';
import { parseResult } from './version.ts';

interface InProcessRegistry {
  selfPath: string;
  plugins: ReadonlyMap<string, () => Promise<Plugin>>;
}

let inProcess: InProcessRegistry | undefined;

/** Called by the multi-call entry point: these plugins (by loader) live in `selfPath`. */
export function registerInProcessPlugins(selfPath: string, plugins: ReadonlyMap<string, () => Promise<Plugin>>): void {
  inProcess = { selfPath, plugins };
}

export function findInPath(plugin: string, cniPath: string): string {
  if (!plugin || plugin.includes('/') || plugin === '.' || plugin === '..') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin name "${plugin}"`);
  }
  const dirs = cniPath.split(':').filter(Boolean);
  if (dirs.length === 0) throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'no paths provided in CNI_PATH');
  for (const dir of dirs) {
    const candidate = join(dir, plugin);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // Not in this directory; try the next one.
    }
  }
  throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to find plugin "${plugin}" in path [${dirs.join(' ')}]`);
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(realpathSync(a));
    const sb = statSync(realpathSync(b));
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

async function inProcessPlugin(pluginPath: string, type: string): Promise<Plugin | undefined> {
  if (!inProcess || process.env.TSCNI_NO_INPROCESS) return undefined;
  const load = inProcess.plugins.get(type);
  if (!load || !sameFile(pluginPath, inProcess.selfPath)) return undefined;
  return load();
}

interface RawOutput {
  code: number;
  stdout: string;
  stderr: string;
}

async function runInProcess(plugin: Plugin, stdinData: Buffer, env: Env): Promise<RawOutput> {
  let stdout = '';
  let stderr = '';
  const code = await pluginMain(plugin, {
    env,
    readStdin: async () => stdinData,
    writeStdout: (t) => (stdout += t),
    writeStderr: (t) => (stderr += t),
    inspectNetns,
  });
  if (stderr) process.stderr.write(stderr);
  return { code, stdout, stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runExternal(path: string, stdinData: Buffer, env: Env): Promise<RawOutput> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await run([path], { input: stdinData, env, allowFailure: true });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      // "text file busy": the binary is being replaced (upgrade in progress); retry as libcni does.
      const errno = (e as { errno?: string }).errno;
      if (errno === 'ETXTBSY' && attempt < 5) {
        await sleep(50 * (attempt + 1));
        continue;
      }
      if (e instanceof ExecError) throw new CniError(ErrorCode.Internal, `failed to execute plugin ${path}: ${e.message}`);
      throw e;
    }
  }
}

function errorFromOutput(type: string, out: RawOutput): CniError {
  try {
    const parsed = JSON.parse(out.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof parsed.code === 'number') {
      return new CniError(parsed.code, String(parsed.msg ?? ''), typeof parsed.details === 'string' ? parsed.details : '');
    }
  } catch {
    // Not JSON: fall back to stderr text, as libcni does.
  }
  const text = (out.stderr || out.stdout).trim();
  return new CniError(ErrorCode.Internal, `plugin "${type}" failed with exit code ${out.code}${text ? `: ${text}` : ''}`);
}

/**
 * Before a main plugin touches the kernel: find the delegate in CNI_PATH
 * (throws the error ADD would give when it is missing) and, when it is our
 * own plugin running in-process, validate the config as its ADD would, so a
 * bad IPAM section fails before any link exists. An external plugin is only
 * located (its config is its own business until it runs).
 */
export async function validateDelegate(type: string, stdinData: Buffer, env: Env): Promise<void> {
  const path = findInPath(type, env.CNI_PATH ?? '');
  const local = await inProcessPlugin(path, type);
  local?.validate?.(decodeConfig(stdinData), env.CNI_ARGS ?? '');
}

/** Run plugin `type` for `command`. Returns the parsed result for ADD. */
export async function delegate(command: Command, type: string, stdinData: Buffer, env: Env): Promise<Result | undefined> {
  const path = findInPath(type, env.CNI_PATH ?? '');
  const childEnv: Env = { ...env, CNI_COMMAND: command };
  const local = await inProcessPlugin(path, type);
  const out = local ? await runInProcess(local, stdinData, childEnv) : await runExternal(path, stdinData, childEnv);
  if (out.code !== 0) throw errorFromOutput(type, out);
  if (command !== 'ADD') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.stdout);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `plugin "${type}" printed a result that is not JSON: ${(e as Error).message}`);
  }
  return parseResult(parsed);
}

export async function delegateAdd(type: string, stdinData: Buffer, env: Env): Promise<Result> {
  return (await delegate('ADD', type, stdinData, env)) as Result;
}
