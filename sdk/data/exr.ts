/**
 * OpenEXR scanline images (iBims-1 and Sintel surface normals in DSINE's evaluation set, written
 * by OpenCV): compressions NONE, RLE, ZIPS and ZIP, channels HALF, FLOAT or UINT. Returns every
 * channel as float32 planes by name; other compressions (PIZ, PXR24, B44, DWA) and tiled images
 * are refused naming what the file uses.
 */
import { inflateSync } from 'node:zlib';
import { DataError } from '../core/errors.ts';
import { halfToFloat } from '../core/half.ts';

export interface ExrImage {
  width: number;
  height: number;
  /** Channel name -> [height * width] plane. */
  channels: Map<string, Float32Array>;
}

const COMPRESSIONS = ['NONE', 'RLE', 'ZIPS', 'ZIP', 'PIZ', 'PXR24', 'B44', 'B44A', 'DWAA', 'DWAB'];

/** EXR's RLE: a signed count byte, then |n| literal bytes (n < 0) or one byte repeated n + 1 times. */
function unRle(src: Buffer, expected: number, what: string): Buffer {
  const out = Buffer.alloc(expected);
  let i = 0;
  let o = 0;
  while (i < src.length && o < expected) {
    const n = src.readInt8(i++);
    if (n < 0) {
      src.copy(out, o, i, i - n);
      o -= n;
      i -= n;
    } else {
      out.fill(src[i++], o, o + n + 1);
      o += n + 1;
    }
  }
  if (o !== expected)
    throw new DataError(`${what}: EXR RLE block decodes to ${o} bytes, expected ${expected}`);
  return out;
}

/** ZIP and RLE blocks store bytes split in two halves and delta-encoded: undo both. */
function unPredict(t: Buffer): Buffer {
  for (let i = 1; i < t.length; i++) t[i] = (t[i - 1] + t[i] - 128) & 0xff;
  const out = Buffer.alloc(t.length);
  const half = (t.length + 1) >> 1;
  for (let i = 0; i < t.length; i++) out[i] = i % 2 === 0 ? t[i >> 1] : t[half + (i >> 1)];
  return out;
}

/** @throws DataError naming `what` for files this reader does not handle. */
export function readExr(buf: Buffer, what: string): ExrImage {
  if (buf.length < 8 || buf.readUInt32LE(0) !== 20000630) throw new DataError(`${what}: not an OpenEXR file`);
  const flags = buf.readUInt32LE(4);
  if (flags & 0x200) throw new DataError(`${what}: tiled EXR images are not supported (scanline only)`);
  if (flags & 0x1000) throw new DataError(`${what}: multi-part EXR files are not supported`);
  let p = 8;
  const str = () => {
    const end = buf.indexOf(0, p);
    const s = buf.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const channels: { name: string; type: number }[] = [];
  let compression = -1;
  let win: number[] | undefined;
  for (;;) {
    const name = str();
    if (!name) break;
    const type = str();
    const size = buf.readInt32LE(p);
    p += 4;
    const v = p;
    if (name === 'channels' && type === 'chlist') {
      let q = v;
      while (buf[q] !== 0) {
        const end = buf.indexOf(0, q);
        const ch = buf.toString('latin1', q, end);
        q = end + 1;
        const pixelType = buf.readInt32LE(q);
        const [xs, ys] = [buf.readInt32LE(q + 8), buf.readInt32LE(q + 12)];
        if (xs !== 1 || ys !== 1) throw new DataError(`${what}: subsampled EXR channels are not supported`);
        channels.push({ name: ch, type: pixelType });
        q += 16;
      }
    } else if (name === 'compression') compression = buf[v];
    else if (name === 'dataWindow') win = [0, 4, 8, 12].map((k) => buf.readInt32LE(v + k));
    p = v + size;
  }
  if (!win || !channels.length || compression < 0)
    throw new DataError(`${what}: EXR header lacks channels, compression or dataWindow`);
  if (compression > 3)
    throw new DataError(
      `${what}: EXR compression ${COMPRESSIONS[compression] ?? compression} is not supported (NONE, RLE, ZIPS, ZIP are); re-save it, e.g. cv2.imwrite with IMWRITE_EXR_COMPRESSION_ZIP`,
    );
  const [x0, y0, x1, y1] = win;
  const [width, height] = [x1 - x0 + 1, y1 - y0 + 1];
  const linesPerBlock = compression === 3 ? 16 : 1;
  const blocks = Math.ceil(height / linesPerBlock);
  const bytesOf = (t: number) => (t === 1 ? 2 : 4);
  const lineBytes = channels.reduce((a, c) => a + bytesOf(c.type) * width, 0);
  const planes = new Map(channels.map((c) => [c.name, new Float32Array(width * height)]));
  for (let b = 0; b < blocks; b++) {
    const at = Number(buf.readBigUInt64LE(p + 8 * b));
    if (at + 8 > buf.length) throw new DataError(`${what}: truncated EXR (block ${b} at ${at})`);
    const y = buf.readInt32LE(at) - y0;
    const size = buf.readInt32LE(at + 4);
    const lines = Math.min(linesPerBlock, height - y);
    const expected = lines * lineBytes;
    let data = buf.subarray(at + 8, at + 8 + size);
    if (data.length !== size) throw new DataError(`${what}: truncated EXR (block ${b})`);
    if (size < expected) {
      data =
        compression === 1
          ? unPredict(unRle(data, expected, what))
          : unPredict(Buffer.from(inflateSync(data)));
      if (data.length !== expected)
        throw new DataError(`${what}: EXR block ${b} decodes to ${data.length} bytes, expected ${expected}`);
    }
    let q = 0;
    for (let l = 0; l < lines; l++)
      for (const c of channels) {
        const plane = planes.get(c.name)!;
        const row = (y + l) * width;
        for (let x = 0; x < width; x++) {
          plane[row + x] =
            c.type === 1
              ? halfToFloat(data.readUInt16LE(q))
              : c.type === 2
                ? data.readFloatLE(q)
                : data.readUInt32LE(q);
          q += bytesOf(c.type);
        }
      }
  }
  return { width, height, channels: planes };
}
