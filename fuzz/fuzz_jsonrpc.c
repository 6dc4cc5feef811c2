/* libFuzzer harness: JSON-RPC responses from a hostile node, and the
 * receipt / log / quantity parsers applied to whatever result they carry;
 * also EIP-712 typed-data documents and keystore files (JSON from
 * outside). The first byte picks the parser. */
#include "teex/crypto.h"
#include "teex/eip712.h"
#include "teex/eth_rpc.h"
#include "teex/keystore.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    teex_crypto_init();
    init = 1;
  }
  if (size < 1 || size > (1u << 20))
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = 0;
  if (mode < 160) {
    json_t *res = NULL;
    struct teex_eth_rpc_error re;
    struct teex_err err;
    if (teex_eth_rpc_parse_response(s, size, 7, &res, &re, &err) == 0) {
      struct teex_eth_receipt r;
      struct teex_eth_log l;
      teex_u256 q;
      if (teex_eth_receipt_parse(res, &r, &err) == 0)
        teex_eth_receipt_clear(&r);
      if (teex_eth_log_parse(res, &l, &err) == 0)
        free(l.data);
      if (json_is_string(res))
        (void)teex_u256_parse_quantity(json_string_value(res), q);
      json_decref(res);
    }
  } else if (mode < 224) {
    uint8_t d[32];
    struct teex_err err;
    (void)teex_eip712_hash(s, d, &err);
  } else {
    /* Keystores: only cheap KDF settings get as far as the KDF. */
    uint8_t sk[32];
    struct teex_err err;
    if (!strstr(s, "\"n\":") && !strstr(s, "\"c\":"))
      (void)teex_keystore_decrypt(s, "pw", sk, NULL, &err);
  }
  free(s);
  return 0;
}
