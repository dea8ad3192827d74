/**
 * AutoencoderKL encoder (image -> posterior mean, logvar, std) and decoder (latent ->
 * image) as ONNX graphs, as diffusers 0.14 defines them (eps 1e-6 everywhere, single-head
 * mid-block attention, asymmetric (0, 1) padding before each strided downsampling conv).
 */
import { GraphBuilder } from '../onnx/graph.ts';
import {
  attention,
  conv2d,
  fromTokens,
  groupNorm,
  linear,
  silu,
  toTokens,
  upsampleNearest2x,
  type Ctx,
} from '../onnx/nn.ts';
import type { WeightSource } from '../weights.ts';
import { resnet } from '../unet/blocks.ts';
import type { VaeConfig } from './config.ts';

const EPS = 1e-6;

/** Mid-block AttentionBlock; checkpoints use legacy (query/key/value/proj_attn) or current (to_q/...) names. */
function attentionBlock(ctx: Ctx, prefix: string, x: string, ch: number, groups: number): string {
  const legacy = ctx.w.has(`${prefix}.query.weight`);
  const n = (modern: string, old: string) => `${prefix}.${legacy ? old : modern}`;
  const tokens = toTokens(ctx.g, groupNorm(ctx, n('group_norm', 'group_norm'), x, ch, groups, EPS));
  const q = linear(ctx, n('to_q', 'query'), tokens, ch, ch);
  const k = linear(ctx, n('to_k', 'key'), tokens, ch, ch);
  const v = linear(ctx, n('to_v', 'value'), tokens, ch, ch);
  const o = linear(ctx, n('to_out.0', 'proj_attn'), attention(ctx.g, q, k, v, 1, ch), ch, ch);
  return ctx.g.op('Add', [fromTokens(ctx.g, o, x), x]);
}

function midBlock(ctx: Ctx, prefix: string, h: string, ch: number, groups: number): string {
  const o = { groups, eps: EPS };
  h = resnet(ctx, `${prefix}.resnets.0`, h, ch, ch, o).out;
  h = attentionBlock(ctx, `${prefix}.attentions.0`, h, ch, groups);
  return resnet(ctx, `${prefix}.resnets.1`, h, ch, ch, o).out;
}

export interface VaeGraphOptions {
  /** GroupNorm as two reductions (model/numerics.ts). */
  twoPassNorm?: boolean;
}

/** Encoder graph: `image` [B, 3, H, W] in [-1, 1] -> posterior_mean, posterior_logvar, posterior_std. */
export function buildVaeEncoderGraph(
  cfg: VaeConfig,
  weights: WeightSource,
  options: VaeGraphOptions = {},
): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: weights, twoPassNorm: options.twoPassNorm };
  const boc = cfg.blockOutChannels;
  const o = { groups: cfg.normGroups, eps: EPS };
  const image = g.input('image', ['batch', cfg.inChannels, 'height', 'width']);
  let h = conv2d(ctx, 'encoder.conv_in', image, cfg.inChannels, boc[0], 3);
  let ch = boc[0];
  boc.forEach((out, i) => {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = resnet(ctx, `encoder.down_blocks.${i}.resnets.${j}`, h, ch, out, o).out;
      ch = out;
    }
    if (i < boc.length - 1) {
      h = conv2d(ctx, `encoder.down_blocks.${i}.downsamplers.0.conv`, h, ch, ch, 3, {
        stride: 2,
        pads: [0, 0, 1, 1],
      });
    }
  });
  h = midBlock(ctx, 'encoder.mid_block', h, ch, cfg.normGroups);
  h = silu(g, groupNorm(ctx, 'encoder.conv_norm_out', h, ch, cfg.normGroups, EPS));
  const z2 = cfg.latentChannels * 2;
  let moments = conv2d(ctx, 'encoder.conv_out', h, ch, z2, 3);
  if (cfg.useQuantConv) moments = conv2d(ctx, 'quant_conv', moments, z2, z2, 1);
  const [mean, rawLogvar] = g.opN(
    'Split',
    [moments, g.constInt64([cfg.latentChannels, cfg.latentChannels])],
    2,
    { axis: 1 },
  );
  // float32 in a half-precision graph: std = exp(logvar / 2) falls below half's normal range
  const logvar = g.float32(() => g.op('Clip', [rawLogvar, g.constFloat([-30], []), g.constFloat([20], [])]));
  const std = g.float32(() => g.op('Exp', [g.op('Mul', [logvar, g.constFloat([0.5], [])])]));
  const latentShape = ['batch', cfg.latentChannels, 'h', 'w'];
  g.output('posterior_mean', mean, latentShape);
  g.output('posterior_logvar', logvar, latentShape);
  g.output('posterior_std', std, latentShape);
  return g;
}

/** Decoder graph: `latent` [B, latent_channels, h, w] (already divided by the scaling factor) -> `decoded`. */
export function buildVaeDecoderGraph(
  cfg: VaeConfig,
  weights: WeightSource,
  options: VaeGraphOptions = {},
): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: weights, twoPassNorm: options.twoPassNorm };
  const rev = [...cfg.blockOutChannels].reverse();
  const o = { groups: cfg.normGroups, eps: EPS };
  let h = g.input('latent', ['batch', cfg.latentChannels, 'h', 'w']);
  if (cfg.usePostQuantConv) h = conv2d(ctx, 'post_quant_conv', h, cfg.latentChannels, cfg.latentChannels, 1);
  h = conv2d(ctx, 'decoder.conv_in', h, cfg.latentChannels, rev[0], 3);
  let ch = rev[0];
  h = midBlock(ctx, 'decoder.mid_block', h, ch, cfg.normGroups);
  rev.forEach((out, i) => {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      h = resnet(ctx, `decoder.up_blocks.${i}.resnets.${j}`, h, ch, out, o).out;
      ch = out;
    }
    if (i < rev.length - 1)
      h = conv2d(ctx, `decoder.up_blocks.${i}.upsamplers.0.conv`, upsampleNearest2x(g, h), ch, ch, 3);
  });
  h = silu(g, groupNorm(ctx, 'decoder.conv_norm_out', h, ch, cfg.normGroups, EPS));
  g.output('decoded', conv2d(ctx, 'decoder.conv_out', h, ch, cfg.outChannels, 3), [
    'batch',
    cfg.outChannels,
    'height',
    'width',
  ]);
  return g;
}
