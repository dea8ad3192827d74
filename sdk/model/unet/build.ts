/**
 * UNet2DConditionModel as an ONNX graph: inputs `sample` [B, C, h, w], `timestep` [1 or B]
 * (float; -1 is valid), `encoder_hidden_states` [B, S, D], and `class_labels` [B, P] for
 * projection class embeddings. Outputs `noise_pred` and, unless disabled, the decoder taps
 * `tap_l1`..`tap_lN` (DESIGN.md semantics 4), the up-block outputs `up_block_0`.. (DIFT's
 * features) and the decoder resnets' inputs `decoder_input_0`.. (SD-DINO's).
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { conv2d, groupNorm, linear, silu, upsampleNearestLike, type Ctx } from '../onnx/nn.ts';
import type { WeightSource } from '../weights.ts';
import { resnet, transformer2d, type ResnetOptions } from './blocks.ts';
import type { UNetConfig } from './config.ts';

export interface UNetGraphOptions {
  /** Expose the decoder taps as outputs (default true). */
  taps?: boolean;
  /** Fused attention (onnxruntime's MultiHeadAttention), see LoadOptions.attention. */
  fusedAttention?: boolean;
  /** The transformer blocks' Linear layers as int8 DynamicQuantizeMatMul (UNet LoadOptions.linear). */
  linearInt8?: boolean;
  /** GroupNorm as two reductions (model/numerics.ts). */
  twoPassNorm?: boolean;
  /** A first output `noise_pred_device`, the noise prediction left on the GPU between steps. */
  deviceNoise?: boolean;
}

interface Skip {
  value: string;
  channels: number;
}

/** linear_1 -> silu -> linear_2 (diffusers TimestepEmbedding). */
function mlpEmbedding(ctx: Ctx, prefix: string, x: string, cin: number, dim: number): string {
  return linear(
    ctx,
    `${prefix}.linear_2`,
    silu(ctx.g, linear(ctx, `${prefix}.linear_1`, x, cin, dim)),
    dim,
    dim,
  );
}

/** Above this, self-attention's [B, H, N, N] scores at the native size are computed head by head. */
const SCORES_BUDGET_BYTES = 256 * 2 ** 20;

/**
 * Head groups for self-attention at resolution level `level` (0 = full latent): one head at a
 * time when all heads' fp32 scores at the config's native size exceed SCORES_BUDGET_BYTES (SD-1.5
 * at 64x64, level 0: 8 x 4096^2 floats = 512 MiB, twice with the probabilities), else one group.
 * Per-head arithmetic is unchanged: outputs are bit-identical (tested), peak memory drops ~1.4 GB.
 */
export function selfAttentionHeadGroups(cfg: UNetConfig, level: number): number {
  const tokens = Math.ceil(cfg.sampleSize / 2 ** level) ** 2;
  return cfg.heads[level] * tokens * tokens * 4 > SCORES_BUDGET_BYTES ? cfg.heads[level] : 1;
}

