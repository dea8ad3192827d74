import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureLogs } from '../../sdk/core/logger.ts';
import { availableParallelism } from 'node:os';
import { Session, defaultThreads, deviceStatus, executionProviders } from '../../sdk/model/runtime.ts';
import { GraphBuilder } from '../../sdk/model/onnx/graph.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { ConfigError, DeviceError } from '../../sdk/core/errors.ts';
import { rejectsWith, tempDir } from '../helpers.ts';

function affineGraph(): GraphBuilder {
  // y = x @ W * 0.5 with a 64x64 W, large enough to go to external data
  const g = new GraphBuilder();
  const x = g.input('x', ['B', 64]);
  const w = g.constFloat(
    Array.from({ length: 64 * 64 }, (_, i) => (i % 65 === 0 ? 2 : 0)),
    [64, 64],
  );
  g.output('y', g.op('Mul', [g.op('MatMul', [x, w]), g.constFloat([0.5], [])]), ['B', 64]);
  return g;
}

describe('model/runtime', () => {
  it('maps devices to execution providers and rejects unknown ones with the valid list', () => {
    assert.deepEqual(executionProviders('cpu'), ['cpu']);
    assert.throws(
      () => executionProviders('tpu'),
      (e: Error) => e instanceof ConfigError && /one of cpu, cuda, webgpu/.test(e.message),
    );
  });

  it('fails clearly when CUDA binaries are not installed, naming the install flag', async () => {
    const cuda = deviceStatus().find((s) => s.device === 'cuda')!;
    if (cuda.available) return; // a GPU machine: nothing to refuse
    assert.throws(
      () => executionProviders('cuda'),
      (e: Error) => e instanceof DeviceError && /onnxruntime-node-install=cuda12/.test(e.message),
    );
    await rejectsWith(Session.create(await affineGraph().serialize(), { device: 'cuda' }), DeviceError);
  });

  it('reports a provider that cannot start as a DeviceError, never a silent CPU run', async () => {
    try {
      const s = await Session.create(await affineGraph().serialize(), { device: 'webgpu' });
      assert.equal(s.device, 'webgpu'); // a machine with a GPU driver: it really started
      await s.dispose();
    } catch (e) {
      assert.ok(e instanceof DeviceError, `got ${(e as Error).name}: ${(e as Error).message}`);
    }
  });

  it('uses every CPU the process may run on unless HYPERFEATURES_THREADS says otherwise', async () => {
    const saved = process.env.HYPERFEATURES_THREADS;
    try {
      delete process.env.HYPERFEATURES_THREADS;
      assert.equal(defaultThreads(), availableParallelism());
      process.env.HYPERFEATURES_THREADS = '3';
      assert.equal(defaultThreads(), 3);
      for (const bad of ['0', '-2', '1.5', 'all']) {
        process.env.HYPERFEATURES_THREADS = bad;
        assert.throws(
          () => defaultThreads(),
          (e: Error) => e instanceof ConfigError && e.message.includes(bad),
        );
        const g = new GraphBuilder();
        g.output('y', g.op('Identity', [g.input('x', [1])]), [1]);
        const e = await rejectsWith(Session.create(await g.serialize()), ConfigError);
        assert.match(e.message, /HYPERFEATURES_THREADS/);
      }
    } finally {
      if (saved === undefined) delete process.env.HYPERFEATURES_THREADS;
      else process.env.HYPERFEATURES_THREADS = saved;
    }
  });

  it('runs a built graph from memory and from a file with external data', async () => {
    const x = Tensor.from(
      Array.from({ length: 128 }, (_, i) => i),
      [2, 64],
    );
    const inMemory = await Session.create(await affineGraph().serialize());
    const path = join(tempDir(), 'affine.onnx');
    await affineGraph().save(path, true);
    const fromFile = await Session.create(path, { threads: 1 });
    for (const s of [inMemory, fromFile]) {
      const { y } = await s.run({ x });
      assert.deepEqual([...y.data], [...x.data]);
      await s.dispose();
    }
    await rejectsWith(inMemory.run({ x }), Error);
  });

  it("keeps onnxruntime's optimized model of a cached graph, reuses it, and remakes a stale or truncated one", async () => {
    const dir = join(tempDir(), 'unet-test');
    const path = join(dir, 'model.onnx');
    await affineGraph().save(path, true);
    writeFileSync(join(dir, 'manifest.json'), '{}'); // a graph-cache folder
    const before = process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES;
    process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES = '0'; // the tiny graph counts as large here
    const x = Tensor.from(
      Array.from({ length: 128 }, (_, i) => i / 7),
      [2, 64],
    );
    try {
      const first = await Session.create(path);
      const want = (await first.run({ x })).y.data;
      await first.dispose();
      assert.ok(existsSync(join(dir, 'optimized.onnx')) && existsSync(join(dir, 'optimized.json')));
      const made = statSync(join(dir, 'optimized.json')).mtimeMs;
      const again = await captureLogs(() => Session.create(path));
      assert.deepEqual(
        [...(await again.result.run({ x })).y.data],
        [...want],
        'same outputs from the optimized model',
      );
      await again.result.dispose();
      assert.equal(statSync(join(dir, 'optimized.json')).mtimeMs, made, 'reused, not made again');
      assert.deepEqual(
        again.records.filter((r) => r.level === 'warn'),
        [],
      );
      // truncated, and from another onnxruntime: made again with a warning, never an error
      truncateSync(join(dir, 'optimized.onnx'), 10);
      const m = JSON.parse(readFileSync(join(dir, 'optimized.json'), 'utf8'));
      const fixed = await captureLogs(() => Session.create(path));
      assert.match(
        fixed.records.map((r) => r.message).join('\n'),
        /not usable \(optimized.onnx is missing or truncated\); making it again/,
      );
      assert.deepEqual([...(await fixed.result.run({ x })).y.data], [...want]);
      await fixed.result.dispose();
      writeFileSync(join(dir, 'optimized.json'), JSON.stringify({ ...m, ort: '0.0.1' }));
      const other = await captureLogs(() => Session.create(path));
      assert.match(other.records.map((r) => r.message).join('\n'), /made by onnxruntime 0\.0\.1/);
      await other.result.dispose();
    } finally {
      if (before === undefined) delete process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES;
      else process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES = before;
    }
  });
});
