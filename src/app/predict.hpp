// Internal to the alexnet program: `alexnet predict`, a checkpoint classifying images
// (src/app/predict.cpp; docs/interchange.md).
#pragma once

namespace distnet::app {

// argv[0] is "predict". Returns the exit code: 0, 1 (an error), 2 (a usage error).
int predict_main(int argc, char** argv);

}  // namespace distnet::app
