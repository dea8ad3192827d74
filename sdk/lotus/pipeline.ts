/**
 * Lotus (He et al., ICLR 2025) dense prediction: one x0-predicting UNet call at t = 999 with
 * a task-switcher class embedding. Follows the original LotusGPipeline / infer.py step by
 * step: pixels /127.5 - 1, longest edge to the processing resolution (antialiased bilinear),
 * VAE posterior sample x 0.18215, (G: concatenated with noise), UNet with the switcher and
 * the UNPADDED empty prompt, decode, (x/2 + 0.5) clamped, nearest-exact back to input size.
 */
import { ConfigError, ModelError } from '../core/errors.ts';
import { log } from '../core/logger.ts';
import { messages } from '../core/messages.ts';
import { Rng } from '../core/rng.ts';
import { Tensor, concat } from '../core/tensor.ts';
import { resizeBilinearAntialias, resizeNearestExact } from '../core/resample.ts';
import { decodeImage, type ImageInput } from '../data/image.ts';
import { resolveModel } from '../model/hub.ts';
import { UNet, parseUNetConfig } from '../model/unet/index.ts';
import { resolveComponent } from '../model/checkpoint.ts';
import { Vae, requestedVaeBudget, type VaeTiling } from '../model/vae/index.ts';
import { TextEncoder } from '../model/clip/index.ts';
import type { PipelineOptions } from '../diffusion/pipeline.ts';
import type { DeviceTensor } from '../model/runtime.ts';

export const LOTUS_TASKS = ['depth', 'normal', 'rgb'] as const;
export type LotusTask = (typeof LOTUS_TASKS)[number];
export const LOTUS_TIMESTEP = 999;
export const DEFAULT_PROCESSING_RES = 768;

/** Task switcher: s = [1, 0] (annotation) or [0, 1] (RGB reconstruction), embedded as [sin s, cos s]. */
export function taskEmbedding(task: 'annotation' | 'rgb'): Tensor {
  const s = task === 'annotation' ? [1, 0] : [0, 1];
  return Tensor.from([...s.map(Math.sin), ...s.map(Math.cos)], [1, 4]);
}

/** resize_max_res: scale = min(res / W, res / H), size int(H * scale) x int(W * scale); 0 keeps the size. */
export function processingSize(
  height: number,
  width: number,
  res: number,
): { height: number; width: number } {
  if (!Number.isInteger(res) || res < 0)
    throw new ConfigError(
      messages.invalidOption('processingRes', 'a non-negative integer (0 keeps the native size)', res),
    );
  const size =
    res === 0
      ? { height, width }
      : (() => {
          const scale = Math.min(res / width, res / height);
          return {
            height: Math.max(1, Math.trunc(height * scale)),
            width: Math.max(1, Math.trunc(width * scale)),
          };
        })();
  if (size.height * size.width > MAX_PROCESSING_PIXELS)
    throw new ConfigError(
      `processing size ${size.width}x${size.height} (processingRes ${res}) exceeds the limit of ${MAX_PROCESSING_PIXELS} pixels; use a processing resolution up to ${Math.floor(Math.sqrt(MAX_PROCESSING_PIXELS))}`,
    );
  if (size.height < MIN_PROCESSING_SIDE || size.width < MIN_PROCESSING_SIDE)
    throw new ConfigError(
      `processing size ${size.width}x${size.height} is below the ${MIN_PROCESSING_SIDE}x${MIN_PROCESSING_SIDE} the VAE needs (it downsamples by 8); use a larger image or processing resolution`,
    );
  return size;
}

/** Bounds on the processed image: the VAE needs 8 pixels per latent; memory caps the top. */
export const MIN_PROCESSING_SIDE = 8;
export const MAX_PROCESSING_PIXELS = 4096 * 4096;

