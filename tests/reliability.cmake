# reliability.cmake - owns the CTest registration of tests/reliability.c
# (exhaustion under RLIMIT_AS, refused mmaps, 1000 forks, 50,000 threads,
# cross-thread frees under 8 threads); included at the end of
# tests/CMakeLists.txt, after pools.cmake, whose helpers it uses.
#
# Labels: `reliability` on all of them, plus `inprocess` or `preload` as in
# pools.cmake, and `threads` on the multi-threaded in-process cases (the
# TSan build runs those).

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
    set(${out} sh -c "ulimit -v ${HK_REL_ULIMIT} && exec \"$0\" exhaust" ${exe} PARENT_SCOPE)
  else()
    set(${out} ${exe} ${c} PARENT_SCOPE)
  endif()
endfunction()

set(_rel_sanitized OFF)
if(HAKMEM_SANITIZE OR HAKMEM_TSAN)
  set(_rel_sanitized ON)
endif()
set(_rel_cases fork1000 churn50k xthread8)
if(NOT _rel_sanitized)
  list(PREPEND _rel_cases exhaust mmap_fail)
endif()
foreach(c ${_rel_cases})
  hk_rel_command(_cmd $<TARGET_FILE:reliability_inprocess> ${c})
  hk_pt_inprocess_test(reliability.${c}.inprocess ${_cmd})
  set(_labels "inprocess;pools;reliability")
  if(c MATCHES "^(fork1000|churn50k|xthread8)$")
    string(APPEND _labels ";threads")
  endif()
  set_tests_properties(reliability.${c}.inprocess PROPERTIES LABELS "${_labels}" TIMEOUT 120)
endforeach()

# Preload: a preloaded allocator cannot come before a sanitizer runtime.
if(_rel_sanitized)
  return()
endif()

hk_pt_preload_exe(reliability_preload ${HK_PT_DIR}/reliability.c
                  ${CMAKE_SOURCE_DIR}/pools/classes.c)
set_target_properties(reliability_preload PROPERTIES ENABLE_EXPORTS ON)
foreach(c exhaust mmap_fail fork1000 churn50k xthread8)
  hk_rel_command(_cmd $<TARGET_FILE:reliability_preload> ${c})
  hk_pt_preload_test(reliability.${c}.preload ${_cmd})
  set_tests_properties(reliability.${c}.preload PROPERTIES
                       LABELS "preload;pools;reliability" TIMEOUT 120)
endforeach()
# jemalloc mode: every size to the hooked jemalloc arenas.
foreach(c fork1000 xthread8)
  hk_pt_preload_test(reliability.${c}.jemalloc_mode.preload
                     $<TARGET_FILE:reliability_preload> ${c})
  set_tests_properties(reliability.${c}.jemalloc_mode.preload PROPERTIES
                       LABELS "preload;pools;reliability" TIMEOUT 120
                       ENVIRONMENT "LD_PRELOAD=${HK_PT_LIB};HAKMEM_MODE=jemalloc")
endforeach()
