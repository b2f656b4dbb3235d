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
import { NFT_NAME_MAX, nftName, nftQuote, nftStoredString } from './nft-text.ts';

const T = 'bridge nat';

export function spoofRefId(containerId: string, ifName: string): string {
  return `${containerId}-${ifName}`;
}

/**
 * Chain names and the comment, as nft stores them: <ifname> may hold "#",
 * ";" or braces, which an nft identifier cannot carry (lib/firewall/nft-text.ts).
 * For ordinary names they are the reference's names.
 */
function names(refId: string) {
  const iface = nftName(`cni-br-iface-${refId}`, NFT_NAME_MAX - 4);
  const comment = nftStoredString(`macspoofchk-${refId}`);
  return { iface, mac: `${iface}-mac`, comment, qIface: iface, qMac: `${iface}-mac`, qComment: `"${comment}"` };
}

export function renderSpoofCheckSetup(refId: string, hostIface: string, mac: string): string {
  const n = names(refId);
  const c = `comment ${n.qComment}`;
  return [
    `add table ${T}`,
    `add chain ${T} PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }`,
    `add chain ${T} ${n.qIface}`,
    `add chain ${T} ${n.qMac}`,
    `flush chain ${T} ${n.qIface}`,
    `flush chain ${T} ${n.qMac}`,
    `add rule ${T} PREROUTING iifname ${nftQuote(hostIface)} jump ${n.qIface} ${c}`,
    `add rule ${T} ${n.qIface} jump ${n.qMac} ${c}`,
    `add rule ${T} ${n.qMac} ether saddr ${mac} return ${c}`,
    `add rule ${T} ${n.qMac} drop ${c}`,
    '',
  ].join('\n');
}

/** Delete the PREROUTING jumps (by handle) and both chains; declaring the chains first makes deletion unconditional. */
export function renderSpoofCheckTeardown(refId: string, handles: readonly number[]): string {
  const n = names(refId);
  return [
    ...handles.map((h) => `delete rule ${T} PREROUTING handle ${h}`),
    `add chain ${T} ${n.qIface}`,
    `add chain ${T} ${n.qMac}`,
    `flush chain ${T} ${n.qIface}`,
    `flush chain ${T} ${n.qMac}`,
    `delete chain ${T} ${n.qIface}`,
    `delete chain ${T} ${n.qMac}`,
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
