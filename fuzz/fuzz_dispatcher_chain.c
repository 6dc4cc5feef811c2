/* libFuzzer harness: the dispatcher's file-backed chain parser
 * (chain_file.c). Each input is written to a private temporary file and
 * read through the chain interface: any bytes give a clear error or a
 * value, never a crash or a read out of bounds. */
#include "teex/crypto.h"
#include "teex/dispatcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (path[0] == '\0') {
    snprintf(path, sizeof path, "/tmp/teex-fuzz-chain-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
      abort();
    close(fd);
  }
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    abort();
  fwrite(data, 1, size, f);
  fclose(f);
  struct teex_domain dom = {.chain_id = 31337};
  struct teex_dispatcher_chain c;
  struct teex_err err;
  if (teex_dispatcher_chain_file(path, &dom, &c, &err) != 0)
    abort();
  uint8_t user[20], id[32], img[32];
  memset(user, 0x11, 20);
  memset(id, 0x22, 32);
  memset(img, 0x33, 32);
  teex_amount e, s;
  struct teex_dispatcher_service svc;
  (void)c.ops->escrow(c.arg, user, &e, &s, &err);
  (void)c.ops->service(c.arg, id, img, &svc, &err);
  int allowed;
  (void)c.ops->may_invoke(c.arg, id, user, &allowed, &err);
  c.ops->close(c.arg);
  return 0;
}
