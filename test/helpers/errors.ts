/** Test helper: the CniError a call throws (any other error, or none, fails the test). */
import { CniError } from '../../lib/cni/errors.ts';

export function cniErrorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a CniError');
}