export interface LotusPredictOptions {
  /** What to predict; defaults to the checkpoint's own task (from its name), "rgb" = reconstruction. */
  task?: LotusTask;
  processingRes?: number;
  /** Seeds for Lotus-G (several give a mean and an uncertainty map). Default [0]. */
  seeds?: number[];
  /**
   * Bring the x0 latent back to the host as `steps.x0Latent` on a GPU too (default false there:
   * it passes from the UNet to the VAE on the device). On the CPU it is always there.
   */
  keepLatents?: boolean;
  /** Exact noise: `posteriorEps` [1, 4, h, w] and, for G, `noise` [1, 4, h, w] (one seed). */
  noise?: { posteriorEps?: Tensor; noise?: Tensor };
  /**
   * VAE tiling: "auto" (default) tiles when the VAE would push the whole prediction over
   * LOTUS_MEMORY_TARGET (6 GiB) beside the resident weights (SD-2 size at 768: 384-pixel tiles,
   * ~5 GB peak instead of ~7.3 GB untiled-budget), "off", or { tile }.
   */
  vaeTiling?: VaeTiling;
  /** Apply embedded ICC profiles when decoding (off by default, as Lotus' own Pillow reading). */
  colorManaged?: boolean;
}

export interface LotusResult {
  task: LotusTask;
  /** The pipeline's image in [0, 1] at input resolution: [1, H, W, 3]. */
  prediction: Tensor;
  /** Channel mean of the prediction [1, H, W] (depth/disparity checkpoints). */
  depth?: Tensor;
  /** Unit normals [1, H, W, 3] (2x - 1, normalised). */
  normal?: Tensor;
  /** Per-pixel spread over seeds [1, H, W] (Lotus-G with several seeds). */
  uncertainty?: Tensor;
  /** Intermediate tensors of the first seed, for inspection and parity. */
  /** Each seed's decoded image [1, h, w, 3] in [0, 1] at the processing size (before resizing back). */
  processed: Tensor[];
  steps: {
    rgbResized: Tensor;
    rgbLatent: Tensor;
    unetInput: Tensor;
    /** Absent when the latent stayed on the GPU (pass `keepLatents` to have it). */
    x0Latent?: Tensor;
    decoded: Tensor;
    image: Tensor;
  };
}

/** Peak memory a Lotus prediction aims for (CPU; the VAE tiles to stay under it). */
export const LOTUS_MEMORY_TARGET = 6 * 2 ** 30;

export class Lotus {
  readonly variant: 'g' | 'd';
  readonly kind: 'depth' | 'normal' | 'unknown';
  readonly disparity: boolean;

  private constructor(
    readonly modelId: string,
    readonly unet: UNet,
    readonly vae: Vae,
    /** The empty prompt's embedding [1, S, C], the only prompt Lotus uses. */
    readonly prompt: Tensor,
  ) {
    this.variant = unet.config.inChannels === 8 ? 'g' : 'd';
    const id = modelId.toLowerCase();
    this.kind = id.includes('normal') ? 'normal' : id.includes('depth') ? 'depth' : 'unknown';
    this.disparity = id.includes('disparity');
  }

  /**
   * Load a Lotus checkpoint (folder or hub id, e.g. jingheya/lotus-depth-g-v1-0).
   * @throws ModelError when the UNet has no task switcher or a conv_in width that is neither G (8) nor D (4).
   */
  static async fromModel(model: string, options: PipelineOptions = {}): Promise<Lotus> {
    const dir = await resolveModel(model, options);
    // the checks read only the UNet config, so a wrong checkpoint fails before anything loads
    const unetFiles = resolveComponent(dir, 'unet', options);
    const c = parseUNetConfig(unetFiles.configPath, unetFiles.config);
    const problems: string[] = [];
    if (c.classEmbedType !== 'projection' || c.classEmbedInputDim !== 4) {
      problems.push(
        `the UNet has class_embed_type ${JSON.stringify(c.classEmbedType)} (input dim ${c.classEmbedInputDim}); Lotus needs "projection" with projection_class_embeddings_input_dim 4 for the task switcher`,
      );
    }
    if (c.inChannels !== 8 && c.inChannels !== 4)
      problems.push(`conv_in takes ${c.inChannels} channels; Lotus-G takes 8 (latent + noise), Lotus-D 4`);
    if (problems.length)
      throw new ModelError(`${model}: not a supported Lotus checkpoint: ${problems.join('; ')}`);
    // Lotus only ever feeds the empty prompt: encode it first and let the text encoder go before
    // the UNet loads (an SD-2 text encoder is 1.4 GB of the 5 GB that would otherwise be resident)
    const textEncoder = await TextEncoder.load(dir, options);
    let prompt: Tensor;
    try {
      prompt = await textEncoder.encode('', { padding: 'none' });
    } finally {
      await textEncoder.dispose();
    }
    const unet = await UNet.load(dir, { ...options, taps: false });
    return new Lotus(model, unet, await Vae.load(dir, options), prompt);
  }

