/**
 * FeatureStack: the decoder maps captured for ONE image, indexed [save timestep][layer],
 * each [1, C, h, w] at its raw resolution. Resizing (bilinear, align_corners false),
 * timestep-major concatenation for the aggregation network, timestep flipping for
 * generation features, and safetensors I/O with metadata.
 */
import { DataError, ShapeError } from '../core/errors.ts';
import { createHash } from 'node:crypto';
import {
  SafetensorsReader,
  readAllSafetensors,
  safetensorsDataSha256,
  writeSafetensors,
} from '../core/safetensors.ts';
import { Tensor, concat, resizeBilinear } from '../core/tensor.ts';
import type { DiffusionMode } from './loop.ts';
import type { RgbImage } from '../core/rgb.ts';
import { pcaRgb } from './pca.ts';

export interface FeatureMeta {
  model: string;
  /**
   * `noised`: one UNet call on q(x_t | x0) (DIFT); its save timestep label is t itself.
   * `vit`: a ViT's descriptor map (DINOv2), kept in the same cache.
   */
  mode: DiffusionMode | 'noised' | 'vit';
  steps: number;
  /** Square size the image was loaded at (pixels fed to the VAE). */
  imageSize: number;
  seed: number | null;
  /** Original image size, for mapping points back. */
  originalSize?: { width: number; height: number };
  prompt?: string;
  /** Noised mode: the diffusion timestep and the number of noises averaged. */
  timestep?: number;
  ensemble?: number;
  /** Maps are in reversed timestep order (see `flipped()`). */
  flipped?: boolean;
}

export class FeatureStack {
  readonly saveTimesteps: readonly number[];
  readonly layers: readonly number[];
  /** maps[s][l]: [1, C, h, w] */
  readonly maps: readonly (readonly Tensor[])[];
  readonly meta: FeatureMeta;

  /** @throws ShapeError when the maps do not form a timestep x layer grid of single images. */
  constructor(
    saveTimesteps: readonly number[],
    layers: readonly number[],
    maps: Tensor[][],
    meta: FeatureMeta,
  ) {
    if (maps.length !== saveTimesteps.length || maps.some((row) => row.length !== layers.length)) {
      throw new ShapeError(
        `FeatureStack: expected ${saveTimesteps.length} x ${layers.length} maps, got ${maps.length} x ${maps[0]?.length ?? 0}`,
      );
    }
    maps.forEach((row) =>
      row.forEach((m, l) => {
        m.expectShape(`layer ${layers[l]} map`, [1, -1, -1, -1]);
        if (m.shape[1] !== maps[0][l].shape[1])
          throw new ShapeError(`layer ${layers[l]}: channel count differs across timesteps`);
      }),
    );
    this.saveTimesteps = [...saveTimesteps];
    this.layers = [...layers];
    this.maps = maps;
    this.meta = meta;
  }

  /** Channels per layer, in layer order. */
  channels(): number[] {
    return this.maps[0].map((m) => m.shape[1]);
  }

  /** Total float count (memory accounting). */
  size(): number {
    return this.maps.flat().reduce((a, m) => a + m.size, 0);
  }

  map(saveTimestep: number, layer: number): Tensor {
    const s = this.saveTimesteps.indexOf(saveTimestep);
    const l = this.layers.indexOf(layer);
    if (s < 0 || l < 0)
      throw new ShapeError(
        `no map for save timestep ${saveTimestep}, layer ${layer} (have timesteps ${this.saveTimesteps.join(',')}, layers ${this.layers.join(',')})`,
      );
    return this.maps[s][l];
  }

  /** Every map resized to resolution x resolution. */
  resized(resolution: number): FeatureStack {
    return new FeatureStack(
      this.saveTimesteps,
      this.layers,
      this.maps.map((row) => row.map((m) => resizeBilinear(m, resolution, resolution))),
      this.meta,
    );
  }

  /** A sub-stack with the given timesteps and layers (in the given order). */
  select(saveTimesteps: readonly number[], layers: readonly number[]): FeatureStack {
    return new FeatureStack(
      saveTimesteps,
      layers,
      saveTimesteps.map((s) => layers.map((l) => this.map(s, l))),
      this.meta,
    );
  }

  /**
   * The maps in reverse timestep order under the SAME save-timestep labels: what the original
   * synthetic demo feeds an inversion-trained network from generation features
   * (`torch.flip(feats, dims=(1,))`; DESIGN.md semantics 3 and 10). `meta.flipped` records it;
   * flipping twice restores the stack.
   */
  flipped(): FeatureStack {
    const maps = [...this.maps].reverse().map((r) => [...r]);
    return new FeatureStack(this.saveTimesteps, this.layers, maps, {
      ...this.meta,
      flipped: !this.meta.flipped,
    });
  }

