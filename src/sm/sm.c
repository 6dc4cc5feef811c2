/* The Service Manager's core (see include/teex/sm.h).
 *
 * Records. The bootstrap set is always in the sealed local store (values
 * sealed by the store, keys hashed by it): "sm/identity", "ds/<group id>"
 * (TEE-DS group keys, sm.DsGroupKey), "enc/...", "rev/...". The state —
 * "svc/", "img/" here, "ds/<dataset id>", "dsuse/", "dslease/" in
 * sm_data.c — goes through sm->state: the same local store, or TEE-DS
 * (teex_sm_use_ds; encrypted by the SM, names hashed: statestore.h).
 *   "sm/identity"            secp256k1 sk (32) | X25519 sk (32)
 *   "ds/<group id hex (32)>" TEE-DS group key (32)
 *   "svc/<id hex>"           provider (20) | latest version (u32 BE) |
 *                            secp256k1 sk (32) | X25519 sk (32)
 *   "img/<id hex>/<image hex>" version (u32 BE) | image key (32) |
 *                            cid length (u16 BE) | cid
 *   "enc/<address hex>"      address (20) | role (16, NUL-padded) |
 *                            mr_enclave (32) |
 *                            first seen (u64 BE) | last attested (u64 BE)
 *   "rev/e/<address hex>", "rev/m/<mr_enclave hex>"
 *                            revoked at (u64 BE) | reason (<= 128 bytes) */
#include "teex/sm.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/image.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/statestore.h"
#include "teex/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SVC_REC_LEN (20 + 4 + 32 + 32)
#define IDENTITY_LEN 64
#define IMG_REC_MAX (4 + 32 + 2 + TEEX_SM_CID_MAX)
#define ENC_REC_LEN (20 + 16 + 32 + 8 + 8)
#define REV_REC_MAX (8 + TEEX_SM_REASON_MAX)

struct teex_sm {
  struct teex_tee *tee; /* borrowed */
  struct teex_sm_config cfg;
  struct teex_store *store;      /* sealed, local: the bootstrap set, and all
                                    the state without a TEE-DS group */
  struct teex_statestore *state; /* services, keys, counters: over store, or
                                    TEE-DS (teex_sm_use_ds) */
  uint8_t *secrets; /* locked: secp256k1 sk (32) | X25519 sk (32) */
  uint8_t secp_pub[64];
  uint8_t x25519_pub[32];
  uint8_t address[20];
  uint32_t services;
};

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void svc_key(const uint8_t id[32], char out[4 + 65]) {
  memcpy(out, "svc/", 4);
  teex_hex_encode(id, 32, out + 4);
}

static void img_key(const uint8_t id[32], const uint8_t image[32],
                    char out[4 + 64 + 1 + 65]) {
  memcpy(out, "img/", 4);
  teex_hex_encode(id, 32, out + 4);
  out[68] = '/';
  teex_hex_encode(image, 32, out + 69);
}

static int count_one(const char *name, const uint8_t *val, size_t len,
                     void *arg) {
  (void)name;
  (void)val;
  (void)len;
  (*(uint32_t *)arg)++;
  return 0;
}

static int count_services(struct teex_sm *sm, struct teex_err *err) {
  uint32_t n = 0;
  int rc = teex_statestore_scan(sm->state, "svc", count_one, &n, err);
  if (rc == 0)
    sm->services = n;
  return rc;
}

