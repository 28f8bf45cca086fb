# pools.cmake - owns the CTest registration of the pools and malloc-front
# tests (tests/api_*, pool_*, front_*, preload_*); included from
# tests/CMakeLists.txt.
#
# Two kinds of test:
#  - in process (label `inprocess`): linked with hakmem_core, calling the
#    hk_* front of hooks/hk_malloc.h.  The ASan+UBSan build runs these.
#  - preload (label `preload`): plain programs run with
#    LD_PRELOAD=libhakmem.so (absolute path, so children that change
#    directory keep it).  Not registered in sanitizer builds: a preloaded
#    allocator cannot come before the sanitizer runtime.

set(HK_PT_DIR ${CMAKE_CURRENT_LIST_DIR})
set(HK_PT_LIB $<TARGET_FILE:hakmem>)
# Keep the compiler from folding or eliding allocation calls in test code.
set(HK_PT_NOBUILTIN -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc
                    -fno-builtin-free)
# ... nor new/delete pairs: GCC's -fno-allocation-dce.  clang lacks the
# flag; only the fuzz build uses clang, and it builds no C++ test.
set(HK_PT_NO_NEW_DCE)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(HK_PT_NO_NEW_DCE -fno-allocation-dce)
endif()

# An in-process test program: hk_* front, hakmem_core.
function(hk_pt_inprocess_exe name)
  add_executable(${name} ${ARGN})
  target_compile_definitions(${name} PRIVATE HK_INPROCESS=1)
  target_compile_options(${name} PRIVATE ${HK_PT_NOBUILTIN})
  target_link_libraries(${name} PRIVATE hakmem_core Threads::Threads)
endfunction()

# A program meant for LD_PRELOAD: libc and libdl only, plus the class table
# (pools/classes.c, a plain data table) where the test needs the sizes.
function(hk_pt_preload_exe name)
  add_executable(${name} ${ARGN})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}
                                             ${CMAKE_SOURCE_DIR}/include)
  target_compile_options(${name} PRIVATE ${HK_PT_NOBUILTIN})
  target_link_libraries(${name} PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
endfunction()

function(hk_pt_inprocess_test name)
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "inprocess;pools" TIMEOUT 60)
endfunction()

function(hk_pt_preload_test name)
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "preload;pools" TIMEOUT 90
                       ENVIRONMENT "LD_PRELOAD=${HK_PT_LIB}")
endfunction()

# ---- in process -----------------------------------------------------------------

hk_pt_inprocess_exe(api_conformance_inprocess ${HK_PT_DIR}/api_conformance.c)
hk_pt_inprocess_test(api.conformance.inprocess $<TARGET_FILE:api_conformance_inprocess>)
# The same API under HAKMEM_MODE=jemalloc (every size to hooked jemalloc arenas).
hk_pt_inprocess_test(api.conformance.jemalloc_mode.inprocess
                     $<TARGET_FILE:api_conformance_inprocess>)
set_tests_properties(api.conformance.jemalloc_mode.inprocess PROPERTIES
                     ENVIRONMENT HAKMEM_MODE=jemalloc)

hk_pt_inprocess_exe(pool_threads_inprocess ${HK_PT_DIR}/pool_threads.c)
foreach(c prodcons churn fork)
  hk_pt_inprocess_test(pool.threads.${c}.inprocess $<TARGET_FILE:pool_threads_inprocess> ${c})
  set_tests_properties(pool.threads.${c}.inprocess PROPERTIES LABELS "inprocess;pools;threads")
endforeach()

hk_pt_inprocess_exe(front_routing_inprocess ${HK_PT_DIR}/front_routing.c)
foreach(c routing misuse misuse_warn)
  hk_pt_inprocess_test(front.${c}.inprocess $<TARGET_FILE:front_routing_inprocess> ${c})
endforeach()
set_tests_properties(front.misuse_warn.inprocess PROPERTIES ENVIRONMENT HAKMEM_ON_ERROR=warn)
hk_pt_inprocess_test(front.guard.inprocess $<TARGET_FILE:front_routing_inprocess> guard)
set_tests_properties(front.guard.inprocess PROPERTIES ENVIRONMENT HAKMEM_GUARD=1)

# Freed memory goes back to the OS in a quiet process (the background
# thread), with a 1 s decay; `held` checks that HAKMEM_BACKGROUND=0 turns
# it off.
hk_pt_inprocess_exe(idle_purge_inprocess ${HK_PT_DIR}/idle_purge.c)
foreach(c drop held fork)
  hk_pt_inprocess_test(idle.${c}.inprocess $<TARGET_FILE:idle_purge_inprocess> ${c})
  set_tests_properties(idle.${c}.inprocess PROPERTIES LABELS "inprocess;pools;threads"
                       ENVIRONMENT HAKMEM_PAGE_ARENA_DECAY_MS=1000)
endforeach()
set_tests_properties(idle.held.inprocess PROPERTIES
                     ENVIRONMENT "HAKMEM_PAGE_ARENA_DECAY_MS=1000;HAKMEM_BACKGROUND=0")

if(HAKMEM_SANITIZE)
  return()
endif()

