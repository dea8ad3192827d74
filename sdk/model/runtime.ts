/**
 * The one place that imports onnxruntime-node: device -> execution providers, session
 * creation, running with SDK tensors, disposal. Everything else talks to `Session`.
 */
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError, DeviceError, ModelError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { Tensor } from '../core/tensor.ts';
import { assertFinite, checkPositiveInt } from '../core/validate.ts';
import { log } from '../core/logger.ts';
import { placementFromProfile, type Placement } from './placement.ts';
import { adapterSummary, noAdapterHint } from './adapter.ts';

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
        ? `bundled (Dawn over Vulkan/Metal/D3D12); ${adapterSummary()}`
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
  /** Intra-op threads; default: {@link defaultThreads}. */
  threads?: number;
  /**
   * onnxruntime's memory pattern (default off). On, it plans one block per run from the first
   * run, so the first two calls both fault in fresh memory and the peak holds both (SD-1.5 UNet:
   * +1.1 GiB peak RSS, a second slow call), for no measurable gain in warm calls.
   */
  memoryPattern?: boolean;
  /**
   * Record onnxruntime's profile (every kernel call, with its provider), so that
   * {@link Session.placement} can say which nodes ran where. Costs time; for checks.
   */
  profile?: boolean;
  /**
   * Outputs that stay on the GPU as {@link DeviceTensor}s (see Session.runResident); ignored on
   * the CPU. onnxruntime-node then fetches outputs only as a prefix of the graph's outputs, so
   * put these first.
   */
  deviceOutputs?: readonly string[];
}

/**
 * Intra-op threads when none are asked for: HYPERFEATURES_THREADS, else every CPU this process
 * may run on. onnxruntime's own default is one thread per physical core, which on a VM whose
 * vCPUs are SMT siblings is half of them (an SD UNet call then takes ~2x as long as with
 * both; measured on 2 vCPUs: 10.3 s with 1 thread, 5.0 s with 2).
 * @throws ConfigError when HYPERFEATURES_THREADS is not a positive integer.
 */
export function defaultThreads(): number {
  const env = process.env.HYPERFEATURES_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(messages.invalidOption('HYPERFEATURES_THREADS', 'a positive integer', env));
    return n;
  }
  return availableParallelism();
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
/** Graphs with more weight than this keep onnxruntime's optimized model beside them (HYPERFEATURES_OPTIMIZED_MIN_BYTES). */
const OPTIMIZED_MIN_BYTES = 64 * 2 ** 20;
const OPTIMIZED = 'optimized.onnx';

/** The machine an optimized model was made on: its NCHWc layouts are CPU-specific. */
function cpuSignature(): string {
  const c = cpus()[0];
  return `${process.arch} ${c?.model ?? 'unknown'} x${cpus().length}`;
}

function optimizedProblem(dir: string): string | undefined {
  const file = join(dir, 'optimized.json');
  if (!existsSync(file)) return 'none yet';
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as {
      ort: string;
      cpu: string;
      files: Record<string, number>;
    };
    if (m.ort !== ORT_VERSION) return `made by onnxruntime ${m.ort}, this is ${ORT_VERSION}`;
    if (m.cpu !== cpuSignature()) return `made on ${m.cpu}, this is ${cpuSignature()}`;
    for (const [name, size] of Object.entries(m.files))
      if (!existsSync(join(dir, name)) || statSync(join(dir, name)).size !== size)
        return `${name} is missing or truncated`;
  } catch {
    return 'unreadable optimized.json';
  }
  return undefined;
}

function removeOptimized(dir: string): void {
  for (const f of [OPTIMIZED, `${OPTIMIZED}.data`, 'optimized.json']) rmSync(join(dir, f), { force: true });
}

/**
 * A cached graph's session, loading onnxruntime's own optimized model when one was kept (the
 * cached load then skips graph optimisation: 2 s instead of 6-12 s for an SD-sized UNet).
 * The optimized model is CPU- and onnxruntime-specific, so its manifest names both; a stale,
 * truncated or unloadable one is removed and made again. Only graphs in a cache folder (with
 * manifest.json) and with more weight than OPTIMIZED_MIN_BYTES do this.
 */
