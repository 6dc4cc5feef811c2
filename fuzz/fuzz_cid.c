/* libFuzzer harness: CID parsing, binary and text. Whatever parses must
 * print back to exactly the input (one text form and one binary form per
 * CID), so the parser can neither crash nor accept two spellings. */
#include "teex/ipfs.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_cid cid;
  struct teex_err err;
  if (teex_cid_from_bytes(data, size, &cid, &err) == 0) {
    uint8_t back[TEEX_CID_BIN_LEN];
    teex_cid_to_bytes(&cid, back);
    if (size != sizeof back || memcmp(back, data, size) != 0)
      abort();
  }
  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  if (teex_cid_parse(s, &cid, &err) == 0) {
    char back[TEEX_CID_STR_SIZE];
    teex_cid_to_string(&cid, back);
    if (strcmp(back, s) != 0)
      abort();
  }
  free(s);
  return 0;
}
