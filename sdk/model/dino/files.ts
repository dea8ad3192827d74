/** Finding a transformers checkpoint (folder or hub id) and reading pytorch_model.bin without running code. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ModelError, NetworkError } from '../../core/errors.ts';
import { hyperfeaturesCacheDir } from '../../core/paths.ts';
import { contentHash } from '../../core/identity.ts';
import { writeSafetensors } from '../../core/safetensors.ts';
import { Tensor } from '../../core/tensor.ts';
import { isTorchTensor, torchLoad } from '../../aggregation/torch-load.ts';
import { hubFile, isRepoId, type HubOptions } from '../hub.ts';

/** config.json + weights of a transformers model folder or hub id (safetensors, else pytorch_model.bin). */
export async function resolveTransformersModel(
  model: string,
  o: HubOptions,
  kind: string,
  example: string,
): Promise<{ configPath: string; weights: string }> {
  if (existsSync(model)) {
    const configPath = join(model, 'config.json');
    if (!existsSync(configPath))
      throw new ModelError(`${model}: no config.json (expected a transformers ${kind} folder)`);
    for (const f of ['model.safetensors', 'pytorch_model.bin'])
      if (existsSync(join(model, f))) return { configPath, weights: join(model, f) };
    throw new ModelError(`${model}: no model.safetensors or pytorch_model.bin beside config.json`);
  }
  if (!isRepoId(model))
    throw new ConfigError(
      `${kind} model "${model}" is neither an existing folder nor a hub id like "${example}"`,
    );
  const configPath = await hubFile(model, 'config.json', o);
  try {
    return { configPath, weights: await hubFile(model, 'model.safetensors', o) };
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    return {
      configPath,
      weights: await hubFile(model, 'pytorch_model.bin', o).catch(() => Promise.reject(e)),
    };
  }
}

/** A pytorch_model.bin state dict as a safetensors file in the cache (converted once; no code runs). */
export async function asSafetensors(bin: string, cacheDir?: string): Promise<string> {
  // by content: a .bin replaced in place (same size and mtime) is converted again
  const key = contentHash(bin).slice(0, 24);
  const out = join(cacheDir ?? join(hyperfeaturesCacheDir(), 'converted'), `${key}.safetensors`);
  if (existsSync(out)) return out;
  const dict = torchLoad(bin);
  if (!(dict instanceof Map)) throw new ModelError(`${bin}: expected a state dict (name -> tensor)`);
  const tensors: Record<string, Tensor> = {};
  for (const [name, t] of dict) {
    if (!isTorchTensor(t) || !(t.data instanceof Float32Array)) continue; // position ids and the like
    tensors[String(name)] = new Tensor(t.data, t.shape);
  }
  await writeSafetensors(out, tensors, { source: bin });
  return out;
}
