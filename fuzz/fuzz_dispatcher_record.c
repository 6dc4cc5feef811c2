/* libFuzzer harness: the dispatcher's sealed task records (record.c). The
 * store authenticates them, but the decoder must still never read out of
 * bounds, and whatever decodes must encode back to exactly the input. */
#include "dispatcher/state.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct dsp_task t;
  if (dsp_task_decode(data, size, &t) != 0)
    return 0;
  uint8_t back[DSP_TASK_REC_MAX];
  size_t n = dsp_task_encode(&t, back);
  if (n != size || memcmp(back, data, size) != 0)
    abort();
  return 0;
}
