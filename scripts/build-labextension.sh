#!/usr/bin/env bash
# Builds the JupyterLab / Notebook 7 extension from its source (js/, and the
# card's own card.js / card.css / theme.css) with npm and Node.js into
# notebook_ext/labextension, the prebuilt extension the Python package ships
# (users need no Node.js).  With --check it builds and fails unless the
# result matches what is shipped (the test suite runs that).
#
# The build runs in one fixed folder: webpack's module ids hash paths, so
# the same source built in two checkouts would differ otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${TMPDIR:-/tmp}/notebook-ext-labextension-build"
exec 9>"$work.lock"
flock 9  # one build at a time in the fixed folder
rm -rf "$work"
mkdir -p "$work/js" "$work/notebook_ext/ui"
tar -C js --exclude=node_modules --exclude=lib --exclude=tsconfig.tsbuildinfo -cf - . | tar -xf - -C "$work/js"
cp notebook_ext/ui/card.js notebook_ext/ui/card.css notebook_ext/ui/theme.css "$work/notebook_ext/ui/"
(cd "$work/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build >/dev/null)
if [ "${1:-}" = "--check" ]; then
  if diff -r "$work/notebook_ext/labextension" notebook_ext/labextension; then
    echo "notebook_ext/labextension matches its source"
  else
    echo "notebook_ext/labextension does not match its source in js/: run bash scripts/build-labextension.sh and commit the result" >&2
    exit 1
  fi
else
  rm -rf notebook_ext/labextension
  cp -r "$work/notebook_ext/labextension" notebook_ext/labextension
  echo "built notebook_ext/labextension"
fi
