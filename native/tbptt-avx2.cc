// AVX2 copy of the TBPTT backward pass: compiled with -mavx2 but without -mfma and with
// -ffp-contract=off (binding.gyp), so its wider vectors round exactly as the baseline does.
#define TBPTT_NS lobrtrl_tbptt_avx2
#include "tbptt-impl.h"

namespace lobrtrl {
const TbpttKernel tbpttAvx2{"avx2", lobrtrl_tbptt_avx2::accumulate, lobrtrl_tbptt_avx2::exactAdam};
}
