/** Markdown rendering: pure functions, no I/O. */

/** A markdown table; cells are strings, `align` per column 'l' or 'r' (default: first column left, others right). */
export function mdTable(header, rows, align = header.map((_, i) => (i === 0 ? 'l' : 'r'))) {
  const widths = header.map((h, i) => Math.max(3, String(h).length, ...rows.map((r) => String(r[i] ?? '').length)));
  const cell = (c, i) => (align[i] === 'r' ? String(c ?? '').padStart(widths[i]) : String(c ?? '').padEnd(widths[i]));
  const line = (cells) => `| ${cells.map(cell).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
