# je_pagearena.cmake - owns the CTest registration of the libhakmem_je.so
# tests (label `je_pagearena`; included from tests/CMakeLists.txt): its
# exports, tests/je_pagearena.c under LD_PRELOAD (under the library's
# retain:false and under MALLOC_CONF=retain:true), the real programs of
# tests/preload_programs.sh, and hakmem-run --jemalloc.  Not registered in
# sanitizer builds: a preloaded allocator cannot come before the sanitizer
# runtime.
if(HAKMEM_SANITIZE)
  return()
endif()

set(HK_JE_LIB $<TARGET_FILE:hakmem_je>)

add_executable(je_pagearena ${CMAKE_CURRENT_LIST_DIR}/je_pagearena.c)
target_compile_options(je_pagearena PRIVATE -fno-builtin-malloc -fno-builtin-calloc
                       -fno-builtin-realloc -fno-builtin-free)
target_link_libraries(je_pagearena PRIVATE Threads::Threads ${CMAKE_DL_LIBS})

add_test(NAME je.exports COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/je_exports.sh
         ${HK_JE_LIB} ${JEMALLOC_LINK_LIBRARIES})
set_tests_properties(je.exports PROPERTIES LABELS je_pagearena TIMEOUT 60)

foreach(c surface arenas64 alloc_calls create fork)
  add_test(NAME je.${c} COMMAND $<TARGET_FILE:je_pagearena> ${c})
  set_tests_properties(je.${c} PROPERTIES LABELS "preload;je_pagearena" TIMEOUT 90
                       ENVIRONMENT "LD_PRELOAD=${HK_JE_LIB}")
endforeach()
# The background thread starts with the program's first thread (hk_je.c).
add_test(NAME je.bgthread COMMAND $<TARGET_FILE:je_pagearena> bgthread on)
set_tests_properties(je.bgthread PROPERTIES LABELS "preload;je_pagearena" TIMEOUT 60
                     ENVIRONMENT "LD_PRELOAD=${HK_JE_LIB}")
add_test(NAME je.bgthread.off COMMAND $<TARGET_FILE:je_pagearena> bgthread off)
set_tests_properties(je.bgthread.off PROPERTIES LABELS "preload;je_pagearena" TIMEOUT 60
                     ENVIRONMENT "LD_PRELOAD=${HK_JE_LIB};HAKMEM_BACKGROUND=0")
foreach(c arenas64 alloc_calls create)
  add_test(NAME je.${c}.retain COMMAND $<TARGET_FILE:je_pagearena> ${c})
  set_tests_properties(je.${c}.retain PROPERTIES LABELS "preload;je_pagearena" TIMEOUT 90
                       ENVIRONMENT "LD_PRELOAD=${HK_JE_LIB};MALLOC_CONF=retain:true")
endforeach()

# Idle memory goes back to the OS in a quiet process (tests/idle_purge.c):
# jemalloc's background threads and the PageArena's, both decays at 1 s;
# `held`: HAKMEM_BACKGROUND=0 turns both off.
add_executable(idle_purge_je ${CMAKE_CURRENT_LIST_DIR}/idle_purge.c)
target_include_directories(idle_purge_je PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/include)
target_compile_definitions(idle_purge_je PRIVATE HK_JE_PRELOAD=1)
target_compile_options(idle_purge_je PRIVATE -fno-builtin-malloc -fno-builtin-free)
target_link_libraries(idle_purge_je PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
foreach(c drop held)
  set(_env "LD_PRELOAD=${HK_JE_LIB};HAKMEM_PAGE_ARENA_DECAY_MS=1000"
           "MALLOC_CONF=dirty_decay_ms:1000")
  if(c STREQUAL "held")
    list(APPEND _env HAKMEM_BACKGROUND=0)
  endif()
  add_test(NAME je.idle.${c} COMMAND $<TARGET_FILE:idle_purge_je> ${c})
  set_tests_properties(je.idle.${c} PROPERTIES LABELS "preload;je_pagearena" TIMEOUT 90
                       ENVIRONMENT "${_env}")
endforeach()

# The real programs (the script preloads the library itself).
foreach(c python python_je sort sqlite gcc gxx git)
  add_test(NAME je.prog.${c}
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/preload_programs.sh ${HK_JE_LIB} ${c})
  set_tests_properties(je.prog.${c} PROPERTIES LABELS "preload;je_pagearena;programs"
                       TIMEOUT 120)
endforeach()

# hakmem-run --jemalloc: jemalloc's mallctl and HAKMEM's statistics in the
# program (python3 links neither), no pool statistics.
add_test(NAME run.wrapper_jemalloc COMMAND sh -c
  "HAKMEM_STATS=1 ${CMAKE_BINARY_DIR}/hakmem-run --jemalloc python3 -c 'import ctypes; l = ctypes.CDLL(None); l.mallctl; l.hak_mallctl; print(\"live\")' 2>err.txt | grep -qx live && grep -q '^stats.hooks.alloc_calls: [1-9]' err.txt && ! grep -q '^stats.tiny' err.txt")
add_test(NAME run.wrapper_bad_option COMMAND ${CHECKER} 2
  "hakmem-run: unknown option '--jemaloc'
usage: hakmem-run [--jemalloc] program [args...]" ${CMAKE_BINARY_DIR}/hakmem-run --jemaloc true)
set_tests_properties(run.wrapper_jemalloc run.wrapper_bad_option PROPERTIES
                     LABELS "preload;je_pagearena" TIMEOUT 60)
