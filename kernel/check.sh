#!/bin/sh
# kernel/check.sh: what can be checked of the FreeBSD kernel module on Linux.
#
#  1. Build tests/test_validate.c with ferry_validate.c using the host gcc
#     and run it (the OS-independent validation and errno sentences).
#  2. Compile-check ferry_kmod.c and ferry_validate.c for FreeBSD amd64
#     with zig's clang (-target x86_64-freebsd.14.0), -D_KERNEL
#     -DKLD_MODULE, kernel code-model flags, -Wall -Werror, object files
#     only (zig sanitizers off, as in a kernel build).  Nothing is linked and nothing is loaded: that needs FreeBSD
#     (vm/freebsd/run.sh).
#  3. Compile Sources/CFerryFreeBSD/ferry_freebsd.c on Linux (it must be
#     empty there), and cross-compile + link it for FreeBSD with
#     tests/link_userland.c and -lutil.
#
# Caveat: the headers are the ones the ziglang wheel ships for FreeBSD
# (installed /usr/include headers, not /usr/src/sys).  With zig 0.17.1 they
# come from a FreeBSD 15 tree (P_OSREL_EXTERRCTL 1500045, td_kexterr in
# struct thread), while -target ...14.0 sets __FreeBSD_version 1400500.
# So this catches errors of syntax, types and names against a 15-era KPI;
# it does not prove the module builds against 14's /usr/src.
#
# Exits non-zero on any failure.  FERRY_SKIP_ZIG=1 skips step 2 (prints
# that it skipped it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${FERRY_KBUILD:-$here/../.build/kernel-check}
mkdir -p "$out"

echo "kernel-check: unit tests (gcc)"
${CC:-gcc} -std=c99 -Wall -Wextra -Werror -o "$out/test_validate" \
    "$here/tests/test_validate.c" "$here/ferry_validate.c"
"$out/test_validate" | tee "$out/test_validate.log"
tail -n 1 "$out/test_validate.log" | grep -q ' 0 failed$'

if [ "${FERRY_SKIP_ZIG:-0}" = 1 ]; then
	echo "kernel-check: SKIPPED the FreeBSD compile-check (FERRY_SKIP_ZIG=1)"
	exit 0
fi

zigdir=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')
inc=$zigdir/lib/libc/include
# kmod.mk force-includes opt_global.h; an empty one stands in for it.
: > "$out/opt_global.h"

for src in ferry_kmod.c ferry_validate.c; do
	obj=$out/${src%.c}.o
	echo "kernel-check: compile-check $src for x86_64-freebsd.14.0"
	python3 -m ziglang cc -target x86_64-freebsd.14.0 \
	    -D_KERNEL -DKLD_MODULE -nostdinc \
	    -isystem "$inc/x86_64-freebsd-none" \
	    -isystem "$inc/generic-freebsd" \
	    -isystem "$zigdir/lib/include" \
	    -I"$here" -I"$out" -include opt_global.h \
	    -O2 -fno-sanitize=all -std=iso9899:1999 -ffreestanding -fno-common -fwrapv \
	    -fno-builtin -fno-omit-frame-pointer -fno-strict-aliasing \
	    -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float \
	    -mno-aes -mno-avx -fno-asynchronous-unwind-tables \
	    -fstack-protector -Wall -Werror -Wmissing-prototypes \
	    -Wstrict-prototypes -Wpointer-arith -Wcast-qual -Wundef \
	    -c "$here/$src" -o "$obj"
	# An object for amd64 FreeBSD, or fail.
	python3 - "$obj" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read(20)
assert d[:4] == b'\x7fELF' and d[4] == 2, 'not ELF64'
assert int.from_bytes(d[16:18], 'little') == 1, 'not ET_REL'
assert int.from_bytes(d[18:20], 'little') == 62, 'not x86-64'
PY
done
echo "kernel-check: FreeBSD compile-check passed (objects only; not linked, not loaded)"

# 3. The userland shim, Sources/CFerryFreeBSD: empty on Linux, and
#    cross-compiled and linked for FreeBSD with a main that references
#    every wrapper (libc + libutil, from zig's FreeBSD stubs).
shim=$here/../Sources/CFerryFreeBSD
echo "kernel-check: CFerryFreeBSD compiles to nothing on Linux (gcc)"
${CC:-gcc} -std=c11 -Wall -Wextra -Werror -I"$shim/include" \
    -c "$shim/ferry_freebsd.c" -o "$out/ferry_freebsd_linux.o"
if nm "$out/ferry_freebsd_linux.o" | grep -q ' T '; then
	echo "kernel-check: ferry_freebsd.c defines symbols on Linux" >&2
	exit 1
fi
echo "kernel-check: cross-compile + link CFerryFreeBSD for x86_64-freebsd.14.0"
python3 -m ziglang cc -target x86_64-freebsd.14.0 -std=c11 -O2 \
    -Wall -Wextra -Werror -I"$shim/include" \
    "$here/tests/link_userland.c" "$shim/ferry_freebsd.c" \
    "$here/ferry_validate.c" -lutil -o "$out/link_userland"
python3 - "$out/link_userland" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
d = b[:20]
assert d[:4] == b'\x7fELF' and d[4] == 2, 'not ELF64'
assert int.from_bytes(d[16:18], 'little') in (2, 3), 'not an executable'
assert int.from_bytes(d[18:20], 'little') == 62, 'not x86-64'
# FreeBSD branding: its dynamic linker, a FreeBSD note, libutil needed.
assert b'/libexec/ld-elf.so.1\0' in b, 'interpreter is not ld-elf.so.1'
assert b'FreeBSD\0' in b, 'no FreeBSD note'
assert b'libutil.so' in b, 'libutil not linked'
PY
echo "kernel-check: CFerryFreeBSD linked for FreeBSD (not run: needs FreeBSD)"
echo "kernel-check: cross-compile + link vm/freebsd/guest_module_test.c"
python3 -m ziglang cc -target x86_64-freebsd.14.0 -std=c11 -O2 \
    -Wall -Wextra -Werror -I"$shim/include" \
    "$here/../vm/freebsd/guest_module_test.c" "$shim/ferry_freebsd.c" \
    "$here/ferry_validate.c" -lutil -o "$out/guest_module_test"
echo "kernel-check: guest_module_test linked for FreeBSD (not run: needs FreeBSD)"
