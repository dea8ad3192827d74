/** `hyperfeatures env`: what this install can do and where it looks for things. */
import { createRequire } from 'node:module';
import { deviceStatus, ORT_VERSION, Session, type Device } from '../model/runtime.ts';
import { DATA_TYPES, GraphBuilder } from '../model/onnx/graph.ts';
import { Tensor } from '../core/tensor.ts';
import { hubCacheDir, hyperfeaturesCacheDir } from '../core/paths.ts';
import { packageRoot, packageVersion } from '../core/package-root.ts';
import { kernelReport } from '../notebook/kernel.ts';

/** `x` [1] = 1.5 through a small graph on `device`: its `y`. @throws what the device throws */
async function runProbe(device: Device, g: GraphBuilder): Promise<number> {
  const s = await Session.create(await g.serialize(), { device });
  try {
    return (await s.run({ x: Tensor.from([1.5], [1]) })).y.data[0];
  } finally {
    await s.dispose();
  }
}

/**
 * Whether a device really starts: a one-node graph run on it (listing a backend is not enough;
 * WebGPU needs an adapter, CUDA its libraries and a driver).
 */
export async function probeDevice(device: Device): Promise<{ ok: boolean; detail: string }> {
  const g = new GraphBuilder();
  g.output('y', g.op('Identity', [g.input('x', [1])]), [1]);
  try {
    await runProbe(device, g);
    return { ok: true, detail: 'started and ran a test graph' };
  } catch (e) {
    return { ok: false, detail: `does not start here: ${(e as Error).message.split('\n')[0].slice(0, 600)}` };
  }
}

/**
 * Whether a started GPU device runs half-precision arithmetic (`--precision fp16`): a half
 * Add between two casts (WebGPU needs the adapter's shader-f16 feature for it).
 */
export async function probeHalf(device: Device): Promise<boolean> {
  const g = new GraphBuilder();
  const h = g.op('Cast', [g.input('x', [1])], { to: DATA_TYPES.float16 });
  g.output('y', g.op('Cast', [g.op('Add', [h, h])], { to: DATA_TYPES.float }), [1]);
  return runProbe(device, g).then(
    (y) => y === 3,
    () => false,
  );
}

/** The report with every listed device probed for real. */
export async function environmentReportProbed(): Promise<string> {
  const lines = environmentReport().split('\n');
  const status = deviceStatus();
  for (const s of status) {
    if (!s.available || s.device === 'cpu') continue;
    const p = await probeDevice(s.device);
    const i = lines.findIndex((l) => l.trimStart().startsWith(s.device));
    if (i >= 0 && !p.ok) lines[i] = `  ${s.device.padEnd(7)} unavailable ${p.detail}`;
    else if (i >= 0)
      lines[i] += (await probeHalf(s.device))
        ? '; half precision (--precision fp16): supported'
        : '; half precision (--precision fp16): not on this adapter (no half-precision shaders, shader-f16)';
  }
  return lines.join('\n');
}

export function environmentReport(): string {
  const require = createRequire(import.meta.url);
  const sharpVersion = (require('sharp') as { versions: Record<string, string> }).versions;
  const lines = [
    `hyperfeatures ${packageVersion()} (${packageRoot()})`,
    `node ${process.versions.node} (${process.platform}/${process.arch})`,
    `onnxruntime-node ${ORT_VERSION}`,
    `sharp ${sharpVersion.sharp ?? '?'} (libvips ${sharpVersion.vips ?? '?'})`,
    'devices:',
    ...deviceStatus().map(
      (s) => `  ${s.device.padEnd(7)} ${s.available ? 'available  ' : 'unavailable'} ${s.detail}`,
    ),
    `Hugging Face hub cache: ${hubCacheDir()}  (HF_HOME / HF_HUB_CACHE)`,
    `hyperfeatures cache:    ${hyperfeaturesCacheDir()}  (HYPERFEATURES_CACHE)`,
    'notebook kernels:',
    ...kernelReport(),
  ];
  return lines.join('\n');
}
