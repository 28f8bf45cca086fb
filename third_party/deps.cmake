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
