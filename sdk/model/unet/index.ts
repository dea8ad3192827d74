/** Load a diffusers UNet2DConditionModel and run it with decoder taps. */
import { ConfigError, ShapeError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { fmtShape } from '../../core/messages.ts';
import { Tensor } from '../../core/tensor.ts';
import { resolveComponent, type ResolveOptions } from '../checkpoint.ts';
import { cachedSession } from '../cache.ts';
import { DeviceTensor, Session, type Device, type Feed, type SessionOptions } from '../runtime.ts';
import { INT8_WEIGHT_BITS } from '../quantize.ts';
import { buildUNetGraph } from './build.ts';
import { timestepProjection } from './time.ts';
import { deviceKernels, halfPrecision } from '../numerics.ts';
import type { HalfPrecision, Precision } from '../onnx/precision.ts';
import { parseUNetConfig, tapCount, type UNetConfig } from './config.ts';

export { parseUNetConfig, tapCount, tapChannels, type UNetConfig } from './config.ts';
export { buildUNetGraph } from './build.ts';
export { timestepProjection } from './time.ts';

export interface LoadOptions extends SessionOptions, ResolveOptions {
  /** Build the graph with the decoder taps as outputs (default true). */
  taps?: boolean;
  /** Where built graphs are cached (default `$HYPERFEATURES_CACHE/graphs`). */
  cacheDir?: string;
  /**
   * "fp16" keeps the weights in half precision inside the graph (half the memory; e.g. for
   * GPUs), computing in fp32; default "fp32".
   */
  weights?: 'fp32' | 'fp16';
  /**
   * "fp32" (default): the parity-tested graphs. "fp16" (GPUs only): weights and activations in
   * half precision, with normalisation statistics, softmax and the VAE posterior in fp32, and
   * fp32 at the graph's edges (the DDIM update, on the host or the device, stays fp32); needs an
   * adapter with half-precision shaders on WebGPU. "fp16-emulated" (any device): the same plan
   * computed in fp32 with every half value rounded to half, to see half precision's effect on
   * features and PCK where no such GPU is (README: Fidelity). Applies to the UNet, VAE and text
   * encoder.
   */
  precision?: Precision;
  /**
   * "fused" (the default on the CPU and CUDA; on WebGPU the default is "exact", because
   * onnxruntime's WebGPU MultiHeadAttention fails the isolated check: model/numerics.ts):
   * attention as onnxruntime's MultiHeadAttention kernel (blocked, with a
   * running softmax; the score tensor never exists), faster per SD-1.5-sized call than "exact"
   * (5-8% on an AVX2 Zen 3, ~20% on an AVX-512 Zen 4). "exact": MatMul + Softmax + MatMul, the
   * kernels onnxruntime gives PyTorch's own ONNX export of the UNet. Both pass every parity case
   * against the float64 reference; they differ in rounding only (README: Fidelity).
   */
  attention?: 'exact' | 'fused';
  /**
   * "fp32" (default): the parity-tested graph. "int8": the transformer blocks' Linear layers
   * (attention projections, feed-forward) run as onnxruntime's DynamicQuantizeMatMul, with int8
   * weights (one scale per output channel) and activations quantized per tensor at run time;
   * convolutions and attention stay fp32. A CPU speed opt-in, not bit-faithful: see the README
   * for its speed and its effect on features.
   */
  linear?: 'fp32' | 'int8';
  /**
   * Run the graph once on a tiny latent while loading (default true), so every weight is read in
   * during load and not during the first real call (SD-1.5 size: +0.2-1 s to the load, and the
   * first 64x64 call takes about what a warm one does instead of 1.3-1.5x).
   */
  warmUp?: boolean;
  /**
   * On a GPU, also open the graph as a second session whose noise prediction stays on the device
   * (default true), for the diffusion loop's steps without taps. It holds a second copy of the
   * weights in GPU memory: onnxruntime-node 1.30 binds a session's GPU outputs once, for one
   * output list and one shape, so one session cannot serve both kinds of call.
   */
  resident?: boolean;
}

export interface UNetInput {
  /** [B, in_channels, h, w] */
  sample: Tensor;
  /** One value for the batch or one per item; -1 is what DDIM inversion passes first. */
  timestep: number | number[];
  /** [B, S, cross_attention_dim] */
  encoderHiddenStates: Tensor;
  /** [B, P] for projection class embeddings (Lotus' task switcher). */
  classLabels?: Tensor;
  /** Which taps to fetch (1-based layers, in this order); default all. `[]` skips them. */
  tapLayers?: number[];
  /** Whole up-block outputs to fetch (0-based block index, after the upsampler: DIFT's up_ft). */
  upBlocks?: number[];
  /**
   * Decoder resnet inputs to fetch (0-based k = 3 * up-block + resnet, LDM's output_blocks
   * numbering): the previous state concatenated with its skip, before the resnet (ODISE's hook).
   */
  decoderInputs?: number[];
}

export interface UNetOutput {
  /** [B, out_channels, h, w] */
  noisePred: Tensor;
  /** Decoder taps in `tapLayers` order (all layers, layer 1 first, by default; empty when built without taps). */
  taps: Tensor[];
  /** Up-block outputs in `upBlocks` order (empty unless asked for). */
  upBlocks: Tensor[];
  /** Decoder resnet inputs in `decoderInputs` order (empty unless asked for). */
  decoderInputs: Tensor[];
}

/**
 * The load options that change the UNet's numbers (fused attention, int8 Linear layers, fp16
 * weights), checked; {} for the parity-tested fp32 graph. Whatever caches the UNet's results
 * keys on this, so an option added here can never be served another option's results.
 * @throws ConfigError for a value that is not one of the choices.
 */
export function unetNumerics(
  options: Pick<LoadOptions, 'attention' | 'linear' | 'weights' | 'device' | 'precision'>,
): {
  attention?: 'fused';
  linear?: 'int8';
  int8WeightBits?: number;
  weights?: 'fp16';
  normalization?: 'two-pass';
  precision?: HalfPrecision;
} {
  if (options.attention !== undefined && options.attention !== 'exact' && options.attention !== 'fused')
    throw new ConfigError(messages.invalidOption('attention', 'exact | fused', options.attention));
  if (options.linear !== undefined && options.linear !== 'fp32' && options.linear !== 'int8')
    throw new ConfigError(messages.invalidOption('linear', 'fp32 | int8', options.linear));
  const kernels = deviceKernels(options.device);
  const precision = halfPrecision(options.precision, options.device);
  return {
    // exact is recorded as {} so features cached when exact was the default are still found
    // for it, and never for fused
    ...((options.attention ?? kernels.defaultAttention) === 'exact' ? {} : { attention: 'fused' }),
    ...(kernels.twoPassNorm ? { normalization: 'two-pass' } : {}),
    ...(options.linear === 'int8' ? { linear: 'int8', int8WeightBits: INT8_WEIGHT_BITS } : {}),
    ...(options.weights === 'fp16' ? { weights: 'fp16' } : {}),
    ...(precision ? { precision } : {}),
  };
}

/** One call on the smallest latent the blocks accept: reads every weight in, costs little compute. */
async function warmUp(session: Session, c: UNetConfig): Promise<void> {
  const side = 2 ** (c.blockOutChannels.length - 1);
  const feeds: Record<string, Tensor> = {
    sample: Tensor.zeros([1, c.inChannels, side, side]),
    time_proj: timestepProjection([1], c.blockOutChannels[0], c.flipSinToCos, c.freqShift),
    encoder_hidden_states: Tensor.zeros([1, 1, c.crossAttentionDim]),
  };
  if (c.classEmbedType === 'projection') feeds.class_labels = Tensor.zeros([1, c.classEmbedInputDim]);
  await session.run(feeds, ['noise_pred'], { checkInputs: false, checkOutputs: false });
}

export class UNet {
  readonly config: UNetConfig;
  readonly withTaps: boolean;
  private readonly session: Session;

  /** The session whose noise prediction stays on the GPU, and the input shape it is bound to. */
  private readonly resident?: Session;
  private residentShape?: string;

  private constructor(config: UNetConfig, session: Session, withTaps: boolean, resident?: Session) {
    this.config = config;
    this.session = session;
    this.withTaps = withTaps;
    this.resident = resident;
  }

  /**
   * Load `<modelDir>/unet`: validate the config and weights, build (or reuse) the graph.
   * @throws ModelError / ConfigError listing every mismatch; DeviceError for providers.
   * @example const unet = await UNet.load('models/sd15'); const { noisePred, taps } = await unet.run({...});
   */
  static async load(modelDir: string, options: LoadOptions = {}): Promise<UNet> {
    const files = resolveComponent(modelDir, 'unet', options);
    const config = parseUNetConfig(files.configPath, files.config);
    const taps = options.taps !== false;
    const numerics = unetNumerics(options);
    const fusedAttention = numerics.attention === 'fused';
    const linearInt8 = numerics.linear === 'int8';
    const twoPassNorm = numerics.normalization === 'two-pass';
    const deviceNoise = (options.device ?? 'cpu') !== 'cpu';
    const session = await cachedSession(
      {
        component: 'unet',
        config,
        options: {
          taps,
          ...(fusedAttention ? { fusedAttention } : {}),
          ...(linearInt8 ? { linearInt8, int8WeightBits: numerics.int8WeightBits } : {}),
          ...(twoPassNorm ? { twoPassNorm } : {}),
          ...(deviceNoise ? { deviceNoise } : {}),
        },
        weightFiles: files.weightFiles,
        build: (weights) =>
          buildUNetGraph(config, weights, { taps, fusedAttention, linearInt8, twoPassNorm, deviceNoise }),
        weightDtype: numerics.weights === 'fp16' ? 'float16' : 'float',
        precision: numerics.precision,
        cacheDir: options.cacheDir,
      },
      async (path) => {
        const plain = await Session.create(path, options);
        if (!deviceNoise || options.resident === false) return { plain };
        try {
          const deviceOutputs = ['noise_pred_device'];
          return { plain, resident: await Session.create(path, { ...options, deviceOutputs }) };
        } catch (e) {
          await plain.dispose();
          throw e;
        }
      },
    );
    if (options.warmUp !== false) await warmUp(session.plain, config);
    return new UNet(config, session.plain, taps, session.resident);
  }

  /** @throws ShapeError for inputs that do not fit the config. */
  async run(input: UNetInput): Promise<UNetOutput> {
    const { feeds, names, blockNames, inputNames } = this.prepare(input);
    const out = await this.session.run(feeds, ['noise_pred', ...names, ...blockNames, ...inputNames]);
    return {
      noisePred: out.noise_pred,
      taps: names.map((n) => out[n]),
      upBlocks: blockNames.map((n) => out[n]),
      decoderInputs: inputNames.map((n) => out[n]),
    };
  }

  /** The device the graph runs on. */
  get device(): Device {
    return this.session.device;
  }

  /**
   * One call whose noise prediction stays on the GPU (a {@link DeviceTensor}, for the next
   * step's graph); the sample may be one too. Only the taps asked for come back to the host.
   * On the CPU the noise prediction is a plain Tensor.
   */
  async runResident(
    input: Omit<UNetInput, 'sample' | 'upBlocks'> & { sample: Tensor | DeviceTensor },
  ): Promise<{ noisePred: Tensor | DeviceTensor; taps: Tensor[] }> {
    const { feeds, names } = this.prepare(input);
    // the resident session is bound to the first shape it ran (onnxruntime-node): another
    // shape, or a call with taps, goes through the plain session and brings the noise back
    const shape = `${input.sample.shape} ${input.encoderHiddenStates.shape}`;
    if (this.resident && !names.length && (this.residentShape ?? shape) === shape) {
      this.residentShape = shape;
      const out = await this.resident.runResident(feeds, ['noise_pred_device']);
      return { noisePred: out.noise_pred_device, taps: [] };
    }
    const out = await this.session.runResident(feeds, ['noise_pred', ...names]);
    return { noisePred: out.noise_pred, taps: names.map((n) => out[n] as Tensor) };
  }

  private prepare(input: Omit<UNetInput, 'sample'> & { sample: Tensor | DeviceTensor }) {
    const { sample, encoderHiddenStates: ctx } = input;
    const c = this.config;
    if (sample instanceof Tensor) sample.expectShape('unet sample', [-1, c.inChannels, -1, -1]);
    const batch = sample.shape[0];
    ctx.expectShape('encoder_hidden_states', [batch, -1, c.crossAttentionDim]);
    const ts = Array.isArray(input.timestep) ? input.timestep : [input.timestep];
    if (!(ts.length === 1 || ts.length === batch) || !ts.every(Number.isFinite)) {
      throw new ShapeError(
        `timestep: expected 1 or ${batch} finite values, got ${JSON.stringify(input.timestep)}`,
      );
    }
    const feeds: Record<string, Feed> = {
      sample,
      time_proj: timestepProjection(ts, c.blockOutChannels[0], c.flipSinToCos, c.freqShift),
      encoder_hidden_states: ctx,
    };
    if (c.classEmbedType === 'projection') {
      if (!input.classLabels)
        throw new ShapeError(
          `class_labels: this UNet has a projection class embedding; expected [${batch}, ${c.classEmbedInputDim}], got none`,
        );
      feeds.class_labels = input.classLabels.expectShape('class_labels', [batch, c.classEmbedInputDim]);
    } else if (input.classLabels) {
      throw new ShapeError(
        `class_labels: this UNet has no class embedding, got ${fmtShape(input.classLabels.shape)}`,
      );
    }
    const layers = this.withTaps
      ? (input.tapLayers ?? Array.from({ length: tapCount(c) }, (_, k) => k + 1))
      : [];
    const bad = layers.filter((l) => !Number.isInteger(l) || l < 1 || l > tapCount(c));
    if (bad.length) throw new ShapeError(`tapLayers: ${JSON.stringify(bad)} outside 1..${tapCount(c)}`);
    const names = layers.map((l) => `tap_l${l}`);
    const blocks = input.upBlocks ?? [];
    const nBlocks = c.upBlockTypes.length;
    if (blocks.length && !this.withTaps)
      throw new ShapeError('upBlocks: this UNet was loaded without feature outputs (taps: false)');
    const badBlocks = blocks.filter((b) => !Number.isInteger(b) || b < 0 || b >= nBlocks);
    if (badBlocks.length)
      throw new ShapeError(`upBlocks: ${JSON.stringify(badBlocks)} outside 0..${nBlocks - 1}`);
    const inputs = input.decoderInputs ?? [];
    if (inputs.length && !this.withTaps)
      throw new ShapeError('decoderInputs: this UNet was loaded without feature outputs (taps: false)');
    const badInputs = inputs.filter((k) => !Number.isInteger(k) || k < 0 || k >= tapCount(c));
    if (badInputs.length)
      throw new ShapeError(`decoderInputs: ${JSON.stringify(badInputs)} outside 0..${tapCount(c) - 1}`);
    return {
      feeds,
      names,
      blockNames: blocks.map((b) => `up_block_${b}`),
      inputNames: inputs.map((k) => `decoder_input_${k}`),
    };
  }

  /** Bytes of the loaded graph's weights (in the graph's precision). */
  get weightBytes(): number {
    return this.session.modelBytes;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
    await this.resident?.dispose();
  }
}
