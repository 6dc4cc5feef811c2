/* libFuzzer harness: the dispatcher's in-flight batch records (record.c,
 * "f/<seq>" in its sealed store). The store authenticates them, but the
 * decoder must still never read out of bounds, and whatever decodes must
 * encode back to exactly the input. */
#include "dispatcher/state.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct dsp_inflight f;
  if (dsp_inflight_decode(data, size, 100000, &f) != 0)
    return 0;
  size_t n = dsp_inflight_len(&f);
  uint8_t *back = malloc(n ? n : 1);
  if (back == NULL)
    return 0;
  dsp_inflight_encode(&f, back);
  if (n != size || memcmp(back, data, size) != 0)
    abort();
  free(back);
  return 0;
}
