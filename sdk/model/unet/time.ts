/** The UNet's sinusoidal timestep projection (diffusers `get_timestep_embedding`), on the host. */
import { Tensor } from '../../core/tensor.ts';

/**
 * [T] -> [T, dim]: sin and cos of t * 10000^(-i / (dim/2 - freqShift)), cos first when
 * `flipSinToCos`. Phases reach ~1000 rad, where float32 rounding alone moves sin/cos by ~1e-4,
 * so they are formed and taken in float64 (the exact maths) and only the result is float32.
 */
export function timestepProjection(
  timesteps: readonly number[],
  dim: number,
  flipSinToCos: boolean,
  freqShift: number,
): Tensor {
  const half = dim >> 1;
  const out = new Float32Array(timesteps.length * dim);
  timesteps.forEach((t, r) => {
    for (let i = 0; i < half; i++) {
      const phase = t * Math.exp((-Math.log(10000) * i) / (half - freqShift));
      const [first, second] = flipSinToCos
        ? [Math.cos(phase), Math.sin(phase)]
        : [Math.sin(phase), Math.cos(phase)];
      out[r * dim + i] = first;
      out[r * dim + half + i] = second;
    }
  });
  return new Tensor(out, [timesteps.length, dim]);
}
