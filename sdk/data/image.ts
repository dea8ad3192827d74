/**
 * Image loading and saving with sharp. Model input is NCHW float pixels in [-1, 1] at a
 * square load size (plain resize, aspect ratio not kept, as the original code does); the
 * original size is kept so points can be mapped back.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import sharp, { type Sharp } from 'sharp';
import { DataError, ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { Tensor, resizeBilinear } from '../core/tensor.ts';
import { notARegularFile, writeFileAtomic } from '../core/fs.ts';
import { checkPositiveInt } from '../core/validate.ts';
import { pilResizeBilinear } from './pil-resize.ts';
import { decodeBmp, isBmp } from './bmp.ts';

import type { RgbImage } from '../core/rgb.ts';

export type { RgbImage } from '../core/rgb.ts';

/** Anything `loadImage` accepts: a path, encoded bytes, a sharp instance or decoded RGB. */
export type ImageInput = string | Buffer | Uint8Array | Sharp | RgbImage;

export interface LoadedImage {
  /** [1, 3, size, size] in [-1, 1]. */
  pixels: Tensor;
  /** The decoded image's size before resizing, for mapping points back. */
  originalSize: { width: number; height: number };
}

export interface LoadImageOptions {
  /** Square size the image is resized to (PIL bilinear). Default 512. */
  loadSize?: number;
  /** If set and different from loadSize, pixels are then bilinearly interpolated to it (align_corners false). */
  modelSize?: number;
  /** See DecodeOptions.colorManaged (default off, as the paper's pipeline). */
  colorManaged?: boolean;
}

export const DEFAULT_LOAD_SIZE = 512;

function describe(input: ImageInput): string {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return `<${input.byteLength}-byte buffer>`;
  if ('data' in input && 'width' in input) return `<${input.width}x${input.height} RGB pixels>`;
  return '<sharp instance>';
}

export interface DecodeOptions {
  /**
   * Apply embedded ICC profiles (and CMYK profiles) to get display-correct sRGB. Off by
   * default: the paper's code reads images with Pillow's `convert("RGB")`, which applies no
   * colour management, and features depend on the exact pixels.
   */
  colorManaged?: boolean;
}

/** What the decoder reads; anything else is refused with this list. */
export const IMAGE_FORMATS = 'JPEG, PNG (8-bit), WebP, GIF (first frame), TIFF, AVIF, BMP (uncompressed)';

/** Pillow's CMYK -> RGB (Convert.c cmyk2rgb): r = (255 - k) - c (255 - k) / 255, rounded as MULDIV255. */
function pillowCmykToRgb(cmyk: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = 255 - cmyk[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[i * 4 + c] * nk + 128;
      const v = nk - (((t >> 8) + t) >> 8);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

const asRgb = (data: Buffer, width: number, height: number): RgbImage => ({
  data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  width,
  height,
});

async function decodeEncoded(img: Sharp, colorManaged: boolean): Promise<RgbImage> {
  const meta = await img.metadata();
  if (meta.depth && !['uchar', 'char'].includes(meta.depth))
    throw new Error(
      `${meta.depth === 'ushort' ? '16' : meta.depth}-bit samples are not supported (Pillow's convert("RGB") of them depends on the mode); save it as an 8-bit image`,
    );
  if (meta.space === 'cmyk' && !colorManaged) {
    // the raw CMYK samples (Adobe-inverted ones already flipped by libjpeg), then Pillow's formula
    const { data, info } = await img
      .pipelineColourspace('cmyk')
      .toColourspace('cmyk')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 4) throw new Error(`CMYK decoded to ${info.channels} channels`);
    return { data: pillowCmykToRgb(data, info.width * info.height), width: info.width, height: info.height };
  }
  const { data, info } = await img
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
  return asRgb(data, info.width, info.height);
}

/**
 * The one image decoder: every image that enters the SDK (extraction, evaluation, training,
 * matching, Lotus) goes through it. By default it gives exactly Pillow's
 * `Image.open(path).convert("RGB")` bytes, as the original code reads images: no colour
 * management (ICC profiles ignored), no EXIF rotation, alpha dropped without compositing,
 * CMYK and palettes converted by Pillow's rules, animated images' first frame.
 * @throws DataError naming the source when it cannot be read or decoded, or is smaller than 2x2.
 */
export async function decodeImage(input: ImageInput, options: DecodeOptions = {}): Promise<RgbImage> {
  const source = describe(input);
  let rgb: RgbImage;
  if (typeof input === 'object' && 'data' in input && 'width' in input && !(input instanceof Uint8Array)) {
    if (input.data.length !== input.width * input.height * 3) {
      throw new DataError(
        messages.imageDecode(
          source,
          `expected ${input.width * input.height * 3} bytes of RGB, got ${input.data.length}`,
        ),
      );
    }
    rgb = input;
  } else {
    let bytes: Uint8Array | undefined;
    if (typeof input === 'string') {
      // never open a FIFO (the read blocks forever) or follow a broken link into a stack trace
      const problem = notARegularFile(input);
      if (problem)
        throw new DataError(
          messages.imageDecode(
            source,
            problem.kind === 'folder' ? 'it is a folder, not an image file' : `it is ${problem.why}`,
          ),
        );
      bytes = readFileSync(input);
    } else if (input instanceof Uint8Array) bytes = input;
    try {
      if (bytes && isBmp(bytes)) rgb = decodeBmp(bytes);
      else {
        const img = bytes
          ? sharp(bytes, { failOn: 'error', ignoreIcc: !options.colorManaged })
          : (input as Sharp).clone();
        rgb = await decodeEncoded(img, options.colorManaged ?? false);
      }
    } catch (e) {
      const reason = (e as Error).message;
      const hint = /unsupported image format/i.test(reason) ? ` (supported: ${IMAGE_FORMATS})` : '';
      throw new DataError(messages.imageDecode(source, reason + hint), { cause: e });
    }
  }
  if (rgb.width < 2 || rgb.height < 2)
    throw new DataError(
      messages.imageDecode(source, `it is ${rgb.width}x${rgb.height} pixels; at least 2x2 are needed`),
    );
  return rgb;
}

/** An image file's width and height from its header (as decodeImage gives them). @throws DataError */
export async function imageSize(path: string): Promise<{ width: number; height: number }> {
  const problem = notARegularFile(path);
  if (problem) throw new DataError(messages.imageDecode(path, `it is ${problem.why}`));
  try {
    const head = Buffer.alloc(26);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, 26, 0);
    } finally {
      closeSync(fd);
    }
    if (isBmp(head))
      return head.readUInt32LE(14) === 12 // OS/2 1.x: 16-bit sizes
        ? { width: head.readUInt16LE(18), height: head.readUInt16LE(20) }
        : { width: head.readInt32LE(18), height: Math.abs(head.readInt32LE(22)) };
    const m = await sharp(path).metadata();
    if (!m.width || !m.height) throw new Error('no size in the header');
    return { width: m.width, height: m.height };
  } catch (e) {
    throw new DataError(messages.imageDecode(path, (e as Error).message), { cause: e });
  }
}

