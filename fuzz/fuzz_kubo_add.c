/* libFuzzer harness: the parser of a Kubo RPC `add` answer (NDJSON from an
 * untrusted node). */
#include "ipfs/ipfs_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_cid cid;
  struct teex_err err;
  uint64_t dag_size;
  (void)ipfs_kubo_parse_add(data, size, &cid, &dag_size, &err);
  return 0;
}
