#!/usr/bin/env bash
# Makes TorchSharp's libLibTorchSharp.so load on systems whose libstdc++ predates GLIBCXX_3.4.32
# (e.g. Debian 12). Run by the build (build/SharpTune.targets, shipped as the SharpTune package's
# buildTransitive targets) on the copy in the build or publish output, never on the NuGet cache.
#   1. clear the version of the one symbol that needs 3.4.32 (std::ios_base_library_init),
#   2. add a DT_NEEDED on a tiny shim library that defines it,
#   3. mark the GLIBCXX_3.4.32 version need weak (flag 0x2), so the loader no longer insists on it.
# Tool output is captured before it is parsed: a reader that stops early (grep -q, awk exit) would
# kill the writer with SIGPIPE, which pipefail turns into a failure.
# Usage: fix-libtorchsharp.sh [--always] <path/to/libLibTorchSharp.so> <dir with ios_base_shim.cpp>
#   --always  patch even when this machine's libstdc++ is new enough (for packages built to run elsewhere)
set -euo pipefail
always=false
if [ "${1:-}" = "--always" ]; then always=true; shift; fi
lib=$1
srcdir=$2
shim_name=libSharpTuneIosBaseShim.so

stdcxx=$(g++ -print-file-name=libstdc++.so.6 2>/dev/null || true)
[ -f "$stdcxx" ] || stdcxx=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
if ! $always && [ -f "$stdcxx" ]; then
  stdcxx_strings=$(strings "$(readlink -f "$stdcxx")")
  if [[ $stdcxx_strings == *GLIBCXX_3.4.32* ]]; then
    exit 0  # the system libstdc++ is new enough
  fi
fi
for tool in patchelf g++ readelf; do
  command -v $tool >/dev/null || { echo "fix-libtorchsharp: '$tool' is missing (Debian/Ubuntu: apt-get install patchelf g++ binutils; in the SharpTune repo: scripts/setup.sh)" >&2; exit 1; }
done
dynamic=$(readelf -d "$lib")
if [[ $dynamic == *"$shim_name"* ]]; then
  exit 0  # already fixed
fi

dir=$(dirname "$lib")
tmp=$(mktemp "$dir/.libLibTorchSharp.XXXXXX")
shim_tmp=$(mktemp "$dir/.$shim_name.XXXXXX")
trap 'rm -f "$tmp" "$shim_tmp"' EXIT
# Work on a private copy: the output file may be a hard link into the NuGet cache.
cp "$lib" "$tmp"
chmod --reference="$lib" "$tmp"
g++ -shared -fPIC -O2 -o "$shim_tmp" "$srcdir/ios_base_shim.cpp"
patchelf --clear-symbol-version _ZSt21ios_base_library_initv "$tmp"
patchelf --add-needed "$shim_name" "$tmp"

# Find the vernaux entry for GLIBCXX_3.4.32: readelf prints the section's file offset and each entry's
# offset within it; vna_flags is the 16-bit field 4 bytes into the entry.
versions=$(readelf -V "$tmp")
section_offset=$(awk '/\.gnu\.version_r/ {f=1} f && /Offset:/ {for (i=1;i<=NF;i++) if ($i=="Offset:") {print $(i+1); exit}}' <<<"$versions")
entry_offset=$(awk '/Name: GLIBCXX_3.4.32/ {sub(":", "", $1); print $1; exit}' <<<"$versions")
if [ -z "$section_offset" ] || [ -z "$entry_offset" ]; then
  echo "fix-libtorchsharp: no GLIBCXX_3.4.32 version need found in $lib" >&2
  exit 1
fi
flags_at=$(( section_offset + entry_offset + 4 ))
printf '\x02' | dd of="$tmp" bs=1 seek="$flags_at" conv=notrunc status=none
versions=$(readelf -V "$tmp")
[[ $versions == *"Name: GLIBCXX_3.4.32  Flags: WEAK"* ]] || { echo "fix-libtorchsharp: weak flag not set" >&2; exit 1; }
chmod 755 "$shim_tmp"
mv -f "$shim_tmp" "$dir/$shim_name"
mv -f "$tmp" "$lib"
trap - EXIT
