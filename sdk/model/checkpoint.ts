/**
 * A diffusers checkpoint folder: `model_index.json` plus one folder per component with
 * `config.json` and safetensors weights (single file, fp16 variant, or sharded with an
 * index). Resolves what a component needs and says precisely what is missing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../core/errors.ts';
import { readJson, type RawConfig } from './config.ts';

export const COMPONENT_WEIGHTS = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
} as const;
export type Component = keyof typeof COMPONENT_WEIGHTS | 'tokenizer' | 'scheduler';

export interface ComponentFiles {
  dir: string;
  configPath: string;
  config: RawConfig;
  weightFiles: string[];
}

export interface ResolveOptions {
  /** Prefer `*.fp16.safetensors` (half the download; converted to fp32 when loaded). */
  variant?: 'fp16';
}

/** @throws ModelError when the folder, config or weights are missing. */
export function resolveComponent(
  modelDir: string,
  component: keyof typeof COMPONENT_WEIGHTS,
  options: ResolveOptions = {},
): ComponentFiles {
  const dir = join(modelDir, component);
  if (!existsSync(dir)) {
    throw new ModelError(
      `${modelDir}: missing component folder "${component}/" (a diffusers checkpoint has unet/, vae/, text_encoder/, tokenizer/)`,
    );
  }
  const configPath = join(dir, 'config.json');
  const config = readJson(configPath, `${component} config`);
  return {
    dir,
    configPath,
    config,
    weightFiles: weightFiles(dir, COMPONENT_WEIGHTS[component], options.variant),
  };
}

function weightFiles(dir: string, stem: string, variant?: 'fp16'): string[] {
  const names = variant ? [`${stem}.${variant}`, stem] : [stem, `${stem}.fp16`];
  for (const name of names) {
    const single = join(dir, `${name}.safetensors`);
    if (existsSync(single)) return [single];
    const index = join(dir, `${name}.safetensors.index.json`);
    if (existsSync(index)) {
      const map = (readJson(index, 'weight index').weight_map ?? {}) as Record<string, string>;
      const files = [...new Set(Object.values(map))].map((f) => join(dir, f));
      const missing = files.filter((f) => !existsSync(f));
      if (missing.length) throw new ModelError(`${index}: shards missing: ${missing.join(', ')}`);
      return files;
    }
  }
  const present = existsSync(dir) ? readdirSync(dir) : [];
  const bin = present.find((f) => f.endsWith('.bin') || f.endsWith('.ckpt'));
  throw new ModelError(
    `${dir}: no ${stem}.safetensors (or .fp16 / sharded variant)` +
      (bin
        ? `; found ${bin}: pickled PyTorch weights are not loaded, download the safetensors files`
        : `; the folder has: ${present.join(', ') || 'nothing'}`),
  );
}

/** model_index.json, checked to name the components we need. */
export function readModelIndex(modelDir: string): RawConfig {
  const index = readJson(
    join(modelDir, 'model_index.json'),
    'model_index.json (is this a diffusers checkpoint folder?)',
  );
  return index;
}
