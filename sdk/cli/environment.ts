/** `hyperfeatures env`: what this install can do and where it looks for things. */
import { createRequire } from 'node:module';
import { deviceStatus, ORT_VERSION } from '../model/runtime.ts';
import { hubCacheDir, hyperfeaturesCacheDir } from '../core/paths.ts';
import { packageRoot, packageVersion } from '../core/package-root.ts';

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
  ];
  return lines.join('\n');
}
