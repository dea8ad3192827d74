/** Small shared checks for option values, with the SDK's standard messages. */
import { ConfigError } from './errors.ts';
import { messages } from './messages.ts';

/** @throws ConfigError unless `v` is undefined or a positive integer. */
export function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0))
    throw new ConfigError(messages.invalidOption(name, 'a positive integer', v));
}

/** numpy's round: half to even (the original code rounds keypoints with it). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
