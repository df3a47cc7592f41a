// Host launchers of distnet's own CUDA kernels. Each takes an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "distnet/backend.hpp"

namespace distnet::cuda {

// Same contract as Backend::dropout_forward/backward: y = x * keep / (1 - p_drop), the mask drawn
// from Philox per (key, sample_ids[row], element) exactly as the CPU backend does.
void launch_dropout(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                    const std::uint32_t* sample_ids, const float* in, float* out,
                    cudaStream_t stream);

}  // namespace distnet::cuda
