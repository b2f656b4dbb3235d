/**
 * The one request host-device moves a device with, in each direction: the
 * link by index, IFLA_NET_NS_FD of the target namespace and IFLA_IFNAME of
 * its name there (the kernel moves first, then renames inside the target, so
 * the move and the rename happen together or not at all). Nothing else may
 * ride along: no up/down flag change, no MTU, no address.
 */
import { describe, expect, it } from 'vitest';
import { IFLA_IFNAME, IFLA_NET_NS_FD, RTM_NEWLINK, ifinfomsg } from '../../../lib/netlink/codec.ts';
import { setLinkRequest } from '../../../lib/netlink/messages.ts';
import { encodeLike, inspect } from './nl-inspect.ts';

const IFINFO = 16;
/** Encoded with sequence number 0 (encodeLike copies the seq of a zeroed 16-byte header). */
const encodeMessage0 = (req: Parameters<typeof encodeLike>[0]) => encodeLike(req, Buffer.alloc(16));

describe('host-device: move + rename in one RTM_NEWLINK', () => {
  it.each([
    ['into the pod as eth0', 3, 7, 'eth0'],
    ['back to the host as thdev0', 12, 4, 'thdev0'],
  ])('%s', (_what, index, fd, name) => {
    const req = setLinkRequest(index, { netnsFd: fd, name });
    expect(req.type).toBe(RTM_NEWLINK);
    const got = inspect(encodeMessage0(req), IFINFO, { strings: [IFLA_IFNAME] });
    expect(got.header).toBe(ifinfomsg({ index, flags: 0, change: 0 }).toString('hex'));
    const fdHex = Buffer.alloc(4);
    fdHex.writeUInt32LE(fd);
    expect(got.attrs).toEqual({ [IFLA_NET_NS_FD]: fdHex.toString('hex'), [IFLA_IFNAME]: name });
  });
});