  /**
   * What the VAE may use before it tiles, so the whole prediction stays under LOTUS_MEMORY_TARGET
   * with the UNet and VAE weights resident (HYPERFEATURES_VAE_MEMORY, when set, decides instead).
   * SD-2 size at 768: 6 GiB - 3.8 GB of weights - 0.5 GiB -> 384-pixel tiles.
   */
  private vaeBudget(): number {
    const left = LOTUS_MEMORY_TARGET - this.unet.weightBytes - this.vae.weightBytes - 2 ** 29;
    return requestedVaeBudget() ?? Math.max(2 ** 29, left);
  }

  /** The task asked for, else the checkpoint's own (from its name). @throws ConfigError */
  private taskOf(o: LotusPredictOptions): LotusTask {
    const task = o.task ?? (this.kind === 'unknown' ? 'depth' : this.kind);
    if (!LOTUS_TASKS.includes(task))
      throw new ConfigError(messages.invalidOption('task', LOTUS_TASKS.join(' | '), task));
    return task;
  }

  /** Predict depth, normals or the RGB reconstruction of one image. @throws ConfigError, DataError, ShapeError */
  async predict(image: ImageInput, o: LotusPredictOptions = {}): Promise<LotusResult> {
    const task = this.taskOf(o);
    checkSeeds(o); // settings before decoding
    const rgb = await decodeImage(image, { colorManaged: o.colorManaged });
    const { width: W, height: H } = rgb;
    const pixels = new Tensor(new Float32Array(3 * W * H), [1, 3, H, W]).map((_, i) => {
      const c = Math.floor(i / (W * H));
      return rgb.data[(i % (W * H)) * 3 + c] / 127.5 - 1;
    });
    return this.predictPixels(pixels, { ...o, task });
  }

  /**
   * The same from model-space pixels [1, 3, H, W] (RGB in [-1, 1]; values outside are passed on,
   * as the normal benchmark's padding does).
   */
  async predictPixels(pixels: Tensor, o: LotusPredictOptions = {}): Promise<LotusResult> {
    pixels.expectShape('pixels', [1, 3, -1, -1]);
    const task = this.taskOf(o);
    const seeds = checkSeeds(o);
    const [, , H, W] = pixels.shape;
    const size = processingSize(H, W, o.processingRes ?? DEFAULT_PROCESSING_RES);
    if (size.height * size.width > 1536 * 1536) {
      log().warn(
        `processing ${size.width}x${size.height} pixels: memory grows with the processing size (attention is quadratic in it); pass a processing resolution (default ${DEFAULT_PROCESSING_RES}) to cap it`,
      );
    }
    const rgbResized =
      size.height === H && size.width === W
        ? pixels
        : resizeBilinearAntialias(pixels, size.height, size.width);
    const tiling =
      o.vaeTiling === undefined || o.vaeTiling === 'auto'
        ? (this.vae.tilesFor(size.height, size.width, 'auto', this.vaeBudget()) ?? 'off')
        : o.vaeTiling;
    const posterior = await this.vae.encode(rgbResized, { tiling });
    const classLabels = taskEmbedding(task === 'rgb' ? 'rgb' : 'annotation');
    const runs: LotusResult['steps'][] = [];
    for (const seed of seeds) {
      const rng = new Rng(seed);
      const eps =
        o.noise?.posteriorEps ?? new Tensor(rng.normalArray(posterior.mean.size), posterior.mean.shape);
      const rgbLatent = this.vae.latentFromPosterior(posterior, { eps });
      let unetInput = rgbLatent;
      if (this.variant === 'g') {
        const noise = o.noise?.noise ?? new Tensor(rng.normalArray(rgbLatent.size), rgbLatent.shape);
        noise.expectShape('noise', rgbLatent.shape);
        unetInput = concat([rgbLatent, noise], 1);
      }
      const call = {
        sample: unetInput,
        timestep: LOTUS_TIMESTEP,
        encoderHiddenStates: this.prompt,
        classLabels,
        tapLayers: [],
      };
      // on a GPU the x0 latent goes from the UNet to the VAE decoder without visiting the host
      const resident = this.unet.device !== 'cpu' && tiling === 'off' && !o.keepLatents;
      const out = resident ? await this.unet.runResident(call) : await this.unet.run(call);
      const x0Latent = out.noisePred instanceof Tensor ? out.noisePred : undefined;
      const decoded = x0Latent
        ? await this.vae.decodeLatents(x0Latent, { tiling })
        : await this.vae.decodeLatentsOnDevice(out.noisePred as DeviceTensor);
      const [, , h, w] = decoded.shape;
      const img = new Tensor(new Float32Array(h * w * 3), [1, h, w, 3]).map((_, i) => {
        const v = decoded.data[(i % 3) * h * w + Math.floor(i / 3)] / 2 + 0.5;
        return v < 0 ? 0 : v > 1 ? 1 : v;
      });
      runs.push({ rgbResized, rgbLatent, unetInput, ...(x0Latent ? { x0Latent } : {}), decoded, image: img });
    }
    const full = runs.map((r) => resizeNearestExact(r.image, H, W, 'nhwc'));
    const prediction =
      full.length === 1
        ? full[0]
        : full[0].map((_, i) => full.reduce((a, f) => a + f.data[i], 0) / full.length);
    return {
      task,
      prediction,
      ...postProcess(task, prediction, full),
      steps: runs[0],
      processed: runs.map((r) => r.image),
    };
  }

