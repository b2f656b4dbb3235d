#!/usr/bin/env node
/**
 * npm run bench: runs every bench/*.bench.mjs in name order. Each module
 * exports `async function run()` that prints its own figures to stdout.
 * Figures only: targets are compared in the printout, never asserted.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).sort();
for (const f of files) {
  if (only.length && !only.some((o) => f.includes(o))) continue;
  const mod = await import(pathToFileURL(join(here, f)).href);
  console.log(`\n=== ${f.replace('.bench.mjs', '')} ===`);
  await mod.run();
}
