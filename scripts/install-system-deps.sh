#!/usr/bin/env bash
# Installs what the test suite runs for real and a fresh Debian machine may lack:
# PostgreSQL server binaries and Redis (apt), Node.js for the local OpenID provider and the
# TypeScript client kit, Chromium for the browser tests (Playwright drives Debian's build: the
# tests never download a browser), and promtool (Debian's `prometheus`) to check the alert
# rules in deploy/ (tests/deploy).
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v node >/dev/null || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]}: run as root or install them" >&2
    exit 1
  fi
  echo "installing ${need[*]} with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts packaged services where it can; the tests start their own servers.
  (service redis-server stop || true) >/dev/null 2>&1
fi

# promtool: best effort. Without it only tests/deploy's `promtool check` is skipped, so a
# machine whose apt cannot provide the package still runs the rest of the suite.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing prometheus (for promtool) with apt"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
    # Only promtool is wanted: Debian may start the packaged server, which the tests do not use.
    (service prometheus stop || true) >/dev/null 2>&1
  else
    echo "warning: could not install prometheus; the promtool check of deploy/ will be skipped" >&2
  fi
fi
