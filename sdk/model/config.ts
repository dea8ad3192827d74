/**
 * Reading diffusers/transformers `config.json` files with validation: each reader collects
 * every unsupported field into one ConfigError that names the file, the field, the value
 * and what is supported.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, ModelError } from '../core/errors.ts';

export type RawConfig = Record<string, unknown>;

export function readJson(path: string, what: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelError(`${path}: ${what} not found`, { cause: e });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as RawConfig;
  } catch (e) {
    throw new ModelError(`${path}: ${what} is not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Typed field access that records problems instead of throwing at the first. */
export class ConfigReader {
  readonly problems: string[] = [];
  constructor(
    readonly path: string,
    readonly raw: RawConfig,
  ) {}

  private bad(field: string, expected: string): void {
    this.problems.push(`field "${field}" is ${JSON.stringify(this.raw[field])}; supported: ${expected}`);
  }

  int(field: string, fallback?: number): number {
    const v = this.raw[field] ?? fallback;
    if (!Number.isInteger(v)) this.bad(field, 'an integer');
    return v as number;
  }

  number(field: string, fallback?: number): number {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'number') this.bad(field, 'a number');
    return v as number;
  }

  bool(field: string, fallback?: boolean): boolean {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'boolean') this.bad(field, 'true or false');
    return v as boolean;
  }

  ints(field: string): number[] {
    const v = this.raw[field];
    if (!Array.isArray(v) || !v.every(Number.isInteger)) this.bad(field, 'a list of integers');
    return (v as number[]) ?? [];
  }

  strings(field: string, allowed: readonly string[]): string[] {
    const v = this.raw[field];
    if (!Array.isArray(v) || !v.every((s) => allowed.includes(s)))
      this.bad(field, `a list of ${allowed.join(' | ')}`);
    return (v as string[]) ?? [];
  }

  /** A value that must be one of `allowed` (null/undefined count as `fallback`). */
  oneOf<T extends string | boolean | null>(field: string, allowed: readonly T[], fallback: T): T {
    const v = (this.raw[field] ?? fallback) as T;
    if (!allowed.includes(v)) this.bad(field, allowed.map((a) => JSON.stringify(a)).join(' | '));
    return v;
  }

  /** An int, or a list with one int per block (diffusers accepts both). */
  perBlock(field: string, blocks: number, fallback?: number): number[] {
    const v = this.raw[field] ?? fallback;
    if (Number.isInteger(v)) return Array(blocks).fill(v);
    if (Array.isArray(v) && v.length === blocks && v.every(Number.isInteger)) return v as number[];
    this.bad(field, `an integer or a list of ${blocks} integers`);
    return Array(blocks).fill(1);
  }

  /** @throws ConfigError listing every problem. */
  done(what: string): void {
    if (this.problems.length) {
      throw new ConfigError(`${this.path}: unsupported ${what} config:\n  ${this.problems.join('\n  ')}`);
    }
  }
}
