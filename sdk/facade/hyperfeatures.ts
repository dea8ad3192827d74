/**
 * The fluent facade: `Hyperfeatures.fromModel(...)`, then `hf.invert(img).aggregate()
 * .match(hf.invert(other), { points })`. It only records steps and calls the plain functions
 * of the SDK (loadStableDiffusion, invertImages, generateImages, AggregationNetwork,
 * extractionForNetwork, matchImagePoints); each step is lazy and computed once.
 *
 * It cannot mislead: extraction settings come from the network (overrides that do not fit
 * are rejected before any inversion), and both images of a match are aggregated by the same
 * network.
 */
import { existsSync } from 'node:fs';
import type { Tensor } from '../core/tensor.ts';
import type { RgbImage } from '../core/rgb.ts';
import { ConfigError } from '../core/errors.ts';
import { checkOptions } from '../core/validate.ts';
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
import { extractionForNetwork } from '../aggregation/settings.ts';
import { officialNetwork } from '../aggregation/official.ts';
import { matchImagePoints, mutualImageMatches, type Correspondence } from '../correspondence/points.ts';

export interface HyperfeaturesOptions extends PipelineOptions {
  /**
   * A network checkpoint path, an AggregationNetwork, or "official" (the default: the authors'
   * network for SD-1.5 / SD-2.1; an error for other models, see AggregationNetwork.forModel).
   */
  network?: string | AggregationNetwork;
  /** Use the one-step variant (1 inversion step, the one-step network). */
  oneStep?: boolean;
  /**
   * Extraction settings (load size, image size, prompt ...). Steps and save timesteps come from
   * the network; giving ones that differ is a ConfigError before anything runs.
   */
  extract?: ExtractOptions;
  /** Descriptor resolution (default 64). */
  outputResolution?: number;
}

type Source =
  { kind: 'image'; input: ImageInput } | { kind: 'prompt'; prompt: string; options: GenerateOptions };

export class HyperfeatureImage {
  private stack?: Promise<FeatureStack>;
  private generated?: Promise<Tensor>;
  private readonly desc = new Map<AggregationNetwork, Promise<Tensor>>();
  /** Set by aggregate(network): this image's own network, else the facade's. */
  private own?: Promise<AggregationNetwork>;

  constructor(
    private readonly hf: Hyperfeatures,
    private readonly source: Source,
  ) {}