int teex_sm_open(struct teex_tee *tee, const struct teex_sm_config *cfg,
                 struct teex_sm **out, struct teex_err *err) {
  int rc;
  uint8_t root[32];
  struct teex_buf val;
  teex_buf_init(&val, IDENTITY_LEN, TEEX_BUF_SECRET);
  struct teex_sm *sm = calloc(1, sizeof *sm);
  if (sm == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  sm->tee = tee;
  sm->cfg = *cfg;
  sm->secrets = teex_secret_alloc(64);
  if (sm->secrets == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "locked memory for SM keys");
    goto fail;
  }
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
    rc = teex_err_set(err, TEEX_EIO, "create %s: %s", cfg->state_dir,
                      strerror(errno));
    goto fail;
  }
  /* Signer policy at our own svn: a newer build of the same signer reads
   * it; an older one, or another signer's code, cannot. */
  rc = teex_tee_seal_key(tee, TEEX_SEAL_SIGNER, teex_tee_self(tee)->svn, root,
                         err);
  if (rc != 0)
    goto fail;
  rc =
      teex_store_open(cfg->state_dir, root, TEEX_STORE_CREATE, &sm->store, err);
  teex_wipe(root, sizeof root);
  if (rc != 0) {
    teex_err_wrap(err, rc, "open SM state");
    goto fail;
  }
  rc = teex_store_get(sm->store, "sm/identity", 11, &val, err);
  if (rc == TEEX_ENOTFOUND) {
    uint8_t pub[64];
    rc = teex_secp256k1_keypair(sm->secrets, pub);
    if (rc == 0)
      rc = teex_x25519_keypair(pub, sm->secrets + 32);
    if (rc == 0)
      rc = teex_store_put(sm->store, "sm/identity", 11, sm->secrets, 64, err);
    if (rc != 0)
      goto fail;
    TEEX_INFO("sm", "created SM keys", NULL);
  } else if (rc != 0) {
    teex_err_wrap(err, rc, "read SM keys");
    goto fail;
  } else if (val.len != IDENTITY_LEN) {
    rc = teex_err_set(err, TEEX_EFORMAT, "SM keys record has %zu bytes",
                      val.len);
    goto fail;
  } else {
    memcpy(sm->secrets, val.data, 64);
  }
  if ((rc = teex_secp256k1_public(sm->secrets, sm->secp_pub)) != 0 ||
      (rc = teex_x25519_public(sm->secrets + 32, sm->x25519_pub)) != 0) {
    teex_err_set(err, rc, "SM keys invalid");
    goto fail;
  }
  teex_eth_address(sm->secp_pub, sm->address);
  rc = teex_statestore_open_local(sm->store, &sm->state, err);
  if (rc != 0)
    goto fail;
  rc = count_services(sm, err);
  if (rc != 0)
    goto fail;
  teex_buf_free(&val);
  *out = sm;
  return 0;
fail:
  teex_buf_free(&val);
  teex_sm_close(sm);
  return rc;
}

void teex_sm_close(struct teex_sm *sm) {
  if (sm == NULL)
    return;
  teex_statestore_close(sm->state);
  teex_store_close(sm->store);
  teex_secret_free(sm->secrets);
  free(sm);
}

void teex_sm_address(const struct teex_sm *sm, uint8_t addr[20]) {
  memcpy(addr, sm->address, 20);
}

void teex_sm_public_keys(const struct teex_sm *sm, uint8_t secp256k1[64],
                         uint8_t x25519[32]) {
  memcpy(secp256k1, sm->secp_pub, 64);
  memcpy(x25519, sm->x25519_pub, 32);
}

uint32_t teex_sm_service_count(const struct teex_sm *sm) {
  return sm->services;
}

const struct teex_sm_config *teex_sm_config(const struct teex_sm *sm) {
  return &sm->cfg;
}

struct teex_statestore *teex_sm__state(struct teex_sm *sm) {
  return sm->state;
}

struct teex_store *teex_sm__local_store(struct teex_sm *sm) {
  return sm->store;
}

const char *teex_sm_state_backend(const struct teex_sm *sm) {
  return teex_statestore_backend(sm->state);
}

const uint8_t *teex_sm__secp256k1_sk(const struct teex_sm *sm) {
  return sm->secrets;
}

