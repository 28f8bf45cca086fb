# install.cmake - owns the CTest registration of the install test
# (tests/install/run.sh, label `install`, in the quick tier): install into a
# fresh prefix under the build directory, then build and run programs against
# it through pkg-config, find_package(hakmem) and the installed hakmem-run.
# Included from tests/CMakeLists.txt.  Not in sanitizer builds: their
# libraries need the sanitizer runtime first in the process.
if(HAKMEM_SANITIZE OR HAKMEM_TSAN)
  return()
endif()
add_test(NAME install.package
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/install-test ${CMAKE_COMMAND} ${PKG_CONFIG_EXECUTABLE}
          ${CMAKE_C_COMPILER} ${CMAKE_INSTALL_LIBDIR} ${CMAKE_INSTALL_BINDIR}
          ${PROJECT_VERSION})
set_tests_properties(install.package PROPERTIES LABELS install TIMEOUT 180)
