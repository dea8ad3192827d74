/**
 * A minimal zip reader (what `torch.save` writes: stored or deflated entries, no
 * encryption). Reads the central directory and extracts entries by name; every structural
 * problem is a DataError naming the file. And the matching writer (stored entries, or
 * pre-compressed ones with a declared size), used to write torch.save files.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { DataError } from './errors.ts';
import { readInputFile } from './fs.ts';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** Deflated entries may expand at most this much (beyond MAX_SMALL_ENTRY bytes). */
const MAX_RATIO = 256;
const MAX_SMALL_ENTRY = 1 << 20;

export class ZipArchive {
  readonly path: string;
  readonly entries: Map<string, ZipEntry>;
  private readonly buf: Buffer;

  private constructor(path: string, buf: Buffer, entries: Map<string, ZipEntry>) {
    this.path = path;
    this.buf = buf;
    this.entries = entries;
  }

  /** @throws DataError for unreadable, truncated or non-zip files. */
  static open(path: string): ZipArchive {
    let buf: Buffer;
    try {
      buf = readInputFile(path);
    } catch (e) {
      throw new DataError(`${path}: cannot read file (${(e as Error).message})`, { cause: e });
    }
    const bad = (why: string) => new DataError(`${path}: not a readable zip archive: ${why}`);
    let eocd = -1;
    for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
      if (buf.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad('no end-of-central-directory record (truncated, or not a torch.save zip file)');
    const count = buf.readUInt16LE(eocd + 10);
    const cdSize = buf.readUInt32LE(eocd + 12);
    let cdOffset = buf.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff) cdOffset = zip64Offset(buf, eocd, bad);
    if (cdOffset + cdSize > buf.length)
      throw bad('central directory lies beyond the end of the file (truncated)');
    const entries = new Map<string, ZipEntry>();
    let p = cdOffset;
    for (let i = 0; i < count || (count === 0xffff && p < cdOffset + cdSize); i++) {
      if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50)
        throw bad(`central directory entry ${i} is corrupt`);
      const nameLen = buf.readUInt16LE(p + 28);
      const extraLen = buf.readUInt16LE(p + 30);
      const commentLen = buf.readUInt16LE(p + 32);
      const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
      let compressedSize = buf.readUInt32LE(p + 20);
      let size = buf.readUInt32LE(p + 24);
      let localOffset = buf.readUInt32LE(p + 42);
      if (compressedSize === 0xffffffff || size === 0xffffffff || localOffset === 0xffffffff) {
        [size, compressedSize, localOffset] = zip64Extra(buf, p + 46 + nameLen, extraLen, [
          size,
          compressedSize,
          localOffset,
        ]);
      }
      entries.set(name, { name, method: buf.readUInt16LE(p + 10), compressedSize, size, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipArchive(path, buf, entries);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** @throws DataError when absent, truncated or compressed with an unsupported method. */
  read(name: string): Buffer {
    const e = this.entries.get(name);
    if (!e) throw new DataError(`${this.path}: archive has no entry "${name}"`);
    const p = e.localOffset;
    if (p + 30 > this.buf.length || this.buf.readUInt32LE(p) !== 0x04034b50)
      throw new DataError(`${this.path}: entry "${name}" has a corrupt local header`);
    const start = p + 30 + this.buf.readUInt16LE(p + 26) + this.buf.readUInt16LE(p + 28);
    if (start + e.compressedSize > this.buf.length)
      throw new DataError(`${this.path}: entry "${name}" is truncated`);
    const raw = this.buf.subarray(start, start + e.compressedSize);
    if (e.method === 0) return raw;
    if (e.method === 8) {
      // a small entry that declares gigabytes is refused before anything is allocated: weights
      // barely compress (torch.save even stores them uncompressed), only a bomb reaches this ratio
      if (e.size > MAX_SMALL_ENTRY && e.size > MAX_RATIO * e.compressedSize)
        throw new DataError(
          `${this.path}: entry "${name}" declares ${e.size} bytes from ${e.compressedSize} compressed (over ${MAX_RATIO}x): refused before inflating`,
        );
      // bounded by the declared size: a small entry that inflates to gigabytes is refused, not inflated
      const limit = Math.max(e.size, 1);
      try {
        const out = inflateRawSync(raw, { maxOutputLength: limit });
        if (out.length !== e.size)
          throw new Error(`inflated to ${out.length} bytes, the archive declares ${e.size}`);
        return out;
      } catch (err) {
        const msg =
          (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
            ? `inflates to more than the ${e.size} bytes it declares`
            : (err as Error).message;
        throw new DataError(`${this.path}: entry "${name}" is corrupt (${msg})`, { cause: err });
      }
    }
    throw new DataError(
      `${this.path}: entry "${name}" uses compression method ${e.method}; supported: stored (0), deflate (8)`,
    );
  }
}

function zip64Offset(buf: Buffer, eocd: number, bad: (w: string) => DataError): number {
  const loc = eocd - 20;
  if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) throw bad('zip64 locator missing');
  const rec = Number(buf.readBigUInt64LE(loc + 8));
  if (buf.readUInt32LE(rec) !== 0x06064b50) throw bad('zip64 end record missing');
  return Number(buf.readBigUInt64LE(rec + 48));
}

function zip64Extra(buf: Buffer, start: number, len: number, values: number[]): [number, number, number] {
  const out = [...values];
  let p = start;
  while (p < start + len) {
    const id = buf.readUInt16LE(p);
    const size = buf.readUInt16LE(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      for (let i = 0; i < 3; i++) {
        if (out[i] === 0xffffffff) {
          out[i] = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
      }
    }
    p += 4 + size;
  }
  return [out[0], out[1], out[2]];
}

export interface ZipWriteEntry {
  name: string;
  /** The bytes as stored: raw (method 0), or already deflated (method 8, with `size`). */
  data: Buffer;
  method?: 0 | 8;
  /** Uncompressed size declared for a deflated entry (default: data.length). */
  size?: number;
}

/**
 * A zip archive as buffers to write in order. `align` pads each local header's extra field so
 * entry data starts at a multiple of it (torch mmaps its storages).
 */
export function zipEntries(entries: readonly ZipWriteEntry[], o: { align?: number } = {}): Buffer[] {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const size = e.size ?? e.data.length;
    const pad = o.align ? (o.align - ((offset + 30 + name.length + 4) % o.align)) % o.align : -4;
    const extra = Buffer.alloc(4 + pad);
    if (extra.length) {
      extra.writeUInt16LE(0xcafe, 0);
      extra.writeUInt16LE(pad, 2);
    }
    const crc = crc32(e.data);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(e.method ?? 0, 8);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(e.data.length, 18);
    h.writeUInt32LE(size, 22);
    h.writeUInt16LE(name.length, 26);
    h.writeUInt16LE(extra.length, 28);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(e.method ?? 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(e.data.length, 20);
    c.writeUInt32LE(size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    parts.push(h, name, extra, e.data);
    central.push(c, name);
    offset += 30 + name.length + extra.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return [...parts, cd, end];
}