void teex_sm_register_digest(const struct teex_sm_register *r,
                             uint64_t chain_id, const uint8_t sm_addr[20],
                             uint8_t out[32]) {
  static const char tag[] = "teex/sm/v1/register-service";
  uint8_t buf[sizeof tag - 1 + 8 + 20 + 32 + 4 + 20 + 32 + 32];
  uint8_t *p = buf;
  memcpy(p, tag, sizeof tag - 1);
  p += sizeof tag - 1;
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(chain_id >> (8 * i));
  memcpy(p, sm_addr, 20), p += 20;
  memcpy(p, r->service_id, 32), p += 32;
  be32(p, r->version), p += 4;
  memcpy(p, r->provider, 20), p += 20;
  memcpy(p, r->image_hash, 32), p += 32;
  teex_keccak256(r->image_cid, strlen(r->image_cid), p);
  uint8_t inner[32];
  teex_keccak256(buf, sizeof buf, inner);
  /* EIP-191 personal message, so any wallet can sign it. */
  uint8_t msg[28 + 32];
  memcpy(msg,
         "\x19"
         "Ethereum Signed Message:\n32",
         28);
  memcpy(msg + 28, inner, 32);
  teex_keccak256(msg, sizeof msg, out);
}

/* Decrypts the image in memory and compares its hash. */
static int check_image(const struct teex_sm_register *r, struct teex_err *err) {
  uint8_t *pt = NULL;
  size_t pt_len = 0;
  int rc = teex_image_decrypt(r->image_key, r->ciphertext, r->ciphertext_len,
                              &pt, &pt_len, err);
  if (rc != 0)
    return teex_err_wrap(err, TEEX_EAUTH,
                         "image does not decrypt with the "
                         "given key");
  uint8_t h[32];
  teex_image_hash(pt, pt_len, h);
  teex_image_bytes_free(pt, pt_len);
  if (!teex_ct_equal(h, r->image_hash, 32))
    return teex_err_set(err, TEEX_EATTEST,
                        "image hash differs from the decrypted image's");
  return 0;
}

/* A registration's read-modify-write (it may run again after a conflict,
 * so it starts from scratch each time). */
struct reg_txn {
  const struct teex_sm_register *r;
  const char *skey, *ikey;
  uint8_t rec[SVC_REC_LEN]; /* the service record (secret keys) */
  int created, retry;
};

static int register_txn(struct teex_statestore_txn *txn, void *arg,
                        struct teex_err *err) {
  struct reg_txn *x = arg;
  const struct teex_sm_register *r = x->r;
  struct teex_buf svc, img;
  teex_buf_init(&svc, SVC_REC_LEN, TEEX_BUF_SECRET);
  teex_buf_init(&img, IMG_REC_MAX, TEEX_BUF_SECRET);
  x->created = x->retry = 0;
  int rc = teex_statestore_txn_get(txn, x->skey, &svc, err);
  if (rc == TEEX_ENOTFOUND) {
    if (r->version != 1) {
      rc = teex_err_set(err, TEEX_EINVAL,
                        "unknown service: the first version must be 1");
      goto out;
    }
    memcpy(x->rec, r->provider, 20);
    be32(x->rec + 20, 0);
    uint8_t pub[64];
    if ((rc = teex_secp256k1_keypair(x->rec + 24, pub)) != 0 ||
        (rc = teex_x25519_keypair(pub, x->rec + 56)) != 0) {
      teex_err_set(err, rc, "create service keys");
      goto out;
    }
    x->created = 1;
  } else if (rc != 0) {
    goto out;
  } else if (svc.len != SVC_REC_LEN) {
    rc = teex_err_set(err, TEEX_EFORMAT, "service record has %zu bytes",
                      svc.len);
    goto out;
  } else {
    memcpy(x->rec, svc.data, SVC_REC_LEN);
    if (memcmp(x->rec, r->provider, 20) != 0) {
      rc = teex_err_set(err, TEEX_EPERM,
                        "service id belongs to another provider");
      goto out;
    }
  }
  uint32_t latest = rd32(x->rec + 20);
  rc = teex_statestore_txn_get(txn, x->ikey, &img, err);
  if (rc == 0) {
    /* This image is registered already: a retry of the same request is
     * answered as before; anything else is refused. */
    if (img.len < 38 || rd32(img.data) != r->version ||
        !teex_ct_equal(img.data + 4, r->image_key, 32)) {
      rc = teex_err_set(err, TEEX_EEXIST,
                        "image already registered as version %u",
                        img.len >= 4 ? rd32(img.data) : 0);
      goto out;
    }
    x->retry = 1;
    goto out;
  } else if (rc != TEEX_ENOTFOUND) {
    goto out;
  } else if (r->version != latest + 1) {
    rc =
        teex_err_set(err, TEEX_EINVAL, "version %u out of sequence: next is %u",
                     r->version, latest + 1);
    goto out;
  }
  uint8_t irec[IMG_REC_MAX];
  size_t cid_len = strlen(r->image_cid);
  be32(irec, r->version);
  memcpy(irec + 4, r->image_key, 32);
  irec[36] = (uint8_t)(cid_len >> 8);
  irec[37] = (uint8_t)cid_len;
  memcpy(irec + 38, r->image_cid, cid_len);
  be32(x->rec + 20, r->version);
  rc = teex_statestore_txn_put(txn, x->ikey, irec, 38 + cid_len, err);
  teex_wipe(irec, sizeof irec);
  if (rc == 0)
    rc = teex_statestore_txn_put(txn, x->skey, x->rec, sizeof x->rec, err);
out:
  teex_buf_free(&svc);
  teex_buf_free(&img);
  return rc;
}

