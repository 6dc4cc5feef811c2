/* libFuzzer harness for the Redis command mapping (src/ds/resp_cmds.c):
 * arbitrary requests are parsed (src/ds/resp.c) and run against the real
 * state machine, the way the proxy runs them. Every command must end with
 * exactly one reply (a RESP value starting with + - : $ or *), every
 * TEE-DS command it asks for must encode (the mapping checks limits before
 * asking), and two state machines fed the same commands must agree. */
#include "ds/resp_cmds.h"

#include <stdlib.h>
#include <string.h>

static struct teex_resp_cmd cmd;
static struct teex_resp_call call;
static struct teex_resp_cursors cursors;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_ds_kv *a = NULL, *b = NULL;
  if (teex_ds_kv_new(&a) != 0 || teex_ds_kv_new(&b) != 0)
    abort();
  struct teex_resp_session s;
  if (teex_resp_session_init(&s, "app", 1) != 0)
    abort();
  memset(&cursors, 0, sizeof(cursors));
  s.cursors = &cursors;
  struct teex_resp_parser p;
  teex_resp_parser_init(&p);
  struct teex_buf out;
  teex_buf_init(&out, (size_t)128 << 20, 0);
  if (teex_resp_parser_feed(&p, data, size) != 0)
    abort();
  uint64_t clock = 1000, index = 0;
  int commands = 0;
  while (commands < 64 && teex_resp_parser_next(&p, &cmd) == 1) {
    commands++;
    teex_buf_reset(&out);
    int rc = teex_resp_call_begin(&s, &call, &cmd, &out);
    int steps = 0;
    while (rc == TEEX_RESP_EXEC) {
      if (++steps > TEEX_RESP_ARGS_MAX + 1)
        abort(); /* a command never asks for more than one per key */
      uint8_t *enc;
      size_t len;
      struct teex_err err;
      if (teex_ds_cmd_encode(&call.cmd, &enc, &len, &err) != 0)
        abort();
      free(enc);
      struct teex_ds_result ra, rb;
      clock += 7;
      index++;
      if (teex_ds_kv_apply(a, index, clock, &call.cmd, &ra) != 0 ||
          teex_ds_kv_apply(b, index, clock, &call.cmd, &rb) != 0)
        abort();
      if (ra.status != rb.status || ra.num != rb.num ||
          ra.n_items != rb.n_items)
        abort();
      /* every other step, pretend the backend failed */
      int fail = (data[0] & 1) && (index % 5 == 0);
      rc = teex_resp_call_next(&s, &call, fail ? TEEX_ESTATE : 0,
                               fail ? NULL : &ra, &out);
      teex_ds_result_free(&ra);
      teex_ds_result_free(&rb);
    }
    if (rc != TEEX_RESP_DONE || out.len < 3 ||
        strchr("+-:$*", out.data[0]) == NULL || out.data[out.len - 2] != '\r' ||
        out.data[out.len - 1] != '\n')
      abort();
  }
  uint8_t da[32], db[32];
  teex_ds_kv_digest(a, da);
  teex_ds_kv_digest(b, db);
  if (memcmp(da, db, 32) != 0)
    abort();
  teex_resp_call_reset(&call);
  teex_resp_parser_free(&p);
  teex_buf_free(&out);
  teex_ds_kv_free(a);
  teex_ds_kv_free(b);
  return 0;
}
