/**
 * Windows BMP decoding (sharp/libvips cannot read BMP): uncompressed 1/4/8-bit palette,
 * 24-bit and 32-bit (BI_RGB, or BI_BITFIELDS with 8-bit masks), bottom-up or top-down, and
 * OS/2 1.x files (12-byte core header: 16-bit sizes, 3-byte palette entries), to
 * 8-bit RGB as Pillow's `convert("RGB")` gives it (alpha dropped). 16-bit and RLE BMPs are
 * refused (their expansion to 8 bits is not checked against Pillow here).
 * @throws Error with the reason (the caller names the file).
 */
import type { RgbImage } from '../core/rgb.ts';

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

export function decodeBmp(bytes: Uint8Array): RgbImage {
  if (bytes.length < 18) throw new Error(`BMP file of ${bytes.length} bytes is truncated (no header)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataOffset = v.getUint32(10, true);
  const headerSize = v.getUint32(14, true);
  // OS/2 1.x (BITMAPCOREHEADER): 12 bytes, unsigned 16-bit sizes, bottom-up, no compression
  const core = headerSize === 12;
  if (!core && headerSize < 40)
    throw new Error(`BMP header of ${headerSize} bytes is neither OS/2 1.x (12) nor Windows (40 or more)`);
  const headerEnd = 14 + headerSize;
  if (bytes.length < headerEnd)
    throw new Error(`BMP file of ${bytes.length} bytes is truncated (its header needs ${headerEnd})`);
  const width = core ? v.getUint16(18, true) : v.getInt32(18, true);
  const rawHeight = core ? v.getUint16(20, true) : v.getInt32(22, true);
  const bpp = v.getUint16(core ? 24 : 28, true);
  const compression = core ? 0 : v.getUint32(30, true);
  const height = Math.abs(rawHeight);
  const bottomUp = rawHeight > 0;
  if (width <= 0 || height <= 0) throw new Error(`BMP size ${width}x${rawHeight} is not a picture`);
  if (width * height > 268_402_689)
    throw new Error(`BMP of ${width}x${height} pixels exceeds the pixel limit`);
  const BI_RGB = 0;
  const BI_BITFIELDS = 3;
  if (compression !== BI_RGB && !(compression === BI_BITFIELDS && bpp === 32))
    throw new Error(
      `BMP compression ${compression} (RLE, bit fields below 32 bits, JPEG/PNG inside BMP) is not supported; save it as PNG`,
    );
  if (![1, 4, 8, 24, 32].includes(bpp))
    throw new Error(`BMP with ${bpp} bits per pixel is not supported (1, 4, 8, 24, 32 are); save it as PNG`);

  let masks = [0x00ff0000, 0x0000ff00, 0x000000ff];
  if (compression === BI_BITFIELDS) {
    masks = [0, 4, 8].map((o) => v.getUint32(54 + o, true));
    if (!masks.every((m) => [0xff, 0xff00, 0xff0000, 0xff000000].includes(m)))
      throw new Error(`BMP bit fields ${masks.map((m) => m.toString(16)).join('/')} are not 8-bit channels`);
  }
  let palette: Uint8Array | undefined;
  // palette entries: B, G, R (+ reserved in Windows files)
  const entry = core ? 3 : 4;
  if (bpp <= 8) {
    const colours = (core ? 0 : v.getUint32(46, true)) || 1 << bpp;
    if (headerEnd + colours * entry > bytes.length) throw new Error('BMP palette is truncated');
    palette = bytes.subarray(headerEnd, headerEnd + colours * entry);
  }
  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  if (dataOffset + stride * height > bytes.length)
    throw new Error(
      `BMP pixel data is truncated (${bytes.length} bytes, needs ${dataOffset + stride * height})`,
    );

  const channel = (px: number, mask: number) => ((px & mask) >>> (31 - Math.clz32(mask & -mask))) & 0xff;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (bottomUp ? height - 1 - y : y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      if (palette) {
        const bit = x * bpp;
        const byte = bytes[row + (bit >> 3)];
        const idx = (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        if (idx * entry + 2 >= palette.length) throw new Error(`BMP palette index ${idx} out of range`);
        out[o] = palette[idx * entry + 2];
        out[o + 1] = palette[idx * entry + 1];
        out[o + 2] = palette[idx * entry];
      } else if (bpp === 24) {
        out[o] = bytes[row + x * 3 + 2];
        out[o + 1] = bytes[row + x * 3 + 1];
        out[o + 2] = bytes[row + x * 3];
      } else {
        const px = v.getUint32(row + x * 4, true);
        out[o] = channel(px, masks[0]);
        out[o + 1] = channel(px, masks[1]);
        out[o + 2] = channel(px, masks[2]);
      }
    }
  }
  return { data: out, width, height };
}
