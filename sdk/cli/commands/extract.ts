import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { readInputFile } from '../../core/fs.ts';
import { createProgress } from '../../core/progress.ts';
import { SafetensorsReader } from '../../core/safetensors.ts';
import { saveImage } from '../../data/image.ts';
import {
  generateImages,
  invertImages,
  invertLatents,
  generateLatents,
  DEFAULT_EXTRACT,
} from '../../diffusion/extract.ts';
import type { FeatureStack } from '../../diffusion/feature-stack.ts';
import { loadStableDiffusion } from '../../diffusion/pipeline.ts';
import { parseIndexList } from '../../diffusion/plan.ts';
import {
  choice,
  intOption,
  parse,
  spreadList,
  UNET_KERNEL_FLAGS,
  unetKernelOptions,
  UNET_KERNEL_USAGE,
} from '../args.ts';
import { DEVICES } from '../../model/runtime.ts';
import type { Command } from '../main.ts';
import { usableImages } from '../images.ts';
import { checkOutputDir } from '../../core/outputs.ts';

async function readTensor(path: string, name: string) {
  const r = await SafetensorsReader.open(path);
  try {
    return r.has(name) ? await r.read(name) : undefined;
  } finally {
    await r.close();
  }
}

export const extract: Command = {
  summary: 'invert images (or generate from prompts) and save their diffusion features',
  usage: [
    'hyperfeatures extract --model <dir|repo-id> --images <files or folder>... --out <dir>',
    '  [--steps 50] [--save-timesteps 49,45,...,0] [--layers 1-12] [--output-resolution 64] [--resize]',
    '  [--load-size 224] [--image-size 512 (--prompts: default the model\'s sample_size x 8, SD-2 768)] [--seed N (posterior sample; default: mean)] [--prompt ""]',
    '  [--latent <file.safetensors: latent [1,4,h,w]>] [--embeddings <file.safetensors: cond [, uncond]>]',
    "  [--generate (with --latent: generate from that noise x_T, with --guidance-scale g and the embeddings' uncond)]",
    '  [--prompts <json list or file> [--guidance-scale g (default: none)] [--negative-prompt ""]]  (generation: features + PNG)',
    `  [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--threads N] [--no-cache] [--allow-download]`,
    '  [--color-managed]  (apply embedded ICC profiles; off by default, as the paper reads images with Pillow)',
  ].join('\n'),
  async run(args) {
    const { values: v } = parse(
      spreadList(args, 'images'),
      {
        model: { type: 'string' },
        images: { type: 'string', multiple: true },
        out: { type: 'string' },
        steps: { type: 'string' },
        'save-timesteps': { type: 'string' },
        layers: { type: 'string' },
        'output-resolution': { type: 'string' },
        resize: { type: 'boolean' },
        'load-size': { type: 'string' },
        'image-size': { type: 'string' },
        seed: { type: 'string' },
        prompt: { type: 'string' },
        latent: { type: 'string' },
        embeddings: { type: 'string' },
        prompts: { type: 'string' },
        generate: { type: 'boolean' },
        'guidance-scale': { type: 'string' },
        'negative-prompt': { type: 'string' },
        device: { type: 'string' },
        ...UNET_KERNEL_FLAGS,
        threads: { type: 'string' },
        'no-cache': { type: 'boolean' },
        'color-managed': { type: 'boolean' },
        'allow-download': { type: 'boolean' },
      },
      false,
    );
    if (!v.model) throw new ConfigError('extract: --model is required (a diffusers folder or a hub id)');
    if (!v.out) throw new ConfigError('extract: --out is required');
    checkOutputDir(v.out);
    if (v.generate && !v.latent)
      throw new ConfigError(
        'extract: --generate takes the initial noise from --latent <file> (prompts: use --prompts)',
      );
    const sources = [v.images?.length, v.latent, v.prompts].filter(Boolean).length;
    if (sources !== 1) throw new ConfigError('extract: give exactly one of --images, --latent or --prompts');
    const gs = v['guidance-scale'] !== undefined ? Number(v['guidance-scale']) : undefined;
    if (gs !== undefined && !(Number.isFinite(gs) && gs >= 0))
      throw new ConfigError(`--guidance-scale: expected a number >= 0, got "${v['guidance-scale']}"`);
    const resolution = intOption(
      'output-resolution',
      v['output-resolution'],
      DEFAULT_EXTRACT.outputResolution,
      1,
    );
    const steps = intOption('steps', v.steps, DEFAULT_EXTRACT.steps, 1);
    const common = {
      steps,
      saveTimesteps: v['save-timesteps']
        ? parseIndexList(v['save-timesteps'], '--save-timesteps')
        : undefined,
      layers: v.layers ? parseIndexList(v.layers, '--layers') : undefined,
      cache: v['no-cache'] ? (false as const) : undefined,
    };
    const images = v.images ? await usableImages(v.images, { colorManaged: v['color-managed'] }) : [];
    const sd = await loadStableDiffusion(v.model, {
      device: choice('device', v.device, DEVICES, 'cpu'),
      threads: v.threads ? intOption('threads', v.threads, 1, 1) : undefined,
      allowDownload: v['allow-download'],
      ...unetKernelOptions(v),
    });
    const units = v.prompts ? 'prompts' : v.latent ? 'latents' : 'images';
    const bar = createProgress({ label: `extract (${units})`, total: 1 });
    const onProgress = (done: number, total: number) => bar.update(done, total);
    const save = async (stack: FeatureStack, name: string) => {
      const path = join(v.out!, `${name}.safetensors`);
      await (v.resize ? stack.resized(resolution) : stack).save(path);
      return path;
    };
    try {
      const written: string[] = [];
      if (v.prompts) {
        const text = existsSync(v.prompts) ? readInputFile(v.prompts, 'utf8') : v.prompts;
        let prompts: unknown;
        try {
          prompts = JSON.parse(text);
        } catch {
          throw new ConfigError(
            `--prompts: expected a JSON list of strings (or a file holding one), got ${JSON.stringify(text.slice(0, 80))}`,
          );
        }
        if (!Array.isArray(prompts) || !prompts.every((p) => typeof p === 'string'))
          throw new ConfigError('--prompts: expected a JSON list of strings');
        const r = await generateImages(sd, prompts, {
          ...common,
          // unset: the model's own size, as the SDK and diffusers (SD-2: 768)
          size: v['image-size'] !== undefined ? intOption('image-size', v['image-size'], 0, 8) : undefined,
          guidanceScale: gs,
          negativePrompt: v['negative-prompt'],
          seed: intOption('seed', v.seed, 0),
          onProgress,
        });
        for (const [i, stack] of r.stacks.entries()) {
          written.push(await save(stack, `prompt_${i}`));
          await saveImage(join(v.out, `prompt_${i}.png`), r.images[i]);
        }
      } else if (v.latent) {
        const latent = await readTensor(v.latent, 'latent');
        if (!latent) throw new DataError(`${v.latent}: no tensor "latent"`);
        const cond = v.embeddings
          ? await readTensor(v.embeddings, 'cond')
          : await sd.textEncoder.encode(v.prompt ?? '');
        if (!cond) throw new DataError(`${v.embeddings}: no tensor "cond"`);
        const stem = basename(v.latent, '.safetensors');
        if (v.generate) {
          const uncond =
            gs === undefined
              ? undefined
              : ((v.embeddings ? await readTensor(v.embeddings, 'uncond') : undefined) ??
                (await sd.textEncoder.encode(v['negative-prompt'] ?? '')));
          const r = await generateLatents(sd, latent, cond, {
            ...common,
            guidance: uncond ? { scale: gs!, uncond } : undefined,
            onProgress,
          });
          for (const [i, s] of r.stacks.entries()) {
            const name = `${stem}${r.stacks.length > 1 ? `_${i}` : ''}`;
            written.push(await save(s, name));
            await saveImage(join(v.out, `${name}.png`), r.images[i]);
          }
          bar.done();
          process.stdout.write(`wrote ${written.length} feature file(s) and image(s) to ${v.out}\n`);
          return;
        }
        const stacks = await invertLatents(sd, latent, cond, { ...common, onProgress });
        for (const [i, s] of stacks.entries())
          written.push(
            await save(s, `${basename(v.latent, '.safetensors')}${stacks.length > 1 ? `_${i}` : ''}`),
          );
      } else {
        const stacks = await invertImages(sd, images, {
          ...common,
          loadSize: intOption('load-size', v['load-size'], DEFAULT_EXTRACT.loadSize, 1),
          imageSize: intOption('image-size', v['image-size'], DEFAULT_EXTRACT.imageSize, 8),
          posterior: v.seed !== undefined ? { seed: intOption('seed', v.seed, 0) } : 'mean',
          prompt: v.prompt,
          colorManaged: v['color-managed'],
          onProgress,
        });
        for (const [i, s] of stacks.entries())
          written.push(await save(s, basename(images[i], extname(images[i]))));
      }
      bar.done();
      process.stdout.write(`wrote ${written.length} feature file(s) to ${v.out}\n`);
    } finally {
      await sd.dispose();
    }
  },
};
