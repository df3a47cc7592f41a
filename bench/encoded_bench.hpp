// distnet_loader_bench's mode for encoded images (--dataset imagefolder, packed, ...): decoded and
// augmented images/s on 1..N threads (one per core), with the per-image time split
//   read    -- what the dataset's read_epoch spends outside decode_augmented (file or record I/O),
//   decode  -- header, crop choice and the (DCT-scaled) JPEG/PNG decode,
//   augment -- cutting the crop and resampling it to size x size (and the flip),
//   copy    -- uint8 CHW to the normalised float batch slot (the loader's ImageTransform).
// It drives the Dataset interface (open_dataset + read_epoch), so any dataset whose read_epoch
// goes through decode_augmented is timed stage by stage with no change here; decode and augment
// come from the thread's StageTimes hook (distnet/data/stage_times.hpp).
#pragma once

#include <string>
#include <vector>

#include "distnet/data/dataset.hpp"

namespace distnet::bench {

struct EncodedBenchOptions {
  std::vector<int> cores{1};
  std::vector<std::string> transforms{"train", "eval"};
  std::int64_t images = 512;  // per timed run
  int repeats = 3;
  int batch = 128;  // float batch the copies go to (slots reused round-robin)
};

// Prints, per (transform, cores): a human line and a JSON line ({"impl":"distnet",...}).
void run_encoded_bench(data::DatasetOptions d, const EncodedBenchOptions& o);

}  // namespace distnet::bench
