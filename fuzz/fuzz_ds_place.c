/* libFuzzer harness for TEE-DS placement (src/ds/place.c): the signed
 * directory parser and the placement record parser. Arbitrary bytes either
 * parse into a directory within its limits — whose canonical text, signed
 * again, is byte for byte the body that was parsed, and whose signature
 * does not verify under an unrelated key — or are refused cleanly; a record
 * parses only if it re-encodes to the same bytes. The input is tried both
 * as a directory and as a record. */
#include "teex/crypto.h"
#include "teex/ds_place.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct teex_ds_dir d, d2;
  static uint8_t text[TEEX_DS_DIR_MAX];
  static uint8_t pk[32], sk[64];
  static int keyed;
  if (!keyed) {
    uint8_t seed[32] = {1};
    teex_ed25519_seed_keypair(seed, pk, sk);
    keyed = 1;
  }
  struct teex_err err;
  size_t body = 0, n = 0;
  uint8_t sig[64];
  if (teex_ds_dir_parse(data, size, &d, &body, sig, &err) == 0) {
    if (d.n_groups == 0 || d.n_groups > TEEX_DS_DIR_GROUPS_MAX ||
        d.n_places > TEEX_DS_DIR_PLACES_MAX || body > size)
      abort();
    if (teex_ds_dir_sign(&d, sk, text, sizeof text, &n, &err) != 0)
      abort();
    if (n < body || memcmp(text, data, body) != 0)
      abort(); /* canonical: the same body */
    if (teex_ds_dir_open(text, n, pk, &d2, &err) != 0)
      abort();
    for (size_t i = 0; i < d.n_places; i++)
      if (teex_ds_dir_owner(&d, d.places[i].ns) != d.places[i].group)
        abort();
    if (teex_ds_dir_owner(&d, "fuzz") != teex_ds_dir_owner(&d2, "fuzz"))
      abort();
  }
  struct teex_ds_place_record r;
  if (teex_ds_place_record_parse(data, size, &r) == 0) {
    uint8_t *b = NULL;
    size_t bn = 0;
    if (teex_ds_place_record_encode(&r, &b, &bn) != 0 || bn != size ||
        memcmp(b, data, size) != 0)
      abort();
    free(b);
  }
  return 0;
}
