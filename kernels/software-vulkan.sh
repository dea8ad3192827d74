#!/usr/bin/env bash
# Source this to run onnxruntime's WebGPU provider on a CPU-only machine: SwiftShader (a CPU
# Vulkan that ships with Debian's chromium) behind Dawn. It checks correctness, never speed.
# Needs the Vulkan loader (Debian: libvulkan1) and chromium (for SwiftShader's ICD file).
icd="$(dpkg -L chromium-common 2>/dev/null | grep vk_swiftshader_icd.json | head -n1)"
[ -n "$icd" ] || icd="$(ls /usr/lib/chromium/vk_swiftshader_icd.json 2>/dev/null || true)"
if [ -z "$icd" ]; then
  echo "software-vulkan: SwiftShader not found (Debian: apt install chromium libvulkan1)" >&2
  return 1 2>/dev/null || exit 1
fi
export VK_ICD_FILENAMES="$icd"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
