/* libFuzzer harness: a settled batch's content as `teex data show` reads it
 * from IPFS (src/data/earnings.c). Anyone can put bytes under a CID: the
 * walk over the decoded receipts must never read out of bounds, and a
 * content whose receipts do not hash to the root must add nothing. */
#include "teex/data.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t root[32], id[32];
  uint32_t uses = 0;
  teex_amount earned = 0;
  struct teex_err err;
  /* the root is what the content claims (so the root check is reached);
   * the dataset is the first share's when there is one */
  memset(root, 0, sizeof root);
  memset(id, 0, sizeof id);
  if (size >= 32 * 7)
    memcpy(root, data + 32 * 6, 32);
  int rc = teex_data_batch_uses(data, size, root, id, &uses, &earned, &err);
  if (rc != 0 && (uses != 0 || earned != 0))
    abort(); /* a refused content must add nothing */
  return 0;
}
