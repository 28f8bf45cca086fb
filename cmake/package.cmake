# package.cmake - owns what `cmake --install` writes: the libraries
# (libhakmem, libhakmem_hooks and its static copy, libhakmem_je), hakmem.h,
# hakmem-run, the pkg-config files and the CMake package (hakmemConfig.cmake, hakmemConfigVersion.cmake and the
# exported targets hakmem::hooks, hakmem::hooks_static, hakmem::hakmem).
# Everything installed finds its neighbours from where it lies, so an install
# into any prefix (cmake --install build --prefix DIR) can be moved.
# Included from the top-level CMakeLists.txt after the targets exist.
include(CMakePackageConfigHelpers)

set(HAK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hakmem)

# ---- relative paths between the install directories ----------------------
# hak_relpath(<out> <from> <to>): the path from directory <from> to <to>, both
# relative to the prefix; empty when either is absolute (not relocatable).
function(hak_relpath out from to)
  if(IS_ABSOLUTE "${from}" OR IS_ABSOLUTE "${to}")
    set(${out} "" PARENT_SCOPE)
  else()
    file(RELATIVE_PATH rel "/hak-prefix/${from}" "/hak-prefix/${to}")
    string(REGEX REPLACE "/$" "" rel "${rel}")
    if(rel STREQUAL "")
      set(rel .)
    endif()
    set(${out} "${rel}" PARENT_SCOPE)
  endif()
endfunction()

# ---- pkg-config: prefix=${pcfiledir}/<up to the prefix> -------------------
hak_relpath(_pc_up "${CMAKE_INSTALL_LIBDIR}/pkgconfig" "")
if(_pc_up STREQUAL "")
  set(HAK_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  set(HAK_PC_PREFIX "\${pcfiledir}/${_pc_up}")
endif()
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(HAK_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(HAK_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
foreach(pc hakmem hakmem_hooks)
  configure_file(${CMAKE_SOURCE_DIR}/cmake/${pc}.pc.in ${CMAKE_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# ---- hakmem-run: libhakmem.so found relative to the script ----------------
hak_relpath(_run_lib "${CMAKE_INSTALL_BINDIR}" "${CMAKE_INSTALL_LIBDIR}")
if(_run_lib STREQUAL "")
  set(HAKMEM_RUN_LIB ${CMAKE_INSTALL_FULL_LIBDIR}/libhakmem.so)
  set(HAKMEM_RUN_JE_LIB ${CMAKE_INSTALL_FULL_LIBDIR}/libhakmem_je.so)
else()
  set(HAKMEM_RUN_LIB ${_run_lib}/libhakmem.so)
  set(HAKMEM_RUN_JE_LIB ${_run_lib}/libhakmem_je.so)
endif()
configure_file(${CMAKE_SOURCE_DIR}/hooks/hakmem-run.in ${CMAKE_BINARY_DIR}/install/hakmem-run @ONLY)
install(PROGRAMS ${CMAKE_BINARY_DIR}/install/hakmem-run DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---- libraries, header, exported targets ----------------------------------
set_target_properties(hakmem_hooks PROPERTIES EXPORT_NAME hooks)
set_target_properties(hakmem_hooks_static PROPERTIES EXPORT_NAME hooks_static)
set_target_properties(hakmem PROPERTIES EXPORT_NAME hakmem)
install(TARGETS hakmem hakmem_hooks hakmem_hooks_static EXPORT hakmemTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# libhakmem_je.so is for LD_PRELOAD (hakmem-run --jemalloc), not for
# linking: it carries jemalloc itself, so it is not an exported target.
install(TARGETS hakmem_je LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/hakmem.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT hakmemTargets NAMESPACE hakmem:: FILE hakmemTargets.cmake
        DESTINATION ${HAK_CMAKE_DIR})

# ---- hakmemConfig.cmake and hakmemConfigVersion.cmake --------------------
# 0.x: a minor version may change the interface, so only the same major and
# minor version is compatible.
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/hakmemConfig.cmake.in
  ${CMAKE_BINARY_DIR}/hakmemConfig.cmake INSTALL_DESTINATION ${HAK_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hakmemConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hakmemConfig.cmake
              ${CMAKE_BINARY_DIR}/hakmemConfigVersion.cmake
        DESTINATION ${HAK_CMAKE_DIR})
