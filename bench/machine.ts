/** Machine facts and the measured fp32 matmul peak of onnxruntime on this CPU. */
import { cpus, totalmem, hostname } from 'node:os';
import { GraphBuilder } from '../sdk/model/onnx/graph.ts';
import { Session, ORT_VERSION } from '../sdk/model/runtime.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';

export function machineInfo() {
  return {
    host: hostname(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.versions.node,
    onnxruntime: ORT_VERSION,
  };
}

/** Best-of-N GFLOP/s of an n x n x n fp32 MatMul in onnxruntime (all threads). */
export async function matmulPeak(n = 2048, runs = 6): Promise<number> {
  const g = new GraphBuilder();
  const a = g.input('a', [n, n]);
  const b = g.input('b', [n, n]);
  g.output('c', g.op('MatMul', [a, b]), [n, n]);
  const s = await Session.create(await g.serialize());
  const rng = new Rng(0);
  const x = new Tensor(rng.normalArray(n * n), [n, n]);
  const y = new Tensor(rng.normalArray(n * n), [n, n]);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run({ a: x, b: y });
    best = Math.min(best, performance.now() - t0);
  }
  await s.dispose();
  return (2 * n ** 3) / (best / 1000) / 1e9;
}
