/**
 * The one error type of the CNI protocol. Only the skel turns it into JSON on
 * stdout; anything else thrown by a plugin becomes code 999 (Internal).
 */
export const ErrorCode = {
  IncompatibleCniVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironmentVariables: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  InvalidNetNS: 8,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableDegraded: 51,
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | number;

export class CniError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string;

  constructor(code: ErrorCodeValue, msg: string, details = '') {
    super(details ? `${msg}; ${details}` : msg);
    this.name = 'CniError';
    this.code = code;
    this.msg = msg;
    this.details = details;
  }

  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.msg };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Any thrown value as a CniError: typed errors pass through, the rest become 999. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(ErrorCode.Internal, err.message);
  return new CniError(ErrorCode.Internal, String(err));
}

export function invalidConfig(msg: string, details = ''): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

/**
 * Settle every task (DEL and GC keep cleaning past a failure), then throw
 * one error for all failures: the only one as it is, several joined under
 * code 999; `context` (e.g. "masquerade teardown") prefixes the message.
 * Resolves when all succeeded.
 */
export async function settleAll(tasks: ReadonlyArray<Promise<unknown>>, context?: string): Promise<void> {
  const errors = (await Promise.allSettled(tasks)).flatMap((r) => (r.status === 'rejected' ? [toCniError(r.reason)] : []));
  if (errors.length === 0) return;
  const first = errors[0] as CniError;
  const joined = errors.length === 1 ? first : new CniError(ErrorCode.Internal, errors.map((e) => e.message).join('; '));
  throw context ? new CniError(joined.code as ErrorCodeValue, `${context}: ${joined.msg}`, joined.details) : joined;
}
