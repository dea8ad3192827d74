/**
 * Which kernels a device's graphs are built with, where a device's default kernel is not
 * faithful (measured op by op against float64 in test/webgpu/ops.test.ts):
 * - onnxruntime's WebGPU InstanceNormalization and LayerNormalization take the variance in one
 *   pass (E[x^2] - E[x]^2), which cancels when the mean is large against the spread (GroupNorm
 *   at mean/std = 60: 2.7e-4 relative; LayerNorm over 768 channels at mean/std = 100: 1.9e-3,
 *   and CLIP's hidden states have such channels); both norms are built there as two ReduceMeans
 *   (1e-6).
 * - onnxruntime's WebGPU MultiHeadAttention returns wrong values once the query has 32 or more
 *   tokens (10-40% off on unit inputs), so attention there defaults to MatMul + Softmax + MatMul.
 * The CPU keeps its kernels: they pass the reference as they are.
 */
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import type { Device } from './runtime.ts';
import { PRECISIONS, type HalfPrecision } from './onnx/precision.ts';

export interface DeviceKernels {
  /** GroupNorm and LayerNorm as mean, then the variance of the centred values (two reductions). */
  twoPassNorm: boolean;
  /** The attention kernel used when none is asked for. */
  defaultAttention: 'exact' | 'fused';
}

export function deviceKernels(device: Device | undefined): DeviceKernels {
  const webgpu = device === 'webgpu';
  return { twoPassNorm: webgpu, defaultAttention: webgpu ? 'exact' : 'fused' };
}

/**
 * The half-precision mode a load asked for (undefined for the default fp32), checked against the
 * device: "fp16" is for GPUs, since onnxruntime's CPU kernels have no half arithmetic (it would
 * compute in fp32 between inserted casts: slower, and not what a GPU computes).
 * @throws ConfigError for an unknown value or "fp16" on the CPU.
 */
export function halfPrecision(precision: unknown, device: Device | undefined): HalfPrecision | undefined {
  if (precision === undefined || precision === 'fp32') return undefined;
  if (!(PRECISIONS as readonly unknown[]).includes(precision))
    throw new ConfigError(messages.invalidOption('precision', PRECISIONS.join(' | '), precision));
  if (precision === 'fp16' && (device ?? 'cpu') === 'cpu')
    throw new ConfigError(
      'precision "fp16" is for GPUs (--device webgpu or cuda): onnxruntime\'s CPU kernels have no half-precision arithmetic; on the CPU use fp32 (the default), or "fp16-emulated" to see what half precision does to the numbers',
    );
  return precision as HalfPrecision;
}
