/**
 * The builders appended for the tuning plugin against what iproute2 6.1.0
 * sends. Golden bytes: inside a throwaway namespace (`ip netns add tt-gold`,
 * a veth ttgold0 = index 3 with peer ttpeer0), each command below was run as
 *   ip netns exec tt-gold strace -f -e trace=sendmsg,sendto -e write=all -s 4096 -xx <command>
 * and the RTM_NEWLINK it sent (after its name lookup) was copied from
 * strace's hex dump. Our encoding, with the captured seq, equals it byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { decodeLinkTuning, setLinkTuningRequest } from '../../../lib/netlink/messages.ts';
import { encodeLike, hex } from './nl-inspect.ts';

const G = {
  // ip link set dev ttgold0 txqueuelen 500
  txqlen: hex('2800000010000500 0a050d6b00000000 0000000003000000 0000000000000000 08000d00f4010000'),
  // ip link set dev ttgold0 allmulticast on
  allmultiOn: hex('2000000010000500 0a050d6b00000000 0000000003000000 0002000000020000'),
  // ip link set dev ttgold0 allmulticast off
  allmultiOff: hex('2000000010000500 0a050d6b00000000 0000000003000000 0000000000020000'),
};

describe('tuning link requests (byte for byte)', () => {
  it.each([
    ['txqueuelen 500: IFLA_TXQLEN u32', () => setLinkTuningRequest(3, { txQLen: 500 }), G.txqlen],
    ['allmulticast on: IFF_ALLMULTI in flags and change', () => setLinkTuningRequest(3, { allmulti: true }), G.allmultiOn],
    ['allmulticast off: IFF_ALLMULTI in change only', () => setLinkTuningRequest(3, { allmulti: false }), G.allmultiOff],
  ])('%s', (_n, build, golden) => {
    expect(encodeLike(build(), golden).toString('hex')).toBe(golden.toString('hex'));
  });

  it('txqueuelen 0 is sent (a valid length), not dropped', () => {
    expect(setLinkTuningRequest(3, { txQLen: 0 }).attrs).toHaveLength(1);
  });

  it('decodes the flag and the queue length of a link message', () => {
    expect(decodeLinkTuning(G.txqlen.subarray(16))).toEqual({ allmulti: false, txQLen: 500 });
    expect(decodeLinkTuning(G.allmultiOn.subarray(16))).toEqual({ allmulti: true });
  });
});
