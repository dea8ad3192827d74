/**
 * The fluent facade: `Hyperfeatures.fromModel(...)`, then `hf.invert(img).aggregate()
 * .match(hf.invert(other), { points })`. It only records steps and calls the plain functions
 * of the SDK (loadStableDiffusion, invertImages, generateImages, AggregationNetwork,
 * matchImagePoints); each step is lazy and computed once.
 */
import { existsSync } from 'node:fs';
import type { Tensor } from '../core/tensor.ts';
import type { RgbImage } from '../core/rgb.ts';
import { ConfigError } from '../core/errors.ts';
import { decodeImage, pixelsToRgb, type ImageInput } from '../data/image.ts';
import { loadStableDiffusion, type PipelineOptions, type StableDiffusion } from '../diffusion/pipeline.ts';
import {
  invertImages,
  generateImages,
  DEFAULT_EXTRACT,
  type ExtractOptions,
  type GenerateOptions,
} from '../diffusion/extract.ts';
import type { FeatureStack } from '../diffusion/feature-stack.ts';
import { AggregationNetwork } from '../aggregation/network.ts';
import { officialNetwork } from '../aggregation/official.ts';
import { matchImagePoints, mutualImageMatches, type Correspondence } from '../correspondence/points.ts';

export interface HyperfeaturesOptions extends PipelineOptions {
  /** A network checkpoint path, an AggregationNetwork, or "official" (default: official when known). */
  network?: string | AggregationNetwork;
  /** Use the one-step variant (1 inversion step, the one-step network). */
  oneStep?: boolean;
  /** Extraction settings (steps, save timesteps, load size ...). */
  extract?: ExtractOptions;
  /** Descriptor resolution (default 64). */
  outputResolution?: number;
}

type Source =
  { kind: 'image'; input: ImageInput } | { kind: 'prompt'; prompt: string; options: GenerateOptions };

export class HyperfeatureImage {
  private stack?: Promise<FeatureStack>;
  private generated?: Promise<Tensor>;
  private desc?: Promise<Tensor>;
  private network?: Promise<AggregationNetwork>;

  constructor(
    private readonly hf: Hyperfeatures,
    private readonly source: Source,
  ) {}

  /** The raw FeatureStack (timesteps x layers). */
  features(): Promise<FeatureStack> {
    if (!this.stack) {
      if (this.source.kind === 'image') {
        this.stack = invertImages(this.hf.sd, [this.source.input], this.hf.extractOptions()).then(([s]) => s);
      } else {
        const run = generateImages(this.hf.sd, [this.source.prompt], {
          ...this.hf.extractOptions(),
          ...this.source.options,
        });
        this.generated = run.then((r) => r.images[0]);
        this.stack = run.then((r) => r.stacks[0].flipped()); // ordered like inversion for inversion-trained networks
      }
    }
    return this.stack;
  }

  /** The generated image [1, 3, H, W] in [-1, 1] (prompts only). */
  async image(): Promise<Tensor> {
    if (this.source.kind !== 'prompt')
      throw new ConfigError(
        'image(): only generated images have a decoded image; real images are their input',
      );
    await this.features();
    return this.generated!;
  }

  /** Use `network` (default: the facade's) to aggregate. */
  aggregate(network?: string | AggregationNetwork): this {
    this.network = network ? this.hf.resolveNetwork(network) : undefined;
    this.desc = undefined;
    return this;
  }

  /** Diffusion Hyperfeatures [1, P, R, R]. */
  descriptors(): Promise<Tensor> {
    this.desc ??= (async () => {
      const net = await (this.network ?? this.hf.defaultNetwork());
      return net.aggregate([await this.features()], this.hf.outputResolution);
    })();
    return this.desc;
  }

