/* libFuzzer harness for the TEE-DS client RPC decoders (src/ds/wire.c):
 * arbitrary bytes as a ds.Exec request and as a response either decode to
 * values within the limits of ds.h — which re-encode and decode to the same
 * values — or are refused cleanly. */
#include "ds/wire.h"

#include <stdlib.h>
#include <string.h>

static void same_result(const struct teex_ds_result *a,
                        const struct teex_ds_result *b) {
  if (a->status != b->status || a->found != b->found || a->num != b->num ||
      a->more != b->more || a->index != b->index ||
      a->clock_ms != b->clock_ms || a->expire_at_ms != b->expire_at_ms ||
      a->val_len != b->val_len || (a->val == NULL) != (b->val == NULL) ||
      a->n_items != b->n_items)
    abort();
  if (a->val_len && memcmp(a->val, b->val, a->val_len) != 0)
    abort();
  for (size_t i = 0; i < a->n_items; i++)
    if (a->items[i].key_len != b->items[i].key_len ||
        a->items[i].val_len != b->items[i].val_len ||
        memcmp(a->items[i].key, b->items[i].key, a->items[i].key_len) != 0 ||
        (a->items[i].val_len &&
         memcmp(a->items[i].val, b->items[i].val, a->items[i].val_len) != 0))
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_err err;
  struct teex_ds_wire_request *req = malloc(sizeof(*req));
  if (req == NULL)
    abort();
  if (teex_ds_wire_request_decode(data, size, req, &err) == 0) {
    if (strlen(req->ns) == 0 || req->read_mode > 1 ||
        req->grant_len > TEEX_DS_GRANT_MAX)
      abort();
    uint8_t *enc;
    size_t n;
    if (teex_ds_wire_request_encode_granted(&req->view.cmd, req->ns, req->grant,
                                            req->grant_len, req->read_mode,
                                            &enc, &n, &err) != 0)
      abort();
    struct teex_ds_wire_request *again = malloc(sizeof(*again));
    if (again == NULL || teex_ds_wire_request_decode(enc, n, again, &err) != 0)
      abort();
    if (strcmp(again->ns, req->ns) != 0 ||
        again->view.cmd.op != req->view.cmd.op ||
        strcmp(again->view.grant, req->ns) != 0 ||
        again->grant_len != req->grant_len ||
        (req->grant_len > 0 &&
         memcmp(again->grant, req->grant, req->grant_len) != 0))
      abort();
    teex_ds_wire_request_free(again);
    free(again);
    free(enc);
    teex_ds_wire_request_free(req);
  }
  free(req);

  struct teex_ds_wire_response r;
  if (teex_ds_wire_response_decode(data, size, &r, &err) == 0) {
    uint8_t *enc;
    size_t n;
    if (teex_ds_wire_response_encode(r.has_result ? &r.res : NULL, r.not_leader,
                                     r.leader_id, r.leader_addr, &enc, &n,
                                     &err) != 0)
      abort();
    struct teex_ds_wire_response r2;
    if (teex_ds_wire_response_decode(enc, n, &r2, &err) != 0 ||
        r2.has_result != r.has_result || r2.not_leader != r.not_leader ||
        r2.leader_id != r.leader_id ||
        strcmp(r2.leader_addr, r.leader_addr) != 0)
      abort();
    if (r.has_result)
      same_result(&r.res, &r2.res);
    teex_ds_result_free(&r2.res);
    teex_ds_result_free(&r.res);
    free(enc);
  }
  return 0;
}
