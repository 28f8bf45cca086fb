# tests/fuzz/fuzz.cmake - owns the libFuzzer build (HAKMEM_FUZZ): sanitizer
# and coverage flags for the libraries, the two harnesses (fuzz_malloc,
# fuzz_arena) and their CTest smoke runs (label `fuzz`).  Included from the
# top-level CMakeLists.txt before add_subdirectory(tests), in a build
# directory of its own configured with clang:
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHAKMEM_FUZZ=ON
#   cmake --build build-fuzz --target fuzz_malloc fuzz_arena
# Long runs: tests/fuzz/run_fuzz.sh build-fuzz SECONDS.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "HAKMEM_FUZZ needs clang (libFuzzer): configure with CC=clang CXX=clang++")
endif()

set(HK_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(HK_FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=undefined
                -fno-omit-frame-pointer)

# The libraries (defined above this include) get coverage instrumentation
# for the fuzzer plus ASan/UBSan; targets defined after it (tests, bench)
# are compiled and linked with the same sanitizers.  Build only the two
# harnesses here (`--target fuzz_malloc fuzz_arena`): the rest of the tree
# is not meant for clang (tests/pools.cmake uses GCC's -fno-allocation-dce)
# and its preload tests cannot run under an ASan runtime; run `ctest -L
# fuzz` in this directory, never the whole suite.
foreach(t hakmem_hooks_obj hakmem_core hakmem)
  target_compile_options(${t} PRIVATE -fsanitize=fuzzer-no-link ${HK_FUZZ_SAN})
endforeach()
add_compile_options(-fsanitize=fuzzer-no-link ${HK_FUZZ_SAN})
add_link_options(-fsanitize=address,undefined)

# A harness: linked with libFuzzer's main; HAKMEM's allocation calls are not
# folded away.
function(hk_fuzz_harness name src)
  add_executable(${name} ${HK_FUZZ_DIR}/${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/include)
  target_compile_options(${name} PRIVATE -fno-builtin-malloc -fno-builtin-calloc
                         -fno-builtin-realloc -fno-builtin-free)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer ${HK_FUZZ_SAN})
endfunction()

# fuzz_malloc: the hk_* malloc front, as the -DHK_INPROCESS tests use it.
hk_fuzz_harness(fuzz_malloc fuzz_malloc.c)
target_compile_definitions(fuzz_malloc PRIVATE HK_INPROCESS=1)
target_link_libraries(fuzz_malloc PRIVATE hakmem_core Threads::Threads)

# fuzz_arena: the PageArena API alone.
hk_fuzz_harness(fuzz_arena fuzz_arena.c)
target_link_libraries(fuzz_arena PRIVATE hakmem_hooks_static)

# Smoke runs over the seed corpus.  New inputs go to a scratch corpus in
# the build directory (libFuzzer writes into its first corpus directory);
# the seeds in the source tree are only read.
foreach(h malloc arena)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-smoke/corpus_${h})
  add_test(NAME fuzz.${h}.smoke COMMAND sh -c
    "rm -rf '${_work}' && mkdir -p '${_work}' && exec \"$0\" -runs=2000 -rss_limit_mb=3072 -timeout=60 -print_final_stats=1 -artifact_prefix='${CMAKE_BINARY_DIR}/fuzz-smoke/${h}-' '${_work}' '${HK_FUZZ_DIR}/corpus_${h}'"
    $<TARGET_FILE:fuzz_${h}>)
  set_tests_properties(fuzz.${h}.smoke PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()
