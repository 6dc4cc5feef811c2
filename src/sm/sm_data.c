/* The Service Manager's dataset keys (see include/teex/sm.h, "datasets"):
 * escrow from data providers, leases to attested workers for paid tasks,
 * the use counter. Decisions only: the daemon (sm_server.c) proves the
 * worker's fresh evidence and reads the listing from the chain.
 *
 * Records, through the SM's statestore (the sealed local store, or TEE-DS
 * encrypted by the SM: include/teex/statestore.h):
 *   "ds/<id hex>"                 provider (20) | data key (32) |
 *                                 plaintext hash (32) | size (u64 BE) |
 *                                 cid length (u16 BE) | cid |
 *                                 name length (u8) | name
 *   "dsuse/<id hex>"              tasks counted (u32 BE)
 *   "dslease/<id hex>/<task hex>" expires_at (u64 BE): this task is counted */
#include "teex/sm.h"

#include "teex/buf.h"
#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/statestore.h"

#include <stdio.h>
#include <string.h>

#define DS_REC_FIXED (20 + 32 + 32 + 8 + 2)
#define DS_REC_MAX                                                             \
  (DS_REC_FIXED + TEEX_SM_CID_MAX + 1 + TEEX_SM_DATASET_NAME_MAX)

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* "<prefix><id hex>[/<task hex>]" */
static size_t rec_key(char *out, size_t cap, const char *prefix,
                      const uint8_t id[32], const uint8_t *task) {
  char idh[65], th[65] = "";
  teex_hex_encode(id, 32, idh);
  if (task != NULL)
    teex_hex_encode(task, 32, th);
  int n = snprintf(out, cap, "%s%s%s%s", prefix, idh, task ? "/" : "", th);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void teex_sm_escrow_digest(const struct teex_sm_escrow *e, uint64_t chain_id,
                           const uint8_t sm_addr[20], uint8_t out[32]) {
  static const char tag[] = "teex/sm/v1/escrow-data-key";
  uint8_t buf[sizeof tag - 1 + 8 + 20 + 32 + 20 + 32 + 8 + 32], *p = buf;
  memcpy(p, tag, sizeof tag - 1), p += sizeof tag - 1;
  put_be(p, chain_id, 8), p += 8;
  memcpy(p, sm_addr, 20), p += 20;
  memcpy(p, e->dataset_id, 32), p += 32;
  memcpy(p, e->provider, 20), p += 20;
  memcpy(p, e->plaintext_hash, 32), p += 32;
  put_be(p, e->plaintext_size, 8), p += 8;
  teex_keccak256(e->cid, strlen(e->cid), p);
  uint8_t inner[32], msg[28 + 32];
  teex_keccak256(buf, sizeof buf, inner);
  /* EIP-191 personal message, so any wallet can sign it. */
  memcpy(msg,
         "\x19"
         "Ethereum Signed Message:\n32",
         28);
  memcpy(msg + 28, inner, 32);
  teex_keccak256(msg, sizeof msg, out);
}

/* Decrypts the dataset in memory and compares its size and hash. */
static int check_data(const struct teex_sm_escrow *e, struct teex_err *err) {
  uint8_t *pt = NULL, h[32];
  size_t pt_len = 0;
  int rc = teex_image_decrypt(e->data_key, e->ciphertext, e->ciphertext_len,
                              &pt, &pt_len, err);
  if (rc != 0)
    return teex_err_wrap(err, TEEX_EAUTH,
                         "dataset does not decrypt with the given key");
  teex_sha256(pt, pt_len, h);
  teex_image_bytes_free(pt, pt_len);
  if (pt_len != e->plaintext_size)
    return teex_err_set(err, TEEX_EATTEST,
                        "dataset has %zu bytes, not the %llu listed", pt_len,
                        (unsigned long long)e->plaintext_size);
  if (!teex_ct_equal(h, e->plaintext_hash, 32))
    return teex_err_set(err, TEEX_EATTEST,
                        "plaintext hash differs from the decrypted dataset's");
  return 0;
}

struct escrow_txn {
  const struct teex_sm_escrow *e;
  const char *key;
  uint8_t rec[DS_REC_MAX]; /* the record to keep (secret: the data key) */
  size_t rec_len;
  int wrote;
};

static int escrow_txn(struct teex_statestore_txn *txn, void *arg,
                      struct teex_err *err) {
  struct escrow_txn *x = arg;
  struct teex_buf old;
  teex_buf_init(&old, DS_REC_MAX, TEEX_BUF_SECRET);
  x->wrote = 0;
  int rc = teex_statestore_txn_get(txn, x->key, &old, err);
  if (rc == 0) {
    /* Known: the same escrow again is a retry; anything else is refused
     * once listed (listings, leases and earlier tasks refer to this key).
     * Before a listing exists, the provider may replace it. */
    int same =
        old.len == x->rec_len && teex_ct_equal(old.data, x->rec, x->rec_len);
    if (same || !x->e->replace_unlisted) {
      if (!same)
        rc = teex_err_set(err, TEEX_EEXIST,
                          "dataset %s already escrowed with another key or "
                          "terms (and listed, or the SM cannot tell)",
                          x->e->name);
      goto out;
    }
  } else if (rc != TEEX_ENOTFOUND) {
    goto out;
  }
  rc = teex_statestore_txn_put(txn, x->key, x->rec, x->rec_len, err);
  x->wrote = rc == 0;
out:
  teex_buf_free(&old);
  return rc;
}

int teex_sm_escrow_data_key(struct teex_sm *sm, const struct teex_sm_escrow *e,
                            struct teex_err *err) {
  uint8_t digest[32], signer[20], id[32], addr[20];
  size_t name_len = strnlen(e->name, sizeof e->name);
  size_t cid_len = strnlen(e->cid, sizeof e->cid);
  if (name_len == 0 || name_len > TEEX_SM_DATASET_NAME_MAX)
    return teex_err_set(err, TEEX_EINVAL,
                        "dataset name must have 1 to %d bytes",
                        TEEX_SM_DATASET_NAME_MAX);
  if (cid_len == 0 || cid_len > TEEX_SM_CID_MAX)
    return teex_err_set(err, TEEX_EINVAL, "ciphertext CID missing or too long");
  if (e->plaintext_size > TEEX_SM_DATA_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "dataset larger than %u bytes",
                        TEEX_SM_DATA_MAX);
  teex_dataset_id(e->provider, e->name, id);
  if (!teex_ct_equal(id, e->dataset_id, 32))
    return teex_err_set(err, TEEX_EINVAL,
                        "dataset id is not the provider's id for this name");
  teex_sm_address(sm, addr);
  teex_sm_escrow_digest(e, teex_sm_config(sm)->listing.chain_id, addr, digest);
  if (teex_stmt_recover(digest, e->provider_sig, signer) != 0 ||
      memcmp(signer, e->provider, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG, "escrow not signed by the provider");
  int rc;
  if (e->ciphertext != NULL && (rc = check_data(e, err)) != 0)
    return rc;

  char key[80];
  rec_key(key, sizeof key, "ds/", e->dataset_id, NULL);
  struct escrow_txn x = {.e = e, .key = key};
  memcpy(x.rec, e->provider, 20);
  memcpy(x.rec + 20, e->data_key, 32);
  memcpy(x.rec + 52, e->plaintext_hash, 32);
  put_be(x.rec + 84, e->plaintext_size, 8);
  put_be(x.rec + 92, cid_len, 2);
  memcpy(x.rec + DS_REC_FIXED, e->cid, cid_len);
  x.rec[DS_REC_FIXED + cid_len] = (uint8_t)name_len;
  memcpy(x.rec + DS_REC_FIXED + cid_len + 1, e->name, name_len);
  x.rec_len = DS_REC_FIXED + cid_len + 1 + name_len;
  rc = teex_statestore_run(teex_sm__state(sm), escrow_txn, &x, err);
  if (rc == 0 && x.wrote) {
    char idh[65];
    teex_hex_encode(e->dataset_id, 32, idh);
    TEEX_INFO("sm", "data key escrowed", "dataset=%s size=%llu", idh,
              (unsigned long long)e->plaintext_size);
  }
  teex_wipe(&x, sizeof x);
  return rc;
}

/* The assignment: its dispatcher signed it, is registered, and sent it to
 * this worker on this chain, and it has not expired. */
static int check_assignment(struct teex_sm *sm,
                            const struct teex_sm_lease_req *req,
                            const struct teex_sm_data_terms *t, uint64_t now,
                            struct teex_err *err) {
  const struct teex_assignment *a = &req->assignment;
  uint8_t digest[32], signer[20];
  static const uint8_t none[32];
  teex_stmt_assignment_digest(a, digest);
  if (teex_stmt_recover(digest, req->dispatcher_sig, signer) != 0 ||
      memcmp(signer, a->dispatcher, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG,
                        "assignment not signed by its dispatcher");
  if (!t->dispatcher_active)
    return teex_err_set(err, TEEX_EPERM,
                        "assignment from a dispatcher the enclave registry "
                        "does not list (or revoked)");
  if (a->chain_id != teex_sm_config(sm)->listing.chain_id)
    return teex_err_set(err, TEEX_EINVAL, "assignment for chain %llu",
                        (unsigned long long)a->chain_id);
  if (memcmp(a->worker, req->worker, 20) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "assignment is for another worker than the caller");
  if (now >= a->expires_at)
    return teex_err_set(err, TEEX_EEXPIRED, "assignment expired");
  if (memcmp(a->datasets_hash, none, 32) == 0)
    return teex_err_set(err, TEEX_EPERM, "the task uses no dataset");
  return 0;
}

/* A lease's read-modify-write: the escrowed record, the chain's terms, and
 * the use counter, counted once per task. It may run again after a
 * conflict (another lease of the same dataset counted first), from
 * scratch: two leases never count as one. */
struct lease_txn {
  const struct teex_sm_lease_req *req;
  const struct teex_sm_data_terms *t;
  uint64_t now;
  const char *idh;
  char dkey[80], ukey[80], lkey[160];
  struct teex_buf rec; /* out: the dataset record */
  size_t cid_len, name_len;
  uint32_t uses;
};

static int lease_txn(struct teex_statestore_txn *txn, void *arg,
                     struct teex_err *err) {
  struct lease_txn *x = arg;
  const struct teex_assignment *a = &x->req->assignment;
  const struct teex_sm_data_terms *t = x->t;
  const char *idh = x->idh;
  struct teex_buf use, lease;
  teex_buf_init(&use, 4, 0);
  teex_buf_init(&lease, 8, 0);
  int rc = teex_statestore_txn_get(txn, x->dkey, &x->rec, err);
  if (rc == TEEX_ENOTFOUND) {
    teex_err_set(err, rc, "no key escrowed for dataset 0x%.16s..", idh);
    goto out;
  }
  if (rc != 0)
    goto out;
  const struct teex_buf *rec = &x->rec;
  size_t cid_len =
      rec->len >= DS_REC_FIXED ? (size_t)get_be(rec->data + 92, 2) : 0;
  size_t name_len =
      rec->len > DS_REC_FIXED + cid_len ? rec->data[DS_REC_FIXED + cid_len] : 0;
  if (rec->len < DS_REC_FIXED || cid_len > TEEX_SM_CID_MAX || name_len == 0 ||
      name_len > TEEX_SM_DATASET_NAME_MAX ||
      rec->len != DS_REC_FIXED + cid_len + 1 + name_len) {
    rc = teex_err_set(err, TEEX_EFORMAT, "dataset record malformed");
    goto out;
  }
  x->cid_len = cid_len;
  x->name_len = name_len;
  /* The chain's word on the listing. */
  if (!t->listed) {
    rc = teex_err_set(err, TEEX_ENOTFOUND, "dataset 0x%.16s.. is not listed",
                      idh);
    goto out;
  }
  if (memcmp(t->provider, rec->data, 20) != 0) {
    rc = teex_err_set(err, TEEX_EPERM,
                      "listed by another account than the one that escrowed "
                      "its key");
    goto out;
  }
  if (t->revoked) {
    rc = teex_err_set(err, TEEX_EPOLICY, "dataset 0x%.16s.. was revoked", idh);
    goto out;
  }
  if (t->expires_at != 0 && x->now >= t->expires_at) {
    rc = teex_err_set(err, TEEX_EEXPIRED, "dataset 0x%.16s.. listing expired",
                      idh);
    goto out;
  }
  if (!t->approved) {
    char svc[65], img[65];
    teex_hex_encode(a->service_id, 32, svc);
    teex_hex_encode(a->image_hash, 32, img);
    rc = teex_err_set(err, TEEX_EPERM,
                      "dataset 0x%.16s.. does not approve service 0x%.16s.. "
                      "at image 0x%.16s..",
                      idh, svc, img);
    goto out;
  }
  /* Uses: a task is counted once, however often its worker asks. */
  x->uses = 0;
  rc = teex_statestore_txn_get(txn, x->ukey, &use, err);
  if (rc == 0 && use.len == 4)
    x->uses = (uint32_t)get_be(use.data, 4);
  else if (rc == 0)
    rc = teex_err_set(err, TEEX_EFORMAT, "use counter malformed");
  if (rc != 0 && rc != TEEX_ENOTFOUND)
    goto out;
  rc = teex_statestore_txn_get(txn, x->lkey, &lease, err);
  if (rc == TEEX_ENOTFOUND) {
    if (t->max_uses != 0 && x->uses >= t->max_uses) {
      rc = teex_err_set(err, TEEX_EPOLICY,
                        "dataset 0x%.16s.. used %u of %u times: no use left",
                        idh, x->uses, t->max_uses);
      goto out;
    }
    uint8_t u[4], exp[8];
    x->uses++;
    put_be(u, x->uses, 4);
    put_be(exp, a->expires_at, 8);
    rc = teex_statestore_txn_put(txn, x->ukey, u, 4, err);
    if (rc == 0)
      rc = teex_statestore_txn_put(txn, x->lkey, exp, 8, err);
  }
out:
  teex_buf_free(&use);
  teex_buf_free(&lease);
  return rc;
}

int teex_sm_lease_data_key(struct teex_sm *sm,
                           const struct teex_sm_lease_req *req,
                           const struct teex_sm_data_terms *t, uint64_t now,
                           struct teex_sm_data_lease *out,
                           struct teex_err *err) {
  const struct teex_assignment *a = &req->assignment;
  uint8_t h[32];
  char idh[65];
  int rc;
  memset(out, 0, sizeof *out);
  if (req->n_datasets == 0 || req->n_datasets > TEEX_SM_TASK_DATASETS_MAX ||
      req->index >= req->n_datasets)
    return teex_err_set(err, TEEX_EINVAL, "1 to %d datasets per task",
                        TEEX_SM_TASK_DATASETS_MAX);
  if ((rc = check_assignment(sm, req, t, now, err)) != 0)
    return teex_err_wrap(err, rc, "lease");
  teex_stmt_datasets_hash(req->dataset_ids, req->n_datasets, h);
  if (!teex_ct_equal(h, a->datasets_hash, 32))
    return teex_err_set(err, TEEX_EPERM,
                        "lease: the assignment does not name these datasets");
  const uint8_t *id = req->dataset_ids + 32 * req->index;
  teex_hex_encode(id, 32, idh);

  struct lease_txn x = {.req = req, .t = t, .now = now, .idh = idh};
  rec_key(x.dkey, sizeof x.dkey, "ds/", id, NULL);
  rec_key(x.ukey, sizeof x.ukey, "dsuse/", id, NULL);
  rec_key(x.lkey, sizeof x.lkey, "dslease/", id, a->task_id);
  teex_buf_init(&x.rec, DS_REC_MAX, TEEX_BUF_SECRET);
  rc = teex_statestore_run(teex_sm__state(sm), lease_txn, &x, err);
  if (rc == 0) {
    const struct teex_buf *rec = &x.rec;
    memcpy(out->data_key, rec->data + 20, 32);
    memcpy(out->plaintext_hash, rec->data + 52, 32);
    out->plaintext_size = get_be(rec->data + 84, 8);
    memcpy(out->cid, rec->data + DS_REC_FIXED, x.cid_len);
    out->cid[x.cid_len] = 0;
    memcpy(out->name, rec->data + DS_REC_FIXED + x.cid_len + 1, x.name_len);
    out->name[x.name_len] = 0;
    memcpy(out->provider, rec->data, 20);
    out->price = t->price;
    out->max_output_bytes = t->max_output_bytes;
    out->expires_at = a->expires_at;
    out->uses = x.uses;
  }
  teex_buf_free(&x.rec);
  return rc;
}

int teex_sm_data_uses(struct teex_sm *sm, const uint8_t dataset_id[32],
                      uint32_t *uses, struct teex_err *err) {
  char ukey[80];
  rec_key(ukey, sizeof ukey, "dsuse/", dataset_id, NULL);
  struct teex_buf use;
  teex_buf_init(&use, 4, 0);
  *uses = 0;
  int rc = teex_statestore_get(teex_sm__state(sm), ukey, &use, err);
  if (rc == 0 && use.len == 4)
    *uses = (uint32_t)get_be(use.data, 4);
  else if (rc == 0)
    rc = teex_err_set(err, TEEX_EFORMAT, "use counter malformed");
  else if (rc == TEEX_ENOTFOUND)
    rc = 0;
  teex_buf_free(&use);
  return rc;
}