async function createWithOptimizedCache(
  model: string,
  opts: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  const dir = dirname(model);
  const env = Number(process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES);
  const minBytes =
    Number.isFinite(env) && process.env.HYPERFEATURES_OPTIMIZED_MIN_BYTES ? env : OPTIMIZED_MIN_BYTES;
  const data = join(dir, `${basename(model)}.data`);
  const weightBytes = existsSync(data) ? statSync(data).size : statSync(model).size;
  if (!existsSync(join(dir, 'manifest.json')) || weightBytes < minBytes)
    return ort.InferenceSession.create(model, opts);
  const problem = optimizedProblem(dir);
  if (!problem) {
    try {
      return await ort.InferenceSession.create(join(dir, OPTIMIZED), {
        ...opts,
        graphOptimizationLevel: 'disabled',
      });
    } catch (e) {
      log().warn(
        `${basename(dir)}: the kept optimized model does not load (${(e as Error).message}); making it again`,
      );
    }
  } else if (problem !== 'none yet')
    log().warn(`${basename(dir)}: the kept optimized model is not usable (${problem}); making it again`);
  removeOptimized(dir);
  // optimise as usual and let onnxruntime write the result into a temp folder, moved in when
  // complete; a cache it cannot write to (read-only share, full disk) just loads the graph
  let tmp: string;
  try {
    tmp = mkdtempSync(join(dir, '.optimized-'));
  } catch (e) {
    log().debug(`${basename(dir)}: cannot keep an optimized model here (${(e as Error).message})`);
    return ort.InferenceSession.create(model, opts);
  }
  try {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model, {
        ...opts,
        optimizedModelFilePath: join(tmp, OPTIMIZED),
        logSeverityLevel: 3, // its "hardware specific" warning is why the manifest names the CPU
        extra: {
          session: {
            optimized_model_external_initializers_file_name: `${OPTIMIZED}.data`,
            optimized_model_external_initializers_min_size_in_bytes: '1024',
          },
        },
      });
    } catch (e) {
      // e.g. no space for the optimized copy: load the graph as before (a bad graph fails here too)
      log().debug(`${basename(dir)}: optimized model not kept (${(e as Error).message})`);
      return await ort.InferenceSession.create(model, opts);
    }
    try {
      const files: Record<string, number> = {};
      for (const f of [OPTIMIZED, `${OPTIMIZED}.data`])
        if (existsSync(join(tmp, f))) {
          files[f] = statSync(join(tmp, f)).size;
          renameSync(join(tmp, f), join(dir, f));
        }
      // the manifest last, by rename: a reader sees a complete entry or none
      writeFileSync(
        join(tmp, 'optimized.json'),
        JSON.stringify({ ort: ORT_VERSION, cpu: cpuSignature(), files }),
      );
      renameSync(join(tmp, 'optimized.json'), join(dir, 'optimized.json'));
    } catch (e) {
      removeOptimized(dir); // without its manifest an optimized model is never used
      log().debug(`${basename(dir)}: could not keep the optimized model (${(e as Error).message})`);
    }
    return session;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A host tensor (float32) or int64 ids, or a tensor already on the device. */
export type Feed = Tensor | DeviceTensor | { int64: BigInt64Array; shape: readonly number[] };

/**
 * A float32 tensor left on the GPU by one run, to feed to the next without a copy. Feeding it
 * hands it over (it is released after that run); read values back by fetching a host output.
 */
export class DeviceTensor {
  readonly shape: readonly number[];
  private inner: ort.Tensor | undefined;

  constructor(inner: ort.Tensor, shape: readonly number[]) {
    this.inner = inner;
    this.shape = shape;
  }

  /** @internal the onnxruntime tensor, for one feed. */
  take(): ort.Tensor {
    if (!this.inner) throw new ModelError('a device tensor was used after it was released');
    return this.inner;
  }

  dispose(): void {
    this.inner?.dispose();
    this.inner = undefined;
  }
}

/** Host <-> device copies made by runs on a GPU so far (each input uploaded, each output read back). */
export const transfers = { uploads: 0, readbacks: 0 };

/**
 * A GPU run that failed on the adapter's limits, in words: which node, which limit, the inputs'
 * shapes and what to do, instead of onnxruntime's Dawn trace. undefined for other errors.
 */
export function deviceLimitError(
  label: string,
  device: Device,
  message: string,
  feeds: Record<string, Feed> = {},
): DeviceError | undefined {
  if (device === 'cpu') return undefined;
  const node = /running (\w+) node\. Name:'([^']+)'/.exec(message);
  const where = node ? `node "${node[2]}" (${node[1]})` : 'a node';
  const shapes = Object.entries(feeds)
    .map(
      ([n, t]) =>
        `${n} [${(t instanceof Tensor || t instanceof DeviceTensor ? t.shape : t.shape).join(', ')}]`,
    )
    .join(', ');
  const advice = `inputs: ${shapes || 'none'}; use a smaller input (image size, batch; the VAE can tile) or --device cpu`;
  const split = /Too many storage buffers in shader\. Current: (\d+), Max is (\d+)/.exec(message);
  if (split)
    return new DeviceError(
      `${label} on ${device}: a tensor at ${where} is larger than the adapter's maxStorageBufferBindingSize, and split up it needs ${split[1]} storage buffers where the adapter allows ${split[2]} per shader (maxStorageBuffersPerShaderStage); ${advice}`,
    );
  if (/OUT_OF_DEVICE_MEMORY|OUT_OF_HOST_MEMORY|maxBufferSize|Invalid Buffer|out of memory/i.test(message))
    return new DeviceError(
      `${label} on ${device}: the adapter could not allocate a buffer at ${where} (out of device memory, or above its maxBufferSize); ${advice}`,
    );
  return undefined;
}