# ---- LD_PRELOAD -------------------------------------------------------------------

hk_pt_preload_exe(api_conformance_preload ${HK_PT_DIR}/api_conformance.c
                  ${CMAKE_SOURCE_DIR}/pools/classes.c)
hk_pt_preload_test(api.conformance.preload $<TARGET_FILE:api_conformance_preload>)
hk_pt_preload_test(api.conformance.jemalloc_mode.preload $<TARGET_FILE:api_conformance_preload>)
set_tests_properties(api.conformance.jemalloc_mode.preload PROPERTIES
                     ENVIRONMENT "LD_PRELOAD=${HK_PT_LIB};HAKMEM_MODE=jemalloc")

hk_pt_preload_exe(pool_threads_preload ${HK_PT_DIR}/pool_threads.c)
foreach(c prodcons churn fork)
  hk_pt_preload_test(pool.threads.${c}.preload $<TARGET_FILE:pool_threads_preload> ${c})
endforeach()
foreach(c prodcons churn fork)
  hk_pt_preload_test(pool.threads.${c}.jemalloc_mode.preload
                     $<TARGET_FILE:pool_threads_preload> ${c})
  set_tests_properties(pool.threads.${c}.jemalloc_mode.preload PROPERTIES
                       ENVIRONMENT "LD_PRELOAD=${HK_PT_LIB};HAKMEM_MODE=jemalloc")
endforeach()

# Idle memory, preloaded, in both modes; jemalloc's own decay at 1 s too.
hk_pt_preload_exe(idle_purge_preload ${HK_PT_DIR}/idle_purge.c)
foreach(mode pools jemalloc)
  foreach(c drop held fork)
    set(_env "LD_PRELOAD=${HK_PT_LIB};HAKMEM_MODE=${mode};HAKMEM_PAGE_ARENA_DECAY_MS=1000"
             "MALLOC_CONF=dirty_decay_ms:1000")
    if(c STREQUAL "held")
      list(APPEND _env HAKMEM_BACKGROUND=0)
    endif()
    hk_pt_preload_test(idle.${c}.${mode}_mode.preload $<TARGET_FILE:idle_purge_preload> ${c})
    set_tests_properties(idle.${c}.${mode}_mode.preload PROPERTIES ENVIRONMENT "${_env}")
  endforeach()
endforeach()

# ---- misuse and malformed environment: exact stderr line and exit status ----------

hk_pt_preload_exe(preload_driver ${HK_PT_DIR}/preload_driver.c)
hk_pt_preload_exe(preload_misuse ${HK_PT_DIR}/preload_misuse.c)
hk_pt_preload_exe(preload_misuse_cxx ${HK_PT_DIR}/preload_misuse_cxx.cc)
target_compile_options(preload_misuse_cxx PRIVATE ${HK_PT_NO_NEW_DCE})

# preload_driver runs the helper with LD_PRELOAD itself; the driver does not
# run preloaded.
function(hk_pt_driver_test name)
  add_test(NAME ${name} COMMAND $<TARGET_FILE:preload_driver> --preload ${HK_PT_LIB} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "preload;pools" TIMEOUT 60)
endfunction()

# case|function|fault: the default aborts (SIGABRT = 6) after the one line;
# HAKMEM_ON_ERROR=warn prints the same line and carries on.
set(HK_PT_MISUSE
  "free_stack|free|invalid pointer"
  "free_global|free|invalid pointer"
  "free_mmap|free|invalid pointer"
  "free_interior|free|invalid pointer"
  "free_interior_mid|free|invalid pointer"
  "free_interior_l25|free|invalid pointer"
  "free_interior_large|free|invalid pointer"
  "double_free|free|double free"
  "double_free_mid|free|double free"
  "double_free_l25|free|double free"
  "double_free_large|free|double free"
  "free_carved|free|double free"
  "uaf_write|malloc|corrupted free list"
  "uaf_write_mid|malloc|corrupted free list"
  "uaf_write_l25|malloc|corrupted free list"
  "realloc_stack|realloc|invalid pointer"
  "realloc_interior|realloc|invalid pointer"
  "realloc_interior_l25|realloc|invalid pointer"
  "realloc_freed|realloc|double free")
set(HK_PT_MISUSE_CXX
  "delete_stack|operator delete|invalid pointer"
  "delete_interior|operator delete|invalid pointer"
  "delete_sized_interior|operator delete|invalid pointer"
  "double_delete|operator delete|double free")
foreach(kind C CXX)
  if(kind STREQUAL "C")
    set(_cases ${HK_PT_MISUSE})
    set(_helper $<TARGET_FILE:preload_misuse>)
  else()
    set(_cases ${HK_PT_MISUSE_CXX})
    set(_helper $<TARGET_FILE:preload_misuse_cxx>)
  endif()
  foreach(spec ${_cases})
    string(REPLACE "|" ";" f "${spec}")
    list(GET f 0 c)
    list(GET f 1 fn)
    list(GET f 2 fault)
    hk_pt_driver_test(preload.misuse.${c} --stderr "hakmem: ${fn}(%P): ${fault}"
                      --signal 6 -- ${_helper} ${c})
    hk_pt_driver_test(preload.misuse.${c}.warn --env HAKMEM_ON_ERROR=warn
                      --stderr "hakmem: ${fn}(%P): ${fault}" --out continued --exit 0
                      -- ${_helper} ${c})
  endforeach()
