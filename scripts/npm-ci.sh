#!/usr/bin/env bash
# npm ci in each DIR unless its node_modules was installed from the same package-lock.json:
# installs come only from the committed lock, and a second run installs nothing.
#   scripts/npm-ci.sh clients/typescript examples/spa
set -euo pipefail

for dir in "$@"; do
  stamp="$dir/node_modules/.installed-from-package-lock.json"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
    continue
  fi
  echo "npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
done
