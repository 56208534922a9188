#!/usr/bin/env bash
# Packs .device/ for a GPU run (../shared/device/pack.sh), then rebuilds its tree without the
# development-only packages (Biome, TypeScript, the openai client, type packages, the browser drivers), source maps
# and the web page's bundle (no browser there): the device tool sends
# at most 64 MiB, the checkout is ~28 MiB of it, and those packages alone are ~100 MiB unpacked.
#   bash scripts/pack-device.sh [--with-ort | --with-ort-webgpu] [extra paths, default dist]      then carry [".device"]
# --with-ort keeps onnxruntime-web for `longctx bench peers` (scripts/peers-h200.sh), but only the files its runs
# load: the Node build with its plain wasm (the wasm EP), the WebGPU bundle with its asyncify wasm (the WebGPU EP),
# and its small JS dependencies; the other builds (JSEP, JSPI, WebGL, source maps) are ~90 MiB and stay out.
set -euo pipefail
cd "$(dirname "$0")/.."
ort=(--exclude='node_modules/onnxruntime-web')
if [ "${1:-}" = "--with-ort" ] || [ "${1:-}" = "--with-ort-webgpu" ]; then
  plain=" ort-wasm-simd-threaded.wasm"
  [ "$1" = "--with-ort-webgpu" ] && plain="" # the WebGPU EP only (no wasm-EP binary): 4 MiB less to send
  shift
  keep=" package.json types.d.ts dist ort.node.min.js ort.node.min.mjs ort-wasm-simd-threaded.mjs$plain
    ort.webgpu.bundle.min.mjs ort-wasm-simd-threaded.asyncify.wasm "
  ort=()
  for f in node_modules/onnxruntime-web/* node_modules/onnxruntime-web/dist/*; do
    case "$keep" in *" $(basename "$f")"[[:space:]]*) ;; *) ort+=("--exclude=$f") ;; esac
  done
fi
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(dist)
bash ../shared/device/pack.sh "${paths[@]}" > /dev/null
tar -cf - --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/.cache' \
  --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/openai' \
  --exclude='node_modules/@types' --exclude='node_modules/@webgpu' --exclude='node_modules/esbuild' --exclude='node_modules/@esbuild' --exclude='node_modules/puppeteer-core' --exclude='node_modules/chromium-bidi' \
  --exclude='node_modules/devtools-protocol' --exclude='*.js.map' --exclude='dist/web' "${ort[@]}" node_modules "${paths[@]}" | xz -T2 -3 > .device/tree.tar.xz
echo "packed .device ($(du -sm .device | cut -f1) MiB)"
