/* libFuzzer harness: the app-store catalogue rebuilt from ServiceRegistry
 * logs a hostile node may send. The first byte picks the event (topic0 is
 * then the real one, so decoding goes deep), the next 64 bytes are topics
 * 1 and 2, the rest the log data. A valid listing is folded in first, so
 * version, price, visibility and retirement events find an entry. Property:
 * no crash, at most two entries, every metadata CID NUL-terminated within
 * its bound. */
#include "chain/chain_internal.h"
#include "teex/abi.h"
#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const sigs[] = {
    ("ServiceListed(bytes32,address,uint32,string,uint128,uint128,address,"
     "bytes32,bytes32,bool)"),
    "ServiceVersionPublished(bytes32,uint32,string,address,bytes32,bytes32)",
    "ServicePriceChanged(bytes32,uint128,uint128)",
    "ServiceVisibilityChanged(bytes32,bool)",
    "ServiceRetired(bytes32)",
    "Unrelated(uint256)",
};

static int fold(const uint8_t *d, size_t size, struct teex_chain_service **v,
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
  return teex_chain__apply_log(&lg, v, n, cap, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    teex_crypto_init();
    init = 1;
  }
  struct teex_chain_service *v = NULL;
  size_t n = 0, cap = 0;
  /* A well-formed listing of service id 0x00..00 by provider 0x00..00:
   * topics zero, data = the ABI encoding of the non-indexed fields. */
  static uint8_t listing[1 + 64 + 32 * 10];
  if (listing[0] == 0) {
    uint8_t *p = listing + 1 + 64;
    listing[0] = 0x24; /* event 0, three topics */
    p[31] = 1;         /* version */
    p[32 + 30] = 0x01; /* string offset 0x100: 8 words of head */
    p[64 + 31] = 100;  /* price */
    p[96 + 31] = 60;   /* remuneration */
    p[256 + 31] = 4;   /* string length */
    memcpy(p + 288, "bafy", 4);
  }
  if (fold(listing, sizeof listing, &v, &n, &cap) != 0 || n != 1 ||
      strcmp(v[0].metadata_cid, "bafy") != 0 || v[0].price != 100)
    abort(); /* the harness's own listing must decode */
  fold(data, size, &v, &n, &cap);
  if (n > 2)
    abort();
  for (size_t i = 0; i < n; i++)
    if (strnlen(v[i].metadata_cid, sizeof v[i].metadata_cid) >
        TEEX_CHAIN_MAX_CID)
      abort();
  free(v);
  return 0;
}
