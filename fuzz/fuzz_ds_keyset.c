/* libFuzzer harness for TEE-DS group key sets (src/ds/keyset.c: the
 * plaintext of group.key and of the members' key hand-over) and for the
 * epoch-carrying entry and snapshot headers a replica opens
 * (src/ds/replica.c, TXD1/TXD2, TXS1-3): arbitrary bytes either decode to
 * 1..TEEX_DS_KEYSET_MAX epochs, strictly increasing, that re-encode to the
 * same bytes (a bare 32-byte key: epoch 0), or are refused cleanly; as an
 * entry or snapshot they are refused (halt) or applied, never read out of
 * bounds, with a key set of epochs 0 and 1 and a need_key that refuses. */
#include "ds/keyset.h"
#include "ds/replica.h"
#include "teex/ds.h"

#include <stdlib.h>
#include <string.h>

static int refuse(void *arg, struct teex_ds_replica *r, uint32_t epoch) {
  (void)arg;
  (void)r;
  (void)epoch;
  return TEEX_EPERM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_ds_keyset k, k2;
  static uint8_t enc[TEEX_DS_KEYSET_ENC_MAX];
  if (teex_ds_keyset_decode(data, size, &k, NULL) == 0) {
    if (k.n == 0 || k.n > TEEX_DS_KEYSET_MAX)
      abort();
    for (uint32_t i = 1; i < k.n; i++)
      if (k.epoch[i] <= k.epoch[i - 1])
        abort();
    size_t n = teex_ds_keyset_encode(&k, enc);
    if (size != 32 && (n != size || memcmp(enc, data, size) != 0))
      abort();
    if (teex_ds_keyset_decode(enc, n, &k2, NULL) != 0 ||
        memcmp(&k, &k2, sizeof k) != 0)
      abort();
    if (teex_ds_keyset_merge(&k2, &k, NULL) != 0 || k2.n != k.n)
      abort();
  }
  /* as an entry and as a snapshot of a replica holding epochs 0 and 1 */
  struct teex_ds_keyset mine = {.n = 2, .epoch = {0, 1}};
  memset(mine.key[1], 1, 32);
  size_t n = teex_ds_keyset_encode(&mine, enc);
  struct teex_ds_replica_config cfg = {
      .group_keys = enc, .group_keys_len = n, .need_key = refuse};
  memcpy(cfg.group_id, "teex-ds-fuzz-grp", 16);
  struct teex_ds_replica *r;
  if (teex_ds_replica_new(&cfg, &r, NULL) != 0)
    abort();
  void *res = NULL;
  if (teex_ds_replica_hooks.apply(r, 1, data, size, &res) == 0 && res)
    teex_ds_replica_hooks.result_free(r, res);
  teex_ds_replica_free(r);
  if (teex_ds_replica_new(&cfg, &r, NULL) != 0)
    abort();
  (void)teex_ds_replica_hooks.restore(r, data, size);
  teex_ds_replica_free(r);
  return 0;
}
