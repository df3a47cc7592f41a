// Per-thread stage timing of the encoded-image path, for distnet_loader_bench. When a thread has
// set a StageTimes, decode_augmented adds to it the seconds it spends decoding (header, crop
// choice, pixels) and augmenting (cutting the crop and resampling it to the output); a dataset's
// read_epoch around it adds the rest (reading the file or shard record), which the bench gets as
// total - decode - augment. Unset (the default), nothing is timed: one thread-local load per image.
#pragma once

namespace distnet::data {

struct StageTimes {
  double decode_s = 0, augment_s = 0;
};

// Sets the calling thread's accumulator (null: stop timing). The pointee must outlive its use.
void set_thread_stage_times(StageTimes* t);
StageTimes* thread_stage_times();

}  // namespace distnet::data
