import { basename, extname, join } from 'node:path';
import { ConfigError, DataError, HyperfeaturesError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { createProgress } from '../../core/progress.ts';
import { SafetensorsReader, writeSafetensors } from '../../core/safetensors.ts';
import type { Tensor } from '../../core/tensor.ts';
import { decodeImage, imageSize } from '../../data/image.ts';
import { LOTUS_TASKS, Lotus, DEFAULT_PROCESSING_RES, processingSize } from '../../lotus/pipeline.ts';
import { colorizeMap, normalsToRgb, saveDepth16, savePng, savePointCloud } from '../../lotus/outputs.ts';
import { DEVICES } from '../../model/runtime.ts';
import type { VaeTiling } from '../../model/vae/index.ts';
import {
  choice,
  intOption,
  parse,
  UNET_KERNEL_FLAGS,
  unetKernelOptions,
  UNET_KERNEL_USAGE,
} from '../args.ts';
import { checkOutputNames, expandImages, usableImages } from '../images.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import type { Command } from '../main.ts';

/** --vae-tile: auto (tiles above the VAE memory budget), off, or a tile size in pixels. */
export function vaeTiling(spec: string | undefined): VaeTiling | undefined {
  if (spec === undefined || spec === 'auto' || spec === 'off') return spec;
  const tile = Number(spec);
  if (!Number.isInteger(tile) || tile < 32 || tile % 32)
    throw new ConfigError(
      `--vae-tile: expected auto, off or a tile size in pixels (a multiple of 32), got "${spec}"`,
    );
  return { tile };
}

async function readNoise(path: string) {
  const r = await SafetensorsReader.open(path);
  try {
    if (!r.has('posterior_eps') && !r.has('noise'))
      throw new DataError(
        `--noise ${path}: holds neither "posterior_eps" nor "noise" (it has ${r.names().join(', ') || 'no tensors'}); expected the tensors the original pipeline drew`,
      );
    return {
      posteriorEps: r.has('posterior_eps') ? await r.read('posterior_eps') : undefined,
      noise: r.has('noise') ? await r.read('noise') : undefined,
    };
  } finally {
    await r.close();
  }
}

/** Predictions averaged per image, at most (each is a full UNet pass). */
const MAX_SEEDS = 1000;

export const lotus: Command = {
  summary: 'Lotus dense prediction: depth, normals or RGB reconstruction from one diffusion step',
  usage: `hyperfeatures lotus --model <dir|repo-id> <images or folders...> --task ${LOTUS_TASKS.join('|')} --out <dir>\n  [--processing-res ${DEFAULT_PROCESSING_RES}] [--vae-tile auto|off|<pixels, multiple of 32>] [--seeds N] [--seed S] [--noise <file.safetensors: posterior_eps, noise>] [--ply [--focal F]] [--color-managed] [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--allow-download]`,
  async run(args) {
    const { values: v, positionals } = parse(args, {
      model: { type: 'string' },
      task: { type: 'string' },
      out: { type: 'string' },
      'processing-res': { type: 'string' },
      'vae-tile': { type: 'string' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      noise: { type: 'string' },
      ply: { type: 'boolean' },
      focal: { type: 'string' },
      device: { type: 'string' },
      ...UNET_KERNEL_FLAGS,
      'color-managed': { type: 'boolean' },
      'allow-download': { type: 'boolean' },
    });
    if (!v.model || !v.out || !positionals.length)
      throw new ConfigError('lotus: expected --model, --out and at least one image');
    checkOutputDir(v.out);
    const images = await usableImages(positionals, { colorManaged: v['color-managed'] });
    const task = v.task ? choice('task', v.task, LOTUS_TASKS, 'depth') : undefined;
    const res = v['processing-res'] === undefined ? DEFAULT_PROCESSING_RES : Number(v['processing-res']);
    const first = intOption('seed', v.seed, 0);
    const count = intOption('seeds', v.seeds, 1, 1);
    // every seed is a full UNet pass per image: a count in the thousands is a typo, not an ensemble
    if (count > MAX_SEEDS)
      throw new ConfigError(
        `--seeds ${count}: at most ${MAX_SEEDS} predictions are averaged per image (Lotus-G's ensembles use up to 10)`,
      );
    const seeds = Array.from({ length: count }, (_, i) => first + i);
    const noise = v.noise ? await readNoise(v.noise) : undefined;
    const focal = v.focal === undefined ? undefined : Number(v.focal);
    if (focal !== undefined && !(Number.isFinite(focal) && focal > 0))
      throw new ConfigError(
        messages.invalidOption('--focal', 'a focal length in pixels (a positive number)', v.focal),
      );
    if (focal !== undefined && !v.ply) throw new ConfigError('--focal only applies with --ply');
    if (!Number.isInteger(res) || res < 0)
      throw new ConfigError(
        messages.invalidOption(
          '--processing-res',
          'a non-negative integer (0 keeps the native size)',
          v['processing-res'],
        ),
      );
    const tiling = vaeTiling(v['vae-tile']);
    for (const p of images) {
      const { width, height } = await imageSize(p);
      try {
        processingSize(height, width, res); // size limits checked for every image before any work
      } catch (e) {
        throw new ConfigError(`${p} (${width}x${height}): ${(e as Error).message}`, { cause: e });
      }
    }
    const model = await Lotus.fromModel(v.model, {
      device: choice('device', v.device, DEVICES, 'cpu'),
      allowDownload: v['allow-download'],
      ...unetKernelOptions(v),
    });
    const bar = createProgress({
      label: `lotus (${model.variant.toUpperCase()}, images)`,
      total: images.length,
    });
    try {
      // what this run writes, checked against the inputs before any work
      const effective = task ?? (model.kind === 'unknown' ? 'depth' : model.kind);
      if (task && task !== 'rgb' && model.kind !== 'unknown' && task !== model.kind)
        throw new ConfigError(
          `${v.model} is a Lotus ${model.kind} checkpoint: it does not predict ${task} (--task ${model.kind}, or rgb for its reconstruction; use a ${task} checkpoint for ${task})`,
        );
      if (v.ply && effective !== 'depth')
        throw new ConfigError(`--ply writes a point cloud from depth; the task here is ${effective}`);
      const suffixes = {
        depth: ['_depth.png', '_depth16.png', '_uncertainty.png', ...(v.ply ? ['.ply'] : [])],
        normal: ['_normal.png', '_uncertainty.png'],
        rgb: ['_rgb.png'],
      }[effective];
      checkOutputNames(v.out, expandImages(positionals), ['.safetensors', ...suffixes]);
      for (const [i, path] of images.entries()) {
        const r = await model
          .predict(path, {
            task,
            processingRes: res,
            vaeTiling: tiling,
            seeds,
            noise,
            colorManaged: v['color-managed'],
          })
          .catch((e: Error) => {
            // name the image: the images before it are written, the ones after are not
            if (e instanceof HyperfeaturesError) throw Object.assign(e, { message: `${path}: ${e.message}` });
            throw e;
          });
        const stem = join(v.out, basename(path, extname(path)));
        const tensors: Record<string, Tensor> = { prediction: r.prediction };
        if (r.depth) tensors.depth = r.depth;
        if (r.normal) tensors.normal = r.normal;
        if (r.uncertainty) tensors.uncertainty = r.uncertainty;
        await writeSafetensors(`${stem}.safetensors`, tensors, {
          model: v.model,
          task: r.task,
          seeds: JSON.stringify(seeds),
          processing_res: String(res),
          disparity: String(model.disparity),
        });
        if (r.depth) {
          await savePng(`${stem}_depth.png`, colorizeMap(r.depth, { invert: !model.disparity }));
          await saveDepth16(`${stem}_depth16.png`, r.depth);
          if (v.ply)
            await savePointCloud(
              `${stem}.ply`,
              r.depth,
              await decodeImage(path, { colorManaged: v['color-managed'] }),
              focal,
            );
        }
        if (r.normal) await savePng(`${stem}_normal.png`, normalsToRgb(r.normal));
        if (r.uncertainty) await savePng(`${stem}_uncertainty.png`, colorizeMap(r.uncertainty));
        if (r.task === 'rgb')
          await savePng(`${stem}_rgb.png`, {
            data: Uint8Array.from(r.prediction.data, (x) => Math.round(x * 255)),
            width: r.prediction.shape[2],
            height: r.prediction.shape[1],
          });
        bar.update(i + 1);
      }
      bar.done();
      process.stdout.write(`wrote predictions for ${images.length} image(s) to ${v.out}\n`);
    } finally {
      await model.dispose();
    }
  },
};
