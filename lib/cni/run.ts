/** Wires the skel to the real process: env, stdin, stdout, exit code. */
import { inspectNetns } from '../netns.ts';
import { pluginMain, type Plugin, type PluginIo } from './skel.ts';

function readAllStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stdin = process.stdin;
    stdin.on('data', (c: Buffer) => chunks.push(c));
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
