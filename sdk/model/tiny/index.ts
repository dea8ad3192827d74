/**
 * The tiny-checkpoint generator: a complete diffusers folder with SD topology and seeded
 * random weights, usable everywhere a real checkpoint is. Weight names and shapes come from
 * running the graph builders against a shape recorder, so the generator and the builders
 * can never disagree.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hyperfeaturesCacheDir } from '../../core/paths.ts';
import { join } from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { assetPath } from '../../core/package-root.ts';
import { writeFileAtomic } from '../../core/fs.ts';
import { messages } from '../../core/messages.ts';
import { Rng } from '../../core/rng.ts';
import { writeSafetensorsStreaming, type LazyTensor } from '../../core/safetensors.ts';
import { shapeSize } from '../../core/tensor.ts';
import { GraphBuilder } from '../onnx/graph.ts';
import type { WeightSource } from '../weights.ts';
import { buildUNetGraph } from '../unet/build.ts';
import { parseUNetConfig } from '../unet/config.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from '../vae/build.ts';
import { parseVaeConfig } from '../vae/config.ts';
import { buildClipTextGraph } from '../clip/build.ts';
import { parseClipTextConfig } from '../clip/config.ts';
import { buildVitGraph } from '../dino/build.ts';
import { parseVitConfig } from '../dino/config.ts';
import { buildDinov2Graph } from '../dinov2/build.ts';
import { parseDinov2Config } from '../dinov2/config.ts';
import * as C from './configs.ts';

export { TINY_STYLES, TINY_SIZES, DINOV2_VARIANTS, type TinyStyle, type TinySize } from './configs.ts';

const ASSETS = assetPath('clip-tokenizer');

/** Records the weights a builder asks for instead of reading them. */
class ShapeRecorder implements WeightSource {
  readonly shapes = new Map<string, number[]>();
  has(name: string): boolean {
    return name.endsWith('.query.weight'); // write the VAE attention with the hub's legacy names
  }
  param(g: GraphBuilder, name: string, expected: readonly number[]): string {
    this.shapes.set(name, [...expected]);
    return g.fresh(name);
  }
}

export interface MakeTinyOptions {
  style?: C.TinyStyle;
  /** "tiny" widths (default) or the real model's widths with random weights. */
  size?: C.TinySize;
  seed?: number;
  /** Write `*.fp16.safetensors` (as most hub downloads) instead of fp32. */
  fp16?: boolean;
  /** dinov2 style: a Dinov2WithRegistersModel (4 register tokens). */
  registers?: boolean;
  /** dinov2 style: the SwiGLU feed-forward of the giant models. */
  swiglu?: boolean;
  /** dinov2 style at full size: which facebook/dinov2 widths (default base). */
  variant?: C.Dinov2Variant;
}

/** Seeded values whose scale keeps activations sane: norms near 1, weights ~ 1/sqrt(fan_in). */
function randomValues(name: string, shape: number[], rng: Rng): Float32Array {
  const n = shapeSize(shape);
  const out = new Float32Array(n);
  // LayerScale's lambdas scale like norm weights (near 1)
  const isNormWeight = (/norm[^.]*\.weight$/.test(name) || name.endsWith('.lambda1')) && shape.length === 1;
  const isBias = name.endsWith('.bias') || /norm[^.]*\.bias$/.test(name);
  const fanIn = shape.length > 1 ? shapeSize(shape.slice(1)) : 1;
  const std = isNormWeight
    ? 0.1
    : isBias
      ? 0.05
      : name.includes('embedding.weight') &&
          shape.length === 2 &&
          !name.startsWith('time') &&
          !name.startsWith('class')
        ? 0.3
        : 1 / Math.sqrt(fanIn);
  const a = std * Math.sqrt(3); // uniform with this std: fast and bounded
  for (let i = 0; i < n; i++) out[i] = (isNormWeight ? 1 : 0) + a * (2 * rng.uniform() - 1);
  return out;
}

async function writeComponent(
  dir: string,
  stem: string,
  config: Record<string, unknown>,
  shapes: Map<string, number[]>,
  rng: Rng,
  fp16: boolean,
) {
  mkdirSync(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'config.json'), Buffer.from(JSON.stringify(config, null, 2)));
  const entries = new Map<string, LazyTensor>();
  for (const name of [...shapes.keys()].sort()) {
    const shape = shapes.get(name)!;
    entries.set(name, { shape, values: () => randomValues(name, shape, rng) });
  }
  const file = `${stem}${fp16 ? '.fp16' : ''}.safetensors`;
  await writeSafetensorsStreaming(join(dir, file), entries, {
    dtype: fp16 ? 'F16' : 'F32',
    metadata: { format: 'pt' },
  });
}

/**
 * Write a complete diffusers checkpoint folder to `dir`.
 * @example await makeTinyCheckpoint('models/tiny-sd15', { style: 'sd15', seed: 0 });
 * @throws ConfigError for unknown styles or sizes.
 */
