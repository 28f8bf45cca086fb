# third_party/deps.cmake - finds the dependencies through pkg-config and the
# Debian library paths; vendors nothing.  `make deps` (third_party/install-deps)
# installs whatever is missing on a fresh Debian machine.
find_package(PkgConfig REQUIRED)
pkg_check_modules(JEMALLOC jemalloc>=5.3)
if(NOT JEMALLOC_FOUND)
  message(FATAL_ERROR
    "jemalloc 5.3 not found through pkg-config: install the Debian package "
    "libjemalloc-dev (make deps does it as root).")
endif()
find_library(JEMALLOC_LINK_LIBRARIES NAMES jemalloc HINTS ${JEMALLOC_LIBRARY_DIRS} REQUIRED)
# libhakmem_je.so carries jemalloc whole: Debian's position-independent
# archive of the same jemalloc (libjemalloc-dev ships it).  The library
# defines jemalloc's default arena configuration itself (hooks/hk_je.c), so
# the archive's copy must be jemalloc 5.3's: a 16-byte object named
# je_arena_config_default (the extent hooks pointer, a bool).
find_file(JEMALLOC_PIC_ARCHIVE NAMES libjemalloc_pic.a
          HINTS ${JEMALLOC_LIBRARY_DIRS} PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})
if(NOT JEMALLOC_PIC_ARCHIVE)
  message(FATAL_ERROR
    "libjemalloc_pic.a not found next to ${JEMALLOC_LINK_LIBRARIES}: libhakmem_je.so "
    "links it whole; install the Debian package libjemalloc-dev (make deps does it as root).")
endif()
execute_process(COMMAND ${CMAKE_NM} -S --defined-only ${JEMALLOC_PIC_ARCHIVE}
                OUTPUT_VARIABLE _je_syms ERROR_QUIET)
if(NOT _je_syms MATCHES "0000000000000010 D je_arena_config_default\n")
  message(FATAL_ERROR
    "${JEMALLOC_PIC_ARCHIVE} has no 16-byte je_arena_config_default: libhakmem_je.so "
    "needs the jemalloc 5.3 of Debian's libjemalloc-dev.")
endif()
