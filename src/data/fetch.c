/* A worker's side of a task's datasets (include/teex/data.h): lease, fetch,
 * decrypt in memory, check. */
#include "teex/data.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/sm_client.h"

#include <stdlib.h>
#include <string.h>

/* Largest ciphertext of a dataset: the plaintext bound plus the chunked
 * AEAD's header and tags (a tag per minimal chunk at most). */
#define DATA_CT_MAX                                                            \
  ((size_t)TEEX_DATA_MAX + TEEX_IMAGE_ENC_HEADER_MAX +                         \
   ((size_t)TEEX_DATA_MAX / TEEX_IMAGE_ENC_CHUNK_MIN + 1) * 16u)

void teex_data_fetched_free(struct teex_data_fetched *f, size_t n) {
  if (f == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    if (f[i].data != NULL)
      teex_image_bytes_free(f[i].data, f[i].len); /* wipes */
    f[i].data = NULL;
    f[i].len = 0;
  }
}

static int fetch_one(struct teex_ipfs_backend *ipfs,
                     const struct teex_sm_data_lease *l,
                     struct teex_data_fetched *out, struct teex_err *err) {
  struct teex_cid cid;
  struct teex_buf ct;
  uint8_t *pt = NULL, h[32];
  size_t pt_len = 0;
  int rc = teex_cid_parse(l->cid, &cid, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "ciphertext CID");
  teex_buf_init(&ct, DATA_CT_MAX, 0);
  rc = teex_ipfs_cat_buffer(ipfs, &cid, &ct, err);
  if (rc != 0) {
    teex_buf_free(&ct);
    return teex_err_wrap(err, rc, "ipfs %s", l->cid);
  }
  rc = teex_image_decrypt(l->data_key, ct.data, ct.len, &pt, &pt_len, err);
  teex_buf_free(&ct);
  if (rc != 0)
    return teex_err_wrap(err, rc, "decrypt");
  teex_sha256(pt, pt_len, h);
  if (pt_len != l->plaintext_size || !teex_ct_equal(h, l->plaintext_hash, 32)) {
    teex_image_bytes_free(pt, pt_len);
    return teex_err_set(err, TEEX_EAUTH,
                        "the plaintext is not the one escrowed (size or "
                        "SHA-256)");
  }
  memcpy(out->name, l->name, sizeof out->name);
  memcpy(out->provider, l->provider, 20);
  out->price = l->price;
  out->max_output_bytes = l->max_output_bytes;
  out->data = pt;
  out->len = pt_len;
  return 0;
}

int teex_data_fetch_for_task(
    struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
    const uint8_t secp256k1_pub[64], const char *sm_addr,
    const struct teex_tee_policy *sm_policy, struct teex_ipfs_backend *ipfs,
    const struct teex_assignment *a, const uint8_t dispatcher_sig[65],
    const uint8_t *ids, size_t n, struct teex_data_fetched *out,
    uint32_t *output_cap, struct teex_err *err) {
  struct teex_sm_data_lease *l = teex_secret_alloc(sizeof *l);
  uint64_t total = 0;
  int rc = 0;
  size_t i;
  *output_cap = 0;
  if (l == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  memset(out, 0, n * sizeof *out);
  for (i = 0; i < n && rc == 0; i++) {
    char idh[67] = "0x";
    teex_hex_encode(ids + 32 * i, 32, idh + 2);
    memcpy(out[i].dataset_id, ids + 32 * i, 32);
    rc = teex_sm_client_lease_data(tee, cert, key, secp256k1_pub, sm_addr,
                                   sm_policy, a, dispatcher_sig, ids, n, i, l,
                                   err);
    if (rc == 0 && l->plaintext_size > TEEX_DATA_MAX - total)
      rc = teex_err_set(err, TEEX_ETOOBIG,
                        "the task's datasets exceed %u "
                        "bytes",
                        TEEX_DATA_MAX);
    if (rc == 0)
      rc = fetch_one(ipfs, l, &out[i], err);
    if (rc == 0) {
      total += out[i].len;
      uint64_t cap = out[i].max_output_bytes;
      if (cap > 0 && cap <= UINT32_MAX &&
          (*output_cap == 0 || cap < *output_cap))
        *output_cap = (uint32_t)cap;
    }
    teex_wipe(l, sizeof *l);
    if (rc != 0)
      teex_err_wrap(err, rc, "dataset %.18s..", idh);
  }
  teex_secret_free(l);
  if (rc != 0) {
    teex_data_fetched_free(out, n);
    *output_cap = 0;
  }
  return rc;
}
