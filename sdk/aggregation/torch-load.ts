/**
 * Read `torch.save` files without Python and without executing anything: a zip holding a
 * pickled object graph plus raw tensor storages. The unpickler implements only the opcodes
 * torch's state dicts use and a fixed allow-list of globals (OrderedDict, the tensor and
 * parameter rebuild functions, storage types); any other global or opcode is refused.
 */
import { DataError } from '../core/errors.ts';
import { ZipArchive } from '../core/zip.ts';
import { halfToFloat, bf16ToFloat } from '../core/half.ts';
import { decodeNumpyValues } from '../data/npy.ts';

/** A tensor from a checkpoint: float dtypes become Float32Array, integer ones BigInt64Array. */
export interface TorchTensor {
  dtype: string;
  shape: number[];
  data: Float32Array | BigInt64Array;
}

const STORAGES: Record<string, { dtype: string; bytes: number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

class Global {
  constructor(readonly name: string) {}
}
class Tuple extends Array<unknown> {}
interface StorageRef {
  key: string;
  dtype: string;
  bytes: number;
}

const MARK = Symbol('mark');

type Callable = (args: unknown[]) => unknown;

/** A numpy dtype from a pickle: its code (e.g. "f4") and byte order once its state is set. */
export class NumpyDtype {
  order = '<';
  constructor(readonly code: string) {}
  setState(state: unknown): void {
    if (Array.isArray(state) && typeof state[1] === 'string') this.order = state[1];
  }
}

/** A numpy ndarray from a pickle (numpy.core.multiarray._reconstruct + BUILD state), as float64. */
export class NumpyArray {
  shape: number[] = [];
  data: Float64Array = new Float64Array(0);
  setState(state: unknown): void {
    const [, shape, dtype, fortran, raw] = (Array.isArray(state) ? state : []) as unknown[];
    if (!Array.isArray(shape) || !(dtype instanceof NumpyDtype) || !Buffer.isBuffer(raw))
      throw new DataError('numpy array: unsupported pickled state (expected shape, dtype and raw bytes)');
    if (fortran) throw new DataError('numpy array: Fortran-ordered arrays are not supported');
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    this.data = decodeNumpyValues(
      raw,
      0,
      `${dtype.order}${dtype.code.replace(/^[<>|=]/, '')}`,
      n,
      'numpy array',
    );
    this.shape = shape as number[];
  }
}

function allowedGlobal(
  module: string,
  name: string,
  file: string,
  loadStorage: (s: StorageRef) => Buffer,
): Global | Callable {
  const full = `${module}.${name}`;
  if (module === 'collections' && name === 'OrderedDict') return () => new Map();
  if (module === 'torch' && name in STORAGES) return new Global(name);
  if (full === 'torch._utils._rebuild_tensor_v2') {
    return (a) =>
      rebuildTensor(a[0] as StorageRef, a[1] as number, a[2] as number[], a[3] as number[], loadStorage);
  }
  if (full === 'torch._utils._rebuild_parameter') return (a) => a[0];
  if (full === '_codecs.encode') return (a) => Buffer.from(String(a[0]), 'latin1');
  // numpy arrays (e.g. OASIS's normal annotations): data only, rebuilt from their pickled state
  if (full === 'numpy.core.multiarray._reconstruct' || full === 'numpy._core.multiarray._reconstruct')
    return () => new NumpyArray();
  if (full === 'numpy.ndarray') return new Global(full);
  if (full === 'numpy.dtype') return (a) => new NumpyDtype(String(a[0]));
  throw new DataError(
    `${file}: refusing pickle global "${full}": only collections.OrderedDict, torch storages, torch._utils._rebuild_tensor_v2/_rebuild_parameter and numpy arrays are allowed (nothing from the file is executed)`,
  );
}

function rebuildTensor(
  s: StorageRef,
  offset: number,
  shape: number[],
  stride: number[],
  load: (s: StorageRef) => Buffer,
): TorchTensor {
  const bad = (why: string): never => {
    throw new DataError(`storage ${s.key}: ${why}`);
  };
  const isDims = (v: unknown, what: string) =>
    Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0)
      ? (v as number[])
      : bad(`${what} must be non-negative integers, got ${JSON.stringify(v)?.slice(0, 60)}`);
  isDims(shape, 'shape');
  isDims(stride, 'strides');
  if (stride.length !== shape.length) bad(`${shape.length} dims but ${stride.length} strides`);
  if (!Number.isInteger(offset) || offset < 0) bad(`storage offset ${offset} is not a non-negative integer`);
  const raw = load(s);
  const n = shape.reduce((a, b) => a * b, 1);
  // checked against the storage BEFORE allocating: a huge or lying shape cannot exhaust memory
  const maxIndex0 = offset + shape.reduce((a, d, k) => a + Math.max(d - 1, 0) * stride[k], 0);
  if (n > 0 && (maxIndex0 + 1) * s.bytes > raw.length)
    bad(`holds ${raw.length / s.bytes} values, the tensor [${shape.join(', ')}] needs ${maxIndex0 + 1}`);
  // zero strides repeat values; a shape that would expand a small storage absurdly is refused
  if (n > 2 ** 31 || n > Math.max(raw.length / s.bytes, 1) * 1024)
    bad(`tensor [${shape.join(', ')}] has ${n} values from a storage of ${raw.length / s.bytes}`);
  const isInt = s.dtype.startsWith('int') || s.dtype === 'uint8' || s.dtype === 'bool';
  const data = isInt ? new BigInt64Array(n) : new Float32Array(n);
  const read = (i: number): number | bigint => {
    const b = i * s.bytes;
    switch (s.dtype) {
      case 'float32':
        return raw.readFloatLE(b);
      case 'float16':
        return halfToFloat(raw.readUInt16LE(b));
      case 'bfloat16':
        return bf16ToFloat(raw.readUInt16LE(b));
      case 'float64':
        return raw.readDoubleLE(b);
      case 'int64':
        return raw.readBigInt64LE(b);
      case 'int32':
        return BigInt(raw.readInt32LE(b));
      case 'int16':
        return BigInt(raw.readInt16LE(b));
      case 'int8':
        return BigInt(raw.readInt8(b));
      default:
        return BigInt(raw.readUInt8(b));
    }
  };
  const idx = new Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let src = offset;
    for (let k = 0; k < shape.length; k++) src += idx[k] * stride[k];
    (data as { [i: number]: number | bigint })[i] = read(src);
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return { dtype: s.dtype, shape: [...shape], data };
}

