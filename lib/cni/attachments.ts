/**
 * GC's `cni.dev/valid-attachments`: the one parser every plugin uses.
 * libcni sends null for an empty list; no list means no valid attachment.
 * Source: the CNI spec (SPEC.md, "GC: Clean up any stale resources").
 */
import { CniError, ErrorCode } from './errors.ts';
import type { NetConf, ValidAttachment } from './types.ts';

/** The valid attachments of a GC config; code 7 naming the entry when the list or an entry is malformed. */
export function validAttachments(config: NetConf | Record<string, unknown>): ValidAttachment[] {
  const raw = (config as Record<string, unknown>)['cni.dev/valid-attachments'];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new CniError(ErrorCode.InvalidNetworkConfig, 'cni.dev/valid-attachments: must be an array');
  return raw.map((a, i) => {
    const o = a as Record<string, unknown> | null;
    if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cni.dev/valid-attachments[${i}]: needs "containerID" and "ifname" strings`);
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}
