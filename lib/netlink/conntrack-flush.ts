/**
 * Flushing conntrack entries in-process, as the reference portmap does with
 * netlink's ConntrackDeleteFilters: one dump per family, matching entries
 * deleted by tuple. No `conntrack` process, however many ports.
 */
import { withNetns, type NetnsHandle } from '../netns.ts';
import { IPPROTO_UDP, decodeEntry, deleteRequest, describeTuple, dumpRequest } from './conntrack.ts';
import { NETLINK_NETFILTER, closeFd, openNetlinkSocket } from './ffi.ts';
import { NetlinkError, exchange } from './socket.ts';

const ENOENT = 2;

/**
 * Delete the UDP entries of `family` whose original destination port is one
 * of `ports`, in the calling thread's namespace (or `ns`). Returns how many
 * were deleted. An entry that vanished meanwhile is not an error; any other
 * refusal throws a NetlinkError naming the entry.
 */
export function flushUdpByDstPort(family: 4 | 6, ports: readonly number[], ns?: NetnsHandle): number {
  if (ports.length === 0) return 0;
  const wanted = new Set(ports);
  const fd = ns ? withNetns(ns, () => openNetlinkSocket(NETLINK_NETFILTER)) : openNetlinkSocket(NETLINK_NETFILTER);
  try {
    const entries = exchange(fd, dumpRequest(family), () => `list IPv${family} conntrack entries`);
    let deleted = 0;
    for (const m of entries) {
      const t = decodeEntry(m.payload);
      if (!t || t.proto !== IPPROTO_UDP || !wanted.has(t.dstPort)) continue;
      try {
        exchange(fd, deleteRequest(t), () => `delete conntrack entry ${describeTuple(t)}`);
        deleted++;
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === ENOENT)) throw e;
      }
    }
    return deleted;
  } finally {
    closeFd(fd);
  }
}
