/**
 * Half precision for a built graph, as `precision: "fp16"` runs it on GPUs: float weights
 * stored as float16 and activations computed in float16, except where half cannot hold the
 * numbers: normalisation statistics (InstanceNormalization, LayerNormalization and the two-pass
 * form), softmax with its mask, int8 matmuls, and whatever a builder marks with
 * `g.float32(...)`. Graph inputs and outputs stay float32 (a Cast at each edge), so callers and
 * caches see the same tensors as before.
 *
 * "fp16-emulated" is the same plan in float32 with every half value rounded to half and back:
 * half's storage rounding at every op boundary with float32 arithmetic inside each op. It runs
 * on any device (onnxruntime's CPU kernels have no half arithmetic), so fp16's effect on the
 * numbers can be measured where no half-capable GPU is; a GPU's half kernels add their own
 * accumulation error on top of it.
 */
import { floatToHalf, halfToFloat } from '../../core/half.ts';
import {
  DATA_TYPES,
  type DataType,
  type GraphBuilder,
  type InitializerRecord,
  type NodeRecord,
} from './graph.ts';

export const PRECISIONS = ['fp32', 'fp16', 'fp16-emulated'] as const;
export type Precision = (typeof PRECISIONS)[number];
export type HalfPrecision = Exclude<Precision, 'fp32'>;

/** Ops that always run in float32: their statistics or exponentials need its range. */
const FLOAT32_OPS = new Set([
  'Softmax',
  'InstanceNormalization',
  'LayerNormalization',
  'DynamicQuantizeMatMul',
]);

/** Inputs left as they are (not data): Resize's roi and scales are float32 by the standard. */
const FIXED_INPUTS: Record<string, ReadonlySet<number>> = { Resize: new Set([1, 2, 3]) };

const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);
const BOOL_OUT = new Set(['Greater', 'Less', 'Equal', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or']);
/** Ops whose output has their first input's type (every other op used by the builders). */
const SAME_AS_FIRST = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'MatMul',
  'Conv',
  'ConvTranspose',
  'Reshape',
  'Transpose',
  'Slice',
  'Concat',
  'Split',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Sqrt',
  'Sigmoid',
  'Erf',
  'Exp',
  'Log',
  'Neg',
  'Relu',
  'Clip',
  'Resize',
  'Identity',
  'Softmax',
  'InstanceNormalization',
  'LayerNormalization',
  'ReduceMean',
  'ReduceSum',
  'ReduceMax',
  'ReduceSumSquare',
  'Reciprocal',
  'Sum',
  'Expand',
  'Tile',
  'Pad',
  'Mod',
  'MultiHeadAttention',
  'Flatten',
  'Pow',
  'Tanh',
  'Abs',
  'Max',
  'Min',
  'Sin',
  'Cos',
]);

const TYPE_OF_CODE = new Map<number, DataType>(
  Object.entries(DATA_TYPES).map(([k, v]) => [v, k as DataType]),
);

/**
 * Make `g` half precision in place (see the module comment). Returns `g`.
 * @throws Error naming an op whose output type this pass does not know (a builder bug).
 */
export function toHalfPrecision(g: GraphBuilder, mode: HalfPrecision): GraphBuilder {
  convertToHalf(g);
  if (mode === 'fp16-emulated') emulateHalf(g);
  removeDeadNodes(g);
  return g;
}

function isFloat(t: DataType | undefined): t is 'float' | 'float16' {
  return t === 'float' || t === 'float16';
}

/** The type of a node's outputs, from the types of its data inputs (Resize's roi and scales skipped). */
function outputType(n: NodeRecord, types: ReadonlyMap<string, DataType>): DataType | undefined {
  if (n.op === 'Cast') return TYPE_OF_CODE.get(n.attrs.to as number);
  if (INT64_OUT.has(n.op)) return 'int64';
  if (BOOL_OUT.has(n.op)) return 'bool';
  if (n.op === 'DynamicQuantizeMatMul') return 'float';
  if (!SAME_AS_FIRST.has(n.op))
    throw new Error(`precision: no output type rule for ${n.op} (${n.outputs[0]})`);
  const fixed = FIXED_INPUTS[n.op];
  return n.inputs.map((v, i) => (v === '' || fixed?.has(i) ? undefined : types.get(v))).find((t) => t);
}

