/**
 * Batched nearest neighbours in onnxruntime: unit query rows [K, P] against unit target
 * pixels [P, N] as ONE matrix product, then argmax/max per row. Used when the JS loop would
 * be slow (hundreds of queries, 64x64 maps and larger).
 */
import { GraphBuilder } from '../model/onnx/graph.ts';
import { Session } from '../model/runtime.ts';
import { Tensor } from '../core/tensor.ts';

/** A small graph's session, built on first use and shared by every later call. */
export function lazySession(build: () => GraphBuilder): () => Promise<Session> {
  let session: Promise<Session> | undefined;
  return () =>
    (session ??= build()
      .serialize()
      .then((b) => Session.create(b)));
}

function buildGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const q = g.input('queries', ['k', 'p']);
  const t = g.input('targets', ['p', 'n']);
  const sims = g.op('MatMul', [q, t]);
  g.output('best', g.op('Cast', [g.op('ArgMax', [sims], { axis: 1, keepdims: 0 })], { to: 1 }), ['k']);
  g.output('score', g.op('ReduceMax', [sims], { axes: [1], keepdims: 0 }), ['k']);
  return g;
}

const argmaxSession = lazySession(buildGraph);

/** For each query row, the index and value of its largest dot product with the target columns. */
export async function batchedArgmax(
  queries: Float32Array,
  targets: Float32Array,
  dim: number,
): Promise<{ best: number[]; score: number[] }> {
  const k = queries.length / dim;
  const n = targets.length / dim;
  // targets arrive pixel-major [N, P]; the product wants [P, N]
  const tp = new Float32Array(targets.length);
  for (let j = 0; j < n; j++) for (let c = 0; c < dim; c++) tp[c * n + j] = targets[j * dim + c];
  const out = await (
    await argmaxSession()
  ).run({ queries: new Tensor(queries, [k, dim]), targets: new Tensor(tp, [dim, n]) });
  return { best: Array.from(out.best.data), score: Array.from(out.score.data) };
}

function buildPartialGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const q = g.input('queries', ['k', 'c']);
  const t = g.input('targets', ['c', 'n']);
  g.output('dots', g.op('MatMul', [q, t]), ['k', 'n']);
  g.output('norms', g.op('ReduceSumSquare', [t], { axes: [0], keepdims: 0 }), ['n']);
  return g;
}

const partialSession = lazySession(buildPartialGraph);

/**
 * One channel chunk of a cosine similarity: raw dot products of query rows [K, c] with target
 * columns (channel-major [c, N], as maps are stored) and the targets' squared norms.
 */
export async function partialSimilarity(
  queries: Float32Array,
  targets: Float32Array,
  channels: number,
): Promise<{ dots: Float32Array; norms: Float32Array }> {
  const out = await (
    await partialSession()
  ).run({
    queries: new Tensor(queries, [queries.length / channels, channels]),
    targets: new Tensor(targets, [channels, targets.length / channels]),
  });
  return { dots: out.dots.data, norms: out.norms.data };
}

function buildMutualGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const a = g.input('source', ['n', 'p']);
  const b = g.input('target', ['m', 'p']);
  const sims = g.op('MatMul', [a, g.op('Transpose', [b], { perm: [1, 0] })]);
  const idx = (axis: number) => g.op('Cast', [g.op('ArgMax', [sims], { axis, keepdims: 0 })], { to: 1 });
  g.output('forward', idx(1), ['n']);
  g.output('backward', idx(0), ['m']);
  g.output('score', g.op('ReduceMax', [sims], { axes: [1], keepdims: 0 }), ['n']);
  return g;
}

const mutualSession = lazySession(buildMutualGraph);

/**
 * Both directions of nearest neighbours between unit pixel rows (pixel-major [N, P] and
 * [M, P]) from ONE similarity matrix product: forward[i] = argmax_j, backward[j] = argmax_i
 * (first index on ties, as a JS scan), score[i] = max_j.
 */
export async function bidirectionalArgmax(
  source: Float32Array,
  target: Float32Array,
  dim: number,
): Promise<{ forward: number[]; backward: number[]; score: number[] }> {
  const out = await (
    await mutualSession()
  ).run({
    source: new Tensor(source, [source.length / dim, dim]),
    target: new Tensor(target, [target.length / dim, dim]),
  });
  return {
    forward: Array.from(out.forward.data),
    backward: Array.from(out.backward.data),
    score: Array.from(out.score.data),
  };
}
