#!/usr/bin/env bash
# `npm run notebooks:deno`: execute every notebook under Deno's own Jupyter kernel (the pinned
# `deno` devDependency) with real Jupyter (nbconvert), into a separate folder, then compare the
# deterministic outputs (tables, chart data, printed numbers) with the committed tslab run's.
# usage: kernels/run-deno.sh [out-dir] [notebooks...]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
shift || true
notebooks=("$@")
[ ${#notebooks[@]} -eq 0 ] && notebooks=(notebooks/*.ipynb)
deno="$(pwd)/node_modules/.bin/deno"
export DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
"$deno" --version | head -1
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
# the kernel spec `deno jupyter --install` writes, in a private folder instead of the user's
mkdir -p "$prefix/kernels/deno-hyperfeatures"
cat >"$prefix/kernels/deno-hyperfeatures/kernel.json" <<JSON
{ "argv": ["$deno", "jupyter", "--kernel", "--conn", "{connection_file}"],
  "display_name": "Deno", "language": "typescript" }
JSON
export JUPYTER_PATH="$prefix${JUPYTER_PATH:+:$JUPYTER_PATH}"
mkdir -p "$out"
for nb in "${notebooks[@]}"; do
  echo "executing $nb under Deno"
  jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=deno-hyperfeatures \
    --ExecutePreprocessor.timeout=1800 --output-dir "$out" "$nb"
done
node kernels/compare-outputs.cjs "$out" "${notebooks[@]}"
