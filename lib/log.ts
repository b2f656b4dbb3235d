/** Logs go to stderr: stdout carries exactly one CNI JSON document. */
export function logDebug(...parts: unknown[]): void {
  if (process.env.TSCNI_DEBUG) process.stderr.write(`[tscni] ${parts.map(String).join(' ')}\n`);
}

export function logWarn(...parts: unknown[]): void {
  process.stderr.write(`[tscni] warning: ${parts.map(String).join(' ')}\n`);
}