let recording: Session[] | undefined;

/**
 * Profile every session created until `stop()` and keep them, so a check can ask each one
 * where its nodes ran ({@link Session.placement}), including sessions made inside the SDK.
 */
export function recordSessions(): { sessions: Session[]; stop(): void } {
  const sessions: Session[] = [];
  recording = sessions;
  return {
    sessions,
    stop: () => {
      if (recording === sessions) recording = undefined;
    },
  };
}

export class Session {
  private inner: ort.InferenceSession | undefined;
  readonly device: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  /** Names the graph in messages ("unet", "vae-encoder", ...). */
  readonly label: string;
  /** Bytes of the graph and its external data: about the memory its weights take once loaded. */
  readonly modelBytes: number;

  private constructor(inner: ort.InferenceSession, device: Device, label: string, modelBytes: number) {
    this.inner = inner;
    this.device = device;
    this.label = label;
    this.modelBytes = modelBytes;
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
    // Vulkan drivers (mesa's) complain on stderr without it; any private folder will do
    if (device === 'webgpu' && !process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = tmpdir();
    checkPositiveInt('threads', options.threads);
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: providers,
      graphOptimizationLevel: options.optimization ?? 'all',
      enableCpuMemArena: options.memoryArena ?? true,
      enableMemPattern: options.memoryPattern ?? false,
      intraOpNumThreads: options.threads ?? defaultThreads(),
      // onnxruntime's own warnings (e.g. "some nodes were not assigned to the preferred
      // provider": shape ops on the CPU, by design) only at debug level; placement() says more
      logSeverityLevel: process.env.HYPERFEATURES_LOG_LEVEL === 'debug' ? 2 : 3,
    };
    const deviceOutputs = device === 'cpu' ? [] : [...(options.deviceOutputs ?? [])];
    if (deviceOutputs.length)
      opts.preferredOutputLocation = Object.fromEntries(deviceOutputs.map((n) => [n, 'gpu-buffer' as const]));
    let profileDir: string | undefined;
    if (options.profile || recording) {
      profileDir = mkdtempSync(join(tmpdir(), 'hf-profile-'));
      opts.enableProfiling = true;
      opts.profileFilePrefix = join(profileDir, 'profile');
    }
    try {
      const optimizable =
        typeof model === 'string' && device === 'cpu' && opts.graphOptimizationLevel === 'all';
      const inner =
        typeof model === 'string'
          ? optimizable
            ? await createWithOptimizedCache(model, opts)
            : await ort.InferenceSession.create(model, opts)
          : await ort.InferenceSession.create(model, opts);
      const label =
        typeof model === 'string'
          ? basename(dirname(model)).replace(/-[0-9a-f]{24}$/, '')
          : 'in-memory graph';
      const bytes = (f: string) => (existsSync(f) ? statSync(f).size : 0);
      const modelBytes = typeof model === 'string' ? bytes(model) + bytes(`${model}.data`) : model.byteLength;
      const session = new Session(inner, device, label, modelBytes);
      session.profileDir = profileDir;
      session.deviceOutputs = new Set(deviceOutputs);
      recording?.push(session);
      return session;
    } catch (e) {
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
      const msg = (e as Error).message;
      const where = typeof model === 'string' ? model : '<in-memory graph>';
      if (device === 'webgpu' && /adapter/i.test(msg) && /no supported adapters|failed to get/i.test(msg))
        throw new DeviceError(
          `device "webgpu" could not start for ${where}: ${noAdapterHint()} (onnxruntime: ${msg.split('\n')[0].replace(/^.*?(Failed to get)/, '$1')})`,
          { cause: e },
        );
      if (device !== 'cpu' && /requires f16 but the device does not support it/.test(msg))
        throw new DeviceError(
          `${where}: a half-precision graph (precision "fp16", or "fp16-emulated"'s rounding casts) on ${device} needs an adapter with half-precision shaders (WebGPU's "shader-f16" feature), and this one has none (${adapterSummary()}; SwiftShader never has it); use the default fp32 here, or "fp16-emulated" with --device cpu to see what half precision does to the numbers`,
          { cause: e },
        );
      if (device !== 'cpu' && /provider|cuda|webgpu|dawn|adapter|vulkan/i.test(msg)) {
        throw new DeviceError(`device "${device}" could not start for ${where}: ${msg}`, { cause: e });
      }
      throw new ModelError(`${where}: onnxruntime could not load the graph: ${msg}`, { cause: e });
    }
  }