int teex_sm_register_service(struct teex_sm *sm,
                             const struct teex_sm_register *r,
                             struct teex_sm_registered *out,
                             struct teex_err *err) {
  int rc;
  uint8_t digest[32], signer[20];
  if (r->version == 0)
    return teex_err_set(err, TEEX_EINVAL, "version must start at 1");
  if (strlen(r->image_cid) == 0)
    return teex_err_set(err, TEEX_EINVAL, "image CID missing");
  teex_sm_register_digest(r, sm->cfg.listing.chain_id, sm->address, digest);
  if (teex_stmt_recover(digest, r->provider_sig, signer) != 0 ||
      memcmp(signer, r->provider, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG,
                        "registration not signed by the provider");
  if (r->ciphertext != NULL && (rc = check_image(r, err)) != 0)
    return rc;

  char skey[4 + 65], ikey[4 + 64 + 1 + 65];
  svc_key(r->service_id, skey);
  img_key(r->service_id, r->image_hash, ikey);
  struct reg_txn x = {.r = r, .skey = skey, .ikey = ikey};
  uint8_t *rec = x.rec;
  rc = teex_statestore_run(sm->state, register_txn, &x, err);
  if (rc != 0)
    goto out;
  int retry = x.retry;
  if (!retry)
    sm->services += (uint32_t)x.created;

  struct teex_service_listing l;
  uint8_t pub[64];
  memcpy(l.service_id, r->service_id, 32);
  memcpy(l.provider, r->provider, 20);
  l.version = r->version;
  if ((rc = teex_secp256k1_public(rec + 24, pub)) != 0 ||
      (rc = teex_x25519_public(rec + 56, l.encryption_key)) != 0)
    goto out;
  teex_eth_address(pub, l.signing_key);
  memcpy(l.image_hash, r->image_hash, 32);
  teex_stmt_service_listing_digest(&sm->cfg.listing, &l, digest);
  rc = teex_stmt_sign(sm->secrets, digest, out->listing_sig);
  if (rc != 0)
    goto out;
  memcpy(out->signing_key, l.signing_key, 20);
  memcpy(out->encryption_key, l.encryption_key, 32);
  if (!retry) {
    char id_hex[65], img_hex[65];
    teex_hex_encode(r->service_id, 32, id_hex);
    teex_hex_encode(r->image_hash, 32, img_hex);
    TEEX_INFO("sm", "service registered", "service=%s version=%u image=%s",
              id_hex, r->version, img_hex);
  }
out:
  teex_wipe(&x, sizeof x);
  return rc;
}

static void be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static void rev_key(enum teex_sm_revoke_kind kind, const uint8_t *value,
                    char out[6 + 65]) {
  size_t n = kind == TEEX_SM_REVOKE_ENCLAVE ? 20 : 32;
  memcpy(out, kind == TEEX_SM_REVOKE_ENCLAVE ? "rev/e/" : "rev/m/", 6);
  teex_hex_encode(value, n, out + 6);
}

/* 0 and *at, reason filled when value is revoked; TEEX_ENOTFOUND when not. */
static int revocation(struct teex_sm *sm, enum teex_sm_revoke_kind kind,
                      const uint8_t *value, uint64_t *at,
                      char reason[TEEX_SM_REASON_MAX + 1],
                      struct teex_err *err) {
  char key[6 + 65];
  rev_key(kind, value, key);
  struct teex_buf val;
  teex_buf_init(&val, REV_REC_MAX, 0);
  int rc = teex_store_get(sm->store, key, strlen(key), &val, err);
  if (rc == 0 && (val.len < 8 || val.len > REV_REC_MAX))
    rc = teex_err_set(err, TEEX_EFORMAT, "revocation record has %zu bytes",
                      val.len);
  if (rc == 0) {
    *at = rd64(val.data);
    memcpy(reason, val.data + 8, val.len - 8);
    reason[val.len - 8] = '\0';
  }
  teex_buf_free(&val);
  return rc;
}

int teex_sm_revoke(struct teex_sm *sm, enum teex_sm_revoke_kind kind,
                   const uint8_t *value, const char *reason, uint64_t now,
                   struct teex_err *err) {
  if (kind != TEEX_SM_REVOKE_ENCLAVE && kind != TEEX_SM_REVOKE_MEASUREMENT)
    return teex_err_set(err, TEEX_EINVAL, "unknown revocation kind %d",
                        (int)kind);
  size_t rlen = reason != NULL ? strlen(reason) : 0;
  if (rlen > TEEX_SM_REASON_MAX)
    return teex_err_set(err, TEEX_EINVAL,
                        "revocation reason has %zu bytes, at most %d", rlen,
                        TEEX_SM_REASON_MAX);
  uint64_t at;
  char old[TEEX_SM_REASON_MAX + 1];
  int rc = revocation(sm, kind, value, &at, old, err);
  if (rc == 0)
    return 0; /* revoked already: the first time and reason stand */
  if (rc != TEEX_ENOTFOUND)
    return rc;
  uint8_t rec[REV_REC_MAX];
  be64(rec, now);
  if (rlen > 0)
    memcpy(rec + 8, reason, rlen);
  char key[6 + 65];
  rev_key(kind, value, key);
  rc = teex_store_put(sm->store, key, strlen(key), rec, 8 + rlen, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "store revocation");
  TEEX_WARN("sm", "revoked", "%s=%s reason=\"%s\"",
            kind == TEEX_SM_REVOKE_ENCLAVE ? "enclave" : "measurement", key + 6,
            rlen > 0 ? reason : "");
  return 0;
}

int teex_sm_revocation_of(struct teex_sm *sm, enum teex_sm_revoke_kind kind,
                          const uint8_t *value, uint64_t *at,
                          char reason[TEEX_SM_REASON_MAX + 1],
                          struct teex_err *err) {
  return revocation(sm, kind, value, at, reason, err);
}

int teex_sm_sign_revocation(const struct teex_sm *sm, const uint8_t enclave[20],
                            uint8_t sig[65]) {
  uint8_t digest[32];
  teex_stmt_enclave_revocation_digest(&sm->cfg.registration, enclave, digest);
  return teex_stmt_sign(sm->secrets, digest, sig);
}

/* TEEX_EPOLICY when id's address or measurement is revoked. */
static int check_not_revoked(struct teex_sm *sm,
                             const struct teex_tee_identity *id,
                             struct teex_err *err) {
  uint64_t at;
  char reason[TEEX_SM_REASON_MAX + 1];
  int rc = revocation(sm, TEEX_SM_REVOKE_ENCLAVE, id->binding.eth_address, &at,
                      reason, err);
  if (rc == 0)
    return teex_err_set(err, TEEX_EPOLICY, "enclave revoked at %llu (%s)",
                        (unsigned long long)at, reason);
  if (rc != TEEX_ENOTFOUND)
    return rc;
  rc = revocation(sm, TEEX_SM_REVOKE_MEASUREMENT, id->mr_enclave, &at, reason,
                  err);
  if (rc == 0)
    return teex_err_set(err, TEEX_EPOLICY, "measurement revoked at %llu (%s)",
                        (unsigned long long)at, reason);
  return rc == TEEX_ENOTFOUND ? 0 : rc;
}

/* Writes the enclave's record: role, measurement, last fresh attestation. */
static int note_enclave(struct teex_sm *sm, const struct teex_tee_identity *id,
                        uint64_t now, struct teex_err *err) {
  char key[4 + 41];
  memcpy(key, "enc/", 4);
  teex_hex_encode(id->binding.eth_address, 20, key + 4);
  struct teex_buf val;
  teex_buf_init(&val, ENC_REC_LEN, 0);
  uint8_t rec[ENC_REC_LEN];
  memset(rec, 0, sizeof rec);
  uint64_t first = now;
  int rc = teex_store_get(sm->store, key, strlen(key), &val, err);
  if (rc == 0 && val.len == ENC_REC_LEN)
    first = rd64(val.data + 68);
  else if (rc != 0 && rc != TEEX_ENOTFOUND)
    goto out;
  memcpy(rec, id->binding.eth_address, 20);
  snprintf((char *)rec + 20, 16, "%s", id->role);
  memcpy(rec + 36, id->mr_enclave, 32);
  be64(rec + 68, first);
  be64(rec + 76, now);
  rc = teex_store_put(sm->store, key, strlen(key), rec, sizeof rec, err);
out:
  teex_buf_free(&val);
  return rc != 0 ? teex_err_wrap(err, rc, "record enclave") : 0;
}

struct enc_row {
  uint8_t rec[ENC_REC_LEN];
};

int teex_sm_enclaves(struct teex_sm *sm,
                     int (*cb)(const struct teex_sm_enclave *e, void *arg),
                     void *arg, struct teex_err *err) {
  /* Collect first: the revocation look-ups open their own transactions. */
  struct enc_row *rows = NULL;
  size_t n = 0, cap = 0;
  struct teex_store_txn *txn;
  struct teex_store_iter *it;
  int rc = teex_store_txn_begin(sm->store, TEEX_STORE_TXN_RDONLY, &txn, err);
  if (rc != 0)
    return rc;
  rc = teex_store_iter_begin(txn, "enc/", 4, &it, err);
  if (rc == 0) {
    const uint8_t *k, *v;
    size_t kl, vl;
    while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, err)) == 1) {
      (void)k;
      (void)kl;
      if (vl != ENC_REC_LEN)
        continue;
      if (n == cap) {
        size_t nc = cap ? cap * 2 : 16;
        struct enc_row *nr = realloc(rows, nc * sizeof *rows);
        if (nr == NULL) {
          rc = teex_err_set(err, TEEX_ENOMEM, NULL);
          break;
        }
        rows = nr, cap = nc;
      }
      memcpy(rows[n].rec, v, ENC_REC_LEN);
      n++;
    }
    teex_store_iter_free(it);
  }
  teex_store_txn_abort(txn);
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    struct teex_sm_enclave e;
    memset(&e, 0, sizeof e);
    memcpy(e.address, rows[i].rec, 20);
    memcpy(e.role, rows[i].rec + 20, 15);
    memcpy(e.mr_enclave, rows[i].rec + 36, 32);
    e.first_seen = rd64(rows[i].rec + 68);
    e.last_attested = rd64(rows[i].rec + 76);
    int r = revocation(sm, TEEX_SM_REVOKE_ENCLAVE, e.address, &e.revoked_at,
                       e.reason, err);
    if (r == TEEX_ENOTFOUND)
      r = revocation(sm, TEEX_SM_REVOKE_MEASUREMENT, e.mr_enclave,
                     &e.revoked_at, e.reason, err);
    if (r == 0)
      e.revoked = 1;
    else if (r != TEEX_ENOTFOUND) {
      rc = r;
      break;
    }
    if (cb(&e, arg) != 0)
      break;
  }
  free(rows);
  return rc < 0 ? rc : 0;
}

