/**
 * Hugging Face hub access: resolve a model id to a local diffusers folder, downloading
 * only the files the SDK needs into the standard HF cache layout
 * (`models--owner--name/{blobs,snapshots/<commit>,refs}`), with resume of partial files,
 * size and checksum verification, `HF_TOKEN`, `HF_ENDPOINT` and an offline mode.
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  renameSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { NetworkError, ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { hubCacheDir } from '../core/paths.ts';
import { createProgress, formatBytes } from '../core/progress.ts';
import { log } from '../core/logger.ts';

export interface HubOptions {
  revision?: string;
  /** Prefer the `*.fp16.safetensors` variants (half the download). */
  fp16?: boolean;
  /** Use the cache only (also `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
  token?: string;
  endpoint?: string;
  cacheDir?: string;
  silent?: boolean;
}

interface Sibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256: string; size: number };
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
export const isRepoId = (s: string): boolean => REPO_ID.test(s) && !existsSync(s);

const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'].map(
  (f) => `tokenizer/${f}`,
);
const WEIGHTS = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
} as const;

function settings(o: HubOptions) {
  return {
    revision: o.revision ?? 'main',
    endpoint: (o.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/$/, ''),
    token: o.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN,
    cache: o.cacheDir ?? hubCacheDir(),
    offline: o.offline ?? ['1', 'true', 'yes'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase()),
  };
}

export function repoCacheDir(repoId: string, cache = hubCacheDir()): string {
  return join(cache, `models--${repoId.replace('/', '--')}`);
}

/** The files the SDK needs from a repo listing: configs, tokenizer, one weights variant per component. */
export function selectFiles(siblings: readonly Sibling[], fp16 = false): string[] {
  const names = new Set(siblings.map((s) => s.rfilename));
  const wanted = ['model_index.json', 'scheduler/scheduler_config.json', ...TOKENIZER_FILES].filter(
    (f) => names.has(f) || f === 'model_index.json',
  );
  for (const [component, stem] of Object.entries(WEIGHTS)) {
    wanted.push(`${component}/config.json`);
    const variants = fp16 ? [`${stem}.fp16`, stem] : [stem, `${stem}.fp16`];
    const pick = variants
      .flatMap((v) => [`${component}/${v}.safetensors`, `${component}/${v}.safetensors.index.json`])
      .find((f) => names.has(f));
    if (!pick)
      throw new NetworkError(
        `the repository has no safetensors weights for ${component}/ (looked for ${variants.map((v) => `${v}.safetensors`).join(', ')})`,
      );
    wanted.push(pick);
  }
  return wanted;
}

async function request(
  url: string,
  token: string | undefined,
  headers: Record<string, string> = {},
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      redirect: 'follow',
    });
  } catch (e) {
    throw new NetworkError(
      `${url}: request failed (${(e as Error).message}); use offline mode (HF_HUB_OFFLINE=1) with a cached model, or a local folder`,
      { cause: e },
    );
  }
  if (res.status === 401 || res.status === 403)
    throw new NetworkError(
      `${url}: HTTP ${res.status}; the repository may be gated or private: set HF_TOKEN`,
    );
  if (!res.ok && res.status !== 206) throw new NetworkError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}