export function buildUNetGraph(
  cfg: UNetConfig,
  weights: WeightSource,
  options: UNetGraphOptions = {},
): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = {
    g,
    w: weights,
    fusedAttention: options.fusedAttention,
    twoPassNorm: options.twoPassNorm,
    upcastAttention: cfg.upcastAttention,
  };
  // only the transformers' projections are quantized: the time embedding's stay fp32
  const tctx: Ctx = { ...ctx, linearInt8: options.linearInt8 };
  const boc = cfg.blockOutChannels;
  const tembDim = boc[0] * 4;

  let sample = g.input('sample', ['batch', cfg.inChannels, 'height', 'width']);
  // the sinusoidal projection comes from the host (unet/time.ts): formed in float64 there, so
  // no double-precision op (which GPUs lack) sits in the graph
  const timeProj = g.input('time_proj', ['timesteps', boc[0]]);
  const context = g.input('encoder_hidden_states', ['batch', 'sequence', cfg.crossAttentionDim]);
  if (cfg.centerInputSample)
    sample = g.op('Sub', [g.op('Mul', [sample, g.constFloat([2], [])]), g.constFloat([1], [])]);

  let temb = g.scope('time', () => mlpEmbedding(ctx, 'time_embedding', timeProj, boc[0], tembDim));
  if (cfg.classEmbedType === 'projection') {
    const labels = g.input('class_labels', ['batch', cfg.classEmbedInputDim]);
    temb = g.op('Add', [temb, mlpEmbedding(ctx, 'class_embedding', labels, cfg.classEmbedInputDim, tembDim)]);
  }
  const res: ResnetOptions = { groups: cfg.normGroups, eps: cfg.normEps, tembAct: silu(g, temb), tembDim };
  const attn = (i: number) => ({
    heads: cfg.heads[i],
    selfAttentionHeadGroups: selfAttentionHeadGroups(cfg, i),
    contextDim: cfg.crossAttentionDim,
    groups: cfg.normGroups,
    linearProjection: cfg.useLinearProjection,
    layers: cfg.transformerLayers[i],
  });

  let h = conv2d(ctx, 'conv_in', sample, cfg.inChannels, boc[0], cfg.convInKernel);
  const skips: Skip[] = [{ value: h, channels: boc[0] }];

  // Down path: every resnet(+attention) output and every downsampler output is a skip.
  let ch = boc[0];
  cfg.downBlockTypes.forEach((type, i) => {
    g.scope(`down${i}`, () => {
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        const p = `down_blocks.${i}`;
        h = resnet(ctx, `${p}.resnets.${j}`, h, ch, boc[i], res).out;
        ch = boc[i];
        if (type === 'CrossAttnDownBlock2D')
          h = transformer2d(tctx, `${p}.attentions.${j}`, h, context, ch, attn(i));
        skips.push({ value: h, channels: ch });
      }
      if (i < boc.length - 1) {
        const pad = cfg.downsamplePadding;
        h = conv2d(ctx, `down_blocks.${i}.downsamplers.0.conv`, h, ch, ch, 3, {
          stride: 2,
          pads: [pad, pad, pad, pad],
        });
        skips.push({ value: h, channels: ch });
      }
    });
  });

  g.scope('mid', () => {
    const mid = { ...res, outputScale: cfg.midBlockScaleFactor };
    h = resnet(ctx, 'mid_block.resnets.0', h, ch, ch, mid).out;
    h = transformer2d(tctx, 'mid_block.attentions.0', h, context, ch, attn(boc.length - 1));
    h = resnet(ctx, 'mid_block.resnets.1', h, ch, ch, mid).out;
  });

  // Up path: concatenate skips in reverse; upsample to the size of the next skip (diffusers
  // forwards that size so odd latent sizes round-trip).
  const taps: string[] = [];
  const blockOutputs: string[] = [];
  const resnetInputs: string[] = [];
  const reversed = [...boc].reverse();
  const upHeads = [...cfg.heads.keys()].reverse();
  cfg.upBlockTypes.forEach((type, i) => {
    g.scope(`up${i}`, () => {
      const out = reversed[i];
      for (let j = 0; j <= cfg.layersPerBlock; j++) {
        const skip = skips.pop()!;
        const p = `up_blocks.${i}`;
        const joined = g.op('Concat', [h, skip.value], { axis: 1 });
        resnetInputs.push(joined);
        const r = resnet(ctx, `${p}.resnets.${j}`, joined, ch + skip.channels, out, res);
        taps.push(r.branch);
        h = r.out;
        ch = out;
        if (type === 'CrossAttnUpBlock2D')
          h = transformer2d(tctx, `${p}.attentions.${j}`, h, context, ch, attn(upHeads[i]));
      }
      if (i < boc.length - 1) {
        h = conv2d(
          ctx,
          `up_blocks.${i}.upsamplers.0.conv`,
          upsampleNearestLike(g, h, skips[skips.length - 1].value),
          ch,
          ch,
          3,
        );
      }
      blockOutputs.push(h);
    });
  });

  h = silu(g, groupNorm(ctx, 'conv_norm_out', h, ch, cfg.normGroups, cfg.normEps));
  h = conv2d(ctx, 'conv_out', h, ch, cfg.outChannels, cfg.convOutKernel);
  // first, so that it alone can be fetched (onnxruntime-node's prefix rule, model/runtime.ts)
  if (options.deviceNoise) g.output('noise_pred_device', h, ['batch', cfg.outChannels, 'height', 'width']);
  g.output('noise_pred', h, ['batch', cfg.outChannels, 'height', 'width']);
  if (options.taps !== false) {
    taps.forEach((t, k) => g.output(`tap_l${k + 1}`, t, ['batch', 'channels', 'h', 'w']));
    // whole up-block outputs (after the upsampler): DIFT's `up_ft`
    blockOutputs.forEach((t, i) => g.output(`up_block_${i}`, t, ['batch', 'channels', 'h', 'w']));
    // each decoder resnet's input, the previous state and its skip concatenated: what ODISE's
    // extractor (SD-DINO's SD features) hooks as "output_blocks[k]", k = 3 * block + resnet
    resnetInputs.forEach((t, k) => g.output(`decoder_input_${k}`, t, ['batch', 'channels', 'h', 'w']));
  }
  return g;
}
