// Portable copy of the TBPTT backward pass (x86-64 baseline: SSE2).
#define TBPTT_NS lobrtrl_tbptt_baseline
#include "tbptt-impl.h"

namespace lobrtrl {
const TbpttKernel tbpttBaseline{"baseline", lobrtrl_tbptt_baseline::accumulate, lobrtrl_tbptt_baseline::exactAdam};
}
