/**
 * The FFI boundary: the only module that calls libc directly (through
 * `bun:ffi`, loaded on first use so that pure modules and unit tests running
 * on Node never touch it). Everything here is synchronous and runs on the
 * calling (JS) thread, which is what makes setns() safe to use: the thread
 * that switches namespace is the thread that does the work and switches back.
 */

interface LibcSymbols {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  setsockopt(fd: number, level: number, name: number, val: Uint8Array, len: number): number;
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  __errno_location(): unknown;
  strerror(errnum: number): { toString(): string };
}

interface Libc {
  sym: LibcSymbols;
  readErrno(): number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  if (!process.versions.bun) throw new Error('netlink needs the Bun runtime (bun:ffi); the built executables have it');
  // A runtime built-in, resolved by the bundler; never reached on Node.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ffi = require('bun:ffi') as typeof import('bun:ffi');
  const { symbols } = ffi.dlopen('libc.so.6', {
    socket: { args: ['i32', 'i32', 'i32'], returns: 'i32' },
    bind: { args: ['i32', 'ptr', 'u32'], returns: 'i32' },
    send: { args: ['i32', 'ptr', 'u64', 'i32'], returns: 'i64' },
    recv: { args: ['i32', 'ptr', 'u64', 'i32'], returns: 'i64' },
    setsockopt: { args: ['i32', 'i32', 'i32', 'ptr', 'u32'], returns: 'i32' },
    setns: { args: ['i32', 'i32'], returns: 'i32' },
    close: { args: ['i32'], returns: 'i32' },
    flock: { args: ['i32', 'i32'], returns: 'i32' },
    __errno_location: { args: [], returns: 'ptr' },
    strerror: { args: ['i32'], returns: 'cstring' },
  });
  const sym = symbols as unknown as LibcSymbols;
  libc = { sym, readErrno: () => ffi.read.i32(sym.__errno_location() as import('bun:ffi').Pointer, 0) };
  return libc;
}

/** An OS error with its errno and libc's text ("File exists"). */
export class OsError extends Error {
  readonly errno: number;
  constructor(errno: number, text: string) {
    super(text);
    this.name = 'OsError';
    this.errno = errno;
  }
}

/** libc's message for an errno ("No such device"). */
export function strerror(errno: number): string {
  return load().sym.strerror(errno).toString();
}

function check(rc: number | bigint, what: string): number {
  const n = Number(rc);
  if (n >= 0) return n;
  const l = load();
  const errno = l.readErrno();
  throw new OsError(errno, `${what}: ${l.sym.strerror(errno).toString()}`);
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const SOL_NETLINK = 270;
const NETLINK_EXT_ACK = 11;
export const CLONE_NEWNET = 0x40000000;

export const NETLINK_NETFILTER = 12;

/**
 * A NETLINK_ROUTE socket in the calling thread's current network namespace
 * (a netlink socket stays bound to the namespace it was created in).
 * Receives time out after `timeoutMs` instead of blocking forever.
 */
export function openRouteSocket(timeoutMs = 10_000): number {
  return openNetlinkSocket(NETLINK_ROUTE, timeoutMs);
}

/** A netlink socket of `protocol` (NETLINK_ROUTE 0, NETLINK_NETFILTER 12), as openRouteSocket. */
export function openNetlinkSocket(protocol: number, timeoutMs = 10_000): number {
  const { sym } = load();
  const fd = check(sym.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol), `socket(AF_NETLINK, ${protocol})`);
  try {
    const sa = Buffer.alloc(12); // sockaddr_nl: family u16, pad u16, pid u32 (0: kernel assigns), groups u32
    sa.writeUInt16LE(AF_NETLINK, 0);
    check(sym.bind(fd, sa, sa.length), 'bind(AF_NETLINK)');
    const tv = Buffer.alloc(16); // struct timeval
    tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
    tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
    check(sym.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length), 'setsockopt(SO_RCVTIMEO)');
    const rcvbuf = Buffer.alloc(4);
    rcvbuf.writeInt32LE(1 << 20);
    check(sym.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, 4), 'setsockopt(SO_RCVBUF)');
    // Extended ACKs: the kernel's own message text ("Unknown device type") comes with errors. Optional.
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    sym.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
  } catch (e) {
    sym.close(fd);
    throw e;
  }
  return fd;
}

/** send(2) the whole buffer. */
export function sendAll(fd: number, buf: Uint8Array): void {
  const n = check(load().sym.send(fd, buf, buf.length, 0), 'netlink send');
  if (n !== buf.length) throw new Error(`netlink send: short write (${n} of ${buf.length} bytes)`);
}

const MSG_TRUNC = 0x20;

/** recv(2) one datagram into `buf`; returns its length. A datagram larger than `buf` is an error, never silently cut. */
export function recvInto(fd: number, buf: Uint8Array): number {
  const n = check(load().sym.recv(fd, buf, buf.length, MSG_TRUNC), 'netlink recv');
  if (n > buf.length) throw new Error(`netlink recv: a ${n}-byte reply does not fit the ${buf.length}-byte buffer`);
  return n;
}

/** setns(2) for the calling thread; `fd` is an open nsfs file. */
export function setNetns(fd: number, what: string): void {
  check(load().sym.setns(fd, CLONE_NEWNET), `setns(${what})`);
}

export function closeFd(fd: number): void {
  load().sym.close(fd);
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;
const EINTR = 4;

/** flock(2) LOCK_EX|LOCK_NB on an open file: true when taken, false while another open file description holds it. */
export function tryFlockExclusive(fd: number, what: string): boolean {
  const l = load();
  for (;;) {
    if (l.sym.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = l.readErrno();
    if (errno === EWOULDBLOCK) return false;
    if (errno === EINTR) continue;
    throw new OsError(errno, `flock(${what}): ${l.sym.strerror(errno).toString()}`);
  }
}

/** flock(2) LOCK_UN. */
export function unflock(fd: number): void {
  load().sym.flock(fd, LOCK_UN);
}

/** Is the FFI boundary usable here (the Bun runtime)? */
export const ffiAvailable = (): boolean => Boolean(process.versions.bun);
