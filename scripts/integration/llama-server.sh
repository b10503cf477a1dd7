#!/usr/bin/env bash
# Builds llama.cpp's llama-server for the server-backend tests, once, into the tools folder ($PHI_TOOLS, or
# ~/.cache/phi-complete/tools), and prints the binary's path on its last line. A second run finds it and only
# prints the path.
#
# The sources come from the npm registry, not from a git host (this machine reaches no other): node-llama-cpp
# ships the llama.cpp release it binds as a git bundle (llama/gitRelease.bundle). The package is fetched with
# `npm pack` (no install scripts run: they would download prebuilt binaries), the bundle cloned, and only the
# llama-server target built on the CPU: no curl/openssl, no web UI download, no tests or examples. With two cores
# this takes about 10 minutes the first time.
set -euo pipefail
version="3.22.1" # node-llama-cpp, the version the bench uses
tools="${PHI_TOOLS:-$HOME/.cache/phi-complete/tools}"
dest="$tools/llama-server-$version"
bin="$dest/build/bin/llama-server"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

# npm run exports its configuration as npm_config_* variables, which `npm pack` would read as its own (as in
# setup.sh): keep only where packages come from.
while IFS= read -r name; do
  case "$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')" in
    npm_config_registry | npm_config_cache | npm_config_userconfig | npm_config_globalconfig | npm_config_cafile | \
      npm_config_ca | npm_config_proxy | npm_config_https_proxy | npm_config_noproxy | npm_config_strict_ssl) ;;
    *) unset "$name" ;;
  esac
done < <(compgen -e | grep -i '^npm_config_' || true)

# The machine's image has them; a bare one gets them from Debian (as setup.sh does for chromium).
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null || ! command -v g++ >/dev/null || ! command -v git >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "llama-server: cmake, ninja, g++ and git are needed; install them with: sudo apt-get install -y cmake ninja-build g++ git" >&2
    exit 1
  fi
  echo "llama-server: installing cmake, ninja-build, g++ and git (apt)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake ninja-build g++ git >/dev/null
fi

mkdir -p "$dest"
if ! [ -f "$dest/src/CMakeLists.txt" ]; then
  echo "llama-server: fetching node-llama-cpp@$version's llama.cpp sources" >&2
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/llama-src-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-llama-cpp@$version" >/dev/null && tar xzf "node-llama-cpp-$version.tgz")
  rm -rf "$dest/src"
  git clone --quiet "$tmp/package/llama/gitRelease.bundle" "$dest/src.partial" 2>/dev/null
  mv "$dest/src.partial" "$dest/src"
fi

echo "llama-server: building (CPU, -j2; about 10 minutes once) into $dest/build" >&2
cmake -S "$dest/src" -B "$dest/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_IS_DEV=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=OFF >"$dest/configure.log" 2>&1 ||
  {
    tail -30 "$dest/configure.log" >&2
    exit 1
  }
nice -n 10 cmake --build "$dest/build" --target llama-server -j 2 >"$dest/build.log" 2>&1 || {
  tail -30 "$dest/build.log" >&2
  exit 1
}
"$bin" --version >/dev/null 2>&1 || {
  echo "llama-server: built, but $bin --version fails" >&2
  exit 1
}
echo "$bin"
