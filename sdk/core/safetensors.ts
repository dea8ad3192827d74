/**
 * safetensors: 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}`, then the data.
 * The reader parses and validates the header once and reads tensors one at a time, so a
 * 3 GB UNet never sits in memory twice.
 */
import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { DataError } from './errors.ts';
import { messages } from './messages.ts';
import { Tensor, shapeSize } from './tensor.ts';
import { bf16ToFloat, halfToFloat, floatToHalf } from './half.ts';
import { notARegularFile, writeFileAtomic, writeFileAtomicStreaming } from './fs.ts';

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
/** Dtypes `read()` converts to float32. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export class SafetensorsReader {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly entries: Map<string, TensorInfo>;
  private handle: FileHandle | undefined;

  private constructor(
    path: string,
    handle: FileHandle,
    entries: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.handle = handle;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Open and validate the header. @throws DataError naming the file and the problem. */
  static async open(path: string): Promise<SafetensorsReader> {
    // a folder or a FIFO must not reach open(): the read fails with a trace, or blocks forever
    const problem = notARegularFile(path);
    if (problem && problem.kind !== 'missing')
      throw new DataError(`${path}: not a safetensors file: ${problem.why}`);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      throw new DataError(messages.fileNotFound(path, 'safetensors file'), { cause: e });
    }
    try {
      const { size } = await stat(path);
      const { entries, metadata } = await readHeader(path, handle, size);
      return new SafetensorsReader(path, handle, entries, metadata);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** @throws DataError if the tensor is absent. */
  info(name: string): TensorInfo {
    const info = this.entries.get(name);
    if (!info) throw new DataError(messages.safetensorsMissing(this.path, name, this.names()));
    return info;
  }

  /** The tensor's raw bytes. */
  async readBytes(name: string): Promise<Buffer> {
    const info = this.info(name);
    if (!this.handle) throw new DataError(`${this.path}: reader is closed`);
    const buf = Buffer.allocUnsafe(info.byteLength);
    let done = 0;
    while (done < info.byteLength) {
      const { bytesRead } = await this.handle.read(buf, done, info.byteLength - done, info.offset + done);
      if (bytesRead === 0)
        throw new DataError(
          messages.fileTooShort(
            this.path,
            `tensor "${name}"`,
            info.offset + info.byteLength,
            info.offset + done,
          ),
        );
      done += bytesRead;
    }
    return buf;
  }

  /** A float tensor (F32, F16 or BF16) as float32. @throws DataError for other dtypes. */
  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    if (!(FLOAT_DTYPES as readonly string[]).includes(info.dtype)) {
      throw new DataError(messages.safetensorsDtype(this.path, name, info.dtype, FLOAT_DTYPES));
    }
    return new Tensor(decodeFloat(await this.readBytes(name), info.dtype), info.shape);
  }

  /** An I64 tensor as BigInt64Array. @throws DataError for other dtypes. */
  async readInt64(name: string): Promise<{ data: BigInt64Array; shape: number[] }> {
    const info = this.info(name);
    if (info.dtype !== 'I64')
      throw new DataError(messages.safetensorsDtype(this.path, name, info.dtype, ['I64']));
    const bytes = await this.readBytes(name);
    const data = new BigInt64Array(info.byteLength / 8);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readBigInt64LE(i * 8);
    return { data, shape: info.shape };
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

async function readHeader(path: string, handle: FileHandle, size: number) {
  const bad = (problem: string) => new DataError(messages.safetensorsHeader(path, problem));
  if (size < 8) throw new DataError(messages.fileTooShort(path, 'safetensors header length', 8, size));
  const lenBuf = Buffer.alloc(8);
  await handle.read(lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER_BYTES) throw bad(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`);
  if (8 + headerLen > size)
    throw new DataError(messages.fileTooShort(path, 'safetensors header', 8 + headerLen, size));
  const headerBuf = Buffer.alloc(headerLen);
  await handle.read(headerBuf, 0, headerLen, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw bad('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const entries = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    entries.set(name, parseEntry(path, name, raw, dataStart, size));
  }
  return { entries, metadata };
}

function parseEntry(path: string, name: string, raw: unknown, dataStart: number, size: number): TensorInfo {
  const bad = (problem: string) =>
    new DataError(messages.safetensorsHeader(path, `tensor "${name}": ${problem}`));
  const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e !== 'object' || e === null) throw bad('entry is not an object');
  if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) {
    throw bad(`unknown dtype ${JSON.stringify(e.dtype)}; known: ${Object.keys(DTYPE_BYTES).join(', ')}`);
  }
  const dtype = e.dtype as SafetensorsDtype;
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
    throw bad('shape is not a list of non-negative integers');
  const offsets = e.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((d) => Number.isInteger(d) && d >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw bad('data_offsets is not [begin, end]');
  }
  const byteLength = offsets[1] - offsets[0];
  const expected = shapeSize(e.shape) * DTYPE_BYTES[dtype];
  if (byteLength !== expected)
    throw bad(
      `shape [${e.shape.join(', ')}] of ${dtype} needs ${expected} bytes, data_offsets span ${byteLength}`,
    );
  if (dataStart + offsets[1] > size) {
    throw new DataError(messages.fileTooShort(path, `tensor "${name}"`, dataStart + offsets[1], size));
  }
  return { dtype, shape: e.shape as number[], offset: dataStart + offsets[0], byteLength };
}

function decodeFloat(bytes: Buffer, dtype: SafetensorsDtype): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const out = new Float32Array(bytes.byteLength / 2);
  const convert = dtype === 'F16' ? halfToFloat : bf16ToFloat;
  for (let i = 0; i < out.length; i++) out[i] = convert(bytes.readUInt16LE(i * 2));
  return out;
}

/** What `writeSafetensors` accepts per tensor: a float32 Tensor or raw typed data. */
export type WritableTensor =
  | Tensor
  | { dtype: 'I64'; data: BigInt64Array; shape: readonly number[] }
  | { dtype: 'F16'; data: Uint16Array; shape: readonly number[] };

/** Write tensors (+ string metadata) atomically. Keys are written in sorted order. */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    const [dtype, data] = t instanceof Tensor ? (['F32', t.data] as const) : ([t.dtype, t.data] as const);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // the format pads the header with spaces to a multiple of 8 bytes
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.byteLength % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  await writeFileAtomic(path, [len, headerBytes, ...chunks]);
}

/** Read every float tensor of a file (small files: references, feature stacks). */
export async function readAllSafetensors(
  path: string,
): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string>; dtypes: Map<string, string> }> {
  const reader = await SafetensorsReader.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    const dtypes = new Map<string, string>();
    for (const name of reader.names()) {
      dtypes.set(name, reader.info(name).dtype);
      if ((FLOAT_DTYPES as readonly string[]).includes(reader.info(name).dtype))
        tensors.set(name, await reader.read(name));
    }
    return { tensors, metadata: { ...reader.metadata }, dtypes };
  } finally {
    await reader.close();
  }
}

/** A tensor produced on demand, so large files are written one tensor at a time. */
export interface LazyTensor {
  shape: readonly number[];
  values: () => Float32Array;
}

/**
 * Stream tensors to `path` as F32 or F16 (round to nearest even), atomically: each tensor
 * is produced, written and dropped before the next. Keys are written in sorted order.
 */
export async function writeSafetensorsStreaming(
  path: string,
  entries: ReadonlyMap<string, LazyTensor>,
  options: { dtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {},
): Promise<void> {
  const dtype = options.dtype ?? 'F32';
  const bytesPer = DTYPE_BYTES[dtype];
  const names = [...entries.keys()].sort();
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const name of names) {
    const size = shapeSize(entries.get(name)!.shape) * bytesPer;
    header[name] = { dtype, shape: [...entries.get(name)!.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.byteLength % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  await writeFileAtomicStreaming(path, async (write) => {
    await write(len);
    await write(headerBytes);
    for (const name of names) {
      const values = entries.get(name)!.values();
      await write(
        dtype === 'F32'
          ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
          : toHalfBytes(values),
      );
    }
  });
}

function toHalfBytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
  return new Uint8Array(out.buffer);
}

/** sha256 of a safetensors file's data section (everything after the header), streamed. */
export async function safetensorsDataSha256(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const start = 8 + Number(len.readBigUInt64LE());
    const h = createHash('sha256');
    const chunk = Buffer.alloc(4 << 20);
    for (let pos = start; ;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
      if (!bytesRead) break;
      h.update(chunk.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return h.digest('hex');
  } finally {
    await fh.close();
  }
}
