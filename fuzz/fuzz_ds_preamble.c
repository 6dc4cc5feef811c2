/* libFuzzer harness for the TEE-DS replica connection preamble parser
 * (src/ds/transport.c): the bytes fed whole and fed split at an arbitrary
 * point give the same verdict and fields; a complete preamble re-encodes to
 * exactly the bytes consumed; a refusal never reads past the input. */
#include "ds/transport.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t split = data[0] % (size);
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (split > n)
    split = n;
  struct teex_ds_preamble a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  size_t used_a = 0, used_b1 = 0, used_b2 = 0;
  int ra = teex_ds_preamble_feed(&a, p, n, &used_a);
  int rb = teex_ds_preamble_feed(&b, p, split, &used_b1);
  if (rb == 0)
    rb = teex_ds_preamble_feed(&b, p + used_b1, n - used_b1, &used_b2);
  else
    used_b2 = 0;
  if (ra != rb)
    abort();
  if (used_a > n)
    abort();
  if (ra == 1) {
    if (used_b1 + used_b2 != used_a || a.kind != b.kind || a.id != b.id ||
        strcmp(a.addr, b.addr) != 0)
      abort();
    uint8_t enc[TEEX_DS_PREAMBLE_FIXED + TEEX_DS_ADDR_MAX];
    size_t len = teex_ds_preamble_encode(enc, a.kind, a.id, a.addr);
    if (len != used_a || memcmp(enc, p, len) != 0)
      abort();
  }
  return 0;
}
