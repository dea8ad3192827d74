/**
 * One evaluation method (a row of Table 1) behind one small interface: what it needs loaded,
 * its row, what it computes in words, and its descriptors for a pair. The loop, records and
 * table (correspondence/evaluate.ts) never name a method; adding a row is adding a module here
 * and registering it in methods/index.ts.
 */
import type { Tensor } from '../../core/tensor.ts';
import type { KeypointPair } from '../../data/pairs.ts';
import type { ExtractOptions } from '../../diffusion/extract.ts';
import type { StableDiffusion } from '../../diffusion/pipeline.ts';
import type { EvalOptions, MethodDefinition } from '../evaluate.ts';

export type ExtractSettings = Omit<ExtractOptions, 'loadSize' | 'onProgress'>;

/** What a run shares across its pairs and methods. */
export interface RunContext {
  sd: StableDiffusion;
  o: EvalOptions;
  loadSize: number;
  /** Descriptor resolution (the paper's 64). */
  R: number;
  /** Extraction settings of the multi-timestep inversion (the network's when one is given). */
  multiExtract: ExtractSettings;
  /** Every feature some method of this run uses (a method may reuse another's). */
  uses: ReadonlySet<string>;
  /** Per-run resources a method prepared (a pruned network...), by method key. */
  prepared: Map<string, unknown>;
}

/** One pair's features, each computed once however many methods read it. */
export class PairFeatures {
  private readonly memo = new Map<string, Promise<unknown>>();
  constructor(
    readonly pair: KeypointPair,
    readonly run: RunContext,
  ) {}

  /** The feature `key` of this pair, computed by `make` the first time it is asked for. */
  get<T>(key: string, make: () => Promise<T>): Promise<T> {
    if (!this.memo.has(key)) this.memo.set(key, make());
    return this.memo.get(key) as Promise<T>;
  }

  has(key: string): boolean {
    return this.memo.has(key);
  }
}

/** A missing model, said once for every method that needs it. */
export interface Requirement {
  /** Methods with the same key share one message. */
  key: string;
  message(methods: readonly string[]): string;
}

export interface EvalMethod<K extends string = string> {
  key: K;
  /** Run by `eval` without --methods. */
  byDefault: boolean;
  /** Its table row when the paper has none (the paper's rows live in methods/paper.ts). */
  row?: { label: string; layers: string; timesteps: string };
  /** Its table is followed by later methods' published numbers (methods/published.ts). */
  showsPublished?: boolean;
  /** Shared features it reads (methods/features.ts), so the run can plan reuse. */
  uses: readonly string[];
  /** What is not loaded for it, if anything. */
  requires?(o: EvalOptions): Requirement | undefined;
  /** Other option checks, before any work. @throws ConfigError */
  check?(o: EvalOptions, sd: StableDiffusion): void;
  /** What it computes with these options (the same for every pair). */
  describe(o: EvalOptions, sd: StableDiffusion): MethodDefinition;
  /** Per-run set-up; returns what to release at the end. */
  prepare?(run: RunContext): Promise<{ dispose(): Promise<void> } | undefined>;
  /**
   * Descriptors [1, D, r, r] of the pair's source and target, matched by the paper's protocol
   * (upsampled to the load size, nearest neighbour per pixel). A method with its own protocol
   * gives `predict` instead.
   */
  descriptors?(f: PairFeatures): Promise<Tensor[]>;
  /** Its own protocol: the target points (x, y, original target pixels) of the pair's source points. */
  predict?(f: PairFeatures): Promise<[number, number][]>;
}

/** Keeps each module's key a literal type, so the registry gives the method-name union. */
export function defineMethod<K extends string>(m: EvalMethod<K>): EvalMethod<K> {
  return m;
}
