/**
 * Weights of one model component, read lazily from its safetensors file(s). The graph
 * builders ask for parameters by name with the shape the config implies; every missing or
 * mismatched tensor is collected, and `check()` reports them all at once before anything
 * is built or loaded.
 */
import { ModelError } from '../core/errors.ts';
import { fmtShape } from '../core/messages.ts';
import { SafetensorsReader, FLOAT_DTYPES } from '../core/safetensors.ts';
import { log } from '../core/logger.ts';
import { shapeSize } from '../core/tensor.ts';
import { floatToHalf } from '../core/half.ts';
import { int8Scales, int8Weights } from './quantize.ts';
import type { GraphBuilder } from './onnx/graph.ts';

export interface ParamOptions {
  /** Store as [in, out] (the transpose of a PyTorch Linear weight) for MatMul. */
  transpose?: boolean;
  /** Reshape after loading (e.g. a bias to [C, 1, 1]); the stored shape is still checked. */
  reshape?: number[];
  /**
   * A Linear weight [out, in] for DynamicQuantizeMatMul: "weight" gives the int8 B [in, out],
   * "scale" its per-output-channel float scales [out] (see quantize.ts).
   */
  int8?: 'weight' | 'scale';
}

/** What graph builders need from weights: real files (WeightStore) or a shape recorder. */
export interface WeightSource {
  has(name: string): boolean;
  param(g: GraphBuilder, name: string, expected: readonly number[], options?: ParamOptions): string;
}

export class WeightStore implements WeightSource {
  readonly files: readonly string[];
  private readonly readers: SafetensorsReader[];
  private readonly index = new Map<string, SafetensorsReader>();
  private readonly problems: string[] = [];
  private readonly used = new Set<string>();
  /** int8 Linear weights between their two initializers' writes: one read serves both. */
  private readonly int8Pending = new Map<string, Promise<{ weight: Int8Array; scale: Float32Array }>>();
  /** Store weights as float16 in the graph (half the file and device memory), cast to fp32 on use. */
  weightDtype: 'float' | 'float16' = 'float';

  private constructor(files: string[], readers: SafetensorsReader[]) {
    this.files = files;
    this.readers = readers;
    for (const r of readers) for (const n of r.names()) this.index.set(n, r);
  }

  static async open(files: string[]): Promise<WeightStore> {
    const readers: SafetensorsReader[] = [];
    try {
      for (const f of files) readers.push(await SafetensorsReader.open(f));
    } catch (e) {
      await Promise.all(readers.map((r) => r.close()));
      throw e;
    }
    return new WeightStore(files, readers);
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  shape(name: string): number[] | undefined {
    return this.index.get(name)?.info(name).shape;
  }

  /**
   * Add weight `name` to the graph as an initializer (read when the graph is written).
   * Shape mismatches and missing names are recorded, not thrown, so all are reported together.
   */
  param(g: GraphBuilder, name: string, expected: readonly number[], options: ParamOptions = {}): string {
    const reader = this.index.get(name);
    this.used.add(name);
    const info = reader?.info(name);
    let ok = true;
    if (!reader || !info) {
      this.problems.push(`missing weight "${name}" (expected shape ${fmtShape(expected)})`);
      ok = false;
    } else if (!(FLOAT_DTYPES as readonly string[]).includes(info.dtype)) {
      this.problems.push(
        `weight "${name}" has dtype ${info.dtype}, expected one of ${FLOAT_DTYPES.join(', ')}`,
      );
      ok = false;
    } else if (!sameShape(info.shape, expected)) {
      this.problems.push(
        `weight "${name}" has shape ${fmtShape(info.shape)}, the config implies ${fmtShape(expected)}`,
      );
      ok = false;
    }
    if (options.int8) {
      const [out, inDim] = expected;
      const part = options.int8;
      const weight = part === 'weight';
      const dims = weight ? [inDim, out] : [out];
      return g.initializer(
        g.fresh(name),
        dims,
        weight ? 'int8' : 'float',
        weight ? out * inDim : out * 4,
        async () => {
          if (!ok || !reader) throw new ModelError(`weight "${name}" is not usable`);
          // linear() asks for both parts: the first write reads and quantizes, the second takes the rest
          let pending = this.int8Pending.get(name);
          if (pending) this.int8Pending.delete(name);
          else {
            pending = reader.read(name).then(({ data }) => {
              const scale = int8Scales(data, out, inDim);
              return { scale, weight: int8Weights(data, out, inDim, scale) };
            });
            this.int8Pending.set(name, pending);
          }
          const q = (await pending)[part];
          return new Uint8Array(q.buffer, q.byteOffset, q.byteLength);
        },
      );
    }
    const dims = options.reshape ?? (options.transpose ? [expected[1], expected[0]] : [...expected]);
    const half = this.weightDtype === 'float16';
    const byteLength = shapeSize(dims) * (half ? 2 : 4);
    const init = g.initializer(g.fresh(name), dims, this.weightDtype, byteLength, async () => {
      if (!ok || !reader) throw new ModelError(`weight "${name}" is not usable`);
      const t = await reader.read(name);
      const data = options.transpose ? transpose2d(t.data, expected[0], expected[1]) : t.data;
      if (half) return new Uint8Array(Uint16Array.from(data, floatToHalf).buffer);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    });
    return half ? g.op('Cast', [init], { to: 1 }) : init;
  }

  /** Record a problem found by a builder (e.g. an unsupported layout). */
  problem(message: string): void {
    this.problems.push(message);
  }

  /**
   * Throw one ModelError listing every problem; warn about weights nothing used.
   * @throws ModelError
   */
  check(component: string, ignoreUnused: RegExp = /$^/): void {
    if (this.problems.length) {
      const shown = this.problems.slice(0, 20);
      const more =
        this.problems.length > shown.length ? `\n  ... and ${this.problems.length - shown.length} more` : '';
      throw new ModelError(
        `${component} weights (${this.files.join(', ')}) do not match its config:\n  ${shown.join('\n  ')}${more}`,
      );
    }
    const unused = [...this.index.keys()].filter((n) => !this.used.has(n) && !ignoreUnused.test(n));
    if (unused.length)
      log().warn(
        `${component}: ${unused.length} weights unused by the graph: ${unused.slice(0, 5).join(', ')}`,
      );
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.close()));
  }
}

/** A 4D conv weight [C, C, 1, 1] counts as the [C, C] linear weight it is. */
function sameShape(got: readonly number[], want: readonly number[]): boolean {
  const squeeze = (s: readonly number[]) =>
    s.length === 4 && s[2] === 1 && s[3] === 1 && want.length === 2 ? s.slice(0, 2) : s;
  const g = squeeze(got);
  return g.length === want.length && g.every((d, i) => d === want[i]);
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