/** [1, 3, H, W] float pixels in [-1, 1] from 8-bit RGB. */
export function rgbToPixels(img: RgbImage): Tensor {
  const { width: w, height: h, data } = img;
  const out = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) out[c * w * h + i] = (data[i * 3 + c] / 255) * 2 - 1;
  }
  return new Tensor(out, [1, 3, h, w]);
}

/** 8-bit RGB from [1, 3, H, W] pixels in [-1, 1] (values outside are clamped). */
export function pixelsToRgb(pixels: Tensor): RgbImage {
  pixels.expectShape('pixels', [1, 3, -1, -1]);
  const [, , h, w] = pixels.shape;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round(((pixels.data[c * w * h + i] + 1) / 2) * 255);
      data[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { data, width: w, height: h };
}

/** PIL-exact bilinear resize of 8-bit RGB. */
export function resizeRgb(img: RgbImage, width: number, height: number): RgbImage {
  return { data: pilResizeBilinear(img.data, img.width, img.height, 3, width, height), width, height };
}

/**
 * Load an image as model input.
 * @example const { pixels, originalSize } = await loadImage('cat.jpg', { loadSize: 224, modelSize: 512 });
 * @throws DataError for unreadable images, ConfigError for bad sizes.
 */
export async function loadImage(input: ImageInput, options: LoadImageOptions = {}): Promise<LoadedImage> {
  checkPositiveInt('loadSize', options.loadSize);
  checkPositiveInt('modelSize', options.modelSize);
  const loadSize = options.loadSize ?? DEFAULT_LOAD_SIZE;
  const rgb = await decodeImage(input, { colorManaged: options.colorManaged });
  let pixels = rgbToPixels(resizeRgb(rgb, loadSize, loadSize));
  if (options.modelSize !== undefined && options.modelSize !== loadSize) {
    pixels = resizeBilinear(pixels, options.modelSize, options.modelSize);
  }
  return { pixels, originalSize: { width: rgb.width, height: rgb.height } };
}

/** Save 8-bit RGB (or [1, 3, H, W] pixels in [-1, 1]) as PNG/JPEG/WebP by extension, atomically. */
export async function saveImage(path: string, image: RgbImage | Tensor): Promise<void> {
  const rgb = image instanceof Tensor ? pixelsToRgb(image) : image;
  const ext = path.toLowerCase().split('.').pop();
  let pipeline = sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } });
  if (ext === 'jpg' || ext === 'jpeg') pipeline = pipeline.jpeg({ quality: 92 });
  else if (ext === 'webp') pipeline = pipeline.webp();
  else if (ext === 'png') pipeline = pipeline.png();
  else throw new ConfigError(messages.invalidOption('path', 'a .png, .jpg or .webp file name', path));
  await writeFileAtomic(path, await pipeline.toBuffer());
}
