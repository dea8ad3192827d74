/**
 * The CLIP BPE tokenizer of Stable Diffusion, from `tokenizer/vocab.json` + `merges.txt`:
 * text cleanup (HTML unescape, NFC, whitespace collapse, lower-case), the CLIP regex
 * split, byte-level BPE with `</w>` word ends, then BOS + tokens + EOS, truncated and
 * padded to the model length as `CLIPTokenizer(padding="max_length", truncation=True)`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../../core/errors.ts';
import { log } from '../../core/logger.ts';
import { readJson } from '../config.ts';

const SPLIT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';

/** GPT-2's reversible byte -> printable unicode map. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table: string[] = new Array(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) table[b] = String.fromCharCode(256 + n++);
  return table;
}

function htmlUnescape(s: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] === '#')
      return String.fromCodePoint(
        e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10),
      );
    return named[e.toLowerCase()] ?? m;
  });
}

/** basic_clean + whitespace_clean + lower, as openai/CLIP's SimpleTokenizer. */
export function cleanText(text: string): string {
  return htmlUnescape(htmlUnescape(text.normalize('NFC')))
    .trim()
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

export interface EncodeOptions {
  /** "max_length" pads to the model length (SD pipelines); "none" keeps [BOS, ..., EOS] (Lotus' empty prompt). */
  padding?: 'max_length' | 'none';
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly byteMap = bytesToUnicode();
  private readonly cache = new Map<string, string[]>();

  constructor(vocab: Record<string, number>, merges: string[], padToken: string, maxLength = 77) {
    this.vocab = new Map(Object.entries(vocab));
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    this.maxLength = maxLength;
    const id = (t: string) => {
      const v = this.vocab.get(t);
      if (v === undefined) throw new ModelError(`tokenizer vocabulary has no "${t}"`);
      return v;
    };
    this.bosId = id(BOS);
    this.eosId = id(EOS);
    this.padId = id(padToken);
  }

  /** Load `<modelDir>/tokenizer`. @throws ModelError for missing or malformed files. */
  static load(modelDir: string): ClipTokenizer {
    const dir = join(modelDir, 'tokenizer');
    const vocab = readJson(join(dir, 'vocab.json'), 'tokenizer vocab.json') as Record<string, number>;
    let mergesText: string;
    try {
      mergesText = readFileSync(join(dir, 'merges.txt'), 'utf8');
    } catch (e) {
      throw new ModelError(`${join(dir, 'merges.txt')}: tokenizer merges not found`, { cause: e });
    }
    const merges = mergesText
      .trim()
      .split('\n')
      .slice(1)
      .filter((l) => l && !l.startsWith('#version'));
    const special = readOptionalJson(join(dir, 'special_tokens_map.json'));
    const config = readOptionalJson(join(dir, 'tokenizer_config.json'));
    const pad = tokenContent(special.pad_token ?? config.pad_token) ?? EOS;
    const maxLength =
      typeof config.model_max_length === 'number' && config.model_max_length < 1e6
        ? config.model_max_length
        : 77;
    return new ClipTokenizer(vocab, merges, pad, maxLength);
  }

  /** BPE token ids of `text` without BOS/EOS. */
  tokenize(text: string): number[] {
    const ids: number[] = [];
    for (const word of cleanText(text).match(SPLIT) ?? []) {
      const mapped = Array.from(new TextEncoder().encode(word), (b) => this.byteMap[b]).join('');
      for (const piece of this.bpe(mapped)) {
        const id = this.vocab.get(piece);
        if (id !== undefined) ids.push(id);
      }
    }
    return ids;
  }

  /** [BOS, tokens, EOS] truncated to the model length (warns), padded unless `padding: "none"`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    let tokens = this.tokenize(text);
    if (tokens.length > this.maxLength - 2) {
      log().warn(
        `prompt has ${tokens.length} tokens; truncated to ${this.maxLength - 2}: "${text.slice(0, 60)}..."`,
      );
      tokens = tokens.slice(0, this.maxLength - 2);
    }
    const ids = [this.bosId, ...tokens, this.eosId];
    if (options.padding !== 'none') while (ids.length < this.maxLength) ids.push(this.padId);
    return ids;
  }

  private bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const [a, b] = [word[best], word[best + 1]];
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === a && word[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(word[i]);
      }
      word = merged;
    }
    this.cache.set(token, word);
    return word;
  }
}

function readOptionalJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function tokenContent(t: unknown): string | undefined {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && 'content' in t) return String((t as { content: unknown }).content);
  return undefined;
}
