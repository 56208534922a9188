#!/usr/bin/env bash
# Packs .device/ for a GPU run (../shared/device/pack.sh), then rebuilds its tree without the
# development-only packages (Biome, TypeScript, the openai client, type packages): the device tool sends
# at most 64 MiB, the checkout is ~20 MiB of it, and those packages alone are ~100 MiB unpacked.
#   bash scripts/pack-device.sh [extra paths, default dist]      then carry [".device"]
set -euo pipefail
cd "$(dirname "$0")/.."
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(dist)
bash ../shared/device/pack.sh "${paths[@]}" > /dev/null
tar -cf - --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/.cache' \
  --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/openai' \
  --exclude='node_modules/@types' --exclude='node_modules/@webgpu' --exclude='node_modules/onnxruntime-web' --exclude='node_modules/esbuild' --exclude='node_modules/@esbuild' --exclude='node_modules/puppeteer-core' node_modules "${paths[@]}" | xz -T2 -3 > .device/tree.tar.xz
echo "packed .device ($(du -sm .device | cut -f1) MiB)"
