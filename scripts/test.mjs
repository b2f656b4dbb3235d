#!/usr/bin/env node
/**
 * npm test: typecheck, lint, build (when sources changed), then every vitest
 * test: unit tests and real-kernel tests (which need root, as in CI).
 * Extra arguments go to vitest (e.g. `npm test -- test/unit`).
 */
import { spawnSync } from 'node:child_process';

function step(name, cmd, args) {
  console.log(`\n> ${name}: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

step('typecheck', 'tsc', ['--noEmit', '-p', 'tsconfig.json']);
step('lint', 'eslint', ['.']);
step('build', 'bun', ['build.mjs', '--if-stale']);
step('tests', 'vitest', ['run', ...process.argv.slice(2)]);