int teex_sm_check_enclave(struct teex_sm *sm, const uint8_t *evidence,
                          size_t len, const uint8_t nonce[32],
                          const uint8_t peer_spki_sha256[32], const char *role,
                          uint64_t now, struct teex_tee_identity *id,
                          struct teex_err *err) {
  int rc = teex_tee_verify(evidence, len, &sm->cfg.policy, nonce, now, id, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "enclave evidence");
  if (!id->has_binding || !id->binding.has_tls || !id->binding.has_secp256k1)
    return teex_err_set(err, TEEX_EATTEST,
                        "evidence binds no TLS key or enclave address");
  if (!teex_ct_equal(id->binding.tls_spki_sha256, peer_spki_sha256, 32))
    return teex_err_set(err, TEEX_EATTEST,
                        "evidence is for another TLS key than this session's");
  if (role != NULL ? strcmp(id->role, role) != 0
                   : (strcmp(id->role, "worker") != 0 &&
                      strcmp(id->role, "dispatcher") != 0))
    return teex_err_set(err, TEEX_EPOLICY, "role '%s' not allowed here",
                        id->role);
  int rc2 = check_not_revoked(sm, id, err);
  if (rc2 != 0)
    return rc2;
  return note_enclave(sm, id, now, err);
}

int teex_sm_ds_grant(const struct teex_sm *sm, const uint8_t service_id[32],
                     const uint8_t worker[20], uint8_t *out, size_t *out_len,
                     uint64_t *expires_at) {
  char ns[TEEX_DS_SERVICE_NS_LEN + 1];
  teex_ds_service_ns(service_id, ns);
  *expires_at = (uint64_t)time(NULL) + TEEX_SM_DS_GRANT_TTL_S;
  return teex_ds_grant_sign(sm->secrets, worker, ns, *expires_at, out, out_len);
}

