/**
 * `tscni inspect`: the report's shape and its renderings (text, DOT, SVG).
 * Everything here is pure: the report is gathered elsewhere.
 *
 *   pod netns             host                      bridge
 *   [eth0 10.0.0.2] ==== [veth1a2b3c4d] -------- [cni0 10.0.0.1]
 *          ^ host:8080 -> 80/tcp
 */

export interface IfaceInfo {
  name: string;
  state: string;
  mac?: string;
  mtu?: number;
  addresses: string[];
  /** For a veth in the pod: its peer in the host namespace. */
  hostPeer?: string;
}

export interface HostPortInfo {
  name: string;
  /** The bridge the host end is a port of. */
  bridge?: string;
  bridgeAddresses: string[];
}

export interface AttachmentInfo {
  network: string;
  ifName: string;
  containerId: string;
  portMappings: { hostPort: number; containerPort: number; protocol: string; hostIP?: string }[];
  /** Firewall rules and map elements that belong to this attachment. */
  rules: string[];
}

export interface InspectReport {
  name: string;
  netns: string;
  sharesWith?: string;
  sharedBy: string[];
  interfaces: IfaceInfo[];
  routes: string[];
  hostPorts: HostPortInfo[];
  attachments: AttachmentInfo[];
}

function portText(p: AttachmentInfo['portMappings'][number]): string {
  return `${p.hostIP ? `${p.hostIP.includes(':') ? `[${p.hostIP}]` : p.hostIP}:` : ''}${p.hostPort} -> ${p.containerPort}/${p.protocol}`;
}