  /** PCA of one layer at one save timestep as RGB (basis shared with `others`). */
  async pca(layer: number, saveTimestep: number, others: HyperfeatureImage[] = []): Promise<RgbImage[]> {
    const stacks = await Promise.all([this, ...others].map((h) => h.features()));
    return stacks[0].pca(layer, saveTimestep, stacks.slice(1));
  }

  /** Size of the original image (points are in these pixels). */
  async size(): Promise<{ width: number; height: number }> {
    const s = await this.features();
    return s.meta.originalSize ?? { width: s.meta.imageSize, height: s.meta.imageSize };
  }

  /** The image as RGB (for drawing). */
  async rgb(): Promise<RgbImage> {
    if (this.source.kind === 'image') return decodeImage(this.source.input);
    return pixelsToRgb(await this.image());
  }

  /**
   * Correspondences in `other`: nearest neighbours of `points` ([x, y] in this image's
   * pixels, returned in the other's), or mutual nearest neighbours when no points are given.
   */
  async match(
    other: HyperfeatureImage,
    o: { points?: [number, number][]; mutual?: boolean; limit?: number } = {},
  ): Promise<Correspondence[]> {
    const [a, b] = await Promise.all([this.descriptors(), other.descriptors()]);
    const sizes = { source: await this.size(), target: await other.size() };
    if (o.points && !o.mutual)
      return matchImagePoints(a, b, o.points, { ...sizes, loadSize: this.hf.loadSize() });
    return mutualImageMatches(a, b, sizes, o.limit);
  }
}

export class Hyperfeatures {
  readonly sd: StableDiffusion;
  readonly options: HyperfeaturesOptions;
  readonly outputResolution: number;
  private network?: Promise<AggregationNetwork>;

  private constructor(sd: StableDiffusion, options: HyperfeaturesOptions) {
    this.sd = sd;
    this.options = options;
    this.outputResolution = options.outputResolution ?? 64;
  }

  /**
   * Load a diffusion model (folder, HF cache, or hub download when allowed) and its network.
   * @example const hf = await Hyperfeatures.fromModel('stable-diffusion-v1-5/stable-diffusion-v1-5', { device: 'cuda' });
   */
  static async fromModel(model: string, options: HyperfeaturesOptions = {}): Promise<Hyperfeatures> {
    return new Hyperfeatures(await loadStableDiffusion(model, options), options);
  }

  extractOptions(): ExtractOptions {
    return this.options.oneStep
      ? { ...this.options.extract, steps: 1, saveTimesteps: [0] }
      : { ...this.options.extract };
  }

  loadSize(): number {
    return this.options.extract?.loadSize ?? DEFAULT_EXTRACT.loadSize;
  }

  resolveNetwork(n: string | AggregationNetwork): Promise<AggregationNetwork> {
    if (typeof n !== 'string') return Promise.resolve(n);
    if (n !== 'official' || existsSync(n)) return AggregationNetwork.load(n, this.options);
    return officialNetwork(
      this.sd.modelId,
      this.options.oneStep ? 'one-step' : 'multi-step',
      this.options,
    ).then((p) => {
      if (!p)
        throw new ConfigError(
          `no official aggregation network is known for ${this.sd.modelId}; pass network: <checkpoint> or train one`,
        );
      return AggregationNetwork.load(p, this.options);
    });
  }

  defaultNetwork(): Promise<AggregationNetwork> {
    this.network ??= this.resolveNetwork(this.options.network ?? 'official');
    return this.network;
  }

  /** A real image, inverted lazily. */
  invert(image: ImageInput): HyperfeatureImage {
    return new HyperfeatureImage(this, { kind: 'image', input: image });
  }

  /** A synthetic image generated lazily from a prompt. */
  generate(prompt: string, options: GenerateOptions = {}): HyperfeatureImage {
    return new HyperfeatureImage(this, { kind: 'prompt', prompt, options });
  }

  async dispose(): Promise<void> {
    await this.sd.dispose();
    await (await this.network?.catch(() => undefined))?.dispose();
  }
}
