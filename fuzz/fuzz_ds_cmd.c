/* libFuzzer harness for the TEE-DS command decoder and state machine
 * (include/teex/ds.h): arbitrary bytes either decode to a command that
 * re-encodes to exactly the same bytes and applies deterministically (two
 * state machines stay equal), or are refused cleanly; the snapshot of the
 * result restores to an equal state; arbitrary bytes as a snapshot are
 * refused or restored, never crash. */
#include "teex/ds.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_ds_cmd_view *v = malloc(sizeof(*v));
  struct teex_ds_kv *a = NULL, *b = NULL, *c = NULL;
  if (v == NULL || teex_ds_kv_new(&a) || teex_ds_kv_new(&b) ||
      teex_ds_kv_new(&c))
    abort();
  struct teex_err err;
  if (teex_ds_cmd_decode(data, size, v, &err) == 0) {
    uint8_t *enc;
    size_t len;
    if (teex_ds_cmd_encode(&v->cmd, &enc, &len, &err) != 0 || len != size ||
        memcmp(enc, data, size) != 0)
      abort();
    free(enc);
    /* Apply twice (the second sees the first's effect) on two machines. */
    for (int i = 0; i < 2; i++) {
      struct teex_ds_result ra, rb;
      if (teex_ds_kv_apply(a, 1, 1000, &v->cmd, &ra) != 0 ||
          teex_ds_kv_apply(b, 1, 1000, &v->cmd, &rb) != 0)
        abort();
      if (ra.status != rb.status || ra.num != rb.num ||
          ra.val_len != rb.val_len || ra.n_items != rb.n_items)
        abort();
      teex_ds_result_free(&ra);
      teex_ds_result_free(&rb);
    }
    uint8_t da[32], db[32];
    teex_ds_kv_digest(a, da);
    teex_ds_kv_digest(b, db);
    if (memcmp(da, db, 32) != 0)
      abort();
    uint8_t *snap;
    size_t snap_len;
    if (teex_ds_kv_snapshot(a, &snap, &snap_len) != 0 ||
        teex_ds_kv_restore(c, snap, snap_len, &err) != 0)
      abort();
    teex_ds_kv_digest(c, db);
    if (memcmp(da, db, 32) != 0)
      abort();
    free(snap);
  }
  (void)teex_ds_kv_restore(c, data, size, &err);
  teex_ds_kv_free(a);
  teex_ds_kv_free(b);
  teex_ds_kv_free(c);
  free(v);
  return 0;
}
