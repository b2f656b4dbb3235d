import { CniError, ErrorCode } from './errors.ts';

/**
 * Parse CNI_ARGS ("K1=V1;K2=V2") as libcni's LoadArgs does: every pair needs
 * exactly one "=", and a key the plugin does not know is an error unless
 * IgnoreUnknown is 1/true. Keys are returned as given.
 */
export function parseCniArgs(raw: string | undefined, knownKeys: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  const pairs: Array<[string, string]> = [];
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const kv = pair.split('=');
    if (kv.length !== 2) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `ARGS: invalid pair "${pair}"`);
    }
    pairs.push([kv[0] as string, kv[1] as string]);
  }
  const ignoreUnknown = pairs.some(([k, v]) => k === 'IgnoreUnknown' && ['1', 'true', 'True', 'TRUE'].includes(v));
  for (const [k, v] of pairs) {
    if (k === 'IgnoreUnknown') continue;
    if (!knownKeys.includes(k)) {
      if (ignoreUnknown) continue;
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `ARGS: can not find field "${k}"`);
    }
    out.set(k, v);
  }
  return out;
}
