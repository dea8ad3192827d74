/**
 * Build ONNX graphs in TypeScript. Nodes are plain records; initializers are lazy byte
 * sources so weights stream from safetensors to the output file one tensor at a time.
 * `serialize()` embeds small weights; `save()` writes large ones as external data.
 */
import { open, mkdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ProtoWriter } from './protobuf.ts';
import { tempPathFor } from '../../core/fs.ts';

export const DATA_TYPES = { float: 1, int8: 3, int64: 7, bool: 9, float16: 10, double: 11 } as const;
export type DataType = keyof typeof DATA_TYPES;

export type AttrValue = number | string | number[] | { floats: number[] } | { float: number };

export interface NodeRecord {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  domain: string;
  /** Computed in float32 even in a half-precision graph (onnx/precision.ts). */
  float32?: boolean;
}

export interface InitializerRecord {
  name: string;
  dims: number[];
  dtype: DataType;
  byteLength: number;
  bytes: () => Promise<Uint8Array>;
}

interface ValueInfo {
  name: string;
  dtype: DataType;
  shape: (number | string)[];
}

export const OPSET = 17;
const EXTERNAL_MIN_BYTES = 1024;

export class GraphBuilder {
  readonly nodes: NodeRecord[] = [];
  readonly initializers: InitializerRecord[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private counter = 0;
  private constCache = new Map<string, string>();
  private scopes: string[] = [];
  private float32Depth = 0;

  /** Names created inside `fn` get the prefix (for readable graphs and profiles). */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /**
   * Nodes created inside `fn` stay float32 when the graph is made half precision
   * (onnx/precision.ts): statistics and sums whose range or cancellation half cannot hold.
   */
  float32<T>(fn: () => T): T {
    this.float32Depth++;
    try {
      return fn();
    } finally {
      this.float32Depth--;
    }
  }

  fresh(hint: string): string {
    return `${[...this.scopes, hint].join('/')}_${this.counter++}`;
  }

  input(name: string, shape: (number | string)[], dtype: DataType = 'float'): string {
    this.inputs.push({ name, dtype, shape });
    return name;
  }

  /** Expose `value` as a graph output called `name` (an Identity when names differ). */
  output(name: string, value: string, shape: (number | string)[] = [], dtype: DataType = 'float'): void {
    if (value !== name)
      this.nodes.push({ op: 'Identity', inputs: [value], outputs: [name], attrs: {}, domain: '' });
    this.outputs.push({ name, dtype, shape });
  }

  initializer(
    name: string,
    dims: number[],
    dtype: DataType,
    byteLength: number,
    bytes: () => Promise<Uint8Array>,
  ): string {
    this.initializers.push({ name, dims, dtype, byteLength, bytes });
    return name;
  }

  /** A float32 constant held in memory. */
  constFloat(values: ArrayLike<number>, dims: number[], hint = 'const'): string {
    const data = Float32Array.from(values);
    const key = `f:${dims.join(',')}:${data.length <= 1024 ? Array.from(data).join(',') : this.counter}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const bytes = new Uint8Array(data.buffer);
    const name = this.initializer(this.fresh(hint), dims, 'float', bytes.byteLength, async () => bytes);
    this.constCache.set(key, name);
    return name;
  }

  /** A float64 constant (for the few places that need double precision, e.g. timestep phases). */
  constDouble(values: ArrayLike<number>, dims: number[], hint = 'const64'): string {
    const bytes = new Uint8Array(Float64Array.from(values).buffer);
    return this.initializer(this.fresh(hint), dims, 'double', bytes.byteLength, async () => bytes);
  }

  /** An int64 vector constant (shapes, axes), deduplicated. */
  constInt64(values: readonly number[]): string {
    const key = `i:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const bytes = new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
    const name = this.initializer(
      this.fresh('i64'),
      [values.length],
      'int64',
      bytes.byteLength,
      async () => bytes,
    );
    this.constCache.set(key, name);
    return name;
  }

  /** Add a node; returns its single output name. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.opN(op, inputs, 1, attrs, domain)[0];
  }

  opN(
    op: string,
    inputs: string[],
    nOutputs: number,
    attrs: Record<string, AttrValue> = {},
    domain = '',
  ): string[] {
    const outputs = Array.from({ length: nOutputs }, () => this.fresh(op));
    this.nodes.push({ op, inputs, outputs, attrs, domain, ...(this.float32Depth ? { float32: true } : {}) });
    return outputs;
  }

  /** Serialize with every initializer embedded (graphs well under 2 GB). */
  async serialize(): Promise<Uint8Array> {
    return (await this.modelProto(undefined)).toBytes();
  }

  /**
   * Write `path` (.onnx) and, when `externalData` is set, the weights to `path + '.data'`,
   * streaming one initializer at a time. Both files are written atomically.
   */
  async save(path: string, externalData: boolean): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    const dataPath = `${path}.data`;
    const tmpData = tempPathFor(dataPath);
    const tmpModel = tempPathFor(path);
    try {
      let model: ProtoWriter;
      if (externalData) {
        const handle = await open(tmpData, 'w');
        const locations = new Map<string, { offset: number; length: number }>();
        let offset = 0;
        try {
          for (const init of this.initializers) {
            // small tensors (shapes, axes) stay inline: shape inference must read them
            if (init.byteLength < EXTERNAL_MIN_BYTES) continue;
            const pad = (64 - (offset % 64)) % 64; // aligned for mmap-friendly loading
            offset += pad;
            const bytes = await init.bytes();
            await handle.write(bytes, 0, bytes.byteLength, offset);
            locations.set(init.name, { offset, length: bytes.byteLength });
            offset += bytes.byteLength;
          }
        } finally {
          await handle.close();
        }
        model = await this.modelProto({ file: basename(dataPath), locations });
      } else {
        model = await this.modelProto(undefined);
      }
      const handle = await open(tmpModel, 'w');
      try {
        for (const chunk of model.finish()) await handle.write(chunk);
      } finally {
        await handle.close();
      }
      if (externalData) await rename(tmpData, dataPath);
      await rename(tmpModel, path);
    } catch (e) {
      await unlink(tmpData).catch(() => undefined);
      await unlink(tmpModel).catch(() => undefined);
      throw e;
    }
  }

