/* libFuzzer harness: SM grants (src/ds/grant.c). Any input is checked as a
 * grant for a fixed worker and namespace; none may be accepted (the fuzzer
 * does not hold the SM's key) and none may crash the parser. */
#include "teex/crypto.h"
#include "teex/ds.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    teex_crypto_init();
    init = 1;
  }
  uint8_t sm[20] = {0x5a}, worker[20] = {0x11};
  struct teex_err err;
  if (teex_ds_grant_verify(data, size, sm, worker, "sabc", 0, &err) == 0)
    __builtin_trap();
  return 0;
}
