/**
 * The decoder gives Pillow's `Image.open(path).convert("RGB")` bytes for every fixture image
 * (../shared/reference/decode.json: sha256 of the H x W x 3 bytes), as the original code reads
 * images. BMP, which sharp cannot read, is decoded by our own reader. Bad files fail with a
 * DataError naming them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage, imageSize, IMAGE_FORMATS } from '../../sdk/data/image.ts';
import { decodeBmp } from '../../sdk/data/bmp.ts';
import { DataError } from '../../sdk/core/errors.ts';
import { FIXTURES, REFERENCE, rejectsWith, tempDir } from '../helpers.ts';

interface Entry {
  width: number;
  height: number;
  mode_on_open: string;
  icc_profile: boolean;
  sha256_rgb: string;
}
const decodeJson = JSON.parse(readFileSync(join(REFERENCE, 'decode.json'), 'utf8')) as {
  images: Record<string, Entry>;
};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('data/decode: Pillow-exact pixels', () => {
  const entries = Object.entries(decodeJson.images);

  it(`decodes all ${entries.length} fixture images to Pillow's bytes (BMP by our reader, the rest by sharp)`, async () => {
    assert.ok(entries.length >= 31);
    const wrong: string[] = [];
    for (const [file, want] of entries) {
      const img = await decodeImage(join(FIXTURES, file));
      if (img.width !== want.width || img.height !== want.height || sha(img.data) !== want.sha256_rgb)
        wrong.push(`${file} (${want.mode_on_open}${want.icc_profile ? ', ICC' : ''})`);
    }
    assert.deepEqual(wrong, [], `not Pillow's bytes: ${wrong.join(', ')}`);
  });

  it('applies colour management only when asked (the Adobe RGB SPair photos change)', async () => {
    for (const file of [
      'spair/JPEGImages/cow/2009_003189.jpg',
      'spair/JPEGImages/motorbike/2008_003249.jpg',
    ]) {
      const plain = await decodeImage(join(FIXTURES, file));
      const managed = await decodeImage(join(FIXTURES, file), { colorManaged: true });
      assert.equal(sha(plain.data), decodeJson.images[file].sha256_rgb);
      let maxDiff = 0;
      for (let i = 0; i < plain.data.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(plain.data[i] - managed.data[i]));
      assert.ok(maxDiff > 10, `${file}: the profile should move pixels (max difference ${maxDiff})`);
    }
  });

  it('reads BMP layouts: 8-bit palette, 32-bit, top-down, OS/2 1.x (constructed, known pixels)', async () => {
    const w = 3;
    const h = 2;
    const pixel = (x: number, y: number) => [x * 80, y * 120, 200 - x * 50];
    const header = (bpp: number, height: number, paletteBytes: number, dataBytes: number) => {
      const b = Buffer.alloc(54 + paletteBytes + dataBytes);
      b.write('BM', 0);
      b.writeUInt32LE(b.length, 2);
      b.writeUInt32LE(54 + paletteBytes, 10);
      b.writeUInt32LE(40, 14);
      b.writeInt32LE(w, 18);
      b.writeInt32LE(height, 22);
      b.writeUInt16LE(1, 26);
      b.writeUInt16LE(bpp, 28);
      b.writeUInt32LE(paletteBytes / 4, 46);
      return b;
    };
    const want = Buffer.from(
      Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => pixel(x, y))).flat(2),
    );
    // 32-bit, top-down (negative height), B G R X
    const b32 = header(32, -h, 0, w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const [r, g, b] = pixel(x, y);
        b32.set([b, g, r, 255], 54 + (y * w + x) * 4);
      }
    assert.deepEqual(Buffer.from(decodeBmp(b32).data), want);
    // 8-bit palette (one entry per pixel), bottom-up, rows padded to 4 bytes
    const stride = 4;
    const b8 = header(8, h, w * h * 4, stride * h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const [r, g, b] = pixel(x, y);
        const idx = y * w + x;
        b8.set([b, g, r, 0], 54 + idx * 4);
        b8[54 + w * h * 4 + (h - 1 - y) * stride + x] = idx;
      }
    assert.deepEqual(Buffer.from(decodeBmp(b8).data), want);
    // OS/2 1.x: a 12-byte core header (16-bit sizes), 24-bit: a valid 2x2 file is 42 bytes
    const os2 = (bpp: number, palette: number[][], rows: number[][]) => {
      const stride = Math.floor((bpp * w + 31) / 32) * 4;
      const b = Buffer.alloc(26 + palette.length * 3 + stride * h);
      b.write('BM', 0);
      b.writeUInt32LE(b.length, 2);
      b.writeUInt32LE(26 + palette.length * 3, 10);
      b.writeUInt32LE(12, 14);
      b.writeUInt16LE(w, 18);
      b.writeUInt16LE(h, 20);
      b.writeUInt16LE(1, 22);
      b.writeUInt16LE(bpp, 24);
      palette.forEach((c, i) => b.set(c, 26 + i * 3));
      rows.forEach((r, y) => b.set(r, 26 + palette.length * 3 + (h - 1 - y) * stride)); // bottom-up
      return b;
    };
    const rgb24 = os2(
      24,
      [],
      Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => pixel(x, y).reverse()).flat()),
    );
    assert.ok(rgb24.length < 54, 'smaller than a Windows BMP header alone');
    assert.deepEqual(Buffer.from(decodeBmp(rgb24).data), want);
    const pal = Array.from({ length: 256 }, (_, i) =>
      i < w * h ? pixel(i % w, Math.floor(i / w)).reverse() : [0, 0, 0],
    );
    const p8 = os2(
      8,
      pal,
      Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => y * w + x)),
    );
    assert.deepEqual(Buffer.from(decodeBmp(p8).data), want);
    const path = join(tempDir(), 'os2.bmp');
    writeFileSync(path, rgb24);
    assert.deepEqual(await imageSize(path), { width: w, height: h });
    assert.deepEqual(Buffer.from((await decodeImage(path)).data), want);
  });

  it('gives the first frame of an animated GIF or WebP, as Pillow opens them', async () => {
    const w = 4;
    const frame = (rgb: number[]) => Array.from({ length: w * w }, () => rgb).flat();
    const raw = Buffer.from([...frame([255, 0, 0]), ...frame([0, 0, 255])]);
    const input = () => sharp(raw, { raw: { width: w, height: 2 * w, channels: 3, pageHeight: w } });
    for (const [name, bytes] of [
      ['gif', await input().gif().toBuffer()],
      ['webp', await input().webp({ lossless: true }).toBuffer()],
    ] as const) {
      assert.equal((await sharp(bytes).metadata()).pages, 2, `${name} has two frames`);
      const img = await decodeImage(bytes);
      assert.deepEqual([img.width, img.height], [w, w], name);
      assert.deepEqual(
        Buffer.from(img.data),
        Buffer.from(frame([255, 0, 0])),
        `${name}: the first (red) frame`,
      );
    }
  });

  it('refuses bad files with a DataError naming the file', async () => {
    const dir = tempDir();
    const jpeg = readFileSync(join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg'));
    const cases: [string, Buffer | 'dir', RegExp][] = [
      ['truncated.jpg', jpeg.subarray(0, jpeg.length >> 1), /truncated\.jpg: cannot decode image/],
      [
        'one-pixel.png',
        await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } })
          .png()
          .toBuffer(),
        /one-pixel\.png: .*1x1 pixels; at least 2x2/,
      ],
      [
        'deep.png',
        await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } })
          .toColourspace('rgb16')
          .png()
          .toBuffer(),
        /deep\.png: .*16-bit samples are not supported/,
      ],
      [
        'not-an-image.jpg',
        Buffer.from('hello'),
        new RegExp(`not-an-image\\.jpg: .*supported: ${IMAGE_FORMATS.replace(/[()]/g, '\\$&')}`),
      ],
      [
        'rle.bmp',
        (() => {
          const b = Buffer.alloc(60);
          b.write('BM', 0);
          b.writeUInt32LE(40, 14);
          b.writeInt32LE(2, 18);
          b.writeInt32LE(2, 22);
          b.writeUInt16LE(8, 28);
          b.writeUInt32LE(1, 30);
          return b;
        })(),
        /rle\.bmp: .*BMP compression 1/,
      ],
      ['folder.png', 'dir', /folder\.png: .*it is a folder/],
    ];
    for (const [name, content, message] of cases) {
      const p = join(dir, name);
      if (content === 'dir') mkdirSync(p);
      else writeFileSync(p, content);
      const e = await rejectsWith(decodeImage(p), DataError);
      assert.match(e.message, message, name);
    }
    const missing = await rejectsWith(decodeImage(join(dir, 'missing.png')), DataError);
    assert.match(missing.message, /missing\.png: .*ENOENT/);
  });
});
