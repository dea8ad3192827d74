/**
 * The one place that imports onnxruntime-node: device -> execution providers, session
 * creation, running with SDK tensors, disposal. Everything else talks to `Session`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError, DeviceError, ModelError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { Tensor } from '../core/tensor.ts';
import { assertFinite, checkPositiveInt } from '../core/validate.ts';

export const DEVICES = ['cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export const isDevice = (x: unknown): x is Device => (DEVICES as readonly unknown[]).includes(x);

export const CUDA_INSTALL_HINT =
  'the CUDA execution provider binaries are not installed. On a machine with network access and CUDA 12 run ' +
  '`npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` after allowing its install script ' +
  '(`npm install-scripts approve onnxruntime-node`), or set `onnxruntime-node-install=cuda12` in .npmrc before `npm ci`';

export interface DeviceStatus {
  device: Device;
  available: boolean;
  detail: string;
}

function bindingDir(): string {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(root, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Which devices this install can use, without starting any of them. */
export function deviceStatus(): DeviceStatus[] {
  const backends = new Map(ort.listSupportedBackends().map((b) => [b.name, b]));
  const cudaLib = join(bindingDir(), 'libonnxruntime_providers_cuda.so');
  return [
    { device: 'cpu', available: true, detail: 'bundled' },
    {
      device: 'cuda',
      available: backends.has('cuda') && existsSync(cudaLib),
      detail: existsSync(cudaLib) ? `provider library at ${cudaLib}` : CUDA_INSTALL_HINT,
    },
    {
      device: 'webgpu',
      available: backends.has('webgpu'),
      detail: backends.has('webgpu')
        ? 'bundled (Dawn over Vulkan/Metal/D3D12; needs a GPU driver)'
        : 'not in this build',
    },
  ];
}

export const ORT_VERSION: string = ort.env.versions.node ?? 'unknown';

export interface SessionOptions {
  device?: Device;
  /**
   * onnxruntime's CPU memory arena (default on: fastest for fixed shapes). Off keeps memory
   * flat for graphs fed large inputs of varying shapes (the aggregation network).
   */
  memoryArena?: boolean;
  /** onnxruntime graph optimisation; "basic" builds very large graphs (training) much faster. */
  optimization?: 'all' | 'basic' | 'disabled';
  /** Intra-op threads; default: onnxruntime's choice (all cores). */
  threads?: number;
}

/**
 * Execution providers for a device; requesting an unavailable GPU fails instead of silently
 * running on the CPU. @throws ConfigError for unknown devices, DeviceError when unavailable.
 */
export function executionProviders(device: unknown): string[] {
  if (!isDevice(device))
    throw new ConfigError(messages.invalidOption('device', `one of ${DEVICES.join(', ')}`, device));
  if (device === 'cpu') return ['cpu'];
  const status = deviceStatus().find((s) => s.device === device)!;
  if (!status.available) throw new DeviceError(`device "${device}" is not available: ${status.detail}`);
  return [device, 'cpu'];
}

/** A model ready to run. Feed SDK tensors (float32) or int64 arrays; get float32 tensors back. */
export class Session {
  private inner: ort.InferenceSession | undefined;
  readonly device: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  /** Names the graph in messages ("unet", "vae-encoder", ...). */
  readonly label: string;

  private constructor(inner: ort.InferenceSession, device: Device, label: string) {
    this.inner = inner;
    this.device = device;
    this.label = label;
    this.inputNames = inner.inputNames;
    this.outputNames = inner.outputNames;
  }

  /**
   * Create from an .onnx path (external data files beside it are found) or serialized bytes.
   * @throws DeviceError when the provider cannot start, ModelError when the graph is invalid.
   */
  static async create(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    const device = options.device ?? 'cpu';
    const providers = executionProviders(device);
    checkPositiveInt('threads', options.threads);
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: providers,
      graphOptimizationLevel: options.optimization ?? 'all',
      enableCpuMemArena: options.memoryArena ?? true,
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    };
    try {
      const inner =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, opts)
          : await ort.InferenceSession.create(model, opts);
      const label =
        typeof model === 'string'
          ? basename(dirname(model)).replace(/-[0-9a-f]{24}$/, '')
          : 'in-memory graph';
      return new Session(inner, device, label);
    } catch (e) {
      const msg = (e as Error).message;
      const where = typeof model === 'string' ? model : '<in-memory graph>';
      if (device !== 'cpu' && /provider|cuda|webgpu|dawn|adapter|vulkan/i.test(msg)) {
        throw new DeviceError(`device "${device}" could not start for ${where}: ${msg}`, { cause: e });
      }
      throw new ModelError(`${where}: onnxruntime could not load the graph: ${msg}`, { cause: e });
    }
  }

  /** Run the graph; `outputs` limits which outputs are computed. */
  async run(
    feeds: Record<string, Tensor | { int64: BigInt64Array; shape: readonly number[] }>,
    outputs?: readonly string[],
    check: { checkOutputs?: boolean; checkInputs?: boolean } = {},
  ): Promise<Record<string, Tensor>> {
    if (!this.inner) throw new ModelError('session has been disposed');
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] =
        t instanceof Tensor
          ? new ort.Tensor('float32', t.data, [...t.shape])
          : new ort.Tensor('int64', t.int64, [...t.shape]);
    }
    // stage boundaries: a NaN or Inf never passes silently (e.g. NaN weights, a damaged map)
    if (check.checkInputs !== false)
      for (const [name, t] of Object.entries(feeds))
        if (t instanceof Tensor) assertFinite(t.data, `${this.label}: input "${name}"`);
    const result = outputs ? await this.inner.run(ortFeeds, [...outputs]) : await this.inner.run(ortFeeds);
    const out: Record<string, Tensor> = {};
    for (const [name, v] of Object.entries(result)) {
      out[name] = new Tensor(v.data as Float32Array, v.dims as number[]);
      if (v.type === 'float32' && check.checkOutputs !== false)
        assertFinite(out[name].data, `${this.label}: output "${name}"`, 'check the model weights and inputs');
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.inner?.release();
    this.inner = undefined;
  }
}
