/**
 * The one signature of a last_reserved_ip.<n> file that the index marker
 * (.tscni-index) keeps: "<inode>:<mtime ns>:<size>:<content>", or "none"
 * when the file does not exist. Every site that writes or compares a marker
 * value computes it here, so the values agree byte for byte (and with the
 * markers older versions wrote: the format is unchanged).
 *
 * The content is part of it because file timestamps come from a coarse
 * clock: a reference rewrite in place in the same tick keeps inode, mtime
 * and (often) size, but always names another address.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** The marker value of a file that does not exist. */
export const NO_FILE = 'none';

/** The signature of the open file `fd` (read from offset 0, whatever the fd's position). Throws on I/O errors. */
export function markerSignature(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  const buf = Buffer.alloc(Number(st.size));
  const n = readSync(fd, buf, 0, buf.length, 0);
  return `${st.ino}:${st.mtimeNs}:${st.size}:${buf.subarray(0, n).toString('utf8')}`;
}

/** markerSignature of the file at `path`, or NO_FILE when there is none. Other errors throw. */
export function markerSignatureAt(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return NO_FILE;
    throw e;
  }
  try {
    return markerSignature(fd);
  } finally {
    closeSync(fd);
  }
}
