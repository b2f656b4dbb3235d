/** Wires the skel to the real process: env, stdin, stdout, exit code. */
import { inspectNetns } from '../netns.ts';
import { CniError, ErrorCode } from './errors.ts';
import { pluginMain, type Plugin, type PluginIo } from './skel.ts';

/**
 * Largest network config accepted on stdin, in bytes. Real configs (with a
 * prevResult) are a few KiB; the cap keeps a runaway writer from costing
 * gigabytes of memory before the decode error.
 */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;

/** All of stdin; a CniError (code 6) naming the limit when it is larger than `limit` bytes. */
export function readAllStdin(limit = MAX_STDIN_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stdin = process.stdin;
    stdin.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        stdin.destroy();
        reject(new CniError(ErrorCode.DecodingFailure, `network config on stdin is larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    stdin.on('end', () => resolve(Buffer.concat(chunks)));
    stdin.on('error', reject);
  });
}

export function processIo(): PluginIo {
  return {
    env: process.env,
    readStdin: readAllStdin,
    writeStdout: (t) => process.stdout.write(t),
    writeStderr: (t) => process.stderr.write(t),
    inspectNetns,
  };
}

export async function runPlugin(plugin: Plugin): Promise<never> {
  const code = await pluginMain(plugin, processIo());
  process.exit(code);
}
