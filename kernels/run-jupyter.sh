#!/usr/bin/env bash
# `npm run notebooks`: re-execute every notebook with real Jupyter (nbconvert) and the
# project's kernel, saving outputs in place. Needs Debian's jupyter-nbconvert,
# python3-nbclient and python3-ipykernel (or pip's nbconvert + ipykernel).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
node bin/hyperfeatures.js kernel install --prefix "$prefix"
export JUPYTER_PATH="$prefix/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
for nb in notebooks/*.ipynb; do
  echo "executing $nb"
  jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.kernel_name=hyperfeatures --ExecutePreprocessor.timeout=1800 "$nb"
done
