/**
 * UNet building blocks as diffusers 0.14 defines them: ResnetBlock2D (with the tap on its
 * residual branch), Transformer2DModel and BasicTransformerBlock (self-attention,
 * cross-attention, GEGLU feed-forward).
 */
import {
  conv2d,
  groupNorm,
  layerNorm,
  linear,
  attention,
  gelu,
  silu,
  toTokens,
  fromTokens,
  type Ctx,
} from '../onnx/nn.ts';

export interface ResnetOptions {
  groups: number;
  eps: number;
  /** silu(temb) [T, tembDim] shared by all resnets, or undefined (VAE). */
  tembAct?: string;
  tembDim?: number;
  outputScale?: number;
}

/**
 * ResnetBlock2D. Returns the block output and `branch`, the residual branch after conv2,
 * before the skip add and the output scale: the hyperfeature tap (DESIGN.md semantics 4).
 */
export function resnet(
  ctx: Ctx,
  prefix: string,
  x: string,
  cin: number,
  cout: number,
  o: ResnetOptions,
): { out: string; branch: string } {
  const { g } = ctx;
  let h = silu(g, groupNorm(ctx, `${prefix}.norm1`, x, cin, o.groups, o.eps));
  h = conv2d(ctx, `${prefix}.conv1`, h, cin, cout, 3);
  if (o.tembAct && o.tembDim) {
    const t = linear(ctx, `${prefix}.time_emb_proj`, o.tembAct, o.tembDim, cout); // [T, cout]
    h = g.op('Add', [h, g.op('Unsqueeze', [t, g.constInt64([2, 3])])]);
  }
  h = silu(g, groupNorm(ctx, `${prefix}.norm2`, h, cout, o.groups, o.eps));
  const branch = conv2d(ctx, `${prefix}.conv2`, h, cout, cout, 3);
  const skip = cin !== cout ? conv2d(ctx, `${prefix}.conv_shortcut`, x, cin, cout, 1) : x;
  let out = g.op('Add', [skip, branch]);
  if (o.outputScale !== undefined && o.outputScale !== 1)
    out = g.op('Div', [out, g.constFloat([o.outputScale], [])]);
  return { out, branch };
}

export interface TransformerOptions {
  heads: number;
  contextDim: number;
  groups: number;
  linearProjection: boolean;
  layers: number;
  /** Self-attention computed in this many head groups (memory; see selfAttentionHeadGroups). */
  selfAttentionHeadGroups?: number;
}

/** Transformer2DModel on NCHW input with text context [B, S, contextDim]. */
export function transformer2d(
  ctx: Ctx,
  prefix: string,
  x: string,
  context: string,
  channels: number,
  o: TransformerOptions,
): string {
  const { g } = ctx;
  let h = groupNorm(ctx, `${prefix}.norm`, x, channels, o.groups, 1e-6);
  let tokens: string;
  if (o.linearProjection) {
    tokens = linear(ctx, `${prefix}.proj_in`, toTokens(g, h), channels, channels);
  } else {
    tokens = toTokens(g, conv2d(ctx, `${prefix}.proj_in`, h, channels, channels, 1));
  }
  for (let i = 0; i < o.layers; i++) {
    tokens = basicTransformerBlock(ctx, `${prefix}.transformer_blocks.${i}`, tokens, context, channels, o);
  }
  if (o.linearProjection) {
    h = fromTokens(g, linear(ctx, `${prefix}.proj_out`, tokens, channels, channels), x);
  } else {
    h = conv2d(ctx, `${prefix}.proj_out`, fromTokens(g, tokens, x), channels, channels, 1);
  }
  return g.op('Add', [h, x]);
}

function basicTransformerBlock(
  ctx: Ctx,
  prefix: string,
  x: string,
  context: string,
  dim: number,
  o: TransformerOptions,
): string {
  const { g } = ctx;
  let n = layerNorm(ctx, `${prefix}.norm1`, x, dim, 1e-5);
  x = g.op('Add', [
    x,
    crossAttention(ctx, `${prefix}.attn1`, n, n, dim, dim, o.heads, o.selfAttentionHeadGroups),
  ]);
  n = layerNorm(ctx, `${prefix}.norm2`, x, dim, 1e-5);
  x = g.op('Add', [x, crossAttention(ctx, `${prefix}.attn2`, n, context, dim, o.contextDim, o.heads)]);
  n = layerNorm(ctx, `${prefix}.norm3`, x, dim, 1e-5);
  return g.op('Add', [x, geglu(ctx, `${prefix}.ff`, n, dim)]);
}

/** diffusers CrossAttention: bias-free q/k/v projections, biased output projection. */
export function crossAttention(
  ctx: Ctx,
  prefix: string,
  x: string,
  context: string,
  dim: number,
  contextDim: number,
  heads: number,
  headGroups = 1,
): string {
  const q = linear(ctx, `${prefix}.to_q`, x, dim, dim, false);
  const k = linear(ctx, `${prefix}.to_k`, context, contextDim, dim, false);
  const v = linear(ctx, `${prefix}.to_v`, context, contextDim, dim, false);
  return linear(
    ctx,
    `${prefix}.to_out.0`,
    attention(
      ctx.g,
      q,
      k,
      v,
      heads,
      dim / heads,
      undefined,
      ctx.fusedAttention,
      headGroups,
      ctx.upcastAttention,
    ),
    dim,
    dim,
  );
}

/** FeedForward with GEGLU: proj to 2 x 4dim, hidden * gelu(gate), project back. */
function geglu(ctx: Ctx, prefix: string, x: string, dim: number): string {
  const { g } = ctx;
  const inner = dim * 4;
  const p = linear(ctx, `${prefix}.net.0.proj`, x, dim, inner * 2);
  const [hidden, gate] = g.opN('Split', [p, g.constInt64([inner, inner])], 2, { axis: -1 });
  return linear(ctx, `${prefix}.net.2`, g.op('Mul', [hidden, gelu(g, gate)]), inner, dim);
}