export async function makeTinyCheckpoint(dir: string, options: MakeTinyOptions = {}): Promise<void> {
  const style = options.style ?? 'sd15';
  const size = options.size ?? 'tiny';
  if (!C.TINY_STYLES.includes(style))
    throw new ConfigError(messages.invalidOption('style', C.TINY_STYLES.join(' | '), style));
  if (!C.TINY_SIZES.includes(size))
    throw new ConfigError(messages.invalidOption('size', C.TINY_SIZES.join(' | '), size));
  const rng = new Rng(options.seed ?? 0);
  const fp16 = options.fp16 ?? false;
  if (style === 'dino') return makeTinyVit(dir, size, rng, fp16);
  if (style === 'dinov2') return makeTinyDinov2(dir, size, rng, fp16, options);
  if (options.registers || options.swiglu || options.variant)
    throw new ConfigError(
      `make-tiny: registers, swiglu and variant are options of the dinov2 style, not ${style}`,
    );

  const unetRaw = C.unetConfig(style, size);
  const unetRec = new ShapeRecorder();
  buildUNetGraph(parseUNetConfig('generated unet config', unetRaw), unetRec, { taps: false });
  await writeComponent(join(dir, 'unet'), 'diffusion_pytorch_model', unetRaw, unetRec.shapes, rng, fp16);

  const vaeRaw = C.vaeConfig(size);
  const vaeCfg = parseVaeConfig('generated vae config', vaeRaw);
  const vaeRec = new ShapeRecorder();
  buildVaeEncoderGraph(vaeCfg, vaeRec);
  buildVaeDecoderGraph(vaeCfg, vaeRec);
  await writeComponent(join(dir, 'vae'), 'diffusion_pytorch_model', vaeRaw, vaeRec.shapes, rng, fp16);

  const textRaw = C.textEncoderConfig(style, size);
  const textRec = new ShapeRecorder();
  buildClipTextGraph(parseClipTextConfig('generated text_encoder config', textRaw), textRec);
  await writeComponent(join(dir, 'text_encoder'), 'model', textRaw, textRec.shapes, rng, fp16);

  const tokDir = join(dir, 'tokenizer');
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt'])
    await writeFileAtomic(join(tokDir, f), readFileSync(join(ASSETS, f)));
  const special = {
    bos_token: '<|startoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    pad_token: C.padToken(style),
  };
  await writeFileAtomic(
    join(tokDir, 'special_tokens_map.json'),
    Buffer.from(JSON.stringify(special, null, 2)),
  );
  await writeFileAtomic(
    join(tokDir, 'tokenizer_config.json'),
    Buffer.from(
      JSON.stringify(
        { ...special, model_max_length: 77, do_lower_case: true, tokenizer_class: 'CLIPTokenizer' },
        null,
        2,
      ),
    ),
  );
  await writeFileAtomic(
    join(dir, 'scheduler', 'scheduler_config.json'),
    Buffer.from(JSON.stringify(C.schedulerConfig(), null, 2)),
  );
  await writeFileAtomic(
    join(dir, 'model_index.json'),
    Buffer.from(
      JSON.stringify(
        {
          ...C.modelIndex(),
          _hyperfeatures: { generator: 'make-tiny', style, size, seed: options.seed ?? 0 },
        },
        null,
        2,
      ),
    ),
  );
}

/** A transformers ViT folder (config.json + model.safetensors) shaped like DINO's hub checkpoints. */
async function makeTinyVit(dir: string, size: C.TinySize, rng: Rng, fp16: boolean): Promise<void> {
  const raw = C.vitConfig(size);
  const cfg = parseVitConfig('generated ViT config', raw);
  const rec = new ShapeRecorder();
  buildVitGraph(cfg, rec, { layer: cfg.layers - 1 });
  const patches = (cfg.imageSize / cfg.patchSize) ** 2;
  rec.shapes.set('embeddings.position_embeddings', [1, patches + 1, cfg.hiddenSize]);
  await writeComponent(dir, 'model', raw, rec.shapes, rng, fp16);
}

/** A transformers Dinov2Model (or WithRegisters) folder shaped like facebook/dinov2-*. */
async function makeTinyDinov2(dir: string, size: C.TinySize, rng: Rng, fp16: boolean, o: MakeTinyOptions) {
  if (o.variant !== undefined && !C.DINOV2_VARIANTS.includes(o.variant))
    throw new ConfigError(messages.invalidOption('variant', C.DINOV2_VARIANTS.join(' | '), o.variant));
  if (o.variant !== undefined && size !== 'full')
    throw new ConfigError(
      `make-tiny: --variant ${o.variant} sets the real widths; it applies to --size full`,
    );
  const raw = C.dinov2Config(size, o);
  const cfg = parseDinov2Config('generated DINOv2 config', raw);
  const rec = new ShapeRecorder();
  buildDinov2Graph(cfg, rec, { layer: cfg.layers - 1 });
  const patches = (cfg.imageSize / cfg.patchSize) ** 2;
  rec.shapes.set('embeddings.position_embeddings', [1, patches + 1, cfg.hiddenSize]);
  rec.shapes.set('embeddings.mask_token', [1, cfg.hiddenSize]);
  await writeComponent(dir, 'model', raw, rec.shapes, rng, fp16);
}

/**
 * A generated checkpoint in the hyperfeatures cache (made once): what the demo, notebooks and
 * tests use when no real model is given. Its weights are random.
 */
export async function demoCheckpoint(
  style: C.TinyStyle = 'sd15',
  name = `tiny-${style}-demo`,
): Promise<string> {
  const dir = join(hyperfeaturesCacheDir(), 'models', name);
  // transformers folders (dino, dinov2) have a config.json where diffusers folders have model_index.json
  const marker = style === 'dino' || style === 'dinov2' ? 'model.safetensors' : 'model_index.json';
  if (!existsSync(join(dir, marker))) await makeTinyCheckpoint(dir, { style, seed: 0 });
  return dir;
}
