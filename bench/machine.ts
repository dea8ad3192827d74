/** Machine facts and the measured fp32 matmul peak of onnxruntime on this CPU. */
import { cpus, totalmem, hostname } from 'node:os';
import { GraphBuilder } from '../sdk/model/onnx/graph.ts';
import { Session, ORT_VERSION, defaultThreads } from '../sdk/model/runtime.ts';
import { readFileSync } from 'node:fs';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';

/** Logical CPUs per core of CPU 0 (2 on an SMT machine), from sysfs; null where unreadable. */
function threadsPerCore(): number | null {
  try {
    const list = readFileSync('/sys/devices/system/cpu/cpu0/topology/thread_siblings_list', 'utf8').trim();
    return list.split(',').reduce((n, part) => {
      const [a, b] = part.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a + 1);
    }, 0);
  } catch {
    return null;
  }
}

/**
 * CPU family/model and the vector extensions onnxruntime's kernels dispatch on (the same network
 * runs other kernels on AVX2, AVX-512, VNNI and AMX CPUs), from /proc/cpuinfo; null elsewhere.
 */
function cpuKind(): { family: string; model: string; isa: string[] } | null {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string) => new RegExp(`^${name}\\s*: (.*)$`, 'm').exec(info)?.[1] ?? '?';
    const flags = new Set(field('flags').split(' '));
    const isa = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16'];
    return { family: field('cpu family'), model: field('model'), isa: isa.filter((f) => flags.has(f)) };
  } catch {
    return null;
  }
}

export function machineInfo() {
  return {
    // onnxruntime's own default would be one thread per physical core: cores / threadsPerCore
    threadsPerCore: threadsPerCore(),
    sessionThreads: defaultThreads(),
    host: hostname(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cpuKind: cpuKind(),
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

/** fp32 GEMM shapes (M x K x N) of an SD UNet at a 64x64 latent: 1x1 projections, 3x3 convs as GEMMs, feed-forwards. */
export const UNET_GEMM_SHAPES: [number, number, number][] = [
  [4096, 320, 320],
  [4096, 2880, 320],
  [4096, 320, 2560],
  [1024, 5760, 640],
  [256, 11520, 1280],
  [2048, 2048, 2048],
];

/**
 * The machine's best fp32 GEMM in onnxruntime: for each shape, activations as the input and the
 * weight as a constant (prepacked, as in the UNet), best of `runs` after a warm-up; `peak` is the
 * best over shapes. This is the honest bar for "achieved vs peak" (a lone 2048^3 product with
 * both operands fed per call understates it).
 */
export async function gemmPeak(
  shapes = UNET_GEMM_SHAPES,
  runs = 5,
): Promise<{ peak: number; shapes: { m: number; k: number; n: number; gflops: number }[] }> {
  const out: { m: number; k: number; n: number; gflops: number }[] = [];
  const rng = new Rng(1);
  for (const [m, k, n] of shapes) {
    const g = new GraphBuilder();
    const a = g.input('a', [m, k]);
    const w = g.constFloat(rng.normalArray(k * n), [k, n], 'w');
    g.output('c', g.op('MatMul', [a, w]), [m, n]);
    const s = await Session.create(await g.serialize());
    const x = new Tensor(rng.normalArray(m * k), [m, k]);
    await s.run({ a: x }, undefined, { checkOutputs: false, checkInputs: false });
    let best = Infinity;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await s.run({ a: x }, undefined, { checkOutputs: false, checkInputs: false });
      best = Math.min(best, performance.now() - t0);
    }
    await s.dispose();
    out.push({ m, k, n, gflops: (2 * m * k * n) / (best / 1000) / 1e9 });
  }
  return { peak: Math.max(...out.map((o) => o.gflops)), shapes: out };
}
