/**
 * TEST-ONLY crash injection for host-local's store, compiled into the test
 * build (dist/test-bin) only, like lib/failpoint.ts: where that one throws,
 * this one ends the process with SIGKILL, exactly as a kill -9 or a power
 * cut between two writes would, so tests can prove that the next call
 * recovers. In the shipped build (dist/bin) build.mjs defines
 * TSCNI_BUILD_WITH_FAILPOINTS as "0" and the whole body folds away.
 *
 * TSCNI_TEST_FAIL_AT selects the crash:
 *   host-local:<step>     at the first crash point named <step>
 *   host-local:write#<n>  at the n-th crash point this process reaches,
 *                         whatever its name (a test walks n = 1, 2, ...
 *                         until the call completes, so every write is covered)
 * Before dying it writes "host-local: killed after <step> (write #<n>)" to stderr.
 */
import { writeSync } from 'node:fs';

/** Crash points reached so far by this process. */
let reached = 0;

/** Call right after a write of the store: dies with SIGKILL when the test build was asked to crash here. */
export function crashpoint(step: string): void {
  // The build replaces the left operand with a constant; in the shipped build the statement folds away.
  if (process.env.TSCNI_BUILD_WITH_FAILPOINTS === '1') {
    reached++;
    const at = process.env.TSCNI_TEST_FAIL_AT;
    if (at === step || at === `host-local:write#${reached}`) {
      writeSync(2, `host-local: killed after ${step} (write #${reached})\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  }
}