struct fetch_txn {
  const char *skey, *ikey;
  struct teex_buf svc, img;
};

static int fetch_txn(struct teex_statestore_txn *txn, void *arg,
                     struct teex_err *err) {
  struct fetch_txn *x = arg;
  int rc = teex_statestore_txn_get(txn, x->skey, &x->svc, err);
  if (rc == TEEX_ENOTFOUND)
    return teex_err_set(err, rc, "unknown service");
  if (rc == 0)
    rc = teex_statestore_txn_get(txn, x->ikey, &x->img, err);
  if (rc == TEEX_ENOTFOUND)
    return teex_err_set(err, rc, "unknown image for this service");
  return rc;
}

int teex_sm_fetch_keys(struct teex_sm *sm, const uint8_t service_id[32],
                       const uint8_t image_hash[32], struct teex_sm_keys *out,
                       struct teex_err *err) {
  char skey[4 + 65], ikey[4 + 64 + 1 + 65];
  svc_key(service_id, skey);
  img_key(service_id, image_hash, ikey);
  struct fetch_txn x = {.skey = skey, .ikey = ikey};
  teex_buf_init(&x.svc, SVC_REC_LEN, TEEX_BUF_SECRET);
  teex_buf_init(&x.img, IMG_REC_MAX, TEEX_BUF_SECRET);
  int rc = teex_statestore_run(sm->state, fetch_txn, &x, err);
  if (rc != 0)
    goto out;
  const struct teex_buf *svc = &x.svc, *img = &x.img;
  size_t cid_len =
      img->len >= 38 ? (size_t)img->data[36] << 8 | img->data[37] : 0;
  if (svc->len != SVC_REC_LEN || img->len < 38 || img->len != 38 + cid_len ||
      cid_len > TEEX_SM_CID_MAX) {
    rc = teex_err_set(err, TEEX_EFORMAT, "service record malformed");
    goto out;
  }
  out->version = rd32(img->data);
  memcpy(out->image_key, img->data + 4, 32);
  memcpy(out->image_cid, img->data + 38, cid_len);
  out->image_cid[cid_len] = '\0';
  memcpy(out->provider, svc->data, 20);
  memcpy(out->service_secp256k1, svc->data + 24, 32);
  memcpy(out->service_x25519, svc->data + 56, 32);
out:
  teex_buf_free(&x.svc);
  teex_buf_free(&x.img);
  return rc;
}

