/* libFuzzer harness: the statestore's TEE-DS record format
 * (src/statestore/statestore_ds.c: what the SM reads back from TEE-DS).
 *
 * The first input byte picks a mode. Mode 0 treats the rest as a value a
 * replica returned: opening it must fail cleanly (nothing forged
 * authenticates). Mode 1 takes a name length byte, a name and a value,
 * seals them under a TEE-DS key, and checks the round trip, that a flipped
 * byte (position from the input) never opens, and that the record does not
 * open under another TEE-DS key (records cannot be swapped). */
#include "statestore/statestore_internal.h"

#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[32] = {1, 2, 3};
static const char dskey[] = "sm/svc/0123abcd";
static const char other[] = "sm/svc/0123abce";

static void try_open(const uint8_t *ct, size_t n, const char *k) {
  char name[TEEX_STATESTORE_NAME_MAX + 1];
  uint8_t *val = NULL;
  size_t vl = 0;
  if (teex_statestore__record_open(key, k, strlen(k), ct, n, name, &val, &vl,
                                   NULL) == 0)
    abort(); /* forged or moved: must not authenticate */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (data[0] % 2 == 0) {
    try_open(p, n, dskey);
    return 0;
  }
  if (n < 3)
    return 0;
  size_t nl = p[0];
  size_t flip = p[1];
  if (nl == 0 || 2 + nl > n)
    return 0;
  char name[256 + 1];
  memcpy(name, p + 2, nl);
  name[nl] = '\0';
  if (strlen(name) != nl)
    return 0; /* a NUL inside: not a name */
  const uint8_t *val = p + 2 + nl;
  size_t len = n - 2 - nl;
  if (len > TEEX_STATESTORE_VALUE_MAX)
    return 0;
  size_t cap = 2 + nl + len + TEEX_XAEAD_OVERHEAD, ct_len = 0;
  uint8_t *ct = malloc(cap);
  if (ct == NULL ||
      teex_statestore__record_seal(key, dskey, strlen(dskey), name, val, len,
                                   ct, &ct_len) != 0 ||
      ct_len != cap)
    abort();
  char got[TEEX_STATESTORE_NAME_MAX + 1];
  uint8_t *out = NULL;
  size_t ol = 0;
  if (teex_statestore__record_open(key, dskey, strlen(dskey), ct, ct_len, got,
                                   &out, &ol, NULL) != 0 ||
      strcmp(got, name) != 0 || ol != len ||
      (len > 0 && memcmp(out, val, len) != 0))
    abort();
  free(out);
  try_open(ct, ct_len, other);
  ct[flip % ct_len] ^= 0x01;
  try_open(ct, ct_len, dskey);
  free(ct);
  return 0;
}
