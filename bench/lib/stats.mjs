/** Pure number helpers for the benchmark: percentiles and formatting. */

/** The p-th percentile (nearest rank) of `values`; NaN when there are none. */
export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

/** The median (nearest rank, lower middle for even counts). */
export function median(values) {
  return percentile(values, 50);
}

/** { p50, p95, n } of a list of samples. */
export function summarize(values) {
  return { p50: median(values), p95: percentile(values, 95), n: values.length };
}

/** "12.3 ms", or "n/a" when the value is missing. */
export function fmtMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return 'n/a';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

/** "1.23×" for ours/reference, or "n/a". */
export function fmtRatio(ours, ref) {
  if (!Number.isFinite(ours) || !Number.isFinite(ref) || ref === 0) return 'n/a';
  return `${(ours / ref).toFixed(2)}×`;
}

/** "met" / "MISSED" / "n/a" for a comparison that may lack data. */
export function verdict(ok) {
  if (ok === undefined || ok === null) return 'n/a';
  return ok ? 'met' : 'MISSED';
}
