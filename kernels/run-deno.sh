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
run() {
  echo "executing $1 under Deno"
  jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=deno-hyperfeatures \
    --ExecutePreprocessor.timeout=1800 --output-dir "$out" "$1"
}
for nb in "${notebooks[@]}"; do run "$nb"; done
if ! node kernels/compare-outputs.cjs "$out" "${notebooks[@]}"; then
  # Deno's kernel can still report a cell idle before its last picture is on IOPub (the SDK
  # waits 50 ms after each display against it): a notebook that differs runs once more, and the
  # second comparison decides
  echo "re-running the notebooks that differ, once"
  again=()
  for nb in "${notebooks[@]}"; do
    node kernels/compare-outputs.cjs "$out" "$nb" >/dev/null || again+=("$nb")
  done
  for nb in "${again[@]}"; do run "$nb"; done
  node kernels/compare-outputs.cjs "$out" "${notebooks[@]}"
fi