  /** [1, S * sum(C), R, R], timestep-major (t0 l1..lL, t1 l1..lL, ...): the aggregation input. */
  concat(resolution: number): Tensor {
    return concat(this.resized(resolution).maps.flat(), 1);
  }

  /**
   * The first three principal components of one map as RGB, with the basis shared with
   * the same map of `others` (Figure 2 of the paper); returns this stack's image first.
   */
  pca(layer: number, saveTimestep: number, others: readonly FeatureStack[] = []): RgbImage[] {
    return pcaRgb([this, ...others].map((s) => s.map(saveTimestep, layer)));
  }

  /** Tensors named `t{saveTimestep}_l{layer}` plus metadata, written atomically. */
  async save(path: string): Promise<void> {
    const tensors: Record<string, Tensor> = {};
    this.saveTimesteps.forEach((s, i) =>
      this.layers.forEach((l, j) => (tensors[`t${s}_l${l}`] = this.maps[i][j])),
    );
    // a checksum of the data section, so silently damaged bytes are caught on read
    const h = createHash('sha256');
    for (const name of Object.keys(tensors).sort()) {
      const d = tensors[name].data;
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    await writeSafetensors(path, tensors, {
      format: 'hyperfeatures-feature-stack',
      data_sha256: h.digest('hex'),
      save_timesteps: JSON.stringify(this.saveTimesteps),
      layers: JSON.stringify(this.layers),
      meta: JSON.stringify(this.meta),
    });
  }

  /**
   * @param o.verify check the data checksum written by save() (the feature cache does; a file
   *   without one fails). @throws DataError for files that are not feature stacks, miss maps,
   *   or (verify) whose bytes changed.
   */
  static async load(path: string, o: { verify?: boolean } = {}): Promise<FeatureStack> {
    if (o.verify) {
      const reader = await SafetensorsReader.open(path);
      const metadata = { ...reader.metadata };
      await reader.close();
      if (!metadata.data_sha256)
        throw new DataError(`${path}: no data checksum (written by an older version)`);
      const got = await safetensorsDataSha256(path);
      if (got !== metadata.data_sha256)
        throw new DataError(`${path}: data checksum mismatch (the file was damaged after it was written)`);
    }
    const { tensors, metadata, dtypes } = await readAllSafetensors(path);
    let saveTimesteps: number[];
    let layers: number[];
    let meta: FeatureMeta;
    try {
      saveTimesteps = JSON.parse(metadata.save_timesteps);
      layers = JSON.parse(metadata.layers);
      meta = JSON.parse(metadata.meta);
    } catch {
      throw new DataError(
        `${path}: not a hyperfeatures feature stack (metadata save_timesteps/layers/meta missing)`,
      );
    }
    const intList = (v: unknown) =>
      Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
    for (const [key, value] of [
      ['save_timesteps', saveTimesteps],
      ['layers', layers],
    ] as const)
      if (!intList(value))
        throw new DataError(
          `${path}: metadata ${key} must be a non-empty JSON list of non-negative integers, got ${JSON.stringify(metadata[key]).slice(0, 80)}`,
        );
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
      throw new DataError(
        `${path}: metadata meta must be a JSON object, got ${JSON.stringify(metadata.meta).slice(0, 80)}`,
      );
    const names = saveTimesteps.flatMap((s) => layers.map((l) => `t${s}_l${l}`));
    const wrongType = names.filter((n) => !tensors.has(n) && dtypes.has(n));
    if (wrongType.length)
      throw new DataError(
        `${path}: map ${wrongType[0]} has dtype ${dtypes.get(wrongType[0])}; feature maps must be floating point (F32, F16 or BF16)`,
      );
    const missing = names.filter((n) => !tensors.has(n));
    if (missing.length)
      throw new DataError(
        `${path}: missing maps ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`,
      );
    for (const n of names) {
      const t = tensors.get(n)!;
      if (t.shape.length !== 4 || t.shape[0] !== 1 || t.shape[2] < 1 || t.shape[3] < 1)
        throw new DataError(
          `${path}: map ${n} has shape [${t.shape.join(', ')}], expected [1, C, H, W] with H, W >= 1`,
        );
    }
    return new FeatureStack(
      saveTimesteps,
      layers,
      saveTimesteps.map((s) => layers.map((l) => tensors.get(`t${s}_l${l}`)!)),
      meta,
    );
  }
}
