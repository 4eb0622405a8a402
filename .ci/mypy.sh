#!/usr/bin/env bash
# mypy --strict on the package. The repository root *is* the package `ssnc`, so check it
# through a symlink named ssnc (the clone's folder name is arbitrary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$root" "$tmp/ssnc"
cd "$tmp"
mypy --config-file "$root/pyproject.toml" --strict -m ssnc -m ssnc.api -m ssnc.cli -m ssnc.output \
    -m ssnc.plugin -m ssnc.testing -m ssnc.transfer -m ssnc.highlight -m ssnc.lsp \
    -m ssnc.lsp_server -m ssnc.lsp_text -m ssnc.distributed -m ssnc.targets -m ssnc.summary \
    -p ssnc.base -p ssnc.grammar -p ssnc.compiler -p ssnc.backends
