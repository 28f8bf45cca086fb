# bench.cmake - owns the CTest registration of the bench programs' tests;
# included from tests/CMakeLists.txt.  The bench is not built in sanitizer
# builds (bench/CMakeLists.txt), so neither are these.
#
#  - bench.workload.<w> (label `preload;bench`): every workload of
#    bench_workloads and bench_cxx at a small scale under
#    LD_PRELOAD=libhakmem.so: exit 0, the workload's own data check passed
#    (a block handed out twice or overwritten fails it), libhakmem provided
#    malloc, and the workload's own RESULT fields are there.
#  - bench.blockcache.<variant> (label `bench`): each block-cache variant
#    of bench_blockcache at 1/50 of its volume: check=ok (a cached block
#    overwritten or a NULL from mallocx fails it) and the fields that prove
#    the variant ran on its own hooks (the rule bench/run.py applies).
#  - bench.usage.* (label `bench`): bad command lines, exact message and
#    exit status.
if(HAKMEM_SANITIZE)
  return()
endif()

set(HK_BENCH_SMOKE ${CMAKE_CURRENT_SOURCE_DIR}/bench_smoke.sh)
set(HK_BW $<TARGET_FILE:bench_workloads>)
set(HK_BC $<TARGET_FILE:bench_cxx>)

# name | program | scale | RESULT fields beyond the common ones ("-": none)
set(HK_BENCH_CASES
  "tiny_hot|${HK_BW}|0.01|-"
  "random_mixed|${HK_BW}|0.05|-"
  "mid_large_mt|${HK_BW}|0.1|-"
  "vm_mixed|${HK_BW}|0.01|-"
  "larson_like|${HK_BW}|0.02|-"
  "prod_cons|${HK_BW}|0.05|-"
  "large_blocks|${HK_BW}|0.01|-"
  "larson|${HK_BW}|0.05|-"
  "xmalloc|${HK_BW}|0.05|-"
  "sh_batch|${HK_BW}|0.05|-"
  "sh_batch_xt|${HK_BW}|0.05|-"
  "malloc_simple|${HK_BW}|0.02|-"
  "malloc_large|${HK_BW}|0.1|rep_min_s,rep_max_s"
  "cxx_mixed|${HK_BC}|0.05|-"
  "cxx_mixed_mt|${HK_BC}|0.05|-"
  "larson_sized|${HK_BC}|0.05|-")
foreach(c ${HK_BENCH_CASES})
  string(REPLACE "|" ";" f "${c}")
  list(GET f 0 w)
  list(GET f 1 prog)
  list(GET f 2 scale)
  list(GET f 3 fields)
  set(want "hk_mode,hk_pool_nmalloc,hk_hooks_alloc")
  if(NOT fields STREQUAL "-")
    string(APPEND want ",${fields}")
  endif()
  add_test(NAME bench.workload.${w}
           COMMAND sh ${HK_BENCH_SMOKE} libhakmem ${want} ${prog} ${w} ${scale})
endforeach()
# idle_rss at 1/50 of its volume, idling 2 s (four idle pairs, two readings).
add_test(NAME bench.workload.idle_rss
         COMMAND sh ${HK_BENCH_SMOKE} libhakmem "rss_freed_kib,rss_idle_kib,idle_s,rss_trace_kib"
                 ${HK_BW} idle_rss 0.02 2)
get_property(_bench_all DIRECTORY PROPERTY TESTS)
list(FILTER _bench_all INCLUDE REGEX "^bench\\.workload\\.")
set_tests_properties(${_bench_all} PROPERTIES LABELS "preload;bench" TIMEOUT 120
                     ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:hakmem>")

# bench_blockcache: variant | what its RESULT line must show.
set(HK_BBC $<TARGET_FILE:bench_blockcache>)
foreach(c "nodump_pa|hook_allocs=[1-9][0-9]* kind_arenas=1 "
          "nodump_folly|hook_allocs=[1-9][0-9]* kind_arenas=0 "
          "default|hook_allocs=0 kind_arenas=0 ")
  string(REPLACE "|" ";" f "${c}")
  list(GET f 0 v)
  list(GET f 1 re)
  add_test(NAME bench.blockcache.${v} COMMAND ${HK_BBC} ${v} 0.02)
  set_tests_properties(bench.blockcache.${v} PROPERTIES LABELS bench TIMEOUT 120
                       PASS_REGULAR_EXPRESSION "RESULT workload=blockcache_${v} .*check=ok .*${re}")
endforeach()
add_test(NAME bench.usage.blockcache COMMAND ${CHECKER} 2
         "usage: ${HK_BBC} <nodump_pa|nodump_folly|default|chase_huge|chase_plain> <scale>"
         ${HK_BBC} nodump 1)
set_tests_properties(bench.usage.blockcache PROPERTIES LABELS bench TIMEOUT 60)

# Bad command lines.
set(HK_BW_USAGE "usage: ${HK_BW} <workload> <scale> [<idle-seconds>]
  workloads: tiny_hot random_mixed mid_large_mt vm_mixed larson_like prod_cons large_blocks larson xmalloc sh_batch sh_batch_xt malloc_simple malloc_large idle_rss
  scale: a positive multiplier, 1.0 = full size
  idle-seconds: 0-3600 (default 15), for a workload that idles")
add_test(NAME bench.usage.no_args COMMAND ${CHECKER} 2 "${HK_BW_USAGE}" ${HK_BW})
add_test(NAME bench.usage.bad_scale COMMAND ${CHECKER} 2 "${HK_BW_USAGE}" ${HK_BW} larson 0)
add_test(NAME bench.usage.unknown COMMAND ${CHECKER} 2
         "${HK_BW}: unknown workload 'cxx_mixed'" ${HK_BW} cxx_mixed 1)
add_test(NAME bench.usage.idle_not_taken COMMAND ${CHECKER} 2
         "${HK_BW}: workload 'larson' takes no idle-seconds argument" ${HK_BW} larson 1 5)
add_test(NAME bench.usage.idle_invalid COMMAND ${CHECKER} 2
         "${HK_BW}: idle-seconds '-1' is invalid: expected a number in [0, 3600]"
         ${HK_BW} idle_rss 1 -1)
add_test(NAME bench.usage.cxx_unknown COMMAND ${CHECKER} 2
         "${HK_BC}: unknown workload 'larson'" ${HK_BC} larson 1)
set_tests_properties(bench.usage.no_args bench.usage.bad_scale bench.usage.unknown
                     bench.usage.idle_not_taken bench.usage.idle_invalid bench.usage.cxx_unknown
                     PROPERTIES LABELS bench TIMEOUT 60)
