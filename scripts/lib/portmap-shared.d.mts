/** Which of portmap's shared pieces exist (see portmap-shared.mjs). */
export interface SharedSnapshot {
  iptables: boolean;
  ip6tables: boolean;
  nft: boolean;
}
export function snapshotShared(): SharedSnapshot;
export function removeSharedIfNew(before: SharedSnapshot): void;
