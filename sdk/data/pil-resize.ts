/**
 * PIL's `Image.resize(size, BILINEAR)` for 8-bit RGB, reproduced exactly: separable
 * triangle filter whose support widens with the downscale factor (antialiasing),
 * coefficients in 22-bit fixed point, horizontal pass first with the intermediate image
 * rounded to 8 bits. The paper's evaluation loads images this way, and sharp's resize
 * uses different filters, so we do it ourselves.
 */
const PRECISION_BITS = 32 - 8 - 2;

interface Coeffs {
  bounds: Int32Array; // [xmin, count] per output pixel
  weights: Int32Array; // fixed point, ksize per output pixel
  ksize: number;
}

function bilinearFilter(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

/** PIL's LANCZOS: a 3-lobe windowed sinc. */
function lanczosFilter(x: number): number {
  return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

export type PilFilter = 'bilinear' | 'lanczos';
const FILTERS = { bilinear: { fn: bilinearFilter, support: 1 }, lanczos: { fn: lanczosFilter, support: 3 } };

function precomputeCoeffs(inSize: number, outSize: number, filter: PilFilter = 'bilinear'): Coeffs {
  const { fn, support: base } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      k[x] = fn((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < count; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      weights[xx * ksize + x] = Math.trunc(w * (1 << PRECISION_BITS) + (w < 0 ? -0.5 : 0.5));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { bounds, weights, ksize };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resize interleaved 8-bit pixels with `channels` channels; returns a new buffer. */
export function pilResizeBilinear(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  return pilResize(src, width, height, channels, outWidth, outHeight, 'bilinear');
}

/** PIL's `Image.resize(size, filter)` (BILINEAR or LANCZOS) for 8-bit pixels. */
export function pilResize(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  filter: PilFilter,
): Uint8Array {
  let data = src;
  let w = width;
  if (outWidth !== width) {
    const c = precomputeCoeffs(width, outWidth, filter);
    const tmp = new Uint8Array(outWidth * height * channels);
    for (let y = 0; y < height; y++) {
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = c.bounds[xx * 2];
        const count = c.bounds[xx * 2 + 1];
        for (let ch = 0; ch < channels; ch++) {
          let acc = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < count; x++)
            acc += data[(y * w + xmin + x) * channels + ch] * c.weights[xx * c.ksize + x];
          tmp[(y * outWidth + xx) * channels + ch] = clip8(acc);
        }
      }
    }
    data = tmp;
    w = outWidth;
  }
  if (outHeight !== height) {
    const c = precomputeCoeffs(height, outHeight, filter);
    const out = new Uint8Array(w * outHeight * channels);
    for (let yy = 0; yy < outHeight; yy++) {
      const ymin = c.bounds[yy * 2];
      const count = c.bounds[yy * 2 + 1];
      for (let x = 0; x < w * channels; x++) {
        let acc = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < count; y++)
          acc += data[(ymin + y) * w * channels + x] * c.weights[yy * c.ksize + y];
        out[yy * w * channels + x] = clip8(acc);
      }
    }
    data = out;
  }
  return data === src ? src.slice() : data;
}
