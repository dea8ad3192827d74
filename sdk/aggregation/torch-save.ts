/**
 * Write a network in the authors' release layout, a `torch.save` file:
 * {"step", "config", "aggregation_network": OrderedDict of tensors, "optimizer_state_dict"} as
 * PyTorch's zip format (archive/data.pkl pickled with protocol 2, one raw little-endian storage
 * per tensor under archive/data/, archive/version), stored uncompressed with CRCs.
 */
import { writeFileAtomic } from '../core/fs.ts';
import { zipEntries } from '../core/zip.ts';
import type { Tensor } from '../core/tensor.ts';

class TorchTensorRef {
  constructor(readonly t: Tensor) {}
}
class OrderedDict {
  constructor(readonly entries: [string, unknown][]) {}
}
type Value =
  null | boolean | number | string | Value[] | { [k: string]: Value } | TorchTensorRef | OrderedDict;

export const torchTensor = (t: Tensor) => new TorchTensorRef(t);
export const orderedDict = (entries: [string, unknown][]) => new OrderedDict(entries);

class Pickler {
  private out: Buffer[] = [];
  storages: Tensor[] = [];
  private b(...bytes: number[]) {
    this.out.push(Buffer.from(bytes));
  }
  private str(s: string) {
    const bytes = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(bytes.length);
    this.out.push(Buffer.from([0x58]), len, bytes); // BINUNICODE
  }
  private int(v: number) {
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      const x = Buffer.alloc(5);
      x[0] = 0x4a; // BININT
      x.writeInt32LE(v, 1);
      this.out.push(x);
    } else {
      const x = Buffer.alloc(10);
      x[0] = 0x8a; // LONG1, 8 bytes
      x[1] = 8;
      x.writeBigInt64LE(BigInt(v), 2);
      this.out.push(x);
    }
  }
  private global(module: string, name: string) {
    this.out.push(Buffer.from(`c${module}\n${name}\n`));
  }
  value(v: Value | unknown): void {
    if (v === null || v === undefined) return this.b(0x4e); // NONE
    if (v === true) return this.b(0x88);
    if (v === false) return this.b(0x89);
    if (typeof v === 'number') {
      if (Number.isInteger(v)) return this.int(v);
      const x = Buffer.alloc(9);
      x[0] = 0x47; // BINFLOAT (big-endian double)
      x.writeDoubleBE(v, 1);
      this.out.push(x);
      return;
    }
    if (typeof v === 'string') return this.str(v);
    if (Array.isArray(v)) {
      this.b(0x5d, 0x28); // EMPTY_LIST, MARK
      for (const x of v) this.value(x);
      return this.b(0x65); // APPENDS
    }
    if (v instanceof OrderedDict) {
      this.global('collections', 'OrderedDict');
      this.b(0x29, 0x52, 0x28); // EMPTY_TUPLE, REDUCE, MARK
      for (const [k, x] of v.entries) {
        this.str(k);
        this.value(x);
      }
      return this.b(0x75); // SETITEMS
    }
    if (v instanceof TorchTensorRef) {
      const key = String(this.storages.length);
      this.storages.push(v.t);
      const shape = [...v.t.shape];
      const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      this.global('torch._utils', '_rebuild_tensor_v2');
      this.b(0x28); // MARK (args)
      this.b(0x28); // MARK (persistent id)
      this.str('storage');
      this.global('torch', 'FloatStorage');
      this.str(key);
      this.str('cpu');
      this.int(v.t.size);
      this.b(0x74, 0x51); // TUPLE, BINPERSID
      this.int(0);
      this.b(0x28);
      for (const d of shape) this.int(d);
      this.b(0x74);
      this.b(0x28);
      for (const s of stride) this.int(s);
      this.b(0x74);
      this.b(0x89); // requires_grad False
      this.global('collections', 'OrderedDict');
      this.b(0x29, 0x52); // backward hooks: OrderedDict()
      return this.b(0x74, 0x52); // TUPLE, REDUCE
    }
    this.b(0x7d, 0x28); // EMPTY_DICT, MARK
    const items = v instanceof Map ? [...v] : Object.entries(v as Record<string, unknown>);
    for (const [k, x] of items) {
      this.value(k); // string or (Map) integer keys, as torch's optimizer state uses
      this.value(x);
    }
    this.b(0x75);
  }
  finish(): Buffer {
    return Buffer.concat([Buffer.from([0x80, 0x02]), ...this.out, Buffer.from([0x2e])]);
  }
}

/** `torch.save(obj)` of plain values, dicts, lists, OrderedDicts and float32 tensors, atomically. */
export async function torchSave(path: string, obj: unknown): Promise<void> {
  const p = new Pickler();
  p.value(obj);
  const pkl = p.finish();
  const entries = [
    { name: 'archive/data.pkl', data: pkl },
    ...p.storages.map((t, i) => ({
      name: `archive/data/${i}`,
      data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    })),
    { name: 'archive/version', data: Buffer.from('3\n') },
  ];
  await writeFileAtomic(path, zipEntries(entries, { align: 64 })); // aligned records, as torch mmaps them
}
