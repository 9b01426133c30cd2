// The entry points' choice of RTRL kernel: made once at start, before any learner exists, so
// every learner of the process runs the kernel that was logged and that /v1/status names.
import { parseKernelChoice, useRtrlKernel, type KernelChoice, type RtrlKernel } from '../model/kernels/select.js';
import { UsageError } from './options.js';

/** Sets the process's kernel; a forced native kernel that cannot load stops the start with the reason. */
export function resolveRtrlKernelOrExplain(choice: KernelChoice): RtrlKernel {
  try {
    return useRtrlKernel(choice);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** `--kernel`, else LOB_RTRL_KERNEL, else auto; a bad value is a usage error naming its source. */
export function kernelChoiceOf(flag: string | undefined, env: NodeJS.ProcessEnv): KernelChoice {
  try {
    return parseKernelChoice(flag ?? env.LOB_RTRL_KERNEL);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(flag === undefined ? message : message.replace('LOB_RTRL_KERNEL', '--kernel'));
  }
}