endforeach()

# HAKMEM_GUARD=1: misuse of guarded blocks, and an overflow that faults.
foreach(spec "double_free_l25|double free" "double_free_large|double free"
             "free_interior_l25|invalid pointer" "free_interior_large|invalid pointer"
             "realloc_interior_l25|invalid pointer")
  string(REPLACE "|" ";" f "${spec}")
  list(GET f 0 c)
  list(GET f 1 fault)
  set(fn free)
  if(c MATCHES "^realloc")
    set(fn realloc)
  endif()
  hk_pt_driver_test(preload.misuse.guard.${c} --env HAKMEM_GUARD=1
                    --stderr "hakmem: ${fn}(%P): ${fault}" --signal 6
                    -- $<TARGET_FILE:preload_misuse> ${c})
endforeach()
hk_pt_driver_test(preload.misuse.guard.overflow --env HAKMEM_GUARD=1 --signal 11
                  -- $<TARGET_FILE:preload_misuse> guard_overflow)

# (add_test directly: these lines hold a ';', which a function's ARGN would split)
add_test(NAME preload.env.hot_size_malformed COMMAND $<TARGET_FILE:preload_driver>
  --preload ${HK_PT_LIB} --env HAKMEM_PAGE_ARENA_HOT_SIZE=abc
  --stderr "hakmem: HAKMEM_PAGE_ARENA_HOT_SIZE='abc' is invalid: expected an integer in [0, 1048576]; using 1024"
  --out "ok hot_size=1024 mode=0" --exit 0 -- $<TARGET_FILE:preload_misuse> work)
add_test(NAME preload.env.mode_malformed COMMAND $<TARGET_FILE:preload_driver>
  --preload ${HK_PT_LIB} --env HAKMEM_MODE=fast
  --stderr "hakmem: HAKMEM_MODE='fast' is invalid: expected one of pools|jemalloc; using pools"
  --out "ok hot_size=1024 mode=0" --exit 0 -- $<TARGET_FILE:preload_misuse> work)
add_test(NAME preload.env.background_malformed COMMAND $<TARGET_FILE:preload_driver>
  --preload ${HK_PT_LIB} --env HAKMEM_BACKGROUND=yes
  --stderr "hakmem: HAKMEM_BACKGROUND='yes' is invalid: expected an integer in [0, 1]; using 1"
  --out "ok hot_size=1024 mode=0" --exit 0 -- $<TARGET_FILE:preload_misuse> work)
set_tests_properties(preload.env.hot_size_malformed preload.env.mode_malformed
                     preload.env.background_malformed
                     PROPERTIES LABELS "preload;pools" TIMEOUT 60)
# Controls: well-formed values are taken silently.
hk_pt_driver_test(preload.env.wellformed --env HAKMEM_PAGE_ARENA_HOT_SIZE=64
  --env HAKMEM_MODE=jemalloc --out "ok hot_size=64 mode=1" --exit 0
  -- $<TARGET_FILE:preload_misuse> work)

# ---- HAKMEM_STATS at exit: after the program closed its stderr, and option
# values as words ------------------------------------------------------------------

hk_pt_preload_exe(preload_stats ${HK_PT_DIR}/preload_stats.c)
foreach(c fclose close names names_json ls)
  add_test(NAME preload.stats.${c} COMMAND sh ${HK_PT_DIR}/preload_stats.sh ${HK_PT_LIB}
           $<TARGET_FILE:preload_stats> ${CMAKE_BINARY_DIR}/hakmem-run ${PROJECT_VERSION} ${c})
  set_tests_properties(preload.stats.${c} PROPERTIES LABELS "preload;pools" TIMEOUT 60)
endforeach()

# ---- C++: the 20 operator new / delete forms ----------------------------------------

hk_pt_preload_exe(preload_cxx ${HK_PT_DIR}/preload_cxx.cc)
target_compile_options(preload_cxx PRIVATE ${HK_PT_NO_NEW_DCE})
hk_pt_preload_test(preload.cxx $<TARGET_FILE:preload_cxx>)

# ---- real programs under LD_PRELOAD ----------------------------------------------------
# The script preloads the library into each program itself (absolute path).

foreach(c python python_stats python_jemalloc sort sqlite gcc gxx git)
  add_test(NAME preload.prog.${c}
           COMMAND sh ${HK_PT_DIR}/preload_programs.sh ${HK_PT_LIB} ${c})
  set_tests_properties(preload.prog.${c} PROPERTIES LABELS "preload;pools;programs"
                       TIMEOUT 120)
endforeach()

# ---- the class table ------------------------------------------------------------
add_executable(pool_classes ${HK_PT_DIR}/pool_classes.c ${CMAKE_SOURCE_DIR}/pools/classes.c)
target_include_directories(pool_classes PRIVATE ${CMAKE_SOURCE_DIR})
hk_pt_inprocess_test(pool.classes $<TARGET_FILE:pool_classes>)
