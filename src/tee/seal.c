/* Sealed blobs (include/teex/seal.h). */
#include "teex/seal.h"

#include "tee/tee_internal.h"
#include "teex/crypto.h"
#include "teex/mem.h"

#include <string.h>

#define SEAL_AD_DOMAIN "teex-sealed-v1"

int teex_sealed_parse(const uint8_t *p, size_t len, struct teex_sealed *s,
                      struct teex_err *err) {
  memset(s, 0, sizeof *s);
  if (len < TEEX_SEAL_OVERHEAD)
    return teex_err_set(err, TEEX_ETRUNC, "sealed blob truncated (%zu bytes)",
                        len);
  if (memcmp(p, TEEX_SEAL_MAGIC, 4) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "not a teex sealed blob");
  s->version = tee_get16(p + 4);
  if (s->version != TEEX_SEAL_VERSION)
    return teex_err_set(err, TEEX_EVERSION,
                        "sealed blob version %u not supported", s->version);
  s->policy = p[6];
  if (s->policy != TEEX_SEAL_ENCLAVE && s->policy != TEEX_SEAL_SIGNER)
    return teex_err_set(err, TEEX_EFORMAT, "sealed blob policy %u unknown",
                        s->policy);
  if (p[7] != 0)
    return teex_err_set(err, TEEX_EFORMAT, "sealed blob reserved byte set");
  s->product_id = tee_get16(p + 8);
  s->svn = tee_get16(p + 10);
  s->key_id = p + 12;
  s->header = p;
  s->nonce = p + TEEX_SEAL_HEADER_LEN;
  uint32_t ct_len = tee_get32(p + TEEX_SEAL_HEADER_LEN + 24);
  if (ct_len < 16 || ct_len - 16 > TEEX_SEAL_MAX_PLAINTEXT)
    return teex_err_set(err, TEEX_ETOOBIG, "sealed blob length %u invalid",
                        ct_len);
  if ((size_t)ct_len != len - (TEEX_SEAL_HEADER_LEN + 28))
    return teex_err_set(err, TEEX_EFORMAT,
                        "sealed blob length %u does not match its %zu bytes",
                        ct_len, len);
  s->ct = p + TEEX_SEAL_HEADER_LEN + 28;
  s->ct_len = ct_len;
  return 0;
}

/* AD = domain || header || context: the policy and identity in the header
 * cannot be changed, nor the blob moved to another context. */
static int make_ad(const uint8_t *header, const void *ctx, size_t ctx_len,
                   struct teex_buf *ad) {
  int rc = teex_buf_append(ad, SEAL_AD_DOMAIN, sizeof SEAL_AD_DOMAIN);
  if (rc == 0)
    rc = teex_buf_append(ad, header, TEEX_SEAL_HEADER_LEN);
  if (rc == 0 && ctx_len > 0)
    rc = teex_buf_append(ad, ctx, ctx_len);
  return rc;
}

int teex_seal(struct teex_tee *tee, enum teex_seal_policy policy,
              const void *context, size_t context_len, const void *pt,
              size_t pt_len, struct teex_buf *out, struct teex_err *err) {
  if (pt_len > TEEX_SEAL_MAX_PLAINTEXT)
    return teex_err_set(err, TEEX_ETOOBIG, "seal: plaintext too large");
  const struct teex_tee_identity *id = teex_tee_self(tee);
  uint8_t hdr[TEEX_SEAL_HEADER_LEN + 28];
  memcpy(hdr, TEEX_SEAL_MAGIC, 4);
  tee_put16(hdr + 4, TEEX_SEAL_VERSION);
  hdr[6] = (uint8_t)policy;
  hdr[7] = 0;
  tee_put16(hdr + 8, id->product_id);
  tee_put16(hdr + 10, id->svn);
  memcpy(hdr + 12, policy == TEEX_SEAL_ENCLAVE ? id->mr_enclave : id->mr_signer,
         32);
  teex_random(hdr + TEEX_SEAL_HEADER_LEN, 24);
  tee_put32(hdr + TEEX_SEAL_HEADER_LEN + 24, (uint32_t)(pt_len + 16));
  uint8_t *key = teex_secret_alloc(32);
  if (key == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "seal: no locked memory");
  struct teex_buf ad;
  teex_buf_init(&ad, 4096 + TEEX_SEAL_HEADER_LEN + context_len, 0);
  int rc = teex_tee_seal_key(tee, policy, id->svn, key, err);
  if (rc != 0)
    goto out;
  if ((rc = make_ad(hdr, context, context_len, &ad)) != 0 ||
      (rc = teex_buf_reserve(out, sizeof hdr + pt_len + 16)) != 0) {
    teex_err_set(err, rc, "seal: buffer");
    goto out;
  }
  teex_buf_append(out, hdr, sizeof hdr);
  rc = teex_xaead_encrypt(key, hdr + TEEX_SEAL_HEADER_LEN, ad.data, ad.len, pt,
                          pt_len, out->data + out->len);
  if (rc != 0) {
    out->len -= sizeof hdr;
    teex_err_set(err, rc, "seal: encryption failed");
    goto out;
  }
  out->len += pt_len + 16;
  out->data[out->len] = 0;
out:
  teex_buf_free(&ad);
  teex_secret_free(key);
  return rc;
}

int teex_unseal(struct teex_tee *tee, const void *context, size_t context_len,
                const uint8_t *blob, size_t blob_len, struct teex_buf *out,
                struct teex_err *err) {
  struct teex_sealed s;
  int rc = teex_sealed_parse(blob, blob_len, &s, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "unseal");
  const struct teex_tee_identity *id = teex_tee_self(tee);
  if (s.policy == TEEX_SEAL_ENCLAVE &&
      memcmp(s.key_id, id->mr_enclave, 32) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "unseal: sealed by another build (mr_enclave "
                        "differs)");
  if (s.policy == TEEX_SEAL_SIGNER) {
    if (memcmp(s.key_id, id->mr_signer, 32) != 0 ||
        s.product_id != id->product_id)
      return teex_err_set(err, TEEX_EPERM,
                          "unseal: sealed by another signer or product");
    if (s.svn > id->svn)
      return teex_err_set(err, TEEX_EPERM,
                          "unseal: sealed at svn %u, newer than own svn %u",
                          s.svn, id->svn);
  }
  size_t pt_len = s.ct_len - 16;
  uint8_t *key = teex_secret_alloc(32);
  if (key == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "unseal: no locked memory");
  struct teex_buf ad;
  teex_buf_init(&ad, 4096 + TEEX_SEAL_HEADER_LEN + context_len, 0);
  rc = teex_tee_seal_key(tee, (enum teex_seal_policy)s.policy, s.svn, key, err);
  if (rc != 0)
    goto out;
  if ((rc = make_ad(s.header, context, context_len, &ad)) != 0 ||
      (rc = teex_buf_reserve(out, pt_len + 16)) != 0) {
    teex_err_set(err, rc, "unseal: buffer");
    goto out;
  }
  /* Decrypt straight into out: on failure the AEAD zeroes what it wrote. */
  rc = teex_xaead_decrypt(key, s.nonce, ad.data, ad.len, s.ct, s.ct_len,
                          out->data + out->len);
  if (rc != 0) {
    teex_err_set(err, TEEX_EAUTH,
                 "unseal: authentication failed (tampered blob, another "
                 "platform or another context)");
    rc = TEEX_EAUTH;
    goto out;
  }
  out->len += pt_len;
  out->data[out->len] = 0;
out:
  teex_buf_free(&ad);
  teex_secret_free(key);
  return rc;
}