/** Hash of a file: sha256 for LFS files, git's blob sha1 otherwise (what the hub reports). */
async function fileDigest(path: string, kind: 'sha256' | 'git-sha1'): Promise<string> {
  const h = createHash(kind === 'sha256' ? 'sha256' : 'sha1');
  if (kind === 'git-sha1') h.update(`blob ${statSync(path).size}\0`);
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function downloadBlob(
  url: string,
  blobPath: string,
  s: Sibling,
  token: string | undefined,
  silent: boolean,
): Promise<void> {
  const partial = `${blobPath}.incomplete`;
  mkdirSync(dirname(blobPath), { recursive: true });
  const have = existsSync(partial) ? statSync(partial).size : 0;
  const expected = s.lfs?.size ?? s.size;
  const res = await request(url, token, have ? { range: `bytes=${have}-` } : {});
  const append = res.status === 206;
  if (have && !append) log().info(`${s.rfilename}: server ignored the resume request; downloading again`);
  const fd = openSync(partial, append ? 'a' : 'w');
  const progress = createProgress({ label: s.rfilename, total: expected ?? 0, format: formatBytes, silent });
  let done = append ? have : 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      writeSync(fd, chunk);
      done += chunk.byteLength;
      progress.update(done);
    }
  } finally {
    closeSync(fd);
  }
  progress.done();
  if (expected !== undefined && statSync(partial).size !== expected) {
    throw new NetworkError(
      `${s.rfilename}: downloaded ${statSync(partial).size} bytes, the hub says ${expected}; run again to resume`,
    );
  }
  const want = s.lfs?.sha256 ?? s.blobId;
  if (want) {
    const got = await fileDigest(partial, s.lfs ? 'sha256' : 'git-sha1');
    if (got !== want) {
      unlinkSync(partial);
      throw new NetworkError(
        `${s.rfilename}: checksum mismatch (expected ${want}, got ${got}); the partial file was removed`,
      );
    }
  }
  renameSync(partial, blobPath);
}

function linkSnapshot(snapshotPath: string, blobPath: string): void {
  mkdirSync(dirname(snapshotPath), { recursive: true });
  if (existsSync(snapshotPath)) unlinkSync(snapshotPath);
  symlinkSync(relative(dirname(snapshotPath), blobPath), snapshotPath);
}

/**
 * Download what the SDK needs from `repoId` into the HF cache; returns the snapshot folder.
 * @throws NetworkError for HTTP errors, checksum mismatches, or offline mode without a cached copy.
 */
export async function downloadModel(repoId: string, options: HubOptions = {}): Promise<string> {
  if (!REPO_ID.test(repoId))
    throw new ConfigError(
      messages.invalidOption('model', 'a local folder or a hub id like "owner/name"', repoId),
    );
  const s = settings(options);
  const repoDir = repoCacheDir(repoId, s.cache);
  const cached = cachedSnapshot(repoId, s.revision, s.cache);
  if (s.offline) {
    if (cached) return cached;
    throw new NetworkError(
      `${repoId}@${s.revision} is not in the cache (${repoDir}) and offline mode is on; run \`hyperfeatures download ${repoId}\` on a machine with network`,
    );
  }
  const infoUrl = `${s.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(s.revision)}?blobs=true`;
  const info = (await (await request(infoUrl, s.token)).json()) as { sha?: string; siblings?: Sibling[] };
  if (!info.sha || !Array.isArray(info.siblings))
    throw new NetworkError(`${infoUrl}: unexpected response (no sha/siblings)`);
  const commit = info.sha;
  const byName = new Map(info.siblings.map((x) => [x.rfilename, x]));
  const queue = selectFiles(info.siblings, options.fp16);
  const snapshot = join(repoDir, 'snapshots', commit);
  for (let i = 0; i < queue.length; i++) {
    const file = queue[i];
    const sib = byName.get(file) ?? { rfilename: file };
    const blobPath = join(
      repoDir,
      'blobs',
      sib.lfs?.sha256 ?? sib.blobId ?? `${commit}-${file.replace(/\//g, '_')}`,
    );
    if (!existsSync(blobPath))
      await downloadBlob(
        `${s.endpoint}/${repoId}/resolve/${commit}/${file}`,
        blobPath,
        sib,
        s.token,
        options.silent ?? false,
      );
    linkSnapshot(join(snapshot, file), blobPath);
    if (file.endsWith('.index.json')) {
      const map = (JSON.parse(readFileSync(blobPath, 'utf8')) as { weight_map: Record<string, string> })
        .weight_map;
      for (const shard of new Set(Object.values(map))) queue.push(join(dirname(file), shard));
    }
  }
  mkdirSync(join(repoDir, 'refs'), { recursive: true });
  writeFileSync(join(repoDir, 'refs', s.revision), commit);
  return snapshot;
}

