import { ConfigError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/fs.ts';
import { Hyperfeatures } from '../../facade/hyperfeatures.ts';
import { drawCorrespondences } from '../../viz/correspondences.ts';
import { DEVICES } from '../../model/runtime.ts';
import { choice, intOption, parse } from '../args.ts';
import { parseIndexList } from '../../diffusion/plan.ts';
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
  usage: `hyperfeatures match --model <m> <imageA> <imageB> [--points "x,y;x,y"] [--aggregator <ckpt>] [--one-step] [--limit 30] [--steps 50 --save-timesteps ... --image-size 512 --load-size 224] --out matches.png [--device ${DEVICES.join('|')}] [--allow-download]`,
  async run(args) {
    const { values: v, positionals } = parse(args, {
      model: { type: 'string' },
      points: { type: 'string' },
      aggregator: { type: 'string' },
      'one-step': { type: 'boolean' },
      limit: { type: 'string' },
      out: { type: 'string' },
      steps: { type: 'string' },
      'save-timesteps': { type: 'string' },
      'image-size': { type: 'string' },
      'load-size': { type: 'string' },
      device: { type: 'string' },
      'allow-download': { type: 'boolean' },
    });
    if (!v.model || !v.out || positionals.length !== 2)
      throw new ConfigError('match: expected --model, --out and two images');
    const hf = await Hyperfeatures.fromModel(v.model, {
      device: choice('device', v.device, DEVICES, 'cpu'),
      network: v.aggregator,
      oneStep: v['one-step'],
      allowDownload: v['allow-download'],
      extract: {
        steps: v.steps ? intOption('steps', v.steps, 50, 1) : undefined,
        saveTimesteps: v['save-timesteps']
          ? parseIndexList(v['save-timesteps'], '--save-timesteps')
          : undefined,
        imageSize: v['image-size'] ? intOption('image-size', v['image-size'], 512, 8) : undefined,
        loadSize: v['load-size'] ? intOption('load-size', v['load-size'], 224, 1) : undefined,
      },
    });
    try {
      const [a, b] = positionals.map((p) => hf.invert(p).aggregate());
      const points = v.points ? parsePoints(v.points) : undefined;
      const matches = await a.match(b, { points, limit: intOption('limit', v.limit, 30, 1) });
      const png = await drawCorrespondences(await a.rgb(), await b.rgb(), matches, {
        title: `${matches.length} ${points ? 'nearest-neighbour' : 'mutual nearest-neighbour'} matches`,
      });
      await writeFileAtomic(v.out, png);
      process.stdout.write(
        `${matches.map((m) => `[${m.source.map((x) => x.toFixed(1))}] -> [${m.target.map((x) => x.toFixed(1))}] ${m.score.toFixed(3)}`).join('\n')}\nwrote ${v.out}\n`,
      );
    } finally {
      await hf.dispose();
    }
  },
};
