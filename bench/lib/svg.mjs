/**
 * A small line chart as an SVG string (pure function, no dependencies):
 * linear axes from 0, a few ticks, one polyline with dots per series, legend.
 */

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `v`. */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
}

/**
 * Render `series` ([{ name, color, dashed, points: [[x, y], ...] }]) as a line
 * chart titled `title`, with axis labels `xLabel`/`yLabel` and tick values `xTicks`.
 */
export function lineChart({ title, xLabel, yLabel, xTicks, series, width = 720, height = 420 }) {
  const m = { left: 70, right: 220, top: 40, bottom: 55 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xMax = Math.max(1, ...xTicks, ...xs);
  const yMax = niceMax(Math.max(0, ...ys) * 1.05);
  const X = (x) => m.left + (x / xMax) * w;
  const Y = (y) => m.top + h - (y / yMax) * h;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${m.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax / 5) * i;
    parts.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${Y(v)}" y2="${Y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 8}" y="${Y(v) + 4}" text-anchor="end">${+v.toFixed(1)}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${m.top + h}" y2="${m.top + h + 5}" stroke="#333"/>`);
    parts.push(`<text x="${X(t)}" y="${m.top + h + 20}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${m.top + h}" y2="${m.top + h}" stroke="#333"/>`);
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + h}" stroke="#333"/>`);
  parts.push(`<text x="${m.left + w / 2}" y="${height - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(`${s.name}: ${p[1].toFixed(1)} at ${p[0]}`)}</title></circle>`);
    const ly = m.top + 10 + i * 22;
    parts.push(`<line x1="${m.left + w + 20}" x2="${m.left + w + 50}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${m.left + w + 58}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
