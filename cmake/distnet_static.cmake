# DISTNET_STATIC_DEPS=ON links HDF5 (C) and Boost.Program_options statically, so that `alexnet`
# runs on a node that has neither (see docs/portable.md). Included before the find_package calls.
#
# What Debian 12's libhdf5_serial.a needs (h5cc -show -noshlib, and the real link):
#   -lcrypto -lcurl (the read-only S3 driver, H5FDros3/H5FDs3comms) -lsz (-> libaec) -lz -ldl -lm
# libsz and libaec are small and taken statically too; libcurl and libcrypto stay shared (a static
# libcurl would need all of its own dependencies as archives) and are bundled by launch/bundle,
# as are zlib, oneDNN, Open MPI and the C++ runtime.
#
# FindHDF5 finds the hdf5 archive itself when HDF5_USE_STATIC_LIBRARIES is set, but looks up the
# extra libraries by plain name (shared first). So the archive of libsz is put into the cache
# entry FindHDF5 would fill, and libaec, which libsz.a calls but h5cc does not list, is appended
# to HDF5::HDF5 once the top-level CMakeLists.txt has been read (cmake_language(DEFER)).

# Switching the option in an existing build directory: forget what the other setting found.
if(DEFINED CACHE{DISTNET_STATIC_DEPS_APPLIED} AND NOT DISTNET_STATIC_DEPS_APPLIED STREQUAL "${DISTNET_STATIC_DEPS}")
  get_cmake_property(cached CACHE_VARIABLES)
  foreach(v IN LISTS cached)
    if(v MATCHES "^HDF5_C_LIBRARY_|^HDF5_LIBRARIES$|^Boost_PROGRAM_OPTIONS_LIBRARY|^FIND_PACKAGE_MESSAGE_DETAILS_HDF5$")
      unset(${v} CACHE)
    endif()
  endforeach()
endif()
set(DISTNET_STATIC_DEPS_APPLIED "${DISTNET_STATIC_DEPS}" CACHE INTERNAL "DISTNET_STATIC_DEPS of the last configure")

if(NOT DISTNET_STATIC_DEPS)
  return()
endif()

set(HDF5_USE_STATIC_LIBRARIES ON)
set(Boost_USE_STATIC_LIBS ON)

find_library(HDF5_C_LIBRARY_sz NAMES libsz.a DOC "szip (libaec) archive for the static HDF5")
find_library(DISTNET_AEC_STATIC_LIBRARY NAMES libaec.a DOC "libaec archive, needed by libsz.a")
if(NOT HDF5_C_LIBRARY_sz OR NOT DISTNET_AEC_STATIC_LIBRARY)
  message(FATAL_ERROR "DISTNET_STATIC_DEPS=ON needs libsz.a and libaec.a (Debian: libaec-dev); "
                      "found: '${HDF5_C_LIBRARY_sz}', '${DISTNET_AEC_STATIC_LIBRARY}'")
endif()

function(distnet_static_deps_check)
  if(NOT TARGET HDF5::HDF5)
    message(FATAL_ERROR "DISTNET_STATIC_DEPS=ON: find_package(HDF5) made no HDF5::HDF5 target")
  endif()
  target_link_libraries(HDF5::HDF5 INTERFACE ${DISTNET_AEC_STATIC_LIBRARY})
  get_target_property(hdf5_libs HDF5::HDF5 INTERFACE_LINK_LIBRARIES)
  set(shared_hdf5 "")
  foreach(lib IN LISTS hdf5_libs)
    if(lib MATCHES "hdf5[^/]*\\.so")
      list(APPEND shared_hdf5 ${lib})
    endif()
  endforeach()
  get_target_property(boost_po Boost::program_options IMPORTED_LOCATION_RELEASE)
  if(NOT boost_po)
    get_target_property(boost_po Boost::program_options IMPORTED_LOCATION)
  endif()
  if(shared_hdf5 OR NOT boost_po MATCHES "\\.a$")
    message(FATAL_ERROR "DISTNET_STATIC_DEPS=ON but shared libraries were found: ${shared_hdf5} "
                        "${boost_po} (Debian's libhdf5-dev and libboost-program-options-dev ship the archives)")
  endif()
  list(JOIN hdf5_libs " " hdf5_text)
  message(STATUS "distnet: static deps: HDF5 ${hdf5_text}; Boost ${boost_po}")
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL distnet_static_deps_check)
