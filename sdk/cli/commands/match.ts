import { ConfigError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/fs.ts';
import { checkNotInput, checkOutputFile } from '../../core/outputs.ts';
import { AggregationNetwork } from '../../aggregation/network.ts';
import { officialNetwork, readUNetConfig } from '../../aggregation/official.ts';
import { extractionForNetwork } from '../../aggregation/settings.ts';
import { DEFAULT_MATCH_LIMIT, matchImagePoints, mutualImageMatches } from '../../correspondence/points.ts';
import { decodeImage } from '../../data/image.ts';
import { invertImages, DEFAULT_EXTRACT } from '../../diffusion/extract.ts';
import { loadStableDiffusion } from '../../diffusion/pipeline.ts';
import { drawCorrespondences } from '../../viz/correspondences.ts';
import { DEVICES } from '../../model/runtime.ts';
import {
  EXTRACT_FLAGS,
  choice,
  extractFlags,
  intOption,
  parse,
  UNET_KERNEL_FLAGS,
  unetKernelOptions,
  UNET_KERNEL_USAGE,
} from '../args.ts';
import type { Command } from '../main.ts';

/** "x,y;x,y" -> points. */
export function parsePoints(spec: string): [number, number][] {
  return spec
    .split(';')
    .filter(Boolean)
    .map((p) => {
      const xy = p.split(',').map(Number);
      if (xy.length !== 2 || !xy.every(Number.isFinite))
        throw new ConfigError(`--points: cannot parse "${p}"; expected "x,y;x,y;..." in source image pixels`);
      return [xy[0], xy[1]];
    });
}

export const match: Command = {
  summary: 'draw the correspondences between two images (nearest neighbours of points, or mutual NN)',
  usage: `hyperfeatures match --model <m> <imageA> <imageB> [--points "x,y;x,y"] [--aggregator <ckpt>] [--one-step] [--limit ${DEFAULT_MATCH_LIMIT}] [--steps 50 --save-timesteps ... --image-size 512 --load-size 224] --out matches.png [--color-managed] [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--allow-download]`,
  async run(args) {
    const { values: v, positionals } = parse(args, {
      model: { type: 'string' },
      points: { type: 'string' },
      aggregator: { type: 'string' },
      'one-step': { type: 'boolean' },
      limit: { type: 'string' },
      out: { type: 'string' },
      ...EXTRACT_FLAGS,
      device: { type: 'string' },
      ...UNET_KERNEL_FLAGS,
      'allow-download': { type: 'boolean' },
    });
    if (!v.model || !v.out || positionals.length !== 2)
      throw new ConfigError('match: expected --model, --out and two images');
    checkOutputFile(v.out);
    checkNotInput(v.out, positionals);
    if (!/\.(png|jpe?g|webp)$/i.test(v.out))
      throw new ConfigError(`--out ${v.out}: expected a .png, .jpg or .webp file name`);
    const oneStep = v['one-step'];
    const points = v.points ? parsePoints(v.points) : undefined;
    const limit = intOption('limit', v.limit, DEFAULT_MATCH_LIMIT, 1);
    const flags = extractFlags(v);
    const device = choice('device', v.device, DEVICES, 'cpu');
    const allowDownload = v['allow-download'];
    const networkPath =
      v.aggregator ??
      (await officialNetwork(
        { modelId: v.model, config: await readUNetConfig(v.model, { allowDownload }) },
        oneStep ? 'one-step' : 'multi-step',
        { allowDownload },
      ));
    // (settings are checked against the network right after the model loads, before inversion)
    const net = await AggregationNetwork.load(networkPath, { device });
    const sd = await loadStableDiffusion(v.model, { device, allowDownload, ...unetKernelOptions(v) });
    try {
      const extract = extractionForNetwork(net.config, sd.unet.config, flags, {
        oneStep,
        networkName: `the aggregation network ${networkPath}`,
      });
      const stacks = await invertImages(sd, positionals, extract);
      const [a, b] = await Promise.all(
        stacks.map((s) => net.aggregate([s], DEFAULT_EXTRACT.outputResolution)),
      );
      const sizes = { source: stacks[0].meta.originalSize!, target: stacks[1].meta.originalSize! };
      const matches = points
        ? await matchImagePoints(a, b, points, {
            ...sizes,
            loadSize: extract.loadSize ?? DEFAULT_EXTRACT.loadSize,
          })
        : await mutualImageMatches(a, b, sizes, limit);
      const [ra, rb] = await Promise.all(
        positionals.map((p) => decodeImage(p, { colorManaged: flags.colorManaged })),
      );
      const png = await drawCorrespondences(ra, rb, matches, {
        title: `${matches.length} ${points ? 'nearest-neighbour' : 'mutual nearest-neighbour'} matches`,
      });
      await writeFileAtomic(v.out, png);
      process.stdout.write(
        `${matches.map((m) => `[${m.source.map((x) => x.toFixed(1))}] -> [${m.target.map((x) => x.toFixed(1))}] ${m.score.toFixed(3)}`).join('\n')}\nwrote ${v.out}\n`,
      );
    } finally {
      await sd.dispose();
      await net.dispose();
    }
  },
};