  private async modelProto(
    external: { file: string; locations: Map<string, { offset: number; length: number }> } | undefined,
  ) {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, nodeProto(n));
    graph.string(2, 'hyperfeatures');
    for (const init of this.initializers) {
      const t = new ProtoWriter()
        .packedInts(1, init.dims)
        .int(2, DATA_TYPES[init.dtype])
        .string(8, init.name);
      const loc = external?.locations.get(init.name);
      if (loc && external) {
        const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
        t.message(13, entry('location', external.file))
          .message(13, entry('offset', String(loc.offset)))
          .message(13, entry('length', String(loc.length)))
          .int(14, 1);
      } else {
        t.bytes(9, await init.bytes());
      }
      graph.message(5, t);
    }
    for (const v of this.inputs) graph.message(11, valueInfo(v));
    for (const v of this.outputs) graph.message(12, valueInfo(v));
    return new ProtoWriter()
      .int(1, 8)
      .string(2, 'hyperfeatures')
      .message(7, graph)
      .message(8, new ProtoWriter().string(1, '').int(2, OPSET))
      .message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1));
  }
}

function nodeProto(n: NodeRecord): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.outputs[0]).string(4, n.op);
  for (const [name, v] of Object.entries(n.attrs)) w.message(5, attrProto(name, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function attrProto(name: string, v: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof v === 'number') return a.int(3, v).int(20, 2);
  if (typeof v === 'string') return a.string(4, v).int(20, 3);
  if (Array.isArray(v)) return a.packedInts(8, v).int(20, 7);
  if ('float' in v) return a.float(2, v.float).int(20, 1);
  return a.packedFloats(7, v.floats).int(20, 6);
}

function valueInfo(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape)
    shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().int(1, DATA_TYPES[v.dtype]).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}
