/**
 * MAC spoof check (bridge `macspoofchk`), in the reference's nftables layout:
 *
 *   table bridge nat
 *     chain PREROUTING (filter hook prerouting priority -300)
 *       iifname "<host veth>" jump cni-br-iface-<ref>        comment "macspoofchk-<ref>"
 *     chain cni-br-iface-<ref>
 *       jump cni-br-iface-<ref>-mac
 *     chain cni-br-iface-<ref>-mac
 *       ether saddr <container mac> return
 *       drop
 *
 * <ref> is "<containerID>-<ifname>". Setup is one `nft -f -`; teardown lists
 * PREROUTING only and removes the jump by its comment, then both chains.
 */
import { run } from '../exec.ts';

const T = 'bridge nat';

export function spoofRefId(containerId: string, ifName: string): string {
  return `${containerId}-${ifName}`;
}

function names(refId: string) {
  const iface = `cni-br-iface-${refId}`;
  return { iface, mac: `${iface}-mac`, comment: `macspoofchk-${refId}` };
}

export function renderSpoofCheckSetup(refId: string, hostIface: string, mac: string): string {
  const n = names(refId);
  const c = `comment "${n.comment}"`;
  return [
    `add table ${T}`,
    `add chain ${T} PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }`,
    `add chain ${T} ${n.iface}`,
    `add chain ${T} ${n.mac}`,
    `flush chain ${T} ${n.iface}`,
    `flush chain ${T} ${n.mac}`,
    `add rule ${T} PREROUTING iifname "${hostIface}" jump ${n.iface} ${c}`,
    `add rule ${T} ${n.iface} jump ${n.mac} ${c}`,
    `add rule ${T} ${n.mac} ether saddr ${mac} return ${c}`,
    `add rule ${T} ${n.mac} drop ${c}`,
    '',
  ].join('\n');
}

/** Delete the PREROUTING jumps (by handle) and both chains; declaring the chains first makes deletion unconditional. */
export function renderSpoofCheckTeardown(refId: string, handles: readonly number[]): string {
  const n = names(refId);
  return [
    ...handles.map((h) => `delete rule ${T} PREROUTING handle ${h}`),
    `add chain ${T} ${n.iface}`,
    `add chain ${T} ${n.mac}`,
    `flush chain ${T} ${n.iface}`,
    `flush chain ${T} ${n.mac}`,
    `delete chain ${T} ${n.iface}`,
    `delete chain ${T} ${n.mac}`,
    '',
  ].join('\n');
}

export function preroutingHandles(json: string, refId: string): number[] {
  const { comment } = names(refId);
  const doc = JSON.parse(json) as { nftables?: Array<{ rule?: { handle: number; comment?: string } }> };
  return (doc.nftables ?? []).flatMap((i) => (i.rule && i.rule.comment === comment ? [i.rule.handle] : []));
}

export async function setupSpoofCheck(refId: string, hostIface: string, mac: string): Promise<void> {
  await run(['nft', '-f', '-'], { input: renderSpoofCheckSetup(refId, hostIface, mac) });
}

export async function teardownSpoofCheck(refId: string): Promise<void> {
  const r = await run(['nft', '-j', 'list', 'chain', 'bridge', 'nat', 'PREROUTING'], { allowFailure: true });
  // No table or base chain: nothing of ours can exist.
  if (r.code !== 0) return;
  await run(['nft', '-f', '-'], { input: renderSpoofCheckTeardown(refId, preroutingHandles(r.stdout, refId)) });
}
