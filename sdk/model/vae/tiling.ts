/**
 * Tiled VAE encode and decode, as diffusers' AutoencoderKL `enable_tiling()` does it: overlapping
 * tiles (a quarter of a tile), each run alone, the overlaps blended linearly (rows, then
 * columns, in place, so later tiles blend with already blended neighbours) and the tiles cropped
 * and joined. Memory is that of one tile; the result differs from the untiled one only near
 * the seams (bounded, tested).
 */
import { ConfigError } from '../../core/errors.ts';
import { Tensor, concat } from '../../core/tensor.ts';

export interface TileSettings {
  /** Tile size in image pixels (a multiple of 32: its 3/4 stride is whole latent pixels). */
  tile: number;
  /** Share of a tile that overlaps its neighbour (diffusers: 0.25). */
  overlap?: number;
}

/** [1, C, h, w] crop rows y0..y1, columns x0..x1 (clamped to the tensor). */
function crop(t: Tensor, y0: number, y1: number, x0: number, x1: number): Tensor {
  const [n, c, h, w] = t.shape;
  const [Y1, X1] = [Math.min(y1, h), Math.min(x1, w)];
  const [oh, ow] = [Y1 - y0, X1 - x0];
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < oh; y++)
      out.set(
        t.data.subarray(p * h * w + (y + y0) * w + x0, p * h * w + (y + y0) * w + x0 + ow),
        (p * oh + y) * ow,
      );
  return new Tensor(out, [n, c, oh, ow]);
}

/** b's first rows become a linear ramp from a's last rows (diffusers blend_v), in place. */
function blendV(a: Tensor, b: Tensor, extent: number): void {
  const [n, c, ha, w] = a.shape;
  const hb = b.shape[2];
  const e = Math.min(ha, hb, extent);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < e; y++)
      for (let x = 0; x < Math.min(w, b.shape[3]); x++) {
        const bi = p * hb * b.shape[3] + y * b.shape[3] + x;
        const ai = p * ha * w + (ha - e + y) * w + x;
        b.data[bi] = a.data[ai] * (1 - y / e) + b.data[bi] * (y / e);
      }
}

/** b's first columns become a linear ramp from a's last columns (diffusers blend_h), in place. */
function blendH(a: Tensor, b: Tensor, extent: number): void {
  const [n, c, h, wa] = a.shape;
  const wb = b.shape[3];
  const e = Math.min(wa, wb, extent);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < Math.min(h, b.shape[2]); y++)
      for (let x = 0; x < e; x++) {
        const bi = p * b.shape[2] * wb + y * wb + x;
        const ai = p * h * wa + y * wa + (wa - e + x);
        b.data[bi] = a.data[ai] * (1 - x / e) + b.data[bi] * (x / e);
      }
}

/**
 * Run `f` over overlapping tiles of `input` ([1, C, H, W]) and join the outputs: tiles of `tileIn`
 * input pixels every `tileIn * (1 - overlap)`, outputs scaled by `factor` (1/8 to encode, 8 to
 * decode), blended over `tileOut * overlap` and cropped to `tileOut * (1 - overlap)`.
 * `f` returns one or more tensors per tile (e.g. mean and logvar), each tiled alike.
 */
export async function tiled(
  input: Tensor,
  tileIn: number,
  factor: number,
  overlap: number,
  f: (tile: Tensor) => Promise<Tensor[]>,
): Promise<Tensor[]> {
  input.expectShape('tiled input', [1, -1, -1, -1]);
  if (!(overlap >= 0 && overlap < 1)) throw new ConfigError(`tile overlap must be in [0, 1), got ${overlap}`);
  const [, , H, W] = input.shape;
  const tileOut = Math.round(tileIn * factor);
  const stride = Math.trunc(tileIn * (1 - overlap));
  const extent = Math.trunc(tileOut * overlap);
  const limit = tileOut - extent;
  if (stride < 1 || limit < 1) throw new ConfigError(`tile ${tileIn} is too small for overlap ${overlap}`);
  if (!Number.isInteger(stride * factor))
    throw new ConfigError(
      `tile ${tileIn} with overlap ${overlap} steps ${stride} pixels, which is not a whole number of latent pixels; use a multiple of 32 (overlap 0.25)`,
    );
  const rows: Tensor[][][] = [];
  for (let i = 0; i < H; i += stride) {
    const row: Tensor[][] = [];
    for (let j = 0; j < W; j += stride) row.push(await f(crop(input, i, i + tileIn, j, j + tileIn)));
    rows.push(row);
  }
  const outputs = rows[0][0].length;
  return Array.from({ length: outputs }, (_, k) => {
    const joinedRows = rows.map((row, i) =>
      concat(
        row.map((tiles, j) => {
          const t = tiles[k];
          if (i > 0) blendV(rows[i - 1][j][k], t, extent);
          if (j > 0) blendH(row[j - 1][k], t, extent);
          return crop(t, 0, limit, 0, limit);
        }),
        3,
      ),
    );
    // tiles whose crop overshoots the end (sizes that are not multiples of the stride) are trimmed
    return crop(concat(joinedRows, 2), 0, Math.round(H * factor), 0, Math.round(W * factor));
  });
}
