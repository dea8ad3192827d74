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
import type { Device } from './runtime.ts';

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
