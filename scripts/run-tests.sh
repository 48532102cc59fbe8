#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian's chromium for
# the browser test) and runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then
      SUDO="sudo"
    else
      echo "/usr/bin/chromium is missing and installing it needs root (or sudo): apt-get install -y chromium" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

python -m pip install -q -e '.[all]'

set +e
python -m pytest -p no:cacheprovider -ra "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
