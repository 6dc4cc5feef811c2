/* libFuzzer harness for the TEE-DS membership RPC decoders
 * (src/ds/membership.c): arbitrary bytes as a ds.Member request and as a
 * response either decode to values within bounds — valid addresses, at
 * most TEEX_DS_GROUP_MAX_MEMBERS members — which re-encode and decode to
 * the same values, or are refused cleanly. */
#include "ds/membership.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_err err;
  struct teex_ds_member_req r, r2;
  uint8_t *enc = NULL;
  size_t n = 0;
  if (teex_ds_member_req_decode(data, size, &r, &err) == 0) {
    if (r.op < TEEX_DS_MEMBER_ADD || r.op > TEEX_DS_MEMBER_ROTATE ||
        ((r.op == TEEX_DS_MEMBER_ADD || r.op == TEEX_DS_MEMBER_REMOVE) &&
         r.id == 0) ||
        (r.op == TEEX_DS_MEMBER_ADD && (!teex_ds_member_addr_ok(r.peer) ||
                                        !teex_ds_member_addr_ok(r.client))))
      abort();
    if (teex_ds_member_req_encode(&r, &enc, &n, &err) != 0 ||
        teex_ds_member_req_decode(enc, n, &r2, &err) != 0 ||
        memcmp(&r, &r2, sizeof r) != 0)
      abort();
    free(enc);
  }
  struct teex_ds_member_list *l = malloc(sizeof(*l));
  struct teex_ds_member_list *l2 = malloc(sizeof(*l2));
  if (l == NULL || l2 == NULL)
    abort();
  if (teex_ds_member_resp_decode(data, size, l, &err) == 0) {
    if (l->n > TEEX_DS_GROUP_MAX_MEMBERS)
      abort();
    for (size_t i = 0; i < l->n; i++)
      if (!teex_ds_member_addr_ok(l->m[i].peer) || l->m[i].id == 0)
        abort();
    if (teex_ds_member_resp_encode(l, &enc, &n, &err) != 0 ||
        teex_ds_member_resp_decode(enc, n, l2, &err) != 0 || l->n != l2->n ||
        l->not_leader != l2->not_leader || l->leader_id != l2->leader_id ||
        strcmp(l->leader_addr, l2->leader_addr) != 0)
      abort();
    for (size_t i = 0; i < l->n; i++)
      if (l->m[i].id != l2->m[i].id || l->role[i] != l2->role[i] ||
          strcmp(l->m[i].peer, l2->m[i].peer) != 0 ||
          strcmp(l->m[i].client, l2->m[i].client) != 0)
        abort();
    free(enc);
  }
  free(l);
  free(l2);
  return 0;
}
