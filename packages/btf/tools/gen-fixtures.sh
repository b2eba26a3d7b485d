#!/bin/sh
# Regenerates the clang-built BTF fixtures in src/testdata and bpftool's dumps of them.
# Needs clang (-target bpf), gcc, pahole, llvm-objcopy and bpftool
# (Debian: clang llvm gcc dwarves bpftool).
set -eu
cd "$(dirname "$0")/../src/testdata"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in kinds.c; do
	name=${src%.c}
	# Relative paths keep the line_info file names independent of the checkout location.
	clang -g -O2 -target bpf -fdebug-prefix-map="$(pwd)"=. -c "$src" -o "$tmp/$name.o"
	llvm-objcopy --dump-section .BTF="$name.btf" --dump-section .BTF.ext="$name.btf.ext" \
		"$tmp/$name.o" "$tmp/$name.stripped.o"
	bpftool btf dump file "$name.btf" > "$name.raw.txt"
	bpftool btf dump file "$name.btf" format c > "$name.bpftool.h"
	# The same program for big-endian BPF: the BTF must describe the same types.
	clang -g -O2 -target bpfeb -fdebug-prefix-map="$(pwd)"=. -c "$src" -o "$tmp/$name.eb.o"
	llvm-objcopy --dump-section .BTF="$name.be.btf" "$tmp/$name.eb.o" "$tmp/$name.eb.stripped.o"
	# gcc's DWARF converted by pahole, as the kernel build makes vmlinux BTF (signed enums, ENUM64).
	gcc -g -O2 -Wno-attributes -c "$src" -o "$tmp/$name.gcc.o"
	pahole -J "$tmp/$name.gcc.o"
	llvm-objcopy --dump-section .BTF="$name.pahole.btf" "$tmp/$name.gcc.o" "$tmp/$name.gcc.stripped.o"
	bpftool btf dump file "$name.pahole.btf" > "$name.pahole.raw.txt"
	bpftool btf dump file "$name.pahole.btf" format c > "$name.pahole.bpftool.h"
done
# Split BTF: module.c encoded by pahole on top of kinds.pahole.btf, deduplicated against it.
gcc -g -O2 -c module.c -o "$tmp/module.o"
pahole -J --btf_base kinds.pahole.btf "$tmp/module.o"
llvm-objcopy --dump-section .BTF=module.split.btf "$tmp/module.o" "$tmp/module.stripped.o"
bpftool btf dump file module.split.btf -B kinds.pahole.btf > module.split.raw.txt
bpftool btf dump file module.split.btf -B kinds.pahole.btf format c > module.split.bpftool.h