  async dispose(): Promise<void> {
    await Promise.all([this.unet.dispose(), this.vae.dispose()]);
  }
}

function checkSeeds(o: LotusPredictOptions): number[] {
  const seeds = o.seeds ?? [0];
  if (!Array.isArray(seeds) || !seeds.every((s) => Number.isInteger(s) && s >= 0 && s <= 2 ** 32))
    throw new ConfigError(
      `seeds: expected a list of non-negative integer seeds, got ${JSON.stringify(seeds)?.slice(0, 60)}`,
    );
  if (seeds.length > 1000)
    throw new ConfigError(`seeds: ${seeds.length} seeds; at most 1000 predictions are averaged`);
  if (!seeds.length || (o.noise && seeds.length > 1))
    throw new ConfigError('seeds: give at least one seed (and only one when passing exact noise)');
  return seeds;
}

function channelMean(t: Tensor): Tensor {
  const [n, h, w] = t.shape;
  return new Tensor(
    new Float32Array(n * h * w).map((_, i) => (t.data[3 * i] + t.data[3 * i + 1] + t.data[3 * i + 2]) / 3),
    [n, h, w],
  );
}

/** Depth: channel mean; normals: 2x - 1 normalised; several seeds: per-pixel spread. */
function postProcess(
  task: LotusTask,
  prediction: Tensor,
  runs: Tensor[],
): Pick<LotusResult, 'depth' | 'normal' | 'uncertainty'> {
  if (task === 'depth') {
    const depth = channelMean(prediction);
    if (runs.length < 2) return { depth };
    const each = runs.map(channelMean);
    const uncertainty = depth.map((m, i) =>
      Math.sqrt(each.reduce((a, d) => a + (d.data[i] - m) ** 2, 0) / each.length),
    );
    return { depth, uncertainty };
  }
  if (task === 'normal') {
    const toUnit = (t: Tensor) =>
      t.map((_, i) => {
        const p = i - (i % 3);
        const v = [0, 1, 2].map((k) => 2 * t.data[p + k] - 1);
        return v[i % 3] / (Math.hypot(...v) || 1);
      });
    const normal = toUnit(prediction);
    if (runs.length < 2) return { normal };
    // spread: 1 - |mean of unit normals| (0 when every seed agrees)
    const units = runs.map(toUnit);
    const [n, h, w] = normal.shape;
    const uncertainty = new Tensor(
      new Float32Array(n * h * w).map((_, p) => {
        const m = [0, 1, 2].map((k) => units.reduce((a, u) => a + u.data[3 * p + k], 0) / units.length);
        return 1 - Math.hypot(...m);
      }),
      [n, h, w],
    );
    return { normal, uncertainty };
  }
  return {};
}
