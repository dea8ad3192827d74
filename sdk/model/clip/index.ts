/** Load a CLIPTextModel + tokenizer and turn prompts into UNet conditioning. */
import { ShapeError } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import { resolveComponent } from '../checkpoint.ts';
import { cachedSession } from '../cache.ts';
import { Session } from '../runtime.ts';
import type { VaeLoadOptions } from '../vae/index.ts';
import { buildClipTextGraph } from './build.ts';
import { deviceKernels, halfPrecision } from '../numerics.ts';
import { parseClipTextConfig, type ClipTextConfig } from './config.ts';
import { ClipTokenizer, type EncodeOptions } from './tokenizer.ts';

export { ClipTokenizer, cleanText, type EncodeOptions } from './tokenizer.ts';
export { parseClipTextConfig, type ClipTextConfig } from './config.ts';

export type TextEncoderLoadOptions = Omit<VaeLoadOptions, 'parts'>;

export class TextEncoder {
  readonly config: ClipTextConfig;
  readonly tokenizer: ClipTokenizer;
  private readonly session: Session;

  private constructor(config: ClipTextConfig, tokenizer: ClipTokenizer, session: Session) {
    this.config = config;
    this.tokenizer = tokenizer;
    this.session = session;
  }

  /** Load `<modelDir>/text_encoder` and `<modelDir>/tokenizer`. @throws ModelError / ConfigError */
  static async load(modelDir: string, options: TextEncoderLoadOptions = {}): Promise<TextEncoder> {
    const files = resolveComponent(modelDir, 'text_encoder', options);
    const config = parseClipTextConfig(files.configPath, files.config);
    const tokenizer = ClipTokenizer.load(modelDir);
    const { twoPassNorm } = deviceKernels(options.device);
    const precision = halfPrecision(options.precision, options.device);
    const session = await cachedSession(
      {
        component: 'text_encoder',
        config,
        ...(twoPassNorm ? { options: { twoPassNorm } } : {}),
        weightFiles: files.weightFiles,
        build: (weights) => buildClipTextGraph(config, weights, { twoPassNorm }),
        ignoreUnused: /position_ids$/,
        precision,
        cacheDir: options.cacheDir,
      },
      (path) => Session.create(path, options),
    );
    return new TextEncoder(config, tokenizer, session);
  }

  /** last_hidden_state [B, S, D] for token ids [B][S] (all rows the same length). */
  async encodeIds(ids: number[][]): Promise<Tensor> {
    const s = ids[0]?.length ?? 0;
    if (!ids.length || s === 0 || s > this.config.maxPositions || ids.some((r) => r.length !== s)) {
      throw new ShapeError(
        `input_ids: expected rows of equal length 1..${this.config.maxPositions}, got lengths ${JSON.stringify(ids.map((r) => r.length))}`,
      );
    }
    const bad = ids.flat().find((v) => !Number.isInteger(v) || v < 0 || v >= this.config.vocabSize);
    if (bad !== undefined)
      throw new ShapeError(`input_ids: ${bad} is outside the vocabulary 0..${this.config.vocabSize - 1}`);
    const int64 = BigInt64Array.from(ids.flat().map(BigInt));
    return (await this.session.run({ input_ids: { int64, shape: [ids.length, s] } })).last_hidden_state;
  }

  /** Prompt embeddings [B, 77, D] (or unpadded with `padding: "none"`, one prompt at a time). */
  async encode(prompts: string | string[], options: EncodeOptions = {}): Promise<Tensor> {
    const list = Array.isArray(prompts) ? prompts : [prompts];
    return this.encodeIds(list.map((p) => this.tokenizer.encode(p, options)));
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}
