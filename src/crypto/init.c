/* Library initialisation for the crypto module. */
#include "teex/crypto.h"

#include "teex/error.h"

#include <sodium.h>

int teex_crypto_init(void) {
  if (sodium_init() < 0)
    return TEEX_ECRYPTO;
  return 0;
}
