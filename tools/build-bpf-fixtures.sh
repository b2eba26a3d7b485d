#!/usr/bin/env bash
# Rebuilds the BPF ELF fixtures of packages/loader/testdata from their C sources, in both byte
# orders, with Debian's clang and libbpf-dev headers (apt-get install -y clang llvm libbpf-dev).
# The objects are checked in, so tests never need clang.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../packages/loader/testdata" && pwd)"
clang="${CLANG:-clang}"
for src in "$dir"/*.c; do
  name="$(basename "$src" .c)"
  for target in bpfel bpfeb; do
    "$clang" -O2 -g -target "$target" -mcpu=v3 -I"$dir" -c "$src" -o "$dir/$name.$target.o"
  done
done
echo "built $(ls "$dir"/*.o | wc -l) objects in $dir"
