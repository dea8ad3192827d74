/**
 * NumPy `.npy` arrays (DIODE's depth and mask files): format versions 1-3, little- or big-endian
 * floats, integers and booleans, C or Fortran order; values come back as float64 in C order.
 */
import { DataError } from '../core/errors.ts';
import { halfToFloat } from '../core/half.ts';

export interface NpyArray {
  shape: number[];
  data: Float64Array;
}

const READERS: Record<string, [number, (b: Buffer, o: number, le: boolean) => number]> = {
  f4: [4, (b, o, le) => (le ? b.readFloatLE(o) : b.readFloatBE(o))],
  f8: [8, (b, o, le) => (le ? b.readDoubleLE(o) : b.readDoubleBE(o))],
  f2: [2, (b, o, le) => halfToFloat(le ? b.readUInt16LE(o) : b.readUInt16BE(o))],
  u1: [1, (b, o) => b[o]],
  i1: [1, (b, o) => b.readInt8(o)],
  b1: [1, (b, o) => (b[o] ? 1 : 0)],
  u2: [2, (b, o, le) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o))],
  i2: [2, (b, o, le) => (le ? b.readInt16LE(o) : b.readInt16BE(o))],
  u4: [4, (b, o, le) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o))],
  i4: [4, (b, o, le) => (le ? b.readInt32LE(o) : b.readInt32BE(o))],
  i8: [8, (b, o, le) => Number(le ? b.readBigInt64LE(o) : b.readBigInt64BE(o))],
  u8: [8, (b, o, le) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o))],
};

/**
 * `n` numbers of numpy type `code` (e.g. "f4", "u1"; an order prefix < > | = allowed) from `buf`
 * at `offset`, as float64: the body of a .npy file or of a pickled numpy array.
 * @throws DataError naming `what` for other types or too few bytes.
 */
export function decodeNumpyValues(
  buf: Buffer,
  offset: number,
  code: string,
  n: number,
  what: string,
): Float64Array {
  const order = /^[<>|=]/.test(code) ? code[0] : '<';
  const reader = READERS[code.replace(/^[<>|=]/, '')];
  if (!reader) throw new DataError(`${what}: numpy dtype ${code} is not supported (floats, ints, bools are)`);
  const [bytes, read] = reader;
  if (offset + n * bytes > buf.length)
    throw new DataError(
      `${what}: numpy data is truncated (${buf.length - offset} bytes for ${n} values of ${bytes})`,
    );
  const le = order !== '>';
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = read(buf, offset + i * bytes, le);
  return out;
}

/** @throws DataError naming `what` for anything that is not a plain numeric .npy array. */
export function readNpy(buf: Buffer, what: string): NpyArray {
  if (buf.length < 10 || buf.readUInt32BE(0) !== 0x934e554d || buf[4] !== 0x50 || buf[5] !== 0x59)
    throw new DataError(`${what}: not a .npy file (no \\x93NUMPY magic)`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.subarray(major === 1 ? 10 : 12, start).toString('latin1');
  const descr = /'descr':\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeMatch = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shapeMatch)
    throw new DataError(`${what}: unreadable .npy header ${JSON.stringify(header.trim())}`);
  const shape = shapeMatch[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const flat = decodeNumpyValues(buf, start, descr[1] + descr[2], n, what);
  if (!fortran || shape.length < 2) return { shape, data: flat };
  // Fortran order: the first index varies fastest
  const out = new Float64Array(n);
  const strides = shape.map((_, k) => shape.slice(0, k).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let c = 0; c < n; c++) {
    out[c] = flat[idx.reduce((a, v, k) => a + v * strides[k], 0)];
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return { shape, data: out };
}