/** Unpickle `data` (protocol 2-5 subset). */
export function unpickle(data: Buffer, file: string, loadStorage: (s: StorageRef) => Buffer): unknown {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (why: string): never => {
    throw new DataError(`${file}: unsupported or corrupt pickle at byte ${p}: ${why}`);
  };
  const need = (n: number) => (p + n <= data.length ? undefined : fail('unexpected end of data (truncated)'));
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('MARK expected');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const readLine = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) fail('unterminated line');
    const s = data.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const setItems = (target: unknown, kv: unknown[]) => {
    if (!(target instanceof Map)) fail('SETITEM(S) on a non-dict');
    for (let i = 0; i < kv.length; i += 2) (target as Map<unknown, unknown>).set(kv[i], kv[i + 1]);
  };
  const call = (f: unknown, args: unknown) => {
    if (typeof f !== 'function')
      fail(`REDUCE of a non-callable (${f instanceof Global ? f.name : typeof f})`);
    return (f as Callable)(args as unknown[]);
  };
  for (;;) {
    need(1);
    const op = data[p++];
    switch (op) {
      case 0x80:
        need(1);
        p++;
        break; // PROTO
      case 0x95:
        need(8);
        p += 8;
        break; // FRAME
      case 0x2e:
        return stack.pop(); // STOP
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push(new Tuple());
        break; // EMPTY_TUPLE
      case 0x28:
        stack.push(MARK);
        break; // MARK
      case 0x71:
        need(1);
        memo.set(data[p++], stack[stack.length - 1]);
        break; // BINPUT
      case 0x72:
        need(4);
        memo.set(data.readUInt32LE(p), stack[stack.length - 1]);
        p += 4;
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, stack[stack.length - 1]);
        break; // MEMOIZE
      case 0x68:
        need(1);
        stack.push(memo.get(data[p++]));
        break; // BINGET
      case 0x6a:
        need(4);
        stack.push(memo.get(data.readUInt32LE(p)));
        p += 4;
        break; // LONG_BINGET
      case 0x4a:
        need(4);
        stack.push(data.readInt32LE(p));
        p += 4;
        break; // BININT
      case 0x4b:
        need(1);
        stack.push(data[p++]);
        break; // BININT1
      case 0x4d:
        need(2);
        stack.push(data.readUInt16LE(p));
        p += 2;
        break; // BININT2
      case 0x8a: {
        need(1);
        const n = data[p++];
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]);
        if (n && data[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      } // LONG1
      case 0x47:
        need(8);
        stack.push(data.readDoubleBE(p));
        p += 8;
        break; // BINFLOAT
      case 0x58: {
        need(4);
        const n = data.readUInt32LE(p);
        p += 4;
        need(n);
        stack.push(data.toString('utf8', p, p + n));
        p += n;
        break;
      } // BINUNICODE
      case 0x8c: {
        need(1);
        const n = data[p++];
        need(n);
        stack.push(data.toString('utf8', p, p + n));
        p += n;
        break;
      } // SHORT_BINUNICODE
      case 0x54:
      case 0x42: {
        need(4);
        const n = data.readUInt32LE(p);
        p += 4;
        need(n);
        stack.push(op === 0x54 ? data.toString('latin1', p, p + n) : Buffer.from(data.subarray(p, p + n)));
        p += n;
        break;
      } // BINSTRING, BINBYTES
      case 0x55:
      case 0x43: {
        need(1);
        const n = data[p++];
        need(n);
        stack.push(op === 0x55 ? data.toString('latin1', p, p + n) : Buffer.from(data.subarray(p, p + n)));
        p += n;
        break;
      } // SHORT_BINSTRING, SHORT_BINBYTES
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x61: {
        const v = stack.pop();
        (stack[stack.length - 1] as unknown[]).push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const list = stack[stack.length - 1];
        if (!Array.isArray(list)) fail('APPENDS to a non-list');
        (list as unknown[]).push(...items);
        break;
      } // APPENDS
      case 0x73: {
        const v = stack.pop();
        const k = stack.pop();
        setItems(stack[stack.length - 1], [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const kv = popMark();
        setItems(stack[stack.length - 1], kv);
        break;
      } // SETITEMS
      case 0x74:
        stack.push(Tuple.from(popMark()));
        break; // TUPLE
      case 0x85:
        stack.push(Tuple.from(stack.splice(-1)));
        break; // TUPLE1
      case 0x86:
        stack.push(Tuple.from(stack.splice(-2)));
        break; // TUPLE2
      case 0x87:
        stack.push(Tuple.from(stack.splice(-3)));
        break; // TUPLE3
      case 0x63: {
        const module = readLine();
        const name = readLine();
        stack.push(allowedGlobal(module, name, file, loadStorage));
        break;
      } // GLOBAL
      case 0x93: {
        const name = stack.pop() as string;
        const module = stack.pop() as string;
        stack.push(allowedGlobal(module, name, file, loadStorage));
        break;
      } // STACK_GLOBAL
      case 0x52: {
        const args = stack.pop();
        const f = stack.pop();
        stack.push(call(f, args));
        break;
      } // REDUCE
      case 0x81: {
        const args = stack.pop();
        const cls = stack.pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ
      case 0x62: {
        // BUILD: numpy arrays and dtypes take their state; other state (a state dict's _metadata) is not needed
        const state = stack.pop();
        const target = stack[stack.length - 1];
        if (target instanceof NumpyArray || target instanceof NumpyDtype) target.setState(state);
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', StorageType, key, location, numel)
        const pid = stack.pop() as unknown[];
        const type = pid?.[1];
        if (
          !Array.isArray(pid) ||
          pid[0] !== 'storage' ||
          !(type instanceof Global) ||
          !(type.name in STORAGES)
        )
          fail('unknown persistent id');
        const info = STORAGES[(type as Global).name];
        stack.push({ key: String(pid[2]), dtype: info.dtype, bytes: info.bytes } satisfies StorageRef);
        break;
      }
      case 0x30:
        stack.pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(stack[stack.length - 1]);
        break; // DUP
      default:
        fail(`opcode 0x${op.toString(16)} is not in the supported subset`);
    }
  }
}

/**
 * Load a `torch.save` zip. Returns the unpickled object with dicts as Maps, tuples and lists
 * as arrays and tensors as TorchTensor.
 * @throws DataError for truncated zips, disallowed globals and unsupported opcodes.
 */
export function torchLoad(path: string): unknown {
  try {
    return torchLoadUnchecked(path);
  } catch (e) {
    if (e instanceof DataError)
      throw e.message.startsWith(path) ? e : new DataError(`${path}: ${e.message}`, { cause: e });
    // anything else (a RangeError from a lying length, a zlib error) is still a bad file
    throw new DataError(`${path}: not a readable torch.save file (${(e as Error).message})`, { cause: e });
  }
}

function torchLoadUnchecked(path: string): unknown {
  const zip = ZipArchive.open(path);
  const pkl = zip.names().find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl)
    throw new DataError(
      `${path}: no data.pkl in the archive; is this a torch.save file (PyTorch >= 1.6 zip format)?`,
    );
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const cache = new Map<string, Buffer>();
  const loadStorage = (s: StorageRef) => {
    if (!cache.has(s.key)) cache.set(s.key, zip.read(`${prefix}data/${s.key}`));
    return cache.get(s.key)!;
  };
  return unpickle(zip.read(pkl), path, loadStorage);
}

export function isTorchTensor(x: unknown): x is TorchTensor {
  return typeof x === 'object' && x !== null && 'dtype' in x && 'shape' in x && 'data' in x;
}

/** Python-style dict (Map) -> plain object, recursively (for configs). */
export function toPlain(x: unknown): unknown {
  if (x instanceof Map) return Object.fromEntries([...x].map(([k, v]) => [String(k), toPlain(v)]));
  if (Array.isArray(x)) return x.map(toPlain);
  return x;
}
