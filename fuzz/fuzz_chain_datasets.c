/* libFuzzer harness: the dataset listings rebuilt from DatasetRegistry logs
 * a hostile node may send. The first byte picks the event (topic0 is then
 * the real one, so decoding goes deep) and the topic count, the next 64
 * bytes are topics 1 and 2, the rest the log data. A valid listing is
 * folded in first, so price and revocation events find an entry. Property:
 * no crash, at most two entries, name and CID NUL-terminated within their
 * bounds. */
#include "chain/chain_internal.h"
#include "teex/abi.h"
#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const sigs[] = {
    TEEX_CHAIN_E_DS_LISTED,     TEEX_CHAIN_E_DS_APPROVED,
    TEEX_CHAIN_E_DS_UNAPPROVED, TEEX_CHAIN_E_DS_PRICE,
    TEEX_CHAIN_E_DS_REVOKED,    "Unrelated(uint256)",
};

static int fold(const uint8_t *d, size_t size, struct teex_chain_dataset **v,
                size_t *n, size_t *cap) {
  struct teex_eth_log lg;
  struct teex_err err = {0};
  memset(&lg, 0, sizeof lg);
  if (size < 1)
    return 0;
  unsigned which = d[0] % 6, ntopics = 1 + (d[0] >> 4) % 3;
  d++;
  size--;
  if (teex_abi_event_topic(sigs[which], lg.topics[0], &err) != 0)
    return 0;
  for (unsigned t = 1; t < ntopics; t++) {
    size_t k = size < 32 ? size : 32;
    memcpy(lg.topics[t], d, k);
    d += k;
    size -= k;
  }
  lg.n_topics = ntopics;
  lg.data = (uint8_t *)d;
  lg.data_len = size;
  return teex_chain__apply_dataset_log(&lg, v, n, cap, &err);
}

/* The harness's own listing: dataset 0x00..00 by provider 0x00..00. */
static size_t make_listing(uint8_t *out, size_t cap) {
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v = {0};
  struct teex_buf b;
  size_t n = 0;
  teex_buf_init(&b, cap - 65, 0);
  if (teex_abi_type_parse("(string,string,bytes32,uint64,uint128,uint64,"
                          "uint32,uint64)",
                          &t, NULL) == 0 &&
      teex_abi_tuple(&v, 8) == 0 && teex_abi_string(&v.items[0], "ds") == 0 &&
      teex_abi_string(&v.items[1], "bafy") == 0) {
    uint8_t h[32] = {1};
    teex_abi_fixed_bytes(&v.items[2], h, 32);
    teex_abi_uint64(&v.items[3], 10);
    teex_abi_uint64(&v.items[4], 7);
    teex_abi_uint64(&v.items[5], 0);
    teex_abi_uint64(&v.items[6], 3);
    teex_abi_uint64(&v.items[7], 100);
    if (teex_abi_encode(t, &v, &b, NULL) == 0) {
      memset(out, 0, 65);
      out[0] = 0x24; /* event 0, three topics */
      memcpy(out + 65, b.data, b.len);
      n = 65 + b.len;
    }
  }
  teex_buf_free(&b);
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t listing[1024];
  static size_t listing_len;
  if (listing_len == 0) {
    teex_crypto_init();
    listing_len = make_listing(listing, sizeof listing);
  }
  struct teex_chain_dataset *v = NULL;
  size_t n = 0, cap = 0;
  if (fold(listing, listing_len, &v, &n, &cap) != 0 || n != 1 ||
      strcmp(v[0].ciphertext_cid, "bafy") != 0 || v[0].price != 7 ||
      v[0].max_uses != 3)
    abort(); /* the harness's own listing must decode */
  fold(data, size, &v, &n, &cap);
  if (n > 2)
    abort();
  for (size_t i = 0; i < n; i++)
    if (strnlen(v[i].name, sizeof v[i].name) > TEEX_CHAIN_MAX_DATASET_NAME ||
        strnlen(v[i].ciphertext_cid, sizeof v[i].ciphertext_cid) >
            TEEX_CHAIN_MAX_CID)
      abort();
  free(v);
  return 0;
}
