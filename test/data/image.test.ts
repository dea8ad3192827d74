import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadImage, decodeImage, saveImage, resizeRgb } from '../../sdk/data/image.ts';
import { SafetensorsReader } from '../../sdk/core/safetensors.ts';
import { ConfigError, DataError } from '../../sdk/core/errors.ts';
import { FIXTURES, REFERENCE, assertClose, rejectsWith, tempDir, tolerance } from '../helpers.ts';

const CAT = join(FIXTURES, 'photos/chelsea.png');
const JPEG = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');

describe('data/image', () => {
  it('matches PIL bilinear resize + 2x-1 of the reference image pipeline', async () => {
    const r = await SafetensorsReader.open(join(REFERENCE, 'cases/image_pipeline.safetensors'));
    const want = await r.read('processed');
    await r.close();
    const { pixels, originalSize } = await loadImage(CAT, { loadSize: 224 });
    assertClose(pixels, want, tolerance('image_pipeline', 'processed'), 'processed');
    const meta = await sharp(CAT).metadata();
    assert.deepEqual(originalSize, { width: meta.width, height: meta.height });
  });

  it('interpolates to the model size after the load size', async () => {
    const { pixels } = await loadImage(JPEG, { loadSize: 64, modelSize: 128 });
    assert.deepEqual([...pixels.shape], [1, 3, 128, 128]);
    assert.ok(pixels.data.every((v) => v >= -1 && v <= 1));
  });

  it('keeps a constant image constant through PIL resampling (weights sum to 1)', () => {
    const img = { data: new Uint8Array(37 * 23 * 3).fill(200), width: 37, height: 23 };
    for (const [w, h] of [
      [5, 7],
      [100, 3],
      [37, 23],
    ]) {
      assert.ok(resizeRgb(img, w, h).data.every((v) => v === 200));
    }
  });

  it('converts RGBA and grayscale to RGB', async () => {
    const gray = await sharp({
      create: { width: 4, height: 3, channels: 3, background: { r: 90, g: 90, b: 90 } },
    })
      .grayscale()
      .png()
      .toBuffer();
    const rgba = await sharp({
      create: { width: 4, height: 3, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const g = await decodeImage(gray);
    assert.equal(g.data.length, 4 * 3 * 3);
    assert.deepEqual([...g.data.subarray(0, 3)], [90, 90, 90]);
    const a = await decodeImage(rgba);
    assert.deepEqual([...a.data.subarray(0, 3)], [10, 20, 30]);
  });

  it('accepts paths, buffers, sharp instances and raw RGB alike', async () => {
    const fromPath = await loadImage(JPEG, { loadSize: 32 });
    const fromBuffer = await loadImage(readFileSync(JPEG), { loadSize: 32 });
    const fromSharp = await loadImage(sharp(JPEG), { loadSize: 32 });
    const fromRaw = await loadImage(await decodeImage(JPEG), { loadSize: 32 });
    for (const other of [fromBuffer, fromSharp, fromRaw])
      assert.deepEqual(other.pixels.data, fromPath.pixels.data);
  });

  it('rejects corrupt and non-image input with a typed error naming the source', async () => {
    const dir = tempDir();
    const truncated = join(dir, 'truncated.jpg');
    const bytes = readFileSync(JPEG);
    await import('node:fs').then((fs) => fs.writeFileSync(truncated, bytes.subarray(0, bytes.length / 3)));
    const e = await rejectsWith(loadImage(truncated), DataError);
    assert.ok(e.message.startsWith(`${truncated}: cannot decode image`), e.message);
    await rejectsWith(loadImage(Buffer.from('not an image at all')), DataError);
    await rejectsWith(loadImage(join(dir, 'missing.png')), DataError);
    await rejectsWith(loadImage({ data: new Uint8Array(5), width: 2, height: 2 }), DataError);
    await rejectsWith(loadImage(JPEG, { loadSize: 0 }), ConfigError);
  });

  it('saves PNGs atomically and reads them back losslessly', async () => {
    const dir = tempDir();
    const img = await decodeImage(CAT);
    const path = join(dir, 'out.png');
    await saveImage(path, img);
    assert.deepEqual((await decodeImage(path)).data, img.data);
    await rejectsWith(saveImage(join(dir, 'out.gifx'), img), ConfigError);
  });
});