function convertToHalf(g: GraphBuilder): void {
  const types = new Map<string, DataType>();
  for (const v of g.inputs) types.set(v.name, v.dtype);
  const inits = new Map<string, InitializerRecord>();
  for (const i of g.initializers) {
    types.set(i.name, i.dtype);
    inits.set(i.name, i);
  }
  const halfInits = new Map<string, string>();
  const casts = new Map<string, string>();
  /** Values made by Cast(to float) from a half value: a half consumer takes the half value. */
  const widenedFrom = new Map<string, string>();
  const nodes: NodeRecord[] = [];

  const cast = (v: string, to: 'float' | 'float16'): string => {
    const key = `${v}>${to}`;
    let out = casts.get(key);
    if (!out) {
      out = g.fresh(`${v.replace(/_\d+$/, '')}_to_${to}`);
      nodes.push({ op: 'Cast', inputs: [v], outputs: [out], attrs: { to: DATA_TYPES[to] }, domain: '' });
      types.set(out, to);
      casts.set(key, out);
    }
    return out;
  };
  const want = (v: string, to: 'float' | 'float16'): string => {
    const t = types.get(v);
    if (!isFloat(t) || t === to) return v;
    if (to === 'float16') {
      const init = inits.get(v);
      if (init) return halfCopy(g, init, halfInits, types);
      const source = widenedFrom.get(v);
      if (source) return source;
    }
    return cast(v, to);
  };

  for (const n of g.nodes) {
    const to = n.float32 || FLOAT32_OPS.has(n.op) ? 'float' : 'float16';
    const fixed = FIXED_INPUTS[n.op];
    // a Cast says its type; an Identity (an output's name) passes its input's through
    const inputs =
      n.op === 'Cast' || n.op === 'Identity'
        ? n.inputs
        : n.inputs.map((v, i) => (v === '' || fixed?.has(i) ? v : want(v, to)));
    const node = { ...n, inputs };
    const t = outputType(node, types);
    for (const o of node.outputs) if (t) types.set(o, t);
    if (n.op === 'Cast' && t === 'float' && types.get(inputs[0]) === 'float16')
      widenedFrom.set(node.outputs[0], inputs[0]);
    nodes.push(node);
  }

  // graph outputs keep their declared float32: the producer writes a half value, a Cast widens it
  for (const out of g.outputs) {
    if (!(out.dtype === 'float' && types.get(out.name) === 'float16')) continue;
    const half = g.fresh(`${out.name}_half`);
    for (const n of nodes) {
      n.outputs = n.outputs.map((o) => (o === out.name ? half : o));
      n.inputs = n.inputs.map((i) => (i === out.name ? half : i));
    }
    nodes.push({
      op: 'Cast',
      inputs: [half],
      outputs: [out.name],
      attrs: { to: DATA_TYPES.float },
      domain: '',
    });
  }
  g.nodes.splice(0, g.nodes.length, ...nodes);
}

/** The float16 copy of a float32 initializer (one per initializer). */
function halfCopy(
  g: GraphBuilder,
  init: InitializerRecord,
  copies: Map<string, string>,
  types: Map<string, DataType>,
): string {
  let name = copies.get(init.name);
  if (!name) {
    const count = init.byteLength / 4;
    name = g.initializer(`${init.name}_fp16`, init.dims, 'float16', count * 2, async () => {
      const b = await init.bytes();
      const f = new Float32Array(b.buffer, b.byteOffset, count);
      return new Uint8Array(Uint16Array.from(f, floatToHalf).buffer);
    });
    copies.set(init.name, name);
    types.set(name, 'float16');
  }
  return name;
}

/**
 * The half graph in float32: half initializers become float32 holding half's values, and every
 * node that made a half value makes a float32 one rounded through half (Cast there and back).
 */
function emulateHalf(g: GraphBuilder): void {
  const halfValues = halfTypedValues(g);
  for (const [i, init] of g.initializers.entries()) {
    if (init.dtype !== 'float16') continue;
    const count = init.byteLength / 2;
    g.initializers[i] = {
      ...init,
      dtype: 'float',
      byteLength: count * 4,
      bytes: async () => {
        const b = await init.bytes();
        const h = new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        return new Uint8Array(Float32Array.from(h, halfToFloat).buffer);
      },
    };
  }
  const nodes: NodeRecord[] = [];
  for (const n of g.nodes) {
    if (!n.outputs.some((o) => halfValues.has(o))) {
      nodes.push(n);
      continue;
    }
    const isCastToHalf = n.op === 'Cast' && n.attrs.to === DATA_TYPES.float16;
    const outputs = n.outputs.map((o) => (halfValues.has(o) ? g.fresh(`${o}_exact`) : o));
    nodes.push({ ...n, outputs });
    for (const [k, o] of n.outputs.entries()) {
      if (!halfValues.has(o)) continue;
      let v = outputs[k];
      if (!isCastToHalf) {
        const h = g.fresh(`${o}_half`);
        nodes.push({ op: 'Cast', inputs: [v], outputs: [h], attrs: { to: DATA_TYPES.float16 }, domain: '' });
        v = h;
      }
      nodes.push({ op: 'Cast', inputs: [v], outputs: [o], attrs: { to: DATA_TYPES.float }, domain: '' });
    }
  }
  g.nodes.splice(0, g.nodes.length, ...nodes);
}

/** Every node output whose type is float16 (the graph's inputs and initializers typed as given). */
function halfTypedValues(g: GraphBuilder): Set<string> {
  const types = new Map<string, DataType>();
  for (const v of g.inputs) types.set(v.name, v.dtype);
  for (const i of g.initializers) types.set(i.name, i.dtype);
  const half = new Set<string>();
  for (const n of g.nodes) {
    const t = outputType(n, types);
    for (const o of n.outputs) {
      if (t) types.set(o, t);
      if (t === 'float16') half.add(o);
    }
  }
  return half;
}

/** Drop nodes no graph output depends on, and initializers nothing reads. */
function removeDeadNodes(g: GraphBuilder): void {
  const needed = new Set(g.outputs.map((o) => o.name));
  const kept: NodeRecord[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const v of n.inputs) if (v) needed.add(v);
  }
  g.nodes.splice(0, g.nodes.length, ...kept.reverse());
  const live = g.initializers.filter((init) => needed.has(init.name));
  g.initializers.splice(0, g.initializers.length, ...live);
}