export function renderText(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`pod ${r.name}`);
  lines.push(`  netns       ${r.netns}${r.sharesWith ? ` (container mode: shares ${r.sharesWith}'s namespace)` : ''}`);
  if (r.sharedBy.length) lines.push(`  shared by   ${r.sharedBy.join(', ')}`);
  lines.push('  interfaces');
  for (const i of r.interfaces) {
    const peer = i.hostPeer ? `  <-> host ${i.hostPeer}` : '';
    lines.push(`    ${i.name.padEnd(10)} ${i.state.padEnd(7)} ${i.addresses.join(' ') || '-'}${peer}`);
  }
  lines.push('  routes');
  for (const route of r.routes) lines.push(`    ${route}`);
  if (r.hostPorts.length) {
    lines.push('  host side');
    for (const h of r.hostPorts) {
      lines.push(`    ${h.name}${h.bridge ? ` on bridge ${h.bridge} ${h.bridgeAddresses.join(' ')}` : ''}`);
    }
  }
  for (const a of r.attachments) {
    lines.push(`  network ${a.network} (${a.ifName}, container id ${a.containerId})`);
    for (const p of a.portMappings) lines.push(`    port ${portText(p)}`);
    if (a.rules.length) {
      lines.push('    firewall');
      for (const rule of a.rules) lines.push(`      ${rule}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function dotId(s: string): string {
  return JSON.stringify(s);
}

export function renderDot(r: InspectReport): string {
  const out: string[] = ['graph tscni {', '  rankdir=LR;', '  node [shape=box, fontname="monospace"];'];
  out.push(`  subgraph cluster_pod { label=${dotId(`pod ${r.name}\n${r.netns}`)};`);
  for (const i of r.interfaces) out.push(`    ${dotId(`pod:${i.name}`)} [label=${dotId([i.name, ...i.addresses].join('\n'))}];`);
  out.push('  }');
  const bridges = new Map<string, string[]>();
  for (const h of r.hostPorts) {
    out.push(`  ${dotId(`host:${h.name}`)} [label=${dotId(h.name)}];`);
    if (h.bridge) bridges.set(h.bridge, h.bridgeAddresses);
  }
  for (const [b, addrs] of bridges) out.push(`  ${dotId(`bridge:${b}`)} [label=${dotId([`${b} (bridge)`, ...addrs].join('\n'))}, shape=box3d];`);
  for (const i of r.interfaces) {
    if (i.hostPeer) out.push(`  ${dotId(`pod:${i.name}`)} -- ${dotId(`host:${i.hostPeer}`)} [label="veth"];`);
  }
  for (const h of r.hostPorts) if (h.bridge) out.push(`  ${dotId(`host:${h.name}`)} -- ${dotId(`bridge:${h.bridge}`)};`);
  for (const a of r.attachments) {
    for (const p of a.portMappings) {
      out.push(`  ${dotId(`port:${portText(p)}`)} [label=${dotId(`host ${portText(p)}`)}, shape=ellipse];`);
      out.push(`  ${dotId(`port:${portText(p)}`)} -- ${dotId(`pod:${a.ifName}`)} [style=dashed, label="DNAT"];`);
    }
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  lines: string[];
}

const BOX_W = 230;
const LINE_H = 16;
const COLS = [40, 360, 680];

function box(x: number, y: number, lines: string[]): Box {
  return { x, y, w: BOX_W, h: 12 + LINE_H * lines.length, lines };
}

function drawBox(b: Box, fill: string): string {
  const text = b.lines.map((l, i) => `<text x="${b.x + 8}" y="${b.y + 20 + i * LINE_H}">${xml(l)}</text>`).join('');
  return `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="6" fill="${fill}" stroke="#333"/>${text}`;
}

function line(a: Box, b: Box, label?: string, dashed = false): string {
  const x1 = a.x + a.w;
  const y1 = a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  const l = `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#333"${dashed ? ' stroke-dasharray="5,4"' : ''}/>`;
  return label ? `${l}<text x="${(x1 + x2) / 2 - 20}" y="${(y1 + y2) / 2 - 6}">${xml(label)}</text>` : l;
}

/** Three columns: pod interfaces, host veth ends, bridges; published ports above the pod. */
export function renderSvg(r: InspectReport): string {
  const parts: string[] = [];
  let y = 70;
  const ports = r.attachments.flatMap((a) => a.portMappings.map((p) => ({ a, p })));
  const portBoxes = ports.map(({ p }, i) => box(COLS[1] as number, 70 + i * 30, [`host ${portText(p)}`]));
  y += Math.max(0, ports.length * 30);
  const podBoxes = new Map<string, Box>();
  const hostBoxes = new Map<string, Box>();
  const bridgeBoxes = new Map<string, Box>();
  for (const i of r.interfaces) {
    const b = box(COLS[0] as number, y, [i.name, ...i.addresses]);
    podBoxes.set(i.name, b);
    const h = i.hostPeer ? r.hostPorts.find((p) => p.name === i.hostPeer) : undefined;
    if (h) {
      hostBoxes.set(h.name, box(COLS[1] as number, y, [h.name]));
      if (h.bridge && !bridgeBoxes.has(h.bridge)) bridgeBoxes.set(h.bridge, box(COLS[2] as number, y, [`${h.bridge} (bridge)`, ...h.bridgeAddresses]));
    }
    y += b.h + 24;
  }
  const podFrameH = y - 70 - ports.length * 30 + 10;
  parts.push(`<rect x="20" y="${50 + ports.length * 30}" width="${BOX_W + 40}" height="${podFrameH}" fill="none" stroke="#888" stroke-dasharray="4,3"/>`);
  parts.push(`<text x="24" y="${44 + ports.length * 30}">${xml(`pod ${r.name} (${r.netns})`)}</text>`);
  for (const b of podBoxes.values()) parts.push(drawBox(b, '#e8f1fb'));
  for (const b of hostBoxes.values()) parts.push(drawBox(b, '#f4f4f4'));
  for (const b of bridgeBoxes.values()) parts.push(drawBox(b, '#fdf1dc'));
  for (const i of r.interfaces) {
    const pb = podBoxes.get(i.name);
    const hb = i.hostPeer ? hostBoxes.get(i.hostPeer) : undefined;
    if (pb && hb) parts.push(line(pb, hb, 'veth'));
    const h = r.hostPorts.find((p) => p.name === i.hostPeer);
    const bb = h?.bridge ? bridgeBoxes.get(h.bridge) : undefined;
    if (hb && bb) parts.push(line(hb, bb));
  }
  ports.forEach(({ a }, i) => {
    const pb = podBoxes.get(a.ifName);
    const portBox = portBoxes[i] as Box;
    parts.push(drawBox(portBox, '#e9f7e9'));
    if (pb) parts.push(`<line x1="${portBox.x}" y1="${portBox.y + portBox.h / 2}" x2="${pb.x + pb.w / 2}" y2="${pb.y}" stroke="#2a7" stroke-dasharray="5,4"/>`);
  });
  const height = y + 30;
  const width = (COLS[2] as number) + BOX_W + 40;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="12">`,
    `<text x="20" y="24" font-size="15">${xml(`tscni inspect ${r.name}`)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
