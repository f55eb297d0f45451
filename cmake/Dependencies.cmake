# Finds every third-party dependency and exposes them as imported targets. All come from Debian -dev packages,
# except libtorch, which comes from the PyPI torch wheel in the venv (see CMakeLists.txt).

# --- libtorch ---------------------------------------------------------------------------------------------------
# The PyPI wheel is a CUDA build, and its CMake config (TorchConfig/Caffe2Config) stops with an error when no CUDA
# toolkit is installed. With a toolkit (and LETHE_WITH_CUDA not OFF) we use that config; otherwise we link the
# wheel's CPU libraries directly, which is all a CPU run needs.
set(LETHE_HAVE_CUDA OFF)
if(NOT LETHE_WITH_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
endif()
if(CUDAToolkit_FOUND)
  # Name the GPU architectures so Caffe2's config does not run a detection program (there may be no GPU).
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  # CMake 3.25 does not know nvcc's C++20 flag; lethe has no .cu files, C++17 is enough for torch's checks.
  set(CMAKE_CUDA_STANDARD 17)
  find_package(Torch REQUIRED)
  if(TARGET torch_cuda)
    set(LETHE_HAVE_CUDA ON)
  endif()
else()
  if(LETHE_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LETHE_WITH_CUDA=ON but no CUDA toolkit was found (nvcc, /usr/local/cuda)")
  endif()
  get_filename_component(LETHE_TORCH_ROOT "${TORCH_PREFIX}/../.." ABSOLUTE)  # .../site-packages/torch
  foreach(lib torch_cpu c10)
    find_library(LETHE_TORCH_${lib} ${lib} PATHS ${LETHE_TORCH_ROOT}/lib NO_DEFAULT_PATH REQUIRED)
  endforeach()
  execute_process(COMMAND "${LETHE_PYTHON}" -c "import torch; print(int(torch.compiled_with_cxx11_abi()))"
                  OUTPUT_VARIABLE LETHE_TORCH_ABI OUTPUT_STRIP_TRAILING_WHITESPACE)
  add_library(lethe_torch_cpu INTERFACE)
  target_include_directories(lethe_torch_cpu SYSTEM INTERFACE ${LETHE_TORCH_ROOT}/include
                                                              ${LETHE_TORCH_ROOT}/include/torch/csrc/api/include)
  target_link_libraries(lethe_torch_cpu INTERFACE ${LETHE_TORCH_torch_cpu} ${LETHE_TORCH_c10})
  set(TORCH_LIBRARIES lethe_torch_cpu)
  set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${LETHE_TORCH_ABI}")
  set(Torch_VERSION ${LETHE_TORCH_VERSION})
endif()
# The wheel's torch libraries need the CUDA/NCCL libraries of the nvidia-* wheels next to them (their RPATH finds
# them at run time). The linker must see the same ones, not the older NCCL under /usr/local/cuda.
file(GLOB LETHE_NVIDIA_LIB_DIRS "${TORCH_PREFIX}/../../../nvidia/*/lib")
foreach(dir IN LISTS LETHE_NVIDIA_LIB_DIRS)
  add_link_options("LINKER:-rpath-link,${dir}")
endforeach()
# Torch's flags carry the C++11 ABI define that every library we link must agree on.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")

# --- Debian packages -------------------------------------------------------------------------------------------
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(yaml-cpp REQUIRED)  # target `yaml-cpp` (0.7 has no namespaced alias)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# Serial HDF5 (each rank writes its own checkpoint file; no MPI-IO needed) and xxHash for checksums.
pkg_check_modules(HDF5 REQUIRED IMPORTED_TARGET hdf5-serial)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# Unicode categories, NFD and case mapping for BERT's WordPiece normaliser (text/wordpiece.cpp).
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc)
# Open MPI's C API only (the C++ bindings are deprecated).
find_package(MPI REQUIRED COMPONENTS C)
find_package(Threads REQUIRED)

message(STATUS "lethe: libtorch ${Torch_VERSION} from ${TORCH_PREFIX}; CUDA support: ${LETHE_HAVE_CUDA}")

# libtorch's include folder carries its own fmt 12 headers, which would shadow Debian's /usr/include/fmt. We link
# Debian's libfmt 9 (as Debian's spdlog does), so its headers must win: a folder holding only a link to them goes
# first on every target's include path. (The torch headers lethe includes do not use fmt.)
get_target_property(LETHE_FMT_INCLUDE fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
set(LETHE_FMT_SHIM ${CMAKE_BINARY_DIR}/fmt-shim)
file(MAKE_DIRECTORY ${LETHE_FMT_SHIM})
file(CREATE_LINK ${LETHE_FMT_INCLUDE}/fmt ${LETHE_FMT_SHIM}/fmt SYMBOLIC)
include_directories(BEFORE ${LETHE_FMT_SHIM})

# --- NCCL ------------------------------------------------------------------------------------------------------
# The NCCL communicator (distributed-engine issue) must use the same NCCL as libtorch, never two in one process:
# the wheel's nvidia-nccl first, then the CUDA toolkit's. Today `lethe info` links it and reports its version.
set(LETHE_HAVE_NCCL OFF)
if(LETHE_HAVE_CUDA AND NOT LETHE_WITH_NCCL STREQUAL "OFF")
  set(nccl_hints "${TORCH_PREFIX}/../../../nvidia/nccl" /usr/local/cuda)
  find_path(LETHE_NCCL_INCLUDE_DIR nccl.h HINTS ${nccl_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
  find_library(LETHE_NCCL_LIBRARY NAMES libnccl.so.2 nccl NAMES_PER_DIR HINTS ${nccl_hints} PATH_SUFFIXES lib lib64
               NO_DEFAULT_PATH)
  if(LETHE_NCCL_INCLUDE_DIR AND LETHE_NCCL_LIBRARY)
    add_library(lethe_nccl INTERFACE)
    target_include_directories(lethe_nccl SYSTEM INTERFACE ${LETHE_NCCL_INCLUDE_DIR})
    target_link_libraries(lethe_nccl INTERFACE ${LETHE_NCCL_LIBRARY})
    set(LETHE_HAVE_NCCL ON)
  endif()
endif()
if(LETHE_WITH_NCCL STREQUAL "ON" AND NOT LETHE_HAVE_NCCL)
  message(FATAL_ERROR "LETHE_WITH_NCCL=ON but no NCCL was found (needs a CUDA libtorch and nccl.h + libnccl)")
endif()
message(STATUS "lethe: NCCL: ${LETHE_HAVE_NCCL} ${LETHE_NCCL_LIBRARY}")
