import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, writeSafetensors, readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { DataError } from '../../sdk/core/errors.ts';
import { REFERENCE, rejectsWith, tempDir } from '../helpers.ts';

function rawFile(header: object, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('core/safetensors', () => {
  const dir = tempDir();

  it('round-trips F32, F16 and I64 tensors with metadata, atomically', async () => {
    const path = join(dir, 'a.safetensors');
    const t = Tensor.from([1, -2, 3.5, 0.25, 1e-3, 7], [2, 3]);
    await writeSafetensors(
      path,
      {
        x: t,
        ids: { dtype: 'I64', data: BigInt64Array.from([49406n, -1n]), shape: [2] },
        h: { dtype: 'F16', data: Uint16Array.from([0x3c00, 0xc000]), shape: [2] },
      },
      { model: 'tiny' },
    );
    assert.deepEqual(readdirSync(dir), ['a.safetensors']); // no temp file left behind
    const r = await SafetensorsReader.open(path);
    assert.deepEqual(r.names().sort(), ['h', 'ids', 'x']);
    assert.equal(r.metadata.model, 'tiny');
    assert.deepEqual([...(await r.read('x')).data], [...t.data]);
    assert.deepEqual([...(await r.read('h')).data], [1, -2]);
    assert.deepEqual([...(await r.readInt64('ids')).data], [49406n, -1n]);
    await r.close();
    // the header is padded to a multiple of 8 bytes, as the format requires
    assert.equal(Number(readFileSync(path).readBigUInt64LE(0)) % 8, 0);
  });

  it('converts BF16 to float32', async () => {
    const path = join(dir, 'bf.safetensors');
    const data = Buffer.alloc(4);
    data.writeUInt16LE(0x3f80, 0);
    data.writeUInt16LE(0xc040, 2);
    writeFileSync(path, rawFile({ b: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, data));
    const { tensors } = await readAllSafetensors(path);
    assert.deepEqual([...tensors.get('b')!.data], [1, -3]);
  });

  it('reads a reference checkpoint lazily by tensor', async () => {
    const r = await SafetensorsReader.open(
      join(REFERENCE, 'tiny-sd15/unet/diffusion_pytorch_model.safetensors'),
    );
    const w = await r.read('conv_in.weight');
    assert.deepEqual([...w.shape], [32, 4, 3, 3]);
    assert.ok(w.data.some((v) => v !== 0));
    await r.close();
  });

  it('names the file and the problem for truncated and malformed files', async () => {
    const good = rawFile({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(16));
    const cases: [string, Buffer, RegExp][] = [
      ['short.safetensors', good.subarray(0, 5), /truncated safetensors header length/],
      [
        'trunc.safetensors',
        good.subarray(0, good.length - 4),
        /truncated tensor "x": needs \d+ bytes but the file has \d+/,
      ],
      [
        'claims.safetensors',
        Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), good.subarray(8)]),
        /truncated safetensors header/,
      ],
      ['json.safetensors', rawFile({}, new Uint8Array()).fill(0x7b, 8), /header is not JSON/],
      [
        'dtype.safetensors',
        rawFile({ x: { dtype: 'F99', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /unknown dtype "F99"/,
      ],
      [
        'span.safetensors',
        rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16)),
        /needs 12 bytes, data_offsets span 16/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      const e = await rejectsWith(SafetensorsReader.open(path), DataError);
      assert.ok(e.message.startsWith(path), e.message);
      assert.match(e.message, pattern);
    }
    await rejectsWith(SafetensorsReader.open(join(dir, 'absent.safetensors')), DataError);
  });

  it('refuses to read a tensor as the wrong dtype, and names missing tensors', async () => {
    const path = join(dir, 'ids.safetensors');
    await writeSafetensors(path, {
      ids: { dtype: 'I64', data: BigInt64Array.from([1n]), shape: [1] },
      x: Tensor.zeros([1]),
    });
    const r = await SafetensorsReader.open(path);
    await rejectsWith(r.read('ids'), DataError).then((e) =>
      assert.match(e.message, /"ids" has dtype I64; supported: F32, F16, BF16/),
    );
    await rejectsWith(r.readInt64('x'), DataError);
    await rejectsWith(r.read('nope'), DataError).then((e) => assert.match(e.message, /no tensor "nope"/));
    await r.close();
  });
});
