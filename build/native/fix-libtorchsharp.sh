#!/usr/bin/env bash
# Makes TorchSharp's libLibTorchSharp.so load on systems whose libstdc++ predates GLIBCXX_3.4.32
# (e.g. Debian 12). Run by the build on the copy in the build output, never on the NuGet cache.
#   1. clear the version of the one symbol that needs 3.4.32 (std::ios_base_library_init),
#   2. add a DT_NEEDED on a tiny shim library that defines it,
#   3. mark the GLIBCXX_3.4.32 version need weak (flag 0x2), so the loader no longer insists on it.
# Usage: fix-libtorchsharp.sh <path/to/libLibTorchSharp.so> <dir with ios_base_shim.cpp>
set -euo pipefail
lib=$1
srcdir=$2
shim_name=libSharpTuneIosBaseShim.so
stdcxx=$(g++ -print-file-name=libstdc++.so.6 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/libstdc++.so.6)
[ -f "$stdcxx" ] || stdcxx=/usr/lib/x86_64-linux-gnu/libstdc++.so.6

if grep -q GLIBCXX_3.4.32 <(strings "$(readlink -f "$stdcxx")"); then
  exit 0  # the system libstdc++ is new enough
fi
if readelf -d "$lib" | grep -q "$shim_name"; then
  exit 0  # already fixed
fi
for tool in patchelf g++ readelf; do
  command -v $tool >/dev/null || { echo "fix-libtorchsharp: '$tool' is missing; run scripts/setup.sh" >&2; exit 1; }
done

dir=$(dirname "$lib")
tmp=$(mktemp "$dir/.libLibTorchSharp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# Work on a private copy: the output file may be a hard link into the NuGet cache.
cp "$lib" "$tmp"
g++ -shared -fPIC -O2 -o "$dir/$shim_name" "$srcdir/ios_base_shim.cpp"
patchelf --clear-symbol-version _ZSt21ios_base_library_initv "$tmp"
patchelf --add-needed "$shim_name" "$tmp"

# Find the vernaux entry for GLIBCXX_3.4.32: readelf prints the section's file offset and each entry's
# offset within it; vna_flags is the 16-bit field 4 bytes into the entry.
section_offset=$(readelf -V "$tmp" | awk '/\.gnu\.version_r/ {f=1} f && /Offset:/ {for (i=1;i<=NF;i++) if ($i=="Offset:") {print $(i+1); exit}}')
entry_offset=$(readelf -V "$tmp" | awk '/Name: GLIBCXX_3.4.32/ {sub(":", "", $1); print $1; exit}')
if [ -z "$section_offset" ] || [ -z "$entry_offset" ]; then
  echo "fix-libtorchsharp: no GLIBCXX_3.4.32 version need found in $lib" >&2
  exit 1
fi
flags_at=$(( section_offset + entry_offset + 4 ))
printf '\x02' | dd of="$tmp" bs=1 seek="$flags_at" conv=notrunc status=none
readelf -V "$tmp" | grep -q 'Name: GLIBCXX_3.4.32  Flags: WEAK' || { echo "fix-libtorchsharp: weak flag not set" >&2; exit 1; }
mv -f "$tmp" "$lib"
trap - EXIT
