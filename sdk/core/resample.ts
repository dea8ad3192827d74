/**
 * Float resampling of NCHW tensors as torch does it: antialiased bilinear
 * (`F.interpolate(..., mode="bilinear", antialias=True)`, the same separable triangle filter
 * as PIL but without fixed point) and "nearest-exact".
 */
import { ShapeError } from './errors.ts';
import { Tensor } from './tensor.ts';

function aaWeights(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const starts = new Int32Array(outSize);
  const weights: Float64Array[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const w = new Float64Array(xsize);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const t = Math.abs((j + xmin - center + 0.5) * invScale);
      w[j] = t < 1 ? 1 - t : 0;
      total += w[j];
    }
    if (total) for (let j = 0; j < xsize; j++) w[j] /= total;
    starts[i] = xmin;
    weights.push(w);
  }
  return { starts, weights };
}

function checkSize(h: number, w: number): void {
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0))
    throw new ShapeError(`resize: output size must be positive integers, got ${h}x${w}`);
}

/** Antialiased bilinear resize of [N, C, H, W] (width first, then height). */
export function resizeBilinearAntialias(x: Tensor, height: number, width: number): Tensor {
  x.expectShape('resize input', [-1, -1, -1, -1]);
  checkSize(height, width);
  const [n, c, h, w] = x.shape;
  const cw = aaWeights(w, width);
  const ch = aaWeights(h, height);
  const out = new Float32Array(n * c * height * width);
  const tmp = new Float64Array(h * width);
  for (let p = 0; p < n * c; p++) {
    const src = x.data.subarray(p * h * w, (p + 1) * h * w);
    for (let y = 0; y < h; y++) {
      for (let j = 0; j < width; j++) {
        const ws = cw.weights[j];
        let s = 0;
        for (let k = 0; k < ws.length; k++) s += src[y * w + cw.starts[j] + k] * ws[k];
        tmp[y * width + j] = s;
      }
    }
    for (let i = 0; i < height; i++) {
      const ws = ch.weights[i];
      for (let j = 0; j < width; j++) {
        let s = 0;
        for (let k = 0; k < ws.length; k++) s += tmp[(ch.starts[i] + k) * width + j] * ws[k];
        out[p * height * width + i * width + j] = s;
      }
    }
  }
  return new Tensor(out, [n, c, height, width]);
}

/** torch "nearest-exact": source index floor((i + 0.5) * in / out), clamped. Works on NCHW or NHWC via `layout`. */
export function resizeNearestExact(
  x: Tensor,
  height: number,
  width: number,
  layout: 'nchw' | 'nhwc' = 'nchw',
): Tensor {
  x.expectShape('resize input', [-1, -1, -1, -1]);
  checkSize(height, width);
  const [n, a, b, c] = x.shape;
  const [ch, h, w] = layout === 'nchw' ? [a, b, c] : [c, a, b];
  const ys = Array.from({ length: height }, (_, i) => Math.min(Math.floor(((i + 0.5) * h) / height), h - 1));
  const xs = Array.from({ length: width }, (_, j) => Math.min(Math.floor(((j + 0.5) * w) / width), w - 1));
  const out = new Float32Array(n * ch * height * width);
  for (let q = 0; q < n; q++) {
    for (let i = 0; i < height; i++) {
      for (let j = 0; j < width; j++) {
        for (let k = 0; k < ch; k++) {
          const src =
            layout === 'nchw'
              ? ((q * ch + k) * h + ys[i]) * w + xs[j]
              : ((q * h + ys[i]) * w + xs[j]) * ch + k;
          const dst =
            layout === 'nchw'
              ? ((q * ch + k) * height + i) * width + j
              : ((q * height + i) * width + j) * ch + k;
          out[dst] = x.data[src];
        }
      }
    }
  }
  return new Tensor(out, layout === 'nchw' ? [n, ch, height, width] : [n, height, width, ch]);
}