/** The cached snapshot for `revision` when every file the SDK needs is in it. */
export function cachedSnapshot(repoId: string, revision = 'main', cache = hubCacheDir()): string | undefined {
  const repoDir = repoCacheDir(repoId, cache);
  const ref = join(repoDir, 'refs', revision);
  const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : revision;
  const snapshot = join(repoDir, 'snapshots', commit);
  const complete =
    ['model_index.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt'].every((f) =>
      existsSync(join(snapshot, f)),
    ) &&
    Object.entries(WEIGHTS).every(
      ([c, stem]) =>
        existsSync(join(snapshot, c, 'config.json')) &&
        [`${stem}.safetensors`, `${stem}.fp16.safetensors`, `${stem}.safetensors.index.json`].some((f) =>
          existsSync(join(snapshot, c, f)),
        ),
    );
  return complete ? snapshot : undefined;
}

/**
 * A local folder as is; a hub id from the cache, or downloaded when `allowDownload`.
 * @throws NetworkError / ConfigError saying how to get the model.
 */
export async function resolveModel(
  model: string,
  options: HubOptions & { allowDownload?: boolean } = {},
): Promise<string> {
  if (existsSync(model)) return model;
  if (!REPO_ID.test(model))
    throw new ConfigError(`model "${model}" is neither an existing folder nor a hub id like "owner/name"`);
  const s = settings(options);
  const cached = cachedSnapshot(model, s.revision, s.cache);
  if (cached) return cached;
  if (!options.allowDownload) {
    throw new NetworkError(
      `${model} is not in the Hugging Face cache (${s.cache}); run \`hyperfeatures download ${model}\` or allow downloads`,
    );
  }
  return downloadModel(model, options);
}

/**
 * One file of a hub repository (e.g. the authors' aggregation network weights), from the
 * cache or downloaded when allowed, with the same resume and checksum checks.
 * @throws NetworkError when absent offline or the download fails.
 */
export async function hubFile(
  repoId: string,
  filename: string,
  options: HubOptions & { allowDownload?: boolean } = {},
): Promise<string> {
  const s = settings(options);
  const repoDir = repoCacheDir(repoId, s.cache);
  const ref = join(repoDir, 'refs', s.revision);
  const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : undefined;
  if (commit && existsSync(join(repoDir, 'snapshots', commit, filename)))
    return join(repoDir, 'snapshots', commit, filename);
  if (s.offline || !options.allowDownload) {
    throw new NetworkError(
      `${repoId}/${filename} is not in the Hugging Face cache (${repoDir}); allow downloads (--allow-download) or pass a local file`,
    );
  }
  const infoUrl = `${s.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(s.revision)}?blobs=true`;
  const info = (await (await request(infoUrl, s.token)).json()) as { sha?: string; siblings?: Sibling[] };
  const sib = info.siblings?.find((x) => x.rfilename === filename);
  if (!info.sha || !sib) throw new NetworkError(`${repoId}@${s.revision} has no file ${filename}`);
  const blobPath = join(
    repoDir,
    'blobs',
    sib.lfs?.sha256 ?? sib.blobId ?? `${info.sha}-${filename.replace(/\//g, '_')}`,
  );
  if (!existsSync(blobPath))
    await downloadBlob(
      `${s.endpoint}/${repoId}/resolve/${info.sha}/${filename}`,
      blobPath,
      sib,
      s.token,
      options.silent ?? false,
    );
  const snapshotPath = join(repoDir, 'snapshots', info.sha, filename);
  linkSnapshot(snapshotPath, blobPath);
  mkdirSync(join(repoDir, 'refs'), { recursive: true });
  writeFileSync(join(repoDir, 'refs', s.revision), info.sha);
  return snapshotPath;
}
