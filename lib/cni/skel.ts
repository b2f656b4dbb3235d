/**
 * The CNI dispatcher. It takes its environment, stdin and stdout as
 * parameters so the whole protocol can be unit-tested without processes.
 * Order of work: validate env -> read + decode stdin -> negotiate version ->
 * check the netns -> call the handler -> print one JSON document.
 */
import { CniError, ErrorCode, toCniError } from './errors.ts';
import type { NetConf, Result } from './types.ts';
import {
  DEFAULT_CONFIG_VERSION,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  assertSupportedVersion,
  convertResult,
  parseResult,
  versionAtLeast,
} from './version.ts';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
export type Env = Record<string, string | undefined>;

/** What the skel learnt about CNI_NETNS. */
export type NetnsState = 'ok' | 'own' | 'missing' | 'not-netns' | 'unset';

export interface CmdArgs {
  command: Command;
  containerId: string;
  netns: string;
  netnsState: NetnsState;
  ifName: string;
  args: string;
  path: string;
  stdinData: Buffer;
  /** Decoded stdin; cniVersion defaulted and prevResult converted to 1.1. */
  config: NetConf;
  env: Env;
}

export interface Plugin {
  name: string;
  about: string;
  supportedVersions?: readonly string[];
  /**
   * The plugin acts on the host only and never enters the pod's namespace
   * (IPAM, portmap, chained host plugins): CNI_NETNS must be set for ADD and
   * CHECK but is not inspected, so IPAM used on its own works with any value
   * (the reference's host-local documentation passes CNI_NETNS=/dev/null).
   * The reference skel leaves the namespace check to each plugin.
   */
  hostOnly?: boolean;
  /**
   * Parse and validate a config as ADD would, with no side effect; throws the
   * CniError ADD would. A main plugin calls it (through validateDelegate) on
   * its IPAM before touching the kernel, when the IPAM runs in-process.
   */
  validate?(config: NetConf, cniArgs: string): void;
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  gc(args: CmdArgs): Promise<void>;
  status(args: CmdArgs): Promise<void>;
}

export interface PluginIo {
  env: Env;
  readStdin(): Promise<Buffer>;
  writeStdout(text: string): void;
  writeStderr(text: string): void;
  inspectNetns(path: string): NetnsState;
}

const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrorCode.UnknownContainer, 'missing containerID');
  if (!NAME_RE.test(id)) throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'invalid characters in containerID', id);
}

export function validateIfName(name: string): void {
  if (name.length === 0) throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'interface name is empty');
  if (Buffer.byteLength(name) > 15) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'interface name is too long', 'interface name should be less than 16 characters');
  }
  if (name === '.' || name === '..') throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'interface name is . or ..');
  if (/[/:\s]/u.test(name)) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'interface name contains / or : or whitespace characters');
  }
}

export function validateNetworkName(name: unknown): void {
  if (typeof name !== 'string' || name === '') throw new CniError(ErrorCode.InvalidNetworkConfig, 'missing network name');
  if (!NAME_RE.test(name)) throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
}

interface EnvVar {
  name: string;
  requiredFor: readonly string[];
  validate?: (v: string) => void;
}

