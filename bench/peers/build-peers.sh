#!/usr/bin/env bash
# Fetches and builds the decode benchmark's peers OUTSIDE this repository (never commit their code or binaries):
#   <dir>/llama2.c/run_O3, run_Ofast        karpathy/llama2.c run.c, gcc -O3 / -Ofast -march=native, OpenMP
#   <dir>/llama.cpp/build/bin/llama-bench    ggerganov/llama.cpp (GGML_NATIVE), with its llama2.c converter and quantizer
# and installs Debian's python3-torch + libopenblas0 (the plain PyTorch KV-cache loop) when apt is usable.
# Then: SHARPTUNE_PEERS=<dir> dotnet run --project bench/SharpTune.Bench -c Release -- decode --device cpu
# Usage: bench/peers/build-peers.sh [dir]   (default ~/.cache/sharptune-peers; llama.cpp takes long on 2 cores)
set -euo pipefail
dir=${1:-$HOME/.cache/sharptune-peers}
mkdir -p "$dir"
cd "$dir"
[ -d llama2.c ] || git clone --depth 1 https://github.com/karpathy/llama2.c
(cd llama2.c && gcc -O3 -fopenmp -o run_O3 run.c -lm && gcc -Ofast -fopenmp -march=native -o run_Ofast run.c -lm)
[ -d llama.cpp ] || git clone --depth 1 https://github.com/ggerganov/llama.cpp
(cd llama.cpp && cmake -B build -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_OPENMP=ON >/dev/null \
  && cmake --build build -j"$(nproc)" --target llama-bench llama-convert-llama2c-to-ggml llama-quantize)
if command -v apt-get >/dev/null && ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq python3-torch python3-numpy libopenblas0 >/dev/null || echo "build-peers: python3-torch not installed (the bench reports it n/a)"
fi
echo "peers ready: export SHARPTUNE_PEERS=$dir"