int teex_sm_sign_registration(struct teex_sm *sm,
                              const struct teex_tee_identity *id, uint8_t *role,
                              uint8_t sig[65], struct teex_err *err) {
  if (strcmp(id->role, "worker") == 0)
    *role = TEEX_ENCLAVE_WORKER;
  else if (strcmp(id->role, "dispatcher") == 0)
    *role = TEEX_ENCLAVE_DISPATCHER;
  else
    return teex_err_set(err, TEEX_EPOLICY, "role '%s' cannot be registered",
                        id->role);
  uint8_t digest[32];
  teex_stmt_enclave_registration_digest(&sm->cfg.registration,
                                        id->binding.eth_address, *role,
                                        id->mr_enclave, id->issued_at, digest);
  return teex_stmt_sign(sm->secrets, digest, sig);
}

int teex_sm_ds_group_key(struct teex_sm *sm, const uint8_t group_id[16],
                         uint8_t key[32], struct teex_err *err) {
  char skey[40], hex[33];
  teex_hex_encode(group_id, 16, hex);
  snprintf(skey, sizeof skey, "ds/%s", hex);
  struct teex_store_txn *txn;
  int rc = teex_store_txn_begin(sm->store, 0, &txn, err);
  if (rc != 0)
    return rc;
  struct teex_buf val;
  teex_buf_init(&val, 64, TEEX_BUF_SECRET);
  rc = teex_store_txn_get(txn, skey, strlen(skey), &val, err);
  if (rc == 0 && val.len != 32)
    rc = teex_err_set(err, TEEX_EFORMAT, "ds group key record");
  if (rc == 0) {
    memcpy(key, val.data, 32);
    teex_store_txn_abort(txn);
  } else if (rc == TEEX_ENOTFOUND) {
    teex_random(key, 32);
    rc = teex_store_txn_put(txn, skey, strlen(skey), key, 32, err);
    if (rc == 0)
      rc = teex_store_txn_commit(txn, err);
    else
      teex_store_txn_abort(txn);
  } else {
    teex_store_txn_abort(txn);
  }
  teex_buf_free(&val);
  return rc;
}

