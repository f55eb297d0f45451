// Precompiled header shared by every libtorch-using target (see src/CMakeLists.txt). Only the heavy, stable
// headers.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/functional.h>
#include <torch/nn/module.h>
#include <torch/types.h>
