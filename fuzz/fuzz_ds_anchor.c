/* libFuzzer harness: the DsAnchor.latest record a hostile chain node (one
 * the host chose) may return to a replica checking its freshness at start.
 * Property: no crash, no read out of bounds; an accepted record has its CID
 * NUL-terminated within TEEX_CHAIN_MAX_CID and without inner NULs. */
#include "chain/chain_internal.h"
#include "teex/ds_anchor.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_ds_anchor a;
  struct teex_err err = {0};
  memset(&a, 0, sizeof a);
  if (teex_chain__ds_anchor_decode(data, size, &a, &err) == 0) {
    size_t n = strnlen(a.cid, sizeof a.cid);
    if (n > TEEX_CHAIN_MAX_CID)
      abort();
  }
  return 0;
}
