/* libFuzzer harness: hex, base64 and Ethereum address parsers, with a
 * round-trip check (decode then encode must give back an equivalent text). */
#include "teex/crypto.h"

#include <stdlib.h>
#include <strings.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = 0;
  uint8_t out[2048];
  size_t n;
  if (teex_hex_decode(s, out, sizeof out, &n) == 0) {
    char back[4097];
    teex_hex_encode(out, n, back);
    const char *body =
        (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? s + 2 : s;
    if (strcasecmp(back, body) != 0)
      abort();
  }
  if (teex_base64_decode(s, out, sizeof out, &n) == 0) {
    char *back = malloc(teex_base64_len(n));
    teex_base64_encode(out, n, back);
    free(back);
  }
  uint8_t addr[20];
  if (teex_eth_address_parse(s, addr) == 0) {
    char hex[43];
    teex_eth_address_hex(addr, hex);
    if (strcasecmp(hex, s) != 0)
      abort();
  }
  free(s);
  return 0;
}
