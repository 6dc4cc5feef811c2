/* libFuzzer harness: the RA-TLS evidence extension parser on raw bytes, and
 * whole DER certificates through teex_ratls_verify_cert (extension lookup,
 * evidence, key binding, self-signature). */
#include "teex/crypto.h"
#include "teex/ratls.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready)
    ready = teex_crypto_init() == 0;
  const uint8_t *ev;
  size_t n;
  struct teex_err err;
  if (teex_ratls_ext_parse(data, size, &ev, &n, &err) == 0 &&
      (ev < data || ev + n != data + size))
    __builtin_trap();
  const unsigned char *p = data;
  X509 *cert = d2i_X509(NULL, &p, (long)size);
  if (cert != NULL) {
    struct teex_tee_policy pol;
    teex_tee_policy_init(&pol);
    pol.allow_simulated = 1;
    pol.allow_any_code = 1;
    pol.max_age = 0;
    /* Trust the root named in embedded sim evidence, so mutated
     * certificates get past the root check into the key binding. */
    const uint8_t *ev0 = memmem(data, size, "TXEV", 4);
    size_t at = ev0 ? (size_t)(ev0 - data) + 12 + 174 : size;
    if (at + 32 <= size)
      teex_tee_policy_add_root(&pol, data + at);
    (void)teex_ratls_verify_cert(cert, &pol, NULL, NULL, &err);
    X509_free(cert);
  }
  return 0;
}
