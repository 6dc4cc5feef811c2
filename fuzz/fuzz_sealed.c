/* libFuzzer harness: the sealed blob parser, then decryption under a fixed
 * key (as teex_unseal does after deriving it), which must fail cleanly on
 * anything not sealed under that key. */
#include "teex/crypto.h"
#include "teex/seal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready)
    ready = teex_crypto_init() == 0;
  struct teex_sealed s;
  struct teex_err err;
  if (teex_sealed_parse(data, size, &s, &err) != 0)
    return 0;
  if (s.ct_len < 16 || s.ct + s.ct_len != data + size)
    __builtin_trap();
  static const uint8_t key[32] = {1, 2, 3};
  uint8_t *out = malloc(s.ct_len);
  if (out == NULL)
    return 0;
  (void)teex_xaead_decrypt(key, s.nonce, s.header, TEEX_SEAL_HEADER_LEN, s.ct,
                           s.ct_len, out);
  free(out);
  return 0;
}
