/**
 * Symmetric int8 weights, one scale per output channel, for onnxruntime's DynamicQuantizeMatMul
 * (activations are quantized to uint8 per tensor at run time; MLAS runs u8 x s8 GEMMs, with
 * VNNI where the CPU has it).
 *
 * Weights use 7 bits (-63..63, onnxruntime's "reduce_range"): without VNNI (AVX2, AVX-512F
 * alone) MLAS adds pairs of u8 x s8 products in int16 (vpmaddubsw), and 255 x 127 x 2 saturates
 * it. On an AVX2 Zen 3 full 8-bit weights put the tiny UNet's outputs 6-12% from fp32; 7-bit
 * weights 0.6-1.4%, the same graph on every CPU.
 */

/** Bits of the quantized weights (see above); part of every cache key of int8 results. */
export const INT8_WEIGHT_BITS = 7;
const INT8_WEIGHT_MAX = 2 ** (INT8_WEIGHT_BITS - 1) - 1;

/** Scales of a PyTorch Linear weight [out, in]: max |w| of each output row / 63 (1 for all-zero rows). */
export function int8Scales(w: Float32Array, out: number, inDim: number): Float32Array {
  const scale = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let m = 0;
    for (let i = 0; i < inDim; i++) m = Math.max(m, Math.abs(w[o * inDim + i]));
    scale[o] = m > 0 ? m / INT8_WEIGHT_MAX : 1;
  }
  return scale;
}

/** The weight [out, in] as MatMul's int8 B [in, out]: round(w / scale of its output row). */
export function int8Weights(
  w: Float32Array,
  out: number,
  inDim: number,
  scale = int8Scales(w, out, inDim),
): Int8Array {
  const q = new Int8Array(out * inDim);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inDim; i++) q[i * out + o] = Math.round(w[o * inDim + i] / scale[o]);
  return q;
}
