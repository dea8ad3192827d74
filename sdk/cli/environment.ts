/** `hyperfeatures env`: what this install can do and where it looks for things. */
import { createRequire } from 'node:module';
import { deviceStatus, ORT_VERSION, Session, type Device } from '../model/runtime.ts';
import { GraphBuilder } from '../model/onnx/graph.ts';
import { Tensor } from '../core/tensor.ts';
import { hubCacheDir, hyperfeaturesCacheDir } from '../core/paths.ts';
import { packageRoot, packageVersion } from '../core/package-root.ts';
import { kernelReport } from '../notebook/kernel.ts';

/**
 * Whether a device really starts: a one-node graph run on it (listing a backend is not enough;
 * WebGPU needs an adapter, CUDA its libraries and a driver).
 */
export async function probeDevice(device: Device): Promise<{ ok: boolean; detail: string }> {
  const g = new GraphBuilder();
  g.output('y', g.op('Identity', [g.input('x', [1])]), [1]);
  try {
    const s = await Session.create(await g.serialize(), { device });
    try {
      await s.run({ x: Tensor.from([1], [1]) });
    } finally {
      await s.dispose();
    }
    return { ok: true, detail: 'started and ran a test graph' };
  } catch (e) {
    return { ok: false, detail: `does not start here: ${(e as Error).message.split('\n')[0].slice(0, 600)}` };
  }
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
