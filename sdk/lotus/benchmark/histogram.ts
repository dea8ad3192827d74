/**
 * Angular errors kept as a fine histogram (1e-3 degree bins) that pools exactly across images,
 * resumed runs and shards, so the dataset's median is the reference's np.median to within half a
 * bin (5e-4 degrees). A record stores it compactly: the occupied bins as varint (gap, count)
 * pairs, raw-deflated, in base64 (tens of kB for a 640x480 image).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { DataError } from '../../core/errors.ts';

/** Bin width in degrees. */
export const FINE_BIN = 1e-3;
/** Bins over [0, 180] degrees (180 itself falls in the last one). */
export const FINE_BINS = Math.round(180 / FINE_BIN);

export function fineBin(degrees: number): number {
  return Math.min(Math.max(Math.floor(degrees / FINE_BIN), 0), FINE_BINS - 1);
}

function pushVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** Dense counts (length FINE_BINS) as the compact string a record keeps. */
export function encodeFine(counts: Uint32Array): string {
  const bytes: number[] = [];
  let last = -1;
  for (let b = 0; b < counts.length; b++) {
    if (!counts[b]) continue;
    pushVarint(bytes, b - last - 1);
    pushVarint(bytes, counts[b]);
    last = b;
  }
  return deflateRawSync(Uint8Array.from(bytes), { level: 9 }).toString('base64');
}

/** Adds an encoded histogram into dense counts; returns how many errors it held. */
export function addFine(into: Float64Array, encoded: string): number {
  let bytes: Buffer;
  try {
    bytes = inflateRawSync(Buffer.from(encoded, 'base64'));
  } catch (e) {
    throw new DataError(`a normal record's error histogram is damaged (${(e as Error).message})`);
  }
  let pos = 0;
  const read = () => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (pos >= bytes.length) throw new DataError("a normal record's error histogram is truncated");
      const byte = bytes[pos++];
      v += (byte & 0x7f) * scale;
      if (byte < 0x80) return v;
      scale *= 0x80;
    }
  };
  let bin = -1;
  let total = 0;
  while (pos < bytes.length) {
    bin += read() + 1;
    const count = read();
    if (bin >= into.length)
      throw new DataError("a normal record's error histogram has a bin past 180 degrees");
    into[bin] += count;
    total += count;
  }
  return total;
}

/**
 * The median of n values binned by `width`, as np.median takes it (the mean of the two middle
 * values when n is even), each value read as its bin's centre.
 */
export function histogramMedian(counts: ArrayLike<number>, n: number, width: number): number {
  const lo = Math.floor((n - 1) / 2);
  const hi = Math.floor(n / 2);
  let seen = 0;
  let loValue = NaN;
  for (let b = 0; b < counts.length; b++) {
    if (!counts[b]) continue;
    const next = seen + counts[b];
    const centre = (b + 0.5) * width;
    if (Number.isNaN(loValue) && lo < next) loValue = centre;
    if (hi < next) return (loValue + centre) / 2;
    seen = next;
  }
  return loValue;
}
