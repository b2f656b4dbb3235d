/**
 * portmap's shared scaffolding (the CNI-HOSTPORT-* chains and their jumps,
 * the nft table inet tscni_portmap) outlives every pod, as the reference's
 * does. Tests that may create it take a snapshot first and remove it at the
 * end only if it was not there before; the code is the demo's and the
 * benchmark's too (scripts/lib/portmap-shared.mjs).
 */
export { removeSharedIfNew, snapshotShared, type SharedSnapshot } from '../../scripts/lib/portmap-shared.mjs';
