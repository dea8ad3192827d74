/**
 * A small typed tensor: Float32Array + shape, row-major (NCHW for images). Only the few
 * operations the pipeline needs between ONNX calls live here; heavy maths runs in ONNX.
 */
import { ShapeError } from './errors.ts';
import { fmtShape, messages } from './messages.ts';

export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];

  /** @throws ShapeError when the data length does not match the shape. */
  constructor(data: Float32Array, shape: readonly number[]) {
    const size = checkedSize(shape);
    if (size !== data.length)
      throw new ShapeError(messages.dataLength(`tensor ${fmtShape(shape)}`, size, data.length));
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(checkedSize(shape)), shape);
  }

  static from(values: ArrayLike<number>, shape: readonly number[]): Tensor {
    return new Tensor(Float32Array.from(values), shape);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Same data, new shape (one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    return new Tensor(this.data, resolved);
  }

  /** Element-wise map into a new tensor. */
  map(fn: (v: number, i: number) => number): Tensor {
    const out = new Float32Array(this.size);
    for (let i = 0; i < out.length; i++) out[i] = fn(this.data[i], i);
    return new Tensor(out, this.shape);
  }

  /** Items [start, end) along the first axis (a view-free copy). */
  sliceFirst(start: number, end = start + 1): Tensor {
    const inner = this.size / this.shape[0];
    return new Tensor(this.data.slice(start * inner, end * inner), [end - start, ...this.shape.slice(1)]);
  }

  /** Check the shape, with -1 meaning any size. @throws ShapeError */
  expectShape(what: string, expected: readonly number[]): this {
    const ok = expected.length === this.rank && expected.every((d, i) => d === -1 || d === this.shape[i]);
    if (!ok)
      throw new ShapeError(
        messages.shapeMismatch(what, fmtShape(expected).replaceAll('-1', '*'), this.shape),
      );
    return this;
  }
}

function checkedSize(shape: readonly number[]): number {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ShapeError(`tensor dimensions must be non-negative integers, got ${fmtShape(shape)}`);
  }
  return shapeSize(shape);
}

export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Concatenate along `axis`; all other dimensions must agree. @throws ShapeError */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: expected at least one tensor, got none');
  const first = tensors[0].shape;
  for (const t of tensors) {
    const same = t.rank === first.length && t.shape.every((d, i) => i === axis || d === first[i]);
    if (!same)
      throw new ShapeError(messages.shapeMismatch(`concat on axis ${axis}`, fmtShape(first), t.shape));
  }
  const outer = shapeSize(first.slice(0, axis));
  const innerOf = (t: Tensor) => shapeSize(t.shape.slice(axis));
  const total = tensors.reduce((a, t) => a + t.shape[axis], 0);
  const out = new Float32Array(outer * tensors.reduce((a, t) => a + innerOf(t), 0));
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    for (const t of tensors) {
      const n = innerOf(t);
      out.set(t.data.subarray(o * n, (o + 1) * n), offset);
      offset += n;
    }
  }
  return new Tensor(out, [...first.slice(0, axis), total, ...first.slice(axis + 1)]);
}

/** `x` itself when it is already `size` x `size`, else resized to it (resizeBilinear). */
export function resizedToSquare(x: Tensor, size: number): Tensor {
  return x.shape[2] === size && x.shape[3] === size ? x : resizeBilinear(x, size, size);
}

/**
 * Bilinear resize of an NCHW tensor, matching torch `F.interpolate(mode="bilinear",
 * align_corners=False)` (source index (i + 0.5) * in/out - 0.5, clamped at 0; no antialias).
 */
export function resizeBilinear(x: Tensor, height: number, width: number): Tensor {
  x.expectShape('resizeBilinear input', [-1, -1, -1, -1]);
  if (!(height > 0 && width > 0 && Number.isInteger(height) && Number.isInteger(width))) {
    throw new ShapeError(`resizeBilinear: output size must be positive integers, got ${height}x${width}`);
  }
  const [n, c, h, w] = x.shape;
  const ys = axisWeights(h, height);
  const xs = axisWeights(w, width);
  const out = new Float32Array(n * c * height * width);
  for (let p = 0; p < n * c; p++) {
    const src = x.data.subarray(p * h * w, (p + 1) * h * w);
    const dst = p * height * width;
    for (let i = 0; i < height; i++) {
      const r0 = ys.i0[i] * w;
      const r1 = ys.i1[i] * w;
      const ly = ys.l[i];
      for (let j = 0; j < width; j++) {
        const a = xs.i0[j];
        const b = xs.i1[j];
        const lx = xs.l[j];
        const top = src[r0 + a] * (1 - lx) + src[r0 + b] * lx;
        const bottom = src[r1 + a] * (1 - lx) + src[r1 + b] * lx;
        out[dst + i * width + j] = top * (1 - ly) + bottom * ly;
      }
    }
  }
  return new Tensor(out, [n, c, height, width]);
}

/**
 * Values of `resizeBilinear(x, height, width)` at a few output pixels (row-major indices), for
 * each channel of a single image: [pixels.length][C], computed with the same arithmetic (so
 * equal to the full resize), without materialising the resized map.
 */
export function sampleBilinear(
  x: Tensor,
  height: number,
  width: number,
  pixels: readonly number[],
): Float32Array[] {
  x.expectShape('sampleBilinear input', [1, -1, -1, -1]);
  const [, c, h, w] = x.shape;
  const ys = axisWeights(h, height);
  const xs = axisWeights(w, width);
  return pixels.map((p) => {
    const [i, j] = [Math.floor(p / width), p % width];
    const [r0, r1, ly] = [ys.i0[i] * w, ys.i1[i] * w, ys.l[i]];
    const [a, b, lx] = [xs.i0[j], xs.i1[j], xs.l[j]];
    const out = new Float32Array(c);
    for (let ch = 0; ch < c; ch++) {
      const src = ch * h * w;
      const top = x.data[src + r0 + a] * (1 - lx) + x.data[src + r0 + b] * lx;
      const bottom = x.data[src + r1 + a] * (1 - lx) + x.data[src + r1 + b] * lx;
      out[ch] = top * (1 - ly) + bottom * ly;
    }
    return out;
  });
}

function axisWeights(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const l = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    i0[i] = Math.min(Math.floor(src), inSize - 1);
    i1[i] = Math.min(i0[i] + 1, inSize - 1);
    l[i] = src - i0[i];
  }
  return { i0, i1, l };
}

/** max|got - want| / max|want|: the parity metric of ../shared/reference. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length)
    throw new ShapeError(`relativeError: lengths differ (${got.length} vs ${want.length})`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale === 0 ? diff : diff / scale;
}
