#!/usr/bin/env bash
# Rebuilds the BPF ELF fixtures of packages/loader/testdata from their C sources, in both byte
# orders, with Debian's clang and libbpf-dev headers (apt-get install -y clang llvm libbpf-dev).
# The objects are checked in, so tests never need clang.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../packages/loader/testdata" && pwd)"
clang="${CLANG:-clang}"
# Compile from inside the directory with relative paths so the objects (DWARF and BTF.ext
# file names included) do not depend on where the checkout lives.
cd "$dir"
for src in *.c; do
  name="${src%.c}"
  for target in bpfel bpfeb; do
    "$clang" -O2 -g -target "$target" -mcpu=v3 -I. -c "$src" -o "$name.$target.o"
    # llvm-readelf's view of sections and relocations: the ELF parser's tests compare with it.
    "${READELF:-llvm-readelf}" -S -r --wide "$name.$target.o" >"$name.$target.readelf.txt"
  done
done
echo "built $(ls ./*.o | wc -l) objects in $dir"

# A minimal vmlinux BTF for the CO-RE tests (bpftool's BTFgen keeps only the types and members
# the fixtures relocate against) and pahole's view of the same structs, which the tests compare
# the relocated offsets with. Needs a kernel with /sys/kernel/btf/vmlinux, bpftool and pahole.
vmlinux="${VMLINUX_BTF:-/sys/kernel/btf/vmlinux}"
if [ -r "$vmlinux" ]; then
  bpftool gen min_core_btf "$vmlinux" "$dir/vmlinux-min.btf" "$dir/ringbuf.bpfel.o" "$dir/counts.bpfel.o"
  {
    echo "// pahole -C task_struct,pt_regs on $(uname -r)"
    pahole -C task_struct,pt_regs "$vmlinux" 2>/dev/null
  } >"$dir/vmlinux.pahole.txt"
  echo "wrote vmlinux-min.btf and vmlinux.pahole.txt from $vmlinux"
fi
