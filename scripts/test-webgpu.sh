#!/usr/bin/env bash
# The WebGPU test mode: every parity case, the op-by-op kernel checks, node placement and the
# fixture eval, on onnxruntime's WebGPU provider (HYPERFEATURES_TEST_DEVICE=webgpu).
#   npm run test:webgpu            on this machine's GPU
#   npm run test:webgpu:software   on SwiftShader's CPU Vulkan (correctness only, never speed)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--software" ]; then
  # shellcheck source=../kernels/software-vulkan.sh
  source kernels/software-vulkan.sh
  shift
fi
export HYPERFEATURES_TEST_DEVICE=webgpu
# fail at once, with the reason, when no adapter starts (not once per test)
line="$(node bin/hyperfeatures.js env | grep -E '^ +webgpu ')"
echo "$line"
if ! grep -q ' available ' <<<"$line"; then exit 1; fi
exec npx mocha --config .mocharc.webgpu.json "$@"
