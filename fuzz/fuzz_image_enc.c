/* libFuzzer harness: the encrypted-image header parser and the decryptors
 * (symmetric and recipient mode) on arbitrary input. Nothing but a genuine
 * ciphertext may decrypt; here the key is fixed, so any success would have
 * to come from a forged tag. */
#include "teex/crypto.h"
#include "teex/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    teex_crypto_init();
    ready = 1;
  }
  static const uint8_t key[32] = {0x42};
  struct teex_image_enc_header h;
  struct teex_err err;
  int rc = teex_image_enc_header_parse(data, size, &h, &err);
  if (rc == 0 && (h.plain_len > TEEX_IMAGE_ARCHIVE_MAX || h.header_len > size ||
                  h.header_len > TEEX_IMAGE_ENC_HEADER_MAX))
    abort();
  uint8_t *out = NULL;
  size_t len = 0;
  if (teex_image_decrypt(key, data, size, &out, &len, &err) == 0)
    teex_image_bytes_free(out, len);
  out = NULL;
  if (teex_image_open(key, data, size, &out, &len, &err) == 0)
    teex_image_bytes_free(out, len);
  return 0;
}
