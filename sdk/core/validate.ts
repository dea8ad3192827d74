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

/**
 * An options argument: undefined or a plain object; each listed key undefined or of its kind.
 * Catches null, arrays, strings and wrongly typed values before they become TypeErrors deep inside.
 * @throws ConfigError naming the function, the option and what came.
 */
export function checkOptions(
  fn: string,
  o: unknown,
  kinds: Record<string, 'boolean' | 'string' | 'object' | 'positive integer' | 'integer' | 'number'>,
): void {
  if (o === undefined) return;
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new ConfigError(
      `${fn}: expected an options object, got ${o === null ? 'null' : Array.isArray(o) ? 'an array' : typeof o}`,
    );
  for (const [key, kind] of Object.entries(kinds)) {
    const v = (o as Record<string, unknown>)[key];
    if (v === undefined) continue;
    const ok =
      kind === 'positive integer'
        ? Number.isInteger(v) && (v as number) > 0
        : kind === 'integer'
          ? Number.isInteger(v)
          : kind === 'number'
            ? typeof v === 'number' && Number.isFinite(v)
            : kind === 'object'
              ? typeof v === 'object' && v !== null
              : typeof v === kind;
    if (!ok)
      throw new ConfigError(
        `${fn}: option ${key} expected ${kind === 'object' || kind === 'integer' ? `an ${kind}` : `a ${kind}`}, got ${v === null ? 'null' : typeof v === 'number' ? String(v) : (JSON.stringify(v)?.slice(0, 60) ?? typeof v)}`,
      );
  }
}
