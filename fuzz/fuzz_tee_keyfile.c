/* libFuzzer harness: the sim backend's key file parsers (platform.key,
 * root.key). */
#include "tee/simkeys.h"
#include "teex/crypto.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready)
    ready = teex_crypto_init() == 0;
  struct teex_sim_platform plat;
  uint8_t sk[64];
  struct teex_err err;
  (void)teex_sim_platform_parse(data, size, &plat, &err);
  (void)teex_sim_root_parse(data, size, sk, &err);
  return 0;
}
