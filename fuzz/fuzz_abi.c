/* libFuzzer harness: ABI type strings, hostile ABI decoding, event logs and
 * revert data. The first byte picks what to do with the rest. Property: a
 * decoded value re-encodes, and that encoding decodes to the same value. */
#include "teex/abi.h"
#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *types[] = {
    "(uint256)",
    "(bytes)",
    "(string,uint8,bool)",
    "(uint256[])",
    "(bytes[][])",
    "(address,(uint256,bytes32,string)[],(address,uint96),string)",
    "((address,uint256,uint256,bytes)[],bytes32,string)",
    "(int16[3][],bytes4)",
    "(string[2],uint64[2][])",
    "((bytes,(string[])[])[])",
};
#define N_TYPES (sizeof types / sizeof types[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    teex_crypto_init();
    init = 1;
  }
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  if (mode < 32) {
    /* A type or signature string. */
    char s[512];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    struct teex_abi_type *t = NULL;
    char name[TEEX_ABI_MAX_NAME], back[1024];
    memcpy(s, data, n);
    s[n] = 0;
    if (teex_abi_type_parse(s, &t, NULL) == 0) {
      (void)teex_abi_type_format(t, back, sizeof back);
      teex_abi_type_free(t);
    }
    if (teex_abi_sig_parse(s, name, &t, NULL) == 0)
      teex_abi_type_free(t);
    return 0;
  }
  if (mode < 48) {
    char msg[300];
    const char *const sigs[] = {"Unauthorized(address)",
                                "Bad(uint256,string[])", NULL};
    (void)teex_abi_revert_describe(data, size, sigs, msg, sizeof msg);
    return 0;
  }
  if (mode < 64) {
    /* A log: up to 4 topics from the front, the rest is data. */
    size_t nt = (mode & 3) + 1;
    if (size < 32 * nt)
      return 0;
    uint8_t topics[4][32];
    memcpy(topics, data, 32 * nt);
    teex_abi_event_topic("Settled(address,uint256,bytes32,string,uint64[])",
                         topics[0], NULL);
    struct teex_abi_value v;
    if (teex_abi_log_decode("Settled(address,uint256,bytes32,string,uint64[])",
                            (1u << nt) - 2u, (const uint8_t(*)[32])topics, nt,
                            data + 32 * nt, size - 32 * nt, &v, NULL) == 0)
      teex_abi_value_clear(&v);
    return 0;
  }
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v, v2;
  struct teex_buf b, b2;
  if (teex_abi_type_parse(types[mode % N_TYPES], &t, NULL) != 0)
    abort();
  if (teex_abi_decode(t, data, size, &v, NULL) == 0) {
    char out[256];
    teex_abi_value_format(t, &v, out, sizeof out);
    teex_buf_init(&b, 64u << 20, 0);
    teex_buf_init(&b2, 64u << 20, 0);
    if (teex_abi_encode(t, &v, &b, NULL) != 0)
      abort(); /* anything decoded must be encodable */
    if (teex_abi_decode(t, b.data, b.len, &v2, NULL) != 0)
      abort();
    if (teex_abi_encode(t, &v2, &b2, NULL) != 0 || b2.len != b.len ||
        memcmp(b.data, b2.data, b.len) != 0)
      abort();
    teex_abi_value_clear(&v2);
    teex_buf_free(&b);
    teex_buf_free(&b2);
    teex_abi_value_clear(&v);
  }
  teex_abi_type_free(t);
  return 0;
}