  /** Run the graph; `outputs` limits which outputs are computed. */
  /** Run the graph; `outputs` limits which outputs are computed. Every output comes back to the host. */
  async run(
    feeds: Record<string, Feed>,
    outputs?: readonly string[],
    check: { checkOutputs?: boolean; checkInputs?: boolean } = {},
  ): Promise<Record<string, Tensor>> {
    const out = await this.runResident(feeds, outputs ?? this.outputNames, check);
    const host: Record<string, Tensor> = {};
    for (const [name, v] of Object.entries(out)) {
      if (v instanceof DeviceTensor) {
        v.dispose();
        throw new ConfigError(`${this.label}: output "${name}" stays on the device; use runResident()`);
      }
      host[name] = v;
    }
    return host;
  }

  /**
   * Run with inputs that may already be on the device; outputs named in `deviceOutputs` (at
   * create) stay there as {@link DeviceTensor}s, the others are read back.
   */
  async runResident(
    feeds: Record<string, Feed>,
    outputs: readonly string[],
    check: { checkOutputs?: boolean; checkInputs?: boolean } = {},
  ): Promise<Record<string, Tensor | DeviceTensor>> {
    if (!this.inner) throw new ModelError('session has been disposed');
    const onDevice = this.device !== 'cpu';
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      if (t instanceof DeviceTensor) {
        ortFeeds[name] = t.take();
        continue;
      }
      if (onDevice) transfers.uploads++;
      ortFeeds[name] =
        t instanceof Tensor
          ? new ort.Tensor('float32', t.data, [...t.shape])
          : new ort.Tensor('int64', t.int64, [...t.shape]);
    }
    // stage boundaries: a NaN or Inf never passes silently (e.g. NaN weights, a damaged map)
    if (check.checkInputs !== false)
      for (const [name, t] of Object.entries(feeds))
        if (t instanceof Tensor) assertFinite(t.data, `${this.label}: input "${name}"`);
    // onnxruntime-node 1.30 with preferredOutputLocation fetches only a prefix of the outputs
    // ("Output count mismatch" otherwise): fetch up to the last one asked for, drop the rest
    const fetch = this.deviceOutputs.size
      ? this.outputNames.slice(0, Math.max(...outputs.map((o) => this.outputNames.indexOf(o))) + 1)
      : [...outputs];
    const wanted = new Set(outputs);
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.inner.run(ortFeeds, fetch);
    } catch (e) {
      throw deviceLimitError(this.label, this.device, (e as Error).message, feeds) ?? e;
    }
    const out: Record<string, Tensor | DeviceTensor> = {};
    for (const [name, v] of Object.entries(result)) {
      if (v.location === 'gpu-buffer') {
        if (wanted.has(name)) out[name] = new DeviceTensor(v, v.dims as number[]);
        else v.dispose();
        continue;
      }
      if (onDevice) transfers.readbacks++;
      if (!wanted.has(name)) continue;
      out[name] = new Tensor(v.data as Float32Array, v.dims as number[]);
      if (v.type === 'float32' && check.checkOutputs !== false)
        assertFinite(out[name].data, `${this.label}: output "${name}"`, 'check the model weights and inputs');
    }
    return out;
  }

  private deviceOutputs = new Set<string>();
  private profileDir: string | undefined;
  private ended: Placement | undefined;

  /**
   * Which nodes ran on which provider in the runs so far (needs `profile: true`, or a
   * {@link recordSessions} recorder): ends the profile, so later runs are not included.
   * @throws ConfigError for a session made without profiling.
   */
  async placement(): Promise<Placement> {
    if (this.ended) return this.ended;
    if (!this.inner || !this.profileDir)
      throw new ConfigError(`${this.label}: placement() needs a session created with profile: true`);
    this.inner.endProfiling();
    const dir = this.profileDir;
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (files.length !== 1) throw new ModelError(`${this.label}: expected one onnxruntime profile in ${dir}`);
    const events = JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as Parameters<
      typeof placementFromProfile
    >[0];
    rmSync(dir, { recursive: true, force: true });
    this.profileDir = undefined;
    return (this.ended = placementFromProfile(events));
  }

  async dispose(): Promise<void> {
    if (this.inner && this.profileDir) await this.placement(); // kept for a recorder to read
    await this.inner?.release();
    this.inner = undefined;
  }
}
