/** The one marker signature of a last_reserved_ip file, on real files. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markerSignature, markerSignatureAt, NO_FILE } from '../../../ipam/host-local/marker-signature.ts';
import { writeAtomic } from '../../../ipam/host-local/reservation-files.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tscni-hl-sig-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('markerSignature', () => {
  it('is "<inode>:<mtime ns>:<size>:<content>", the same through a path or an fd', () => {
    const p = join(dir, 'last_reserved_ip.0');
    writeFileSync(p, '10.0.0.2');
    const st = statSync(p, { bigint: true });
    const sig = markerSignatureAt(p);
    expect(sig).toBe(`${st.ino}:${st.mtimeNs}:8:10.0.0.2`);
    const fd = openSync(p, 'r');
    try {
      expect(markerSignature(fd)).toBe(sig);
      expect(markerSignature(fd)).toBe(sig); // reads from offset 0 every time
    } finally {
      closeSync(fd);
    }
    expect(markerSignatureAt(p)).toBe(sig);
  });

  it('is "none" for a missing file', () => {
    expect(NO_FILE).toBe('none');
    expect(markerSignatureAt(join(dir, 'last_reserved_ip.7'))).toBe('none');
  });

  it('changes on an in-place rewrite of the same size (the reference) and on a replacement by rename', () => {
    const p = join(dir, 'last_reserved_ip.0');
    writeFileSync(p, '10.0.0.2');
    const before = markerSignatureAt(p);
    writeFileSync(p, '10.0.0.3'); // same inode, same size, perhaps the same mtime tick
    expect(markerSignatureAt(p)).not.toBe(before);
    const inPlace = markerSignatureAt(p);
    writeFileSync(join(dir, 'other'), '10.0.0.3');
    renameSync(join(dir, 'other'), p); // same content, another inode
    expect(markerSignatureAt(p)).not.toBe(inPlace);
  });

  it('an fd held on a replaced file still sees that file, not the new one', () => {
    const p = join(dir, 'last_reserved_ip.0');
    writeFileSync(p, '10.0.0.2');
    const fd = openSync(p, 'r');
    try {
      const before = markerSignature(fd);
      writeAtomic(dir, 'last_reserved_ip.0', 'last.0', 'fd00::99', 'test');
      expect(markerSignature(fd)).toBe(before);
      expect(markerSignatureAt(p)).not.toBe(before);
    } finally {
      closeSync(fd);
    }
  });

  it('writeAtomic returns the signature the file then has, and leaves no temp', () => {
    const sig = writeAtomic(dir, 'last_reserved_ip.1', 'last.1', 'fd00::5', 'test');
    expect(sig).toBe(markerSignatureAt(join(dir, 'last_reserved_ip.1')));
    expect(sig.endsWith(':7:fd00::5')).toBe(true);
    expect(readdirSync(dir)).toEqual(['last_reserved_ip.1']);
  });
});
