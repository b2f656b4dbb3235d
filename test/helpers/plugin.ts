/**
 * Run the built executables exactly as a container runtime does: env + stdin,
 * one JSON document back on stdout.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN_DIR = join(ROOT, 'dist', 'bin');
/** The test build: failure injection (TSCNI_TEST_FAIL_AT) compiled in; the shipped build ignores it. */
export const TEST_BIN_DIR = join(ROOT, 'dist', 'test-bin');

/** The shipped executable under `name`, or the test build when `failpoints` is asked for. */
export function binPath(name: string, failpoints = false): string {
  const p = join(failpoints ? TEST_BIN_DIR : BIN_DIR, name);
  if (!existsSync(p)) throw new Error(`${p} is missing: run "npm run build" first (npm test does)`);
  return p;
}

export interface PluginCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION' | string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Extra env; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  config?: unknown;
  stdin?: string;
}

export interface PluginOutput {
  code: number;
  /** The signal that ended the plugin (a crash point's SIGKILL), else null. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

/** Run plugin `name` from dist/bin the way a runtime does. */
export function callPlugin(name: string, call: PluginCall): PluginOutput {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  // A call that injects a failure runs the test build (and finds its IPAM there too).
  const failpoints = call.env?.TSCNI_TEST_FAIL_AT !== undefined;
  env.CNI_PATH = call.path ?? (failpoints ? TEST_BIN_DIR : BIN_DIR);
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const input = call.stdin ?? (call.config === undefined ? '' : JSON.stringify(call.config));
  const r = spawnSync(binPath(name, failpoints), [], { env, input, encoding: 'utf8' });
  if (r.error) throw r.error;
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout, stderr: r.stderr, json };
}

/** Like callPlugin, but throws with the plugin's output when it fails. */
export function callPluginOk(name: string, call: PluginCall): PluginOutput {
  const out = callPlugin(name, call);
  if (out.code !== 0) throw new Error(`${name} ${call.command} failed (exit ${out.code}): ${out.stdout} ${out.stderr}`);
  return out;
}