/* ---- state in TEE-DS ---- */

/* Local records that belong in TEE-DS once a group is configured: every
 * category of the state but the TEE-DS group keys ("ds/" + 32 hex digits,
 * bootstrap), which share the "ds" category with datasets ("ds/" + 64). */
static const char *const state_categories[] = {"svc", "img", "ds", "dsuse",
                                               "dslease"};

static int is_state_record(const char *name) {
  return strncmp(name, "ds/", 3) != 0 || strlen(name) != 3 + 32;
}

static int keep_local(const char *name, void *arg) {
  (void)arg;
  return !is_state_record(name);
}

static int migrate_to(struct teex_sm *sm, struct teex_statestore *ds,
                      struct teex_err *err) {
  size_t moved;
  int rc = teex_statestore_migrate(sm->state, ds, state_categories,
                                   sizeof state_categories /
                                       sizeof *state_categories,
                                   keep_local, NULL, "SM", &moved, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "migrate SM state to TEE-DS");
  if (moved > 0)
    TEEX_INFO("sm", "state migrated to TEE-DS", "records=%zu", moved);
  return 0;
}

int teex_sm_use_ds(struct teex_sm *sm, const struct teex_ds_client_config *cc,
                   struct teex_err *err) {
  if (strcmp(teex_statestore_backend(sm->state), "local") != 0)
    return teex_err_set(err, TEEX_ESTATE, "SM state is in TEE-DS already");
  struct teex_statestore_ds_config dc = {
      .client = *cc, .secret = sm->secrets, .secret_len = 64, .label = "sm"};
  struct teex_statestore *ds;
  int rc = teex_statestore_open_ds(&dc, &ds, err);
  if (rc != 0)
    return rc;
  if ((rc = migrate_to(sm, ds, err)) != 0) {
    teex_statestore_close(ds);
    return rc;
  }
  teex_statestore_close(sm->state);
  sm->state = ds;
  /* The count is informational (sm.Info): a group that is down now costs
   * it, not the start. */
  struct teex_err e2;
  if (count_services(sm, &e2) != 0)
    TEEX_WARN("sm", "TEE-DS state not reachable yet", "reason=\"%s\"", e2.msg);
  return 0;
}
