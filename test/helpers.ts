/** Shared test helpers: paths to ../shared and the reference manifest's tolerances. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import assert from 'node:assert/strict';
import { relativeError, type Tensor } from '../sdk/core/tensor.ts';
import { main } from '../sdk/cli/main.ts';
import { isDevice, type Device } from '../sdk/model/runtime.ts';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED = join(REPO, '..', 'shared');
export const REFERENCE = join(SHARED, 'reference');
export const FIXTURES = join(SHARED, 'fixtures');
/** The six SPair-71k fixture pairs: their list, and as the commands' dataset arguments. */
export const SPAIR_FIXTURE_LIST = join(FIXTURES, 'spair/spair_71k_test-6.json');
export const SPAIR_FIXTURE_ARGS = [
  '--dataset',
  'spair',
  '--root',
  join(FIXTURES, 'spair'),
  '--pairs',
  SPAIR_FIXTURE_LIST,
] as const;

/**
 * The device the parity cases run on: HYPERFEATURES_TEST_DEVICE (default cpu). `npm run
 * test:webgpu` sets it to webgpu and runs the parity files, on a GPU or SwiftShader's Vulkan.
 */
export const TEST_DEVICE: Device = (() => {
  const d = process.env.HYPERFEATURES_TEST_DEVICE ?? 'cpu';
  if (!isDevice(d)) throw new Error(`HYPERFEATURES_TEST_DEVICE: expected cpu, cuda or webgpu, got ${d}`);
  return d;
})();

/** Load options that put a model on TEST_DEVICE. */
export const ON_DEVICE = { device: TEST_DEVICE } as const;

/**
 * The attention kernels a parity case holds to the reference on TEST_DEVICE: both on the CPU;
 * on WebGPU its default (exact), since onnxruntime's WebGPU MultiHeadAttention is not used there
 * (sdk/model/numerics.ts; test/webgpu/ops.test.ts shows why).
 */
export const ATTENTION_KINDS: readonly ('fused' | 'exact')[] =
  TEST_DEVICE === 'webgpu' ? ['exact'] : ['fused', 'exact'];

type Manifest = Record<string, { tolerance?: Record<string, number> }>;
const manifest = JSON.parse(readFileSync(join(REFERENCE, 'manifest.json'), 'utf8')) as Manifest;

export function tolerance(caseName: string, tensor: string): number {
  const tol = manifest[caseName]?.tolerance?.[tensor];
  if (tol === undefined) throw new Error(`manifest has no tolerance for ${caseName}/${tensor}`);
  return tol;
}

type LotusManifest = Record<string, { tolerance: Record<string, number> }>;
const lotusManifest = JSON.parse(
  readFileSync(join(REFERENCE, 'lotus/manifest.json'), 'utf8'),
) as LotusManifest;
const lotusFloors = JSON.parse(readFileSync(join(REPO, 'test/lotus/floors/floors.json'), 'utf8')) as {
  runs: { floors: Record<string, number> }[];
};

/**
 * Tolerance of a tensor of the Lotus-G reference case: the manifest's (10x the float32 floor
 * on its maker's CPU), or 10x the highest floor the original code itself showed on another
 * CPU (test/lotus/floors: on an AVX2 Zen 3 the annotation path's floor is 12x the maker's).
 */
export function lotusTolerance(tensor: string): number {
  const tol = lotusManifest['lotus-g_inference'].tolerance[tensor];
  if (tol === undefined) throw new Error(`lotus manifest has no tolerance for ${tensor}`);
  return Math.max(tol, ...lotusFloors.runs.map((r) => 10 * (r.floors[tensor] ?? 0)));
}

/** Assert parity: max|got-want|/max|want| <= tol, with shapes equal. */
export function assertClose(got: Tensor, want: Tensor, tol: number, what: string): number {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const rel = relativeError(got.data, want.data);
  if (process.env.HF_PRINT_REL) console.log(`    rel ${what}: ${rel.toExponential(2)} (tol ${tol})`);
  assert.ok(rel <= tol, `${what}: relative error ${rel.toExponential(3)} > tolerance ${tol}`);
  return rel;
}

/** Every tempDir() of this run, removed when it ends (test/setup.ts). */
export const createdTempDirs: string[] = [];

export function tempDir(prefix = 'hf-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  createdTempDirs.push(d);
  return d;
}

/** Await a promise expected to reject with `cls`; return the error for further checks. */
export async function rejectsWith<T extends Error>(
  p: Promise<unknown> | (() => unknown),
  cls: new (...a: never[]) => T,
): Promise<T> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return e as T;
  }
  assert.fail(`expected ${cls.name}, but nothing was thrown`);
}

/** Run the CLI in-process, capturing stdout and stderr. */
export async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const [o, e] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}
