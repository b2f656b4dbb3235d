/**
 * Wires the skel to the real process: env, stdin, stdout, exit code.
 *
 * stdin, stdout and stderr are used through their file descriptors with
 * synchronous reads and writes: a plugin reads one document and writes one,
 * and building the runtime's stream objects costs several milliseconds of
 * start-up per call (measured under Bun: ~8 ms), most of a VERSION call.
 */
import { readSync, writeSync } from 'node:fs';
import { inspectNetns } from '../netns.ts';
import { CniError, ErrorCode } from './errors.ts';
import { pluginMain, type Plugin, type PluginIo } from './skel.ts';

/**
 * Largest network config accepted on stdin, in bytes. Real configs (with a
 * prevResult) are a few KiB; the cap keeps a runaway writer from costing
 * gigabytes of memory before the decode error.
 */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;

const tooLarge = (limit: number) => new CniError(ErrorCode.DecodingFailure, `network config on stdin is larger than ${limit} bytes`);

/**
 * All of stdin (fd 0) until end of file; a CniError (code 6) naming the
 * limit when it is larger than `limit` bytes. A non-blocking stdin (EAGAIN)
 * falls back to the runtime's stream.
 */
export async function readAllStdin(limit = MAX_STDIN_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(65536);
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return Buffer.concat([...chunks, await readStdinStream(limit - size)]);
      if (code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    size += n;
    if (size > limit) throw tooLarge(limit);
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks);
}

function readStdinStream(limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stdin = process.stdin;
    stdin.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        stdin.destroy();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    stdin.on('end', () => resolve(Buffer.concat(chunks)));
    stdin.on('error', reject);
  });
}

/** Write all of `text` to a file descriptor, synchronously (short writes and EAGAIN retried). */
export function writeAllSync(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

export function processIo(): PluginIo {
  return {
    env: process.env,
    readStdin: readAllStdin,
    writeStdout: (t) => writeAllSync(1, t),
    writeStderr: (t) => writeAllSync(2, t),
    inspectNetns,
  };
}

export async function runPlugin(plugin: Plugin): Promise<never> {
  const code = await pluginMain(plugin, processIo());
  process.exit(code);
}
