/**
 * What people look at and use downstream: colour-mapped depth (Spectral), normals as RGB,
 * uncertainty maps, 16-bit PNG depth, a PLY point cloud from depth and a focal length, and
 * 16-bit PNG / float ground truth reading for evaluation.
 */
import sharp from 'sharp';
import { crc32, deflateSync } from 'node:zlib';
import { DataError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';
import type { RgbImage } from '../core/rgb.ts';
import type { Tensor } from '../core/tensor.ts';
import { SPECTRAL, colormap } from '../viz/colormap.ts';

/** Values [1, H, W] -> colour image, normalised by the 2nd-98th percentile. */
export function colorizeMap(map: Tensor, o: { invert?: boolean } = {}): RgbImage {
  const [, h, w] = map.shape;
  const sorted = Float32Array.from(map.data).sort();
  const lo = sorted[Math.floor(0.02 * (sorted.length - 1))];
  const hi = sorted[Math.floor(0.98 * (sorted.length - 1))];
  const data = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) {
    let v = (map.data[i] - lo) / (hi - lo || 1);
    if (o.invert) v = 1 - v;
    data.set(colormap(v, SPECTRAL), i * 3);
  }
  return { data, width: w, height: h };
}

/** Unit normals [1, H, W, 3] -> RGB with (n + 1) / 2. */
export function normalsToRgb(normal: Tensor): RgbImage {
  const [, h, w] = normal.shape;
  return { data: Uint8Array.from(normal.data, (v) => Math.round(((v + 1) / 2) * 255)), width: w, height: h };
}

export async function savePng(path: string, img: RgbImage): Promise<void> {
  await writeFileAtomic(
    path,
    await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .png()
      .toBuffer(),
  );
}

/** A 16-bit grayscale PNG, encoded directly (sharp's raw input is 8-bit). */
export function encodeGray16Png(values: Uint16Array, width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 16; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = Buffer.alloc(height * (1 + 2 * width));
  for (let y = 0; y < height; y++) {
    const o = y * (1 + 2 * width); // filter byte 0, then big-endian samples
    for (let x = 0; x < width; x++) rows.writeUInt16BE(values[y * width + x], o + 1 + 2 * x);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Depth [1, H, W] as a 16-bit grayscale PNG, `value * scale` rounded and clamped to 0..65535. */
export async function saveDepth16(path: string, depth: Tensor, scale = 65535): Promise<void> {
  const [, h, w] = depth.shape;
  const u16 = Uint16Array.from(depth.data, (v) => Math.min(65535, Math.max(0, Math.round(v * scale))));
  await writeFileAtomic(path, encodeGray16Png(u16, w, h));
}

/** Read a 16-bit (or 8-bit) single-channel PNG (a file or its bytes) as numbers (divided by `scale`). @throws DataError */
export async function readDepthPng(
  input: string | Buffer,
  scale = 1,
  what = typeof input === 'string' ? input : 'depth PNG',
): Promise<{ data: Float32Array; width: number; height: number }> {
  try {
    const { data, info } = await sharp(input)
      .toColourspace('grey16') // keep 16 bits (sharp would otherwise go through 8-bit sRGB)
      .raw({ depth: 'ushort' })
      .toBuffer({ resolveWithObject: true });
    const u16 = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
    return { data: Float32Array.from(u16, (v) => v / scale), width: info.width, height: info.height };
  } catch (e) {
    throw new DataError(`${what}: cannot read depth PNG (${(e as Error).message})`, { cause: e });
  }
}

/**
 * ASCII PLY point cloud: pixel (u, v) with depth d -> (X, Y, Z) = ((u - cx) d / f, (v - cy) d / f, d),
 * coloured by the image. Without a focal length, a 60 degree horizontal field of view is assumed.
 */
export async function savePointCloud(
  path: string,
  depth: Tensor,
  color: RgbImage,
  focal?: number,
): Promise<void> {
  const [, h, w] = depth.shape;
  const f = focal ?? w / (2 * Math.tan(Math.PI / 6));
  const [cx, cy] = [(w - 1) / 2, (h - 1) / 2];
  const lines: string[] = [];
  for (let v = 0; v < h; v++) {
    for (let u = 0; u < w; u++) {
      const d = depth.data[v * w + u];
      if (!(d > 0)) continue;
      const k = (v * w + u) * 3;
      lines.push(
        `${(((u - cx) * d) / f).toFixed(5)} ${(((v - cy) * d) / f).toFixed(5)} ${d.toFixed(5)} ${color.data[k]} ${color.data[k + 1]} ${color.data[k + 2]}`,
      );
    }
  }
  const header = [
    'ply',
    'format ascii 1.0',
    `element vertex ${lines.length}`,
    'property float x',
    'property float y',
    'property float z',
    'property uchar red',
    'property uchar green',
    'property uchar blue',
    'end_header',
  ];
  await writeFileAtomic(path, Buffer.from([...header, ...lines].join('\n') + '\n'));
}
