import type { Env, NetnsState, Plugin, PluginIo, CmdArgs } from '../../../lib/cni/skel.ts';
import type { Result } from '../../../lib/cni/types.ts';

export interface FakeRun {
  io: PluginIo;
  stdout: () => string;
  stderr: () => string;
  json: () => Record<string, unknown>;
}

export function fakeIo(env: Env, stdin = '', netnsState: NetnsState = 'ok'): FakeRun {
  let out = '';
  let err = '';
  return {
    io: {
      env,
      readStdin: async () => Buffer.from(stdin),
      writeStdout: (t) => (out += t),
      writeStderr: (t) => (err += t),
      inspectNetns: () => netnsState,
    },
    stdout: () => out,
    stderr: () => err,
    json: () => JSON.parse(out) as Record<string, unknown>,
  };
}

export interface Recorder {
  plugin: Plugin;
  calls: CmdArgs[];
}

/** A plugin whose handlers record their arguments; ADD returns `result`. */
export function recordingPlugin(result: Result, fail?: unknown): Recorder {
  const calls: CmdArgs[] = [];
  const handler = async (a: CmdArgs) => {
    calls.push(a);
    if (fail !== undefined) throw fail;
  };
  return {
    calls,
    plugin: {
      name: 'fake',
      about: 'fake plugin v0',
      add: async (a) => {
        await handler(a);
        return result;
      },
      del: handler,
      check: handler,
      gc: handler,
      status: handler,
    },
  };
}
