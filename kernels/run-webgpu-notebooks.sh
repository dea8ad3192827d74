#!/usr/bin/env bash
# `npm run notebooks:webgpu [-- --software]`: notebooks 01 (real images) and 08 (explorer) end to
# end with HYPERFEATURES_DEVICE=webgpu, through real Jupyter and the project's kernel, into a
# temp folder (the committed outputs stay the CPU's). --software: on SwiftShader's CPU Vulkan.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--software" ]; then
  # shellcheck source=software-vulkan.sh
  source kernels/software-vulkan.sh
  shift
fi
prefix="$(mktemp -d)"
out="$(mktemp -d)"
trap 'rm -rf "$prefix" "$out"' EXIT
node bin/hyperfeatures.js kernel install --prefix "$prefix" >/dev/null
export JUPYTER_PATH="$prefix/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export HYPERFEATURES_DEVICE=webgpu
for nb in notebooks/01_real_images.ipynb notebooks/08_explorer.ipynb; do
  echo "executing $nb on webgpu"
  # run beside the originals (their relative data paths), written to the temp folder
  jupyter nbconvert --to notebook --execute --output-dir "$out" --ExecutePreprocessor.kernel_name=hyperfeatures \
    --ExecutePreprocessor.timeout=3600 "$nb"
  # every code cell ran and none raised
  python3 - "$out/$(basename "$nb")" <<'PY'
import json, sys
nb = json.load(open(sys.argv[1]))
cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
if errors or unrun:
    sys.exit(f"{sys.argv[1]}: {len(errors)} errors, cells not run: {unrun}")
print(f"  {len(cells)} code cells ran without error")
PY
done
