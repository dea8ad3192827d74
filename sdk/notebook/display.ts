/**
 * Notebook display helpers (`import ... from 'hyperfeatures/notebook'`): images, Vega-Lite
 * charts as ONE display bundle (interactive Vega-Lite + static SVG and PNG so saved notebooks
 * show them anywhere), markdown. They find their host: Deno's Jupyter kernel (Deno.jupyter) or
 * tslab (through our kernel starter); the SDK depends on neither.
 */
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { ConfigError } from '../core/errors.ts';
import type { RgbImage } from '../core/rgb.ts';
import { renderSvg, type Spec } from '../viz/charts.ts';

interface DisplayChannel {
  lastWriteDisplayData?: (
    d: { data: Record<string, unknown>; metadata: object; transient: object },
    update: boolean,
  ) => void;
}

/** Deno's kernel API (Deno >= 1.37), as far as we use it. */
interface DenoJupyter {
  display(bundle: Record<string, unknown>, options: { raw: boolean }): Promise<void>;
}

/** Which notebook kernel this code runs in. */
export function notebookHost(): 'deno' | 'tslab' | undefined {
  if (denoJupyter()) return 'deno';
  return tslabChannel()?.lastWriteDisplayData ? 'tslab' : undefined;
}

function denoJupyter(): DenoJupyter | undefined {
  const deno = (globalThis as { Deno?: { jupyter?: Partial<DenoJupyter> } }).Deno;
  return typeof deno?.jupyter?.display === 'function' ? (deno.jupyter as DenoJupyter) : undefined;
}

/** tslab's display channel: the one our kernel starter published, else tslab's own module. */
function tslabChannel(): DisplayChannel | undefined {
  const published = (globalThis as { __hyperfeatures_jupyter?: DisplayChannel }).__hyperfeatures_jupyter;
  if (published) return published;
  if ((globalThis as { Deno?: unknown }).Deno) return undefined;
  try {
    return createRequire(import.meta.url)('tslab/dist/jupyter') as DisplayChannel;
  } catch {
    return undefined;
  }
}

const DENO_FLUSH_MS = 50;

async function emit(data: Record<string, unknown>): Promise<void> {
  const deno = denoJupyter();
  // raw: the object is the MIME bundle itself, as tslab's display data is
  if (deno) {
    await deno.display(data, { raw: true });
    // Deno's kernel resolves display() before the message is on IOPub; a cell that ends right
    // after it can report idle first, and nbconvert then drops the picture (seen ~1 run in 4)
    return new Promise((done) => setTimeout(done, DENO_FLUSH_MS));
  }
  const jupyter = tslabChannel();
  if (!jupyter?.lastWriteDisplayData)
    throw new ConfigError(
      (globalThis as { Deno?: unknown }).Deno
        ? 'display: Deno is not running as a Jupyter kernel here (no Deno.jupyter): run the notebook in the kernel `deno jupyter --install` adds'
        : 'display: not running in a notebook kernel (tslab: `npx hyperfeatures kernel install`; Deno: `deno jupyter --install`)',
    );
  jupyter.lastWriteDisplayData({ data, metadata: {}, transient: {} }, false);
}

/** Above this a chart's static SVG is left out of the saved notebook (its raster is kept). */
const MAX_SVG_CHARS = 600_000;
/** Above this a picture (photos) is stored as JPEG instead of PNG, to keep notebooks small. */
const MAX_PNG_BYTES = 400_000;

/** A PNG picture (stored as JPEG when it is a large photo-like image). */
export async function showPng(png: Buffer): Promise<void> {
  if (png.byteLength <= MAX_PNG_BYTES) return emit({ 'image/png': png.toString('base64') });
  const jpeg = await sharp(png).flatten({ background: '#ffffff' }).jpeg({ quality: 85 }).toBuffer();
  await emit({ 'image/jpeg': jpeg.toString('base64') });
}

export async function showImage(img: RgbImage, width?: number): Promise<void> {
  let s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (width) s = s.resize(width, undefined, { kernel: img.width < width / 2 ? 'nearest' : 'lanczos3' });
  await showPng(await s.png().toBuffer());
}

/**
 * A Vega-Lite chart: the spec for Jupyter's Vega-Lite renderer (interactive: selections,
 * sliders), plus its static SVG and a raster for viewers without one.
 */
export async function showChart(spec: Spec): Promise<void> {
  const svg = await renderSvg(spec);
  const raster = sharp(Buffer.from(svg), { density: 96 }).flatten({ background: '#ffffff' });
  const png = await raster.clone().png().toBuffer();
  const still =
    png.byteLength <= MAX_PNG_BYTES
      ? { 'image/png': png.toString('base64') }
      : { 'image/jpeg': (await raster.jpeg({ quality: 85 }).toBuffer()).toString('base64') };
  await emit({
    'application/vnd.vegalite.v5+json': spec,
    // thousands of marks make megabytes of SVG: then the raster alone stands in for it
    ...(svg.length <= MAX_SVG_CHARS ? { 'image/svg+xml': svg } : {}),
    ...still,
    'text/plain': '<Vega-Lite chart>',
  });
}

export async function showMarkdown(md: string): Promise<void> {
  if (typeof md !== 'string')
    throw new ConfigError(
      `showMarkdown: expected a markdown string, got ${md === null ? 'null' : typeof md}`,
    );
  await emit({ 'text/markdown': md, 'text/plain': md });
}
