/**
 * Notebook display helpers (`require('hyperfeatures/notebook')`): images, Vega-Lite charts
 * as ONE display bundle (interactive Vega-Lite + static SVG and PNG so saved notebooks show
 * them anywhere), markdown and tables. Only the kernel imports tslab; the SDK does not.
 */
import sharp from 'sharp';
import type { RgbImage } from '../sdk/core/rgb.ts';
import { renderSvg, type Spec } from '../sdk/viz/charts.ts';

// tslab's internal display channel (set by its kernel, or by run-notebooks.cjs headless)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const jupyter = require('tslab/dist/jupyter') as {
  lastWriteDisplayData?: (
    d: { data: Record<string, unknown>; metadata: object; transient: object },
    update: boolean,
  ) => void;
};

function emit(data: Record<string, unknown>): void {
  if (!jupyter.lastWriteDisplayData) throw new Error('display: not running in a tslab kernel');
  jupyter.lastWriteDisplayData({ data, metadata: {}, transient: {} }, false);
}

export function showPng(png: Buffer): void {
  emit({ 'image/png': png.toString('base64') });
}

export async function showImage(img: RgbImage, width?: number): Promise<void> {
  let s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (width) s = s.resize(width, undefined, { kernel: img.width < width / 2 ? 'nearest' : 'lanczos3' });
  showPng(await s.png().toBuffer());
}

export async function showChart(spec: Spec): Promise<void> {
  const svg = await renderSvg(spec);
  const png = await sharp(Buffer.from(svg), { density: 144 })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
  emit({
    'application/vnd.vegalite.v5+json': spec,
    'image/svg+xml': svg,
    'image/png': png.toString('base64'),
    'text/plain': '<Vega-Lite chart>',
  });
}

export function showMarkdown(md: string): void {
  emit({ 'text/markdown': md, 'text/plain': md });
}
