#!/usr/bin/env bash
# Debian's Chromium for the workbench browser tests (tests/workbench/test_browser.py).
#
#   bash .ci/chromium.sh     # install `chromium` from Debian if missing; print its path
#
# Playwright (PyPI) drives this browser through an explicit executable path: we never run
# `playwright install`, which would download a browser build at run time.
# Only the executable's path goes to stdout; progress goes to stderr. Idempotent: a second
# call finds the installed browser and does nothing else.
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]]; then
        say "Chromium is not installed and we are not root: sudo apt-get install chromium"
        exit 1
    fi
    say "installing Chromium from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends chromium >&2
    command -v chromium >/dev/null 2>&1 || { say "chromium not found after install"; exit 1; }
fi

say "$(chromium --version 2>/dev/null || echo 'chromium (version unknown)')"
command -v chromium
