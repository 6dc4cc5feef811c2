/* libFuzzer harness: the strict RLP decoder and raw transaction decoding.
 * Property: anything the strict decoder accepts re-encodes to exactly the
 * same bytes (canonical encoding is a bijection). */
#include "teex/crypto.h"
#include "teex/eth_tx.h"
#include "teex/rlp.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int reencode(struct teex_buf *b, const struct teex_rlp_item *it,
                    int depth) {
  if (!it->is_list)
    return teex_rlp_put_bytes(b, it->data, it->len);
  if (depth > TEEX_RLP_MAX_DEPTH)
    return -1;
  size_t m, pos = 0;
  struct teex_rlp_item c;
  int rc;
  teex_rlp_list_begin(b, &m);
  while ((rc = teex_rlp_next(it, &pos, &c)) == 1)
    if ((rc = reencode(b, &c, depth + 1)) != 0)
      return rc;
  if (rc < 0)
    return rc;
  return teex_rlp_list_end(b, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_rlp_item it;
  struct teex_buf b;
  static int init;
  if (!init) {
    teex_crypto_init();
    init = 1;
  }
  if (teex_rlp_decode_all(data, size, &it) == 0) {
    teex_buf_init(&b, size + 64, 0);
    if (reencode(&b, &it, 0) == 0 &&
        (b.len != size || memcmp(b.data, data, size) != 0))
      abort(); /* accepted a non-canonical encoding */
    teex_buf_free(&b);
    uint64_t u;
    teex_u256 w;
    (void)teex_rlp_to_u64(&it, &u);
    (void)teex_rlp_to_u256(&it, w);
  }
  struct teex_eth_tx tx;
  uint8_t from[20];
  struct teex_err err;
  if (teex_eth_tx_decode(data, size, &tx, from, &err) == 0) {
    /* A decoded transaction is within the input. */
    if (tx.data_len && (tx.data < data || tx.data + tx.data_len > data + size))
      abort();
  }
  return 0;
}
