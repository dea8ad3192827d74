/** Small shared checks for option values, with the SDK's standard messages. */
import { ConfigError, DataError } from './errors.ts';
import { messages } from './messages.ts';

/** @throws ConfigError unless `v` is undefined or a positive integer. */
export function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0))
    throw new ConfigError(messages.invalidOption(name, 'a positive integer', v));
}

/**
 * @throws DataError naming `what`, the count and the first bad value when `data` holds a NaN or
 * an infinity.
 */
export function assertFinite(data: ArrayLike<number>, what: string, hint?: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      let n = 0;
      for (let j = i; j < data.length; j++) if (data[j] - data[j] !== 0) n++;
      throw new DataError(
        `${what}: ${n} of ${data.length} values are not finite (first: ${v} at index ${i})${hint ? `; ${hint}` : ''}`,
      );
    }
  }
}

/** numpy's round: half to even (the original code rounds keypoints with it). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
