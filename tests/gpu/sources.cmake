# The sources of lethe_device_check, shared by tests/gpu/CMakeLists.txt (inside the lethe build) and
# tests/gpu/standalone/CMakeLists.txt (alone on a GPU node).
#
# It compiles the lethe sources it needs itself rather than linking lethe_core, which brings MPI, HDF5, spdlog,
# yaml-cpp and the rest: these need only libtorch, NCCL and fmt.
#   model/causal_lm.cpp, layers.cpp, gpt_neo.cpp,  the model interface, the shared layers, both families
#   llama.cpp, model_config.cpp
#   model/generate.cpp, lm_loss.cpp               generation, the chunked next-token loss
#   zero/engine.cpp, flat_layout.cpp, adamw.cpp     the ZeRO engine and its layout (adamw.h is in engine.h)
#   core/memory.cpp                                 release_free_memory(), which engine.cpp calls
#   comm/communicator.cpp, local.cpp, nccl.cpp      the helpers, make_self() and the NCCL communicator
#   unlearn/objective.cpp                           the ICU step the 2.7B memory step runs (its unlearn/method.h
#                                                   includes core/config_schema.h: header-only, fmt)
# Not needed: zero/schedule.cpp (the check passes learning rates directly), comm/world.cpp (MPI), comm/device.cpp.
set(LETHE_DEVICE_CHECK_DIR ${CMAKE_CURRENT_LIST_DIR})

# Sets `out` to every source of lethe_device_check, given lethe's src/ folder.
function(lethe_device_check_sources out src)
  set(${out}
      ${LETHE_DEVICE_CHECK_DIR}/device_check.cpp
      ${LETHE_DEVICE_CHECK_DIR}/device_check_model.cpp
      ${LETHE_DEVICE_CHECK_DIR}/device_check_nccl.cpp
      ${LETHE_DEVICE_CHECK_DIR}/device_check_rank.cpp
      ${LETHE_DEVICE_CHECK_DIR}/device_check_precision.cpp
      ${src}/model/causal_lm.cpp
      ${src}/model/layers.cpp
      ${src}/model/gpt_neo.cpp
      ${src}/model/llama.cpp
      ${src}/model/model_config.cpp
      ${src}/model/generate.cpp
      ${src}/model/lm_loss.cpp
      ${src}/zero/engine.cpp
      ${src}/zero/flat_layout.cpp
      ${src}/zero/adamw.cpp
      ${src}/core/memory.cpp
      ${src}/comm/communicator.cpp
      ${src}/comm/local.cpp
      ${src}/comm/nccl.cpp
      ${src}/unlearn/objective.cpp
      PARENT_SCOPE)
endfunction()
