/**
 * TEST-ONLY failure injection, compiled into the test build only: with
 * TSCNI_TEST_FAIL_AT=<step> in its environment, a plugin of the test build
 * (dist/test-bin) fails right after that step of ADD, so tests can prove
 * that the rollback leaves nothing behind. In the shipped build (dist/bin)
 * build.mjs defines TSCNI_BUILD_WITH_FAILPOINTS as "0": the check is a
 * constant false, and TSCNI_TEST_FAIL_AT means nothing.
 */
import { CniError, ErrorCode } from './cni/errors.ts';

/** Throw an injected failure when the test build was asked to fail at `step`. */
export function failpoint(env: Record<string, string | undefined>, step: string): void {
  // The build replaces the left operand with a constant; in the shipped build the whole statement folds away.
  if (process.env.TSCNI_BUILD_WITH_FAILPOINTS === '1' && env.TSCNI_TEST_FAIL_AT === step) {
    throw new CniError(ErrorCode.Internal, `injected failure at ${step} (TSCNI_TEST_FAIL_AT)`);
  }
}
