#!/bin/sh
# run.sh - owns the install test (CTest `install.package`, label `install`):
# installs the build into a fresh prefix under the build directory, then uses
# it as a user would, with nothing taken from the build or source tree but
# the test programs' sources:
#
#   1. cmake --install BUILD --prefix PREFIX; the .pc files must resolve to
#      PREFIX (prefix, libdir, includedir) and report the project's version;
#   2. tests/install/arena_prog.c built with
#      `pkg-config --cflags --libs hakmem_hooks` (rpath from its libdir) and
#      run: "arena_prog: ok";
#   3. tests/install/consumer/ configured with CMAKE_PREFIX_PATH=PREFIX
#      (find_package(hakmem <major.minor> CONFIG REQUIRED)), built and run:
#      arena_prog (hakmem::hooks) and malloc_probe (hakmem::hakmem, malloc
#      served by PREFIX's libhakmem.so); asking for version 99.0 must fail;
#   4. PREFIX/bin/hakmem-run malloc_probe: malloc comes from PREFIX's
#      libhakmem.so and the Tiny pool counts the block;
#   5. PREFIX/bin/hakmem-run --jemalloc cat /proc/self/maps: PREFIX's
#      libhakmem_je.so is loaded.
#
# Usage: run.sh BUILD SRC WORK CMAKE PKG_CONFIG CC LIBDIR BINDIR VERSION
#   LIBDIR, BINDIR: CMAKE_INSTALL_LIBDIR / CMAKE_INSTALL_BINDIR (relative).
# Any failed step prints "install test: FAIL: ..." and exits 1.
set -eu
[ $# -eq 9 ] || { echo "usage: run.sh BUILD SRC WORK CMAKE PKG_CONFIG CC LIBDIR BINDIR VERSION" >&2; exit 2; }
build=$1 src=$2 work=$3 cmake=$4 pkgconfig=$5 cc=$6 libdir=$7 bindir=$8 version=$9

fail() {
    echo "install test: FAIL: $*" >&2
    exit 1
}
step() { echo "install test: $*"; }
# expect_output WHAT EXPECTED COMMAND...: COMMAND must succeed and print
# exactly EXPECTED on stdout.
expect_output() {
    what=$1 want=$2
    shift 2
    got=$("$@") || fail "$what exited with status $?"
    [ "$got" = "$want" ] || fail "$what printed '$got', expected '$want'"
}

# check_probe WHAT COMMAND...: COMMAND (malloc_probe) must succeed, name
# PREFIX's libhakmem.so as the provider of malloc, and see the block counted.
check_probe() {
    what=$1
    shift
    out=$("$@") || fail "$what exited with status $?"
    lib=$(echo "$out" | sed -n 's/^malloc: //p')
    [ -n "$lib" ] && [ "$(readlink -f "$lib")" = "$(readlink -f "$prefix/$libdir/libhakmem.so")" ] ||
        fail "$what: malloc came from '$lib', not $prefix/$libdir/libhakmem.so"
    echo "$out" | grep -qx "tiny.nmalloc: grew" || fail "$what printed: $out"
}

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

step "cmake --install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    fail "cmake --install failed: $(tail -n 3 "$work/install.log")"
for f in "$libdir/libhakmem.so" "$libdir/libhakmem_hooks.so" "$libdir/libhakmem_hooks.a" \
         include/hakmem.h "$bindir/hakmem-run" "$libdir/pkgconfig/hakmem.pc" \
         "$libdir/pkgconfig/hakmem_hooks.pc" "$libdir/cmake/hakmem/hakmemConfig.cmake" \
         "$libdir/cmake/hakmem/hakmemConfigVersion.cmake"; do
    [ -e "$prefix/$f" ] || fail "$f was not installed"
done

step "pkg-config files resolve to the prefix"
PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
export PKG_CONFIG_PATH
for pc in hakmem hakmem_hooks; do
    for v in prefix:. libdir:$libdir includedir:include; do
        var=${v%%:*} rel=${v#*:}
        got=$("$pkgconfig" --variable="$var" "$pc") || fail "pkg-config --variable=$var $pc failed"
        [ "$(readlink -f "$got")" = "$(readlink -f "$prefix/$rel")" ] ||
            fail "$pc.pc: $var is '$got', not $prefix/$rel"
    done
    got=$("$pkgconfig" --modversion "$pc") || fail "pkg-config --modversion $pc failed"
    [ "$got" = "$version" ] || fail "$pc.pc: version '$got', expected $version"
done

step "arena_prog through pkg-config"
flags=$("$pkgconfig" --cflags --libs hakmem_hooks) || fail "pkg-config --cflags --libs hakmem_hooks failed"
pc_libdir=$("$pkgconfig" --variable=libdir hakmem_hooks)
# shellcheck disable=SC2086
"$cc" -o "$work/arena_prog_pc" "$src/tests/install/arena_prog.c" $flags \
    -Wl,-rpath,"$pc_libdir" >"$work/cc.log" 2>&1 ||
    fail "building arena_prog with pkg-config flags ($flags): $(tail -n 5 "$work/cc.log")"
expect_output "arena_prog (pkg-config)" "arena_prog: ok" "$work/arena_prog_pc"

step "find_package(hakmem) with CMAKE_PREFIX_PATH"
want=$(echo "$version" | cut -d. -f1,2)
"$cmake" -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DEXPECT_PREFIX="$prefix" -DHAKMEM_WANT="$want" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/consumer.log" 2>&1 ||
    fail "configuring the consumer project: $(tail -n 8 "$work/consumer.log")"
"$cmake" --build "$work/consumer" >>"$work/consumer.log" 2>&1 ||
    fail "building the consumer project: $(tail -n 8 "$work/consumer.log")"
expect_output "arena_prog (hakmem::hooks)" "arena_prog: ok" "$work/consumer/arena_prog"
check_probe "malloc_probe (hakmem::hakmem)" "$work/consumer/malloc_probe"

step "find_package(hakmem 99.0) is refused"
if "$cmake" -S "$src/tests/install/consumer" -B "$work/consumer99" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DEXPECT_PREFIX="$prefix" -DHAKMEM_WANT=99.0 \
    >"$work/consumer99.log" 2>&1; then
    fail "find_package(hakmem 99.0) succeeded against version $version"
fi
# (CMake wraps its message: compare with the lines joined.)
tr -s ' \n' '  ' <"$work/consumer99.log" |
    grep -q "compatible with requested version \"99.0\".*hakmemConfig.cmake, version: $version" ||
    fail "find_package(hakmem 99.0) failed for another reason: $(tail -n 8 "$work/consumer99.log")"

step "PREFIX/$bindir/hakmem-run"
# Built without HAKMEM: only the preload can make hak_mallctl appear.
"$cc" -fno-builtin-malloc -fno-builtin-free -o "$work/malloc_probe" \
    "$src/tests/install/malloc_probe.c" -ldl >"$work/cc.log" 2>&1 ||
    fail "building malloc_probe: $(tail -n 5 "$work/cc.log")"
check_probe "hakmem-run malloc_probe" env -u HAKMEM_LIB -u LD_PRELOAD \
    "$prefix/$bindir/hakmem-run" "$work/malloc_probe"

step "PREFIX/$bindir/hakmem-run --jemalloc"
# The preloaded library is PREFIX's libhakmem_je.so: it shows in the maps of
# the program the wrapper runs.
env -u HAKMEM_JE_LIB -u LD_PRELOAD "$prefix/$bindir/hakmem-run" --jemalloc \
    cat /proc/self/maps >"$work/je_maps.txt" 2>"$work/je_maps.err" ||
    fail "hakmem-run --jemalloc cat: $(cat "$work/je_maps.err")"
grep -q " $prefix/$libdir/libhakmem_je\.so" "$work/je_maps.txt" ||
    fail "hakmem-run --jemalloc did not preload $prefix/$libdir/libhakmem_je.so"

step "ok"
