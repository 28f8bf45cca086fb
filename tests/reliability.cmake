# reliability.cmake - owns the CTest registration of tests/reliability.c
# (exhaustion under RLIMIT_AS, refused mmaps, 1000 forks, thread churn,
# cross-thread frees under 8 threads); included at the end of
# tests/CMakeLists.txt, after pools.cmake, whose helpers it uses.
#
# Two tiers of each case:
#   reliability.<case>.<variant>       the quick tier (make test): the same
#                                      checks on a bounded volume;
#   reliability.<case>.<variant>.soak  the soak tier (make soak, label
#                                      `soak`): the full volume (--soak).
# Labels: `reliability` on all of them, plus `inprocess` or `preload` as in
# pools.cmake, and `threads` on the multi-threaded in-process cases (the
# TSan build runs the quick ones).  Timeouts: quick 120 s, more than 4x the
# slowest quick case under ctest -j2 on 2 cores (fork1000, about 25 s);
# soak 900 s.

# The program defines mmap: exported (-rdynamic) so that libhakmem.so's and
# libjemalloc's calls resolve to it; in process the static link binds
# arena/pa_os.c's call to it as well.
hk_pt_inprocess_exe(reliability_inprocess ${HK_PT_DIR}/reliability.c)
set_target_properties(reliability_inprocess PROPERTIES ENABLE_EXPORTS ON)

# exhaust runs under a limit on the address space.  Neither it nor mmap_fail
# in sanitizer builds (HAKMEM_SANITIZE, HAKMEM_TSAN): ASan and TSan reserve
# terabytes of shadow (no RLIMIT_AS), and the mmap shim is left out there
# (the sanitizer runtimes intercept mmap themselves).
set(HK_REL_ULIMIT 400000) # KiB, for both variants
function(hk_rel_command out exe c)
  if(c STREQUAL "exhaust")
    set(${out} sh -c "ulimit -v ${HK_REL_ULIMIT} && exec \"$0\" exhaust \"$@\"" ${exe}
        PARENT_SCOPE)
  else()
    set(${out} ${exe} ${c} PARENT_SCOPE)
  endif()
endfunction()

set(_rel_sanitized OFF)
if(HAKMEM_SANITIZE OR HAKMEM_TSAN)
  set(_rel_sanitized ON)
endif()

# hk_rel_tiers(<register> <name> <exe> <case> <labels> [<environment>]): the
# quick test <name> and the soak test <name>.soak.  `register` is the helper
# of pools.cmake that adds one test (hk_pt_inprocess_test or
# hk_pt_preload_test); <environment>, when given, replaces its ENVIRONMENT.
function(hk_rel_tiers register name exe c labels)
  hk_rel_command(_cmd ${exe} ${c})
  cmake_language(CALL ${register} ${name} ${_cmd})
  cmake_language(CALL ${register} ${name}.soak ${_cmd} --soak)
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 120)
  set_tests_properties(${name}.soak PROPERTIES LABELS "${labels};soak" TIMEOUT 900)
  if(ARGC GREATER 5)
    set_tests_properties(${name} ${name}.soak PROPERTIES ENVIRONMENT "${ARGV5}")
  endif()
endfunction()

set(_rel_cases fork1000 churn xthread8)
if(NOT _rel_sanitized)
  list(PREPEND _rel_cases exhaust mmap_fail)
endif()
foreach(c ${_rel_cases})
  set(_labels "inprocess;pools;reliability")
  if(c MATCHES "^(fork1000|churn|xthread8)$")
    string(APPEND _labels ";threads")
  endif()
  hk_rel_tiers(hk_pt_inprocess_test reliability.${c}.inprocess
               $<TARGET_FILE:reliability_inprocess> ${c} "${_labels}")
endforeach()

# Preload: a preloaded allocator cannot come before a sanitizer runtime.
if(_rel_sanitized)
  return()
endif()

hk_pt_preload_exe(reliability_preload ${HK_PT_DIR}/reliability.c
                  ${CMAKE_SOURCE_DIR}/pools/classes.c)
set_target_properties(reliability_preload PROPERTIES ENABLE_EXPORTS ON)
foreach(c exhaust mmap_fail fork1000 churn xthread8)
  hk_rel_tiers(hk_pt_preload_test reliability.${c}.preload
               $<TARGET_FILE:reliability_preload> ${c} "preload;pools;reliability")
endforeach()
# jemalloc mode: every size to the hooked jemalloc arenas.
foreach(c fork1000 xthread8)
  hk_rel_tiers(hk_pt_preload_test reliability.${c}.jemalloc_mode.preload
               $<TARGET_FILE:reliability_preload> ${c} "preload;pools;reliability"
               "LD_PRELOAD=${HK_PT_LIB};HAKMEM_MODE=jemalloc")
endforeach()
