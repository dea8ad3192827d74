/**
 * What WebGPU will run on, as far as can be told without starting it: onnxruntime-node's
 * WebGPU provider is Dawn, which on Linux goes through the Vulkan loader (libvulkan.so.1) to
 * the drivers its ICD files name. A software Vulkan (SwiftShader, lavapipe) makes "webgpu" an
 * emulation on the CPU: right for checking results, meaningless for speed.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface VulkanDriver {
  /** The ICD file. */
  icd: string;
  /** Its driver library. */
  library: string;
  /** A name for people ("SwiftShader", "NVIDIA", ...). */
  name: string;
  /** A CPU implementation of Vulkan. */
  software: boolean;
}

const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const LOADER_PATHS = [
  '/usr/lib/x86_64-linux-gnu',
  '/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
];

const KNOWN: [RegExp, string, boolean][] = [
  [/swiftshader/i, 'SwiftShader', true],
  [/lvp|lavapipe/i, 'lavapipe (llvmpipe)', true],
  [/nvidia/i, 'NVIDIA', false],
  [/radeon|amdvlk|amdgpu/i, 'AMD', false],
  [/intel/i, 'Intel', false],
  [/freedreno|turnip/i, 'Qualcomm (turnip)', false],
  [/panfrost|panvk/i, 'Arm Mali (panvk)', false],
];

function describeIcd(icd: string): VulkanDriver | undefined {
  try {
    const j = JSON.parse(readFileSync(icd, 'utf8')) as { ICD?: { library_path?: string } };
    const library = j.ICD?.library_path ?? '?';
    const hit = KNOWN.find(([re]) => re.test(library) || re.test(basename(icd)));
    return { icd, library, name: hit?.[1] ?? basename(library), software: hit?.[2] ?? false };
  } catch {
    return undefined;
  }
}

/** The Vulkan drivers the loader will offer: VK_ICD_FILENAMES when set, else the system's ICD files. */
export function vulkanDrivers(env: NodeJS.ProcessEnv = process.env): VulkanDriver[] {
  const listed = env.VK_ICD_FILENAMES ?? env.VK_DRIVER_FILES;
  const files = listed
    ? listed.split(':').filter(Boolean)
    : ICD_DIRS.filter(existsSync).flatMap((d) =>
        readdirSync(d)
          .filter((f) => f.endsWith('.json'))
          .map((f) => join(d, f)),
      );
  return files.map(describeIcd).filter((d): d is VulkanDriver => d !== undefined);
}

/** Whether the Vulkan loader library is installed where Dawn looks (Linux only; true elsewhere). */
export function vulkanLoaderFound(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LOADER_PATHS];
  return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

export const SOFTWARE_VULKAN_HINT =
  "on a machine without a GPU, SwiftShader (a CPU Vulkan that comes with Debian's chromium) runs the WebGPU path for checking results, not speed: " +
  '`apt install chromium libvulkan1`, then `source node_modules/hyperfeatures/kernels/software-vulkan.sh` ' +
  '(or set VK_ICD_FILENAMES to its vk_swiftshader_icd.json and XDG_RUNTIME_DIR=/tmp)';

/** Why WebGPU found no adapter, in words, with what to do. */
export function noAdapterHint(): string {
  if (process.platform !== 'linux') return 'no GPU adapter was found; check the GPU driver';
  if (!vulkanLoaderFound())
    return `the Vulkan loader (libvulkan.so.1) is not installed (Debian: apt install libvulkan1); ${SOFTWARE_VULKAN_HINT}`;
  const drivers = vulkanDrivers();
  if (!drivers.length) return `no Vulkan driver (ICD file) is installed; ${SOFTWARE_VULKAN_HINT}`;
  const names = drivers.map((d) => d.name).join(', ');
  return `no Vulkan driver offered a usable adapter (found: ${names}; Dawn refuses lavapipe); ${SOFTWARE_VULKAN_HINT}`;
}

/** One line for `env`: the Vulkan drivers WebGPU may use, software ones said so. */
export function adapterSummary(): string {
  if (process.platform !== 'linux') return 'adapter: the system GPU (Metal / D3D12)';
  if (!vulkanLoaderFound()) return 'adapter: none (no Vulkan loader, libvulkan.so.1)';
  const drivers = vulkanDrivers();
  if (!drivers.length) return 'adapter: none (no Vulkan ICD file)';
  return `Vulkan drivers: ${drivers
    .map((d) =>
      d.software ? `${d.name} (software: an emulation on the CPU, for correctness, not speed)` : d.name,
    )
    .join(', ')}`;
}

/** Whether every Vulkan driver WebGPU could use here is a software one. */
export function softwareAdapterOnly(): boolean {
  const drivers = process.platform === 'linux' ? vulkanDrivers() : [];
  const usable = drivers.filter((d) => !/lavapipe/.test(d.name)); // Dawn refuses lavapipe
  return usable.length > 0 && usable.every((d) => d.software);
}