const ENV_VARS: readonly EnvVar[] = [
  { name: 'CNI_COMMAND', requiredFor: ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'] },
  { name: 'CNI_CONTAINERID', requiredFor: ['ADD', 'CHECK', 'DEL'], validate: validateContainerId },
  { name: 'CNI_NETNS', requiredFor: ['ADD', 'CHECK'] },
  { name: 'CNI_IFNAME', requiredFor: ['ADD', 'CHECK', 'DEL'], validate: validateIfName },
  { name: 'CNI_PATH', requiredFor: ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'] },
];

/** Validate the environment exactly as the reference skel does. */
export function readEnv(env: Env): { command: string; missing: string[] } {
  const command = env.CNI_COMMAND ?? '';
  const missing: string[] = [];
  for (const v of ENV_VARS) {
    const value = env[v.name] ?? '';
    const required = v.requiredFor.includes(command) || v.name === 'CNI_COMMAND';
    if (value === '') {
      if (required) missing.push(v.name);
    } else if (v.requiredFor.includes(command) && v.validate) {
      v.validate(value);
    }
  }
  return { command, missing };
}

/** Decode stdin into a NetConf: code 6 when it is not JSON, 7 for a bad name. */
export function decodeConfig(stdin: Buffer): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `error unmarshall network config: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, 'error unmarshall network config: not a JSON object');
  }
  const conf = raw as Record<string, unknown>;
  validateNetworkName(conf.name);
  if (conf.cniVersion !== undefined && typeof conf.cniVersion !== 'string') {
    throw new CniError(ErrorCode.DecodingFailure, 'cniVersion must be a string');
  }
  return { ...conf, cniVersion: (conf.cniVersion as string | undefined) || DEFAULT_CONFIG_VERSION } as NetConf;
}

const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

function isOverride(v: string | undefined): boolean {
  return v === '1' || (v ?? '').toUpperCase() === 'TRUE';
}

/** Run one plugin invocation. Returns the process exit code. */
export async function pluginMain(plugin: Plugin, io: PluginIo): Promise<number> {
  const supported = plugin.supportedVersions ?? SUPPORTED_VERSIONS;
  let errorVersion = LATEST_VERSION;
  try {
    const { command, missing } = readEnv(io.env);
    if (missing.length) {
      if (command === '') {
        io.writeStderr(`${plugin.about}\nCNI protocol versions supported: ${supported.join(', ')}\n`);
        return 0;
      }
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `required env variables [${missing.join(',')}] missing`);
    }
    if (!COMMANDS.includes(command)) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${command}`);
    }
    if (command === 'VERSION') {
      io.writeStdout(`${JSON.stringify({ cniVersion: LATEST_VERSION, supportedVersions: supported })}\n`);
      return 0;
    }

    const stdinData = await io.readStdin();
    const config = decodeConfig(stdinData);
    errorVersion = config.cniVersion;
    const min = MIN_VERSION[command as Command];
    if (min && !versionAtLeast(config.cniVersion, min)) {
      throw new CniError(ErrorCode.IncompatibleCniVersion, `config version does not allow ${command}`);
    }
    assertSupportedVersion(config.cniVersion, supported);
    if (config.prevResult !== undefined && config.prevResult !== null) {
      config.prevResult = parseResult(config.prevResult, config.cniVersion);
    } else {
      delete config.prevResult;
    }

    const netns = io.env.CNI_NETNS ?? '';
    let netnsState: NetnsState = 'unset';
    if ((command === 'ADD' || command === 'CHECK' || command === 'DEL') && !plugin.hostOnly) {
      if (netns !== '') netnsState = io.inspectNetns(netns);
      if (netnsState === 'own' && !isOverride(io.env.CNI_NETNS_OVERRIDE)) {
        throw new CniError(ErrorCode.InvalidNetNS, "plugin's netns and netns from CNI_NETNS should not be the same");
      }
      if (command !== 'DEL' && netnsState === 'missing') {
        throw new CniError(ErrorCode.InvalidNetNS, `netns "${netns}" does not exist`);
      }
      if (command !== 'DEL' && netnsState === 'not-netns') {
        throw new CniError(ErrorCode.InvalidNetNS, `"${netns}" is not a network namespace (not an nsfs or procfs path)`);
      }
    }

    const args: CmdArgs = {
      command: command as Command,
      containerId: io.env.CNI_CONTAINERID ?? '',
      netns,
      netnsState,
      ifName: io.env.CNI_IFNAME ?? '',
      args: io.env.CNI_ARGS ?? '',
      path: io.env.CNI_PATH ?? '',
      stdinData,
      config,
      env: io.env,
    };

    switch (args.command) {
      case 'ADD': {
        const result = await plugin.add(args);
        io.writeStdout(`${JSON.stringify(convertResult(result, config.cniVersion), null, 4)}\n`);
        return 0;
      }
      case 'DEL':
        await plugin.del(args);
        return 0;
      case 'CHECK':
        await plugin.check(args);
        return 0;
      case 'GC':
        await plugin.gc(args);
        return 0;
      case 'STATUS':
        await plugin.status(args);
        return 0;
      default:
        throw new CniError(ErrorCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${command}`);
    }
  } catch (err) {
    const cniErr = toCniError(err);
    if (!(err instanceof CniError) && err instanceof Error && err.stack) {
      // The stack goes to stderr for operators; stdout only ever gets the JSON.
      io.writeStderr(`${err.stack}\n`);
    }
    io.writeStdout(`${JSON.stringify(cniErr.toJSON(errorVersion), null, 4)}\n`);
    return 1;
  }
}
