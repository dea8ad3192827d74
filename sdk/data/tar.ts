/**
 * Read members of a tar archive without unpacking it (the evaluation archives Marigold and Lotus
 * publish, e.g. nyu_labeled_extracted.tar): one pass over the 512-byte headers builds an index
 * (ustar names with prefix, GNU long names, pax `path`), members are read by offset.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DataError } from '../core/errors.ts';

interface Member {
  offset: number;
  size: number;
}

const cstring = (b: Buffer) => {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
};

const octal = (b: Buffer, path: string) => {
  const s = cstring(b).trim();
  const n = s ? parseInt(s, 8) : 0;
  if (!Number.isFinite(n) || n < 0) throw new DataError(`${path}: a tar header has a bad size field "${s}"`);
  return n;
};

/** "./a/b" and "a/b" name the same member. */
const normalise = (name: string) => name.replace(/^\.\//, '').replace(/\/+$/, '');

export class TarArchive {
  private readonly members = new Map<string, Member>();

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** @throws DataError for a file that is not a tar archive or is truncated. */
  static open(path: string): TarArchive {
    const fd = openSync(path, 'r');
    const tar = new TarArchive(path, fd);
    try {
      tar.index(fstatSync(fd).size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return tar;
  }

  private read(offset: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, offset + got);
      if (n === 0) throw new DataError(`${this.path}: truncated tar archive (ended at byte ${offset + got})`);
      got += n;
    }
    return buf;
  }

  private index(total: number): void {
    let offset = 0;
    let longName: string | undefined;
    while (offset + 512 <= total) {
      const h = this.read(offset, 512);
      if (h.every((b) => b === 0)) break; // end-of-archive blocks
      if (offset === 0 && h.subarray(257, 262).toString() !== 'ustar' && h[156] === 0 && h[0] === 0)
        throw new DataError(`${this.path}: not a tar archive`);
      const size = octal(h.subarray(124, 136), this.path);
      const type = String.fromCharCode(h[156] || 0x30);
      const data = offset + 512;
      if (data + size > total)
        throw new DataError(`${this.path}: truncated tar archive (a member runs past the end)`);
      if (type === 'L') longName = cstring(this.read(data, size));
      else if (type === 'x') {
        const pax = this.read(data, size).toString('utf8');
        const m = /\d+ path=([^\n]*)\n/.exec(pax);
        if (m) longName = m[1];
      } else {
        const ustar = h.subarray(257, 262).toString() === 'ustar';
        const prefix = ustar ? cstring(h.subarray(345, 500)) : '';
        const name =
          longName ?? (prefix ? `${prefix}/${cstring(h.subarray(0, 100))}` : cstring(h.subarray(0, 100)));
        longName = undefined;
        if (type === '0' || type === '7') this.members.set(normalise(name), { offset: data, size });
      }
      offset = data + Math.ceil(size / 512) * 512;
    }
  }

  has(name: string): boolean {
    return this.members.has(normalise(name));
  }

  /** @throws DataError naming the archive when the member is absent. */
  file(name: string): Buffer {
    const m = this.members.get(normalise(name));
    if (!m) throw new DataError(`${this.path}: no member "${name}"`);
    return this.read(m.offset, m.size);
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  close(): void {
    closeSync(this.fd);
  }
}