  /**
   * The raw FeatureStack (timesteps x layers), extracted once with the settings of the network
   * it is for (`network`, else this image's), the first time anything asks for it.
   */
  features(network?: AggregationNetwork): Promise<FeatureStack> {
    this.stack ??= (async () => {
      const extract = await this.hf.extractOptions(network ?? (await this.networkForFeatures()));
      if (this.source.kind === 'image')
        return (await invertImages(this.hf.sd, [this.source.input], extract))[0];
      const run = generateImages(this.hf.sd, [this.source.prompt], { ...extract, ...this.source.options });
      this.generated = run.then((r) => r.images[0]);
      return (await run).stacks[0].flipped(); // ordered like inversion for inversion-trained networks
    })();
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

  /** Aggregate with `network` (default: the facade's). The network applies to matches too. */
  aggregate(network?: string | AggregationNetwork): this {
    if (network !== undefined) {
      if (this.stack) throw new ConfigError('aggregate(network): call it before features() or descriptors()');
      this.own = this.hf.resolveNetwork(network);
    }
    return this;
  }

  /** The network this image is aggregated with. */
  network(): Promise<AggregationNetwork> {
    return this.own ?? this.hf.defaultNetwork();
  }

  /**
   * The network the features must fit; undefined when none was asked for anywhere and the
   * model has no official one (raw features still work: PCA, your own aggregation).
   */
  private async networkForFeatures(): Promise<AggregationNetwork | undefined> {
    try {
      return await this.network();
    } catch (e) {
      // only "no official network for this model" falls back; a failed download still fails
      if (this.own || this.hf.options.network !== undefined || !(e instanceof ConfigError)) throw e;
      return undefined;
    }
  }

  /** Whether aggregate() chose a network for this image. */
  hasOwnNetwork(): boolean {
    return this.own !== undefined;
  }

  /** Diffusion Hyperfeatures [1, P, R, R] (with `network`, default this image's). */
  async descriptors(network?: AggregationNetwork): Promise<Tensor> {
    const net = network ?? (await this.network());
    let d = this.desc.get(net);
    if (!d) {
      d = (async () => net.aggregate([await this.features(net)], this.hf.outputResolution))();
      this.desc.set(net, d);
    }
    return d;
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
    if (this.source.kind === 'image')
      return decodeImage(this.source.input, { colorManaged: this.hf.options.extract?.colorManaged });
    return pixelsToRgb(await this.image());
  }

  /**
   * Correspondences in `other`: nearest neighbours of `points` ([x, y] in this image's
   * pixels, returned in the other's), or mutual nearest neighbours when no points are given.
   * Both images are aggregated by one network: the one either side chose with aggregate(),
   * else the facade's; two different choices are a ConfigError. `foreground` boxes ([l, t, r, b]
   * in each image's pixels) restrict mutual matches to the objects.
   */
  async match(
    other: HyperfeatureImage,
    o: {
      points?: [number, number][];
      mutual?: boolean;
      limit?: number;
      foreground?: { source?: [number, number, number, number]; target?: [number, number, number, number] };
    } = {},
  ): Promise<Correspondence[]> {
    if (this.hf !== other.hf)
      throw new ConfigError('match: both images must come from the same Hyperfeatures instance');
    let net: AggregationNetwork;
    if (this.hasOwnNetwork() && other.hasOwnNetwork()) {
      const [mine, theirs] = await Promise.all([this.network(), other.network()]);
      if (mine !== theirs)
        throw new ConfigError(
          'match: the two images were aggregated with different networks; their descriptors are not comparable. Aggregate both with the same network',
        );
      net = mine;
    } else net = await (other.hasOwnNetwork() ? other.network() : this.network());
    const [a, b] = await Promise.all([this.descriptors(net), other.descriptors(net)]);
    const sizes = { source: await this.size(), target: await other.size() };
    if (o.points && !o.mutual)
      return matchImagePoints(a, b, o.points, { ...sizes, loadSize: this.hf.loadSize() });
    return mutualImageMatches(a, b, sizes, o.limit, o.foreground);
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
    this.outputResolution = options.outputResolution ?? DEFAULT_EXTRACT.outputResolution;
  }

  /**
   * Load a diffusion model (folder, HF cache, or hub download when allowed) and its network.
   * @example const hf = await Hyperfeatures.fromModel('stable-diffusion-v1-5/stable-diffusion-v1-5', { device: 'cuda' });
   */
  static async fromModel(model: string, options: HyperfeaturesOptions = {}): Promise<Hyperfeatures> {
    if (typeof model !== 'string' || !model)
      throw new ConfigError(`fromModel: expected a model folder or hub id, got ${JSON.stringify(model)}`);
    checkOptions('fromModel', options, {
      oneStep: 'boolean',
      extract: 'object',
      outputResolution: 'positive integer',
      allowDownload: 'boolean',
      device: 'string',
    });
    if (
      options.network !== undefined &&
      typeof options.network !== 'string' &&
      !(options.network instanceof AggregationNetwork)
    )
      throw new ConfigError(
        `fromModel: option network expected a checkpoint path, "official" or an AggregationNetwork, got ${JSON.stringify(options.network)?.slice(0, 60)}`,
      );
    const hf = new Hyperfeatures(await loadStableDiffusion(model, options), options);
    if (options.network !== undefined && options.network !== 'official') await hf.defaultNetwork();
    return hf;
  }

  /**
   * Extraction settings for features that `network` will aggregate: its steps and save
   * timesteps with the user's other settings (without a network: the user's settings).
   * @throws ConfigError on any mismatch, before work.
   */
  async extractOptions(network?: AggregationNetwork): Promise<ExtractOptions> {
    if (!network) {
      const o = this.options;
      return o.oneStep ? { ...o.extract, steps: 1, saveTimesteps: [0] } : { ...o.extract };
    }
    return extractionForNetwork(network.config, this.sd.unet.config, this.options.extract, {
      oneStep: this.options.oneStep,
      networkName: `the aggregation network (${typeof this.options.network === 'string' ? this.options.network : 'given'})`,
    });
  }

  loadSize(): number {
    return this.options.extract?.loadSize ?? DEFAULT_EXTRACT.loadSize;
  }

  resolveNetwork(n: string | AggregationNetwork): Promise<AggregationNetwork> {
    if (typeof n !== 'string') return Promise.resolve(n);
    if (n !== 'official' || existsSync(n)) return AggregationNetwork.load(n, this.options);
    return officialNetwork(this.sd, this.options.oneStep ? 'one-step' : 'multi-step', this.options).then(
      (p) => AggregationNetwork.load(p, this.options),
    );
  }

  defaultNetwork(): Promise<AggregationNetwork> {
    this.network ??= this.resolveNetwork(this.options.network ?? 'official');
    return this.network;
  }

  /** A real image, inverted lazily. */
  invert(image: ImageInput): HyperfeatureImage {
    if (image === null || (typeof image !== 'string' && typeof image !== 'object'))
      throw new ConfigError(
        `invert: expected an image path, encoded bytes, an RGB image or a sharp pipeline, got ${image === null ? 'null' : typeof image}`,
      );
    return new HyperfeatureImage(this, { kind: 'image', input: image });
  }

  /** A synthetic image generated lazily from a prompt. */
  generate(prompt: string, options: GenerateOptions = {}): HyperfeatureImage {
    if (typeof prompt !== 'string')
      throw new ConfigError(`generate: expected a prompt string, got ${JSON.stringify(prompt)}`);
    checkOptions('generate', options, {
      seed: 'integer',
      size: 'positive integer',
      guidanceScale: 'number',
      negativePrompt: 'string',
    });
    return new HyperfeatureImage(this, { kind: 'prompt', prompt, options });
  }

  async dispose(): Promise<void> {
    await this.sd.dispose();
    await (await this.network?.catch(() => undefined))?.dispose();
  }
}
