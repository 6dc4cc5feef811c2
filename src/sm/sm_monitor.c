/* The Service Manager as the enclaves' monitor (include/teex/sm.h, "the
 * monitor's records"): each enclave's standing attestation and its
 * validity window, what it was given, and where its revocation stands on
 * chain. Persistence goes through the few functions at the top, over the
 * SM's sealed local store (teex_sm__local_store): like the enclave records
 * and revocations, these are read on the TEE-DS group-key path, so they
 * stay local when the rest of the SM's state is in TEE-DS.
 *
 * Records (values sealed by the store, keys hashed by it):
 *   "att/<address hex>"      attested at (u64 BE)
 *   "hold/<address hex>/<kind digit>/<id hex>/<sub hex>"
 *                            first (u64 BE) | last (u64 BE) | expires (u64 BE)
 *   "onrev/<address hex>"    state (1) | attempts (u32 BE) | updated (u64 BE)
 *                            | last error (<= TEEX_SM_REASON_MAX bytes) */
#include "teex/sm.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATT_PREFIX "att/"
#define HOLD_PREFIX "hold/"
#define ONREV_PREFIX "onrev/"
#define HOLD_REC_LEN 24
#define ONREV_HDR (1 + 4 + 8)
#define ONREV_REC_MAX (ONREV_HDR + TEEX_SM_REASON_MAX)
/* "hold/" + 40 + "/k/" + 64 + "/" + 64 */
#define HOLD_KEY_MAX (5 + 40 + 3 + 64 + 1 + 64 + 1)

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* prefix + address hex: the key of an enclave's single record. */
static size_t addr_key(const char *prefix, const uint8_t addr[20],
                       char out[16 + 41]) {
  size_t n = strlen(prefix);
  memcpy(out, prefix, n);
  teex_hex_encode(addr, 20, out + n);
  return n + 40;
}

/* ---- persistence: the only functions that touch the store ---- */

static int rec_get(struct teex_sm *sm, const char *key, size_t klen,
                   struct teex_buf *val, struct teex_err *err) {
  return teex_store_get(teex_sm__local_store(sm), key, klen, val, err);
}

static int rec_put(struct teex_sm *sm, const char *key, size_t klen,
                   const uint8_t *v, size_t vlen, struct teex_err *err) {
  return teex_store_put(teex_sm__local_store(sm), key, klen, v, vlen, err);
}

/* Calls cb(key, value) for every record under prefix; with drop set, deletes
 * those for which cb returns 2 (in one transaction). cb returning 1 stops. */
static int rec_scan(struct teex_sm *sm, const char *prefix, int drop,
                    int (*cb)(const uint8_t *k, size_t kl, const uint8_t *v,
                              size_t vl, void *arg),
                    void *arg, struct teex_err *err) {
  struct teex_store_txn *txn;
  struct teex_store_iter *it;
  int rc = teex_store_txn_begin(teex_sm__local_store(sm),
                                drop ? 0 : TEEX_STORE_TXN_RDONLY, &txn, err);
  if (rc != 0)
    return rc;
  size_t dropped = 0;
  rc = teex_store_iter_begin(txn, prefix, strlen(prefix), &it, err);
  if (rc == 0) {
    const uint8_t *k, *v;
    size_t kl, vl;
    while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, err)) == 1) {
      int r = cb(k, kl, v, vl, arg);
      if (r == 1)
        break;
      if (r == 2 && drop) {
        if ((rc = teex_store_txn_del(txn, k, kl, err)) != 0)
          break;
        dropped++;
      }
    }
    teex_store_iter_free(it);
  }
  if (rc >= 0 && dropped > 0)
    return teex_store_txn_commit(txn, err);
  teex_store_txn_abort(txn);
  return rc < 0 ? rc : 0;
}

/* ---- attestation and its validity window ---- */

uint32_t teex_sm_attest_valid(const struct teex_sm *sm) {
  uint32_t v = teex_sm_config(sm)->attest_valid_s;
  return v != 0 ? v : TEEX_SM_ATTEST_VALID_DEFAULT_S;
}

int teex_sm_attested_at(struct teex_sm *sm, const uint8_t enclave[20],
                        uint64_t *at, struct teex_err *err) {
  char key[16 + 41];
  size_t kl = addr_key(ATT_PREFIX, enclave, key);
  struct teex_buf val;
  teex_buf_init(&val, 8, 0);
  int rc = rec_get(sm, key, kl, &val, err);
  *at = 0;
  if (rc == 0 && val.len == 8)
    *at = get64(val.data);
  else if (rc == 0)
    rc = teex_err_set(err, TEEX_EFORMAT, "attestation record has %zu bytes",
                      val.len);
  else if (rc == TEEX_ENOTFOUND)
    rc = 0;
  teex_buf_free(&val);
  return rc;
}

int teex_sm_note_attestation(struct teex_sm *sm, const uint8_t enclave[20],
                             uint64_t now, uint64_t *valid_until,
                             struct teex_err *err) {
  char key[16 + 41];
  size_t kl = addr_key(ATT_PREFIX, enclave, key);
  uint8_t rec[8];
  put64(rec, now);
  int rc = rec_put(sm, key, kl, rec, sizeof rec, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "record attestation");
  if (valid_until != NULL)
    *valid_until = now + teex_sm_attest_valid(sm);
  return 0;
}

int teex_sm_check_attestation(struct teex_sm *sm, const uint8_t enclave[20],
                              uint64_t now, struct teex_err *err) {
  uint64_t at;
  int rc = teex_sm_attested_at(sm, enclave, &at, err);
  if (rc != 0)
    return rc;
  if (at == 0) /* first contact: this check's evidence attests it */
    return teex_sm_note_attestation(sm, enclave, now, NULL, err);
  uint64_t until = at + teex_sm_attest_valid(sm);
  if (now >= until)
    return teex_err_set(err, TEEX_EPOLICY,
                        "attestation expired at %llu (attested at %llu, "
                        "valid %u s): re-attest with sm.Attest",
                        (unsigned long long)until, (unsigned long long)at,
                        teex_sm_attest_valid(sm));
  return 0;
}

int teex_sm_ds_grant_bounded(struct teex_sm *sm, const uint8_t service_id[32],
                             const uint8_t worker[20], uint64_t now,
                             uint8_t *out, size_t *out_len,
                             uint64_t *expires_at, struct teex_err *err) {
  uint64_t at;
  int rc = teex_sm_attested_at(sm, worker, &at, err);
  if (rc != 0)
    return rc;
  uint64_t until = now + TEEX_SM_DS_GRANT_TTL_S;
  if (at != 0 && at + teex_sm_attest_valid(sm) < until)
    until = at + teex_sm_attest_valid(sm);
  char ns[TEEX_DS_SERVICE_NS_LEN + 1];
  teex_ds_service_ns(service_id, ns);
  rc = teex_ds_grant_sign(teex_sm__secp256k1_sk(sm), worker, ns, until, out,
                          out_len);
  if (rc != 0)
    return teex_err_set(err, rc, "sign TEE-DS grant");
  *expires_at = until;
  return 0;
}

/* ---- what each enclave holds ---- */

static size_t hold_prefix(const uint8_t enclave[20], char out[HOLD_KEY_MAX]) {
  size_t n = addr_key(HOLD_PREFIX, enclave, out);
  out[n++] = '/';
  out[n] = '\0';
  return n;
}

static size_t hold_key(const uint8_t enclave[20],
                       const struct teex_sm_holding *h,
                       char out[HOLD_KEY_MAX]) {
  size_t n = hold_prefix(enclave, out);
  out[n++] = (char)('0' + h->kind);
  out[n++] = '/';
  teex_hex_encode(h->id, 32, out + n);
  n += 64;
  out[n++] = '/';
  teex_hex_encode(h->sub, 32, out + n);
  n += 64;
  out[n] = '\0';
  return n;
}

/* Parses a hold/ record back (0, or -1 when it is not one). */
static int hold_parse(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                      struct teex_sm_holding *h) {
  if (kl != HOLD_KEY_MAX - 1 || vl != HOLD_REC_LEN)
    return -1;
  const char *p = (const char *)k + 5 + 40 + 1;
  size_t n;
  if (p[0] < '1' || p[0] > '3' || p[1] != '/' || p[66] != '/')
    return -1;
  memset(h, 0, sizeof *h);
  h->kind = (uint8_t)(p[0] - '0');
  char hex[65];
  memcpy(hex, p + 2, 64);
  hex[64] = '\0';
  if (teex_hex_decode(hex, h->id, 32, &n) != 0 || n != 32)
    return -1;
  memcpy(hex, p + 67, 64);
  if (teex_hex_decode(hex, h->sub, 32, &n) != 0 || n != 32)
    return -1;
  h->first_at = get64(v);
  h->last_at = get64(v + 8);
  h->expires_at = get64(v + 16);
  return 0;
}

struct prune_ctx {
  uint64_t now;
};

static int prune_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    void *arg) {
  struct prune_ctx *c = arg;
  struct teex_sm_holding h;
  if (hold_parse(k, kl, v, vl, &h) != 0)
    return 0;
  return h.kind == TEEX_SM_HELD_LEASE && h.expires_at != 0 &&
                 h.expires_at <= c->now
             ? 2
             : 0;
}

int teex_sm_note_holding(struct teex_sm *sm, const uint8_t enclave[20],
                         const struct teex_sm_holding *h, uint64_t now,
                         struct teex_err *err) {
  if (h->kind < TEEX_SM_HELD_SERVICE || h->kind > TEEX_SM_HELD_GROUP)
    return teex_err_set(err, TEEX_EINVAL, "unknown holding kind %u", h->kind);
  char key[HOLD_KEY_MAX];
  size_t kl = hold_key(enclave, h, key);
  struct teex_buf val;
  teex_buf_init(&val, HOLD_REC_LEN, 0);
  uint64_t first = now;
  int rc = rec_get(sm, key, kl, &val, err);
  if (rc == 0 && val.len == HOLD_REC_LEN)
    first = get64(val.data);
  teex_buf_free(&val);
  if (rc != 0 && rc != TEEX_ENOTFOUND)
    return teex_err_wrap(err, rc, "read holding");
  uint8_t rec[HOLD_REC_LEN];
  put64(rec, first);
  put64(rec + 8, now);
  put64(rec + 16, h->expires_at);
  rc = rec_put(sm, key, kl, rec, sizeof rec, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "record holding");
  return 0;
}

int teex_sm_prune_holdings(struct teex_sm *sm, uint64_t now,
                           struct teex_err *err) {
  struct prune_ctx pc = {now};
  int rc = rec_scan(sm, HOLD_PREFIX, 1, prune_cb, &pc, err);
  return rc != 0 ? teex_err_wrap(err, rc, "drop ended leases") : 0;
}

struct list_ctx {
  uint64_t now;
  int (*cb)(const struct teex_sm_holding *h, void *arg);
  void *arg;
};

static int list_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   void *arg) {
  struct list_ctx *c = arg;
  struct teex_sm_holding h;
  if (hold_parse(k, kl, v, vl, &h) != 0)
    return 0;
  if (h.kind == TEEX_SM_HELD_LEASE && h.expires_at != 0 &&
      h.expires_at <= c->now)
    return 0;
  return c->cb(&h, c->arg) != 0 ? 1 : 0;
}

int teex_sm_holdings(struct teex_sm *sm, const uint8_t enclave[20],
                     uint64_t now,
                     int (*cb)(const struct teex_sm_holding *h, void *arg),
                     void *arg, struct teex_err *err) {
  char prefix[HOLD_KEY_MAX];
  hold_prefix(enclave, prefix);
  struct list_ctx c = {now, cb, arg};
  return rec_scan(sm, prefix, 0, list_cb, &c, err);
}

/* ---- revocations on chain ---- */

static int onrev_read(struct teex_sm *sm, const uint8_t enclave[20],
                      struct teex_sm_chain_revocation *out,
                      struct teex_err *err) {
  char key[16 + 41];
  size_t kl = addr_key(ONREV_PREFIX, enclave, key);
  struct teex_buf val;
  teex_buf_init(&val, ONREV_REC_MAX, 0);
  memset(out, 0, sizeof *out);
  memcpy(out->enclave, enclave, 20);
  int rc = rec_get(sm, key, kl, &val, err);
  if (rc == 0 && (val.len < ONREV_HDR || val.len > ONREV_REC_MAX))
    rc = teex_err_set(err, TEEX_EFORMAT,
                      "chain revocation record has %zu bytes", val.len);
  if (rc == 0) {
    out->state = val.data[0];
    out->attempts = (uint32_t)val.data[1] << 24 | (uint32_t)val.data[2] << 16 |
                    (uint32_t)val.data[3] << 8 | val.data[4];
    out->updated = get64(val.data + 5);
    memcpy(out->last_error, val.data + ONREV_HDR, val.len - ONREV_HDR);
    out->last_error[val.len - ONREV_HDR] = '\0';
  }
  teex_buf_free(&val);
  return rc;
}

static int onrev_write(struct teex_sm *sm,
                       const struct teex_sm_chain_revocation *r,
                       struct teex_err *err) {
  char key[16 + 41];
  size_t kl = addr_key(ONREV_PREFIX, r->enclave, key);
  uint8_t rec[ONREV_REC_MAX];
  size_t el = strnlen(r->last_error, TEEX_SM_REASON_MAX);
  rec[0] = r->state;
  rec[1] = (uint8_t)(r->attempts >> 24);
  rec[2] = (uint8_t)(r->attempts >> 16);
  rec[3] = (uint8_t)(r->attempts >> 8);
  rec[4] = (uint8_t)r->attempts;
  put64(rec + 5, r->updated);
  memcpy(rec + ONREV_HDR, r->last_error, el);
  int rc = rec_put(sm, key, kl, rec, ONREV_HDR + el, err);
  return rc != 0 ? teex_err_wrap(err, rc, "record chain revocation") : 0;
}

int teex_sm_chain_revocation_get(struct teex_sm *sm, const uint8_t enclave[20],
                                 struct teex_sm_chain_revocation *out,
                                 struct teex_err *err) {
  int rc = onrev_read(sm, enclave, out, err);
  return rc == TEEX_ENOTFOUND ? 0 : rc;
}

int teex_sm_chain_revocation_queue(struct teex_sm *sm,
                                   const uint8_t enclave[20], uint64_t now,
                                   struct teex_err *err) {
  struct teex_sm_chain_revocation r;
  int rc = onrev_read(sm, enclave, &r, err);
  if (rc == 0)
    return 0; /* queued or confirmed already */
  if (rc != TEEX_ENOTFOUND)
    return rc;
  r.state = TEEX_SM_CHAIN_PENDING;
  r.updated = now;
  return onrev_write(sm, &r, err);
}

int teex_sm_chain_revocation_result(struct teex_sm *sm,
                                    const uint8_t enclave[20], int confirmed,
                                    const char *error, uint64_t now,
                                    struct teex_err *err) {
  struct teex_sm_chain_revocation r;
  int rc = onrev_read(sm, enclave, &r, err);
  if (rc != 0)
    return rc;
  if (r.state == TEEX_SM_CHAIN_CONFIRMED)
    return 0;
  r.attempts++;
  r.updated = now;
  r.state = confirmed ? TEEX_SM_CHAIN_CONFIRMED : TEEX_SM_CHAIN_PENDING;
  snprintf(r.last_error, sizeof r.last_error, "%s",
           confirmed || error == NULL ? "" : error);
  return onrev_write(sm, &r, err);
}

struct pending_ctx {
  int (*cb)(const struct teex_sm_chain_revocation *r, void *arg);
  void *arg;
  int all; /* confirmed ones too */
};

static int pending_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                      void *arg) {
  struct pending_ctx *c = arg;
  size_t pl = strlen(ONREV_PREFIX), n;
  struct teex_sm_chain_revocation r;
  if (kl != pl + 40 || vl < ONREV_HDR || vl > ONREV_REC_MAX ||
      (!c->all && v[0] != TEEX_SM_CHAIN_PENDING))
    return 0;
  char hex[41];
  memcpy(hex, k + pl, 40);
  hex[40] = '\0';
  memset(&r, 0, sizeof r);
  if (teex_hex_decode(hex, r.enclave, 20, &n) != 0 || n != 20)
    return 0;
  r.state = v[0];
  r.attempts =
      (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
  r.updated = get64(v + 5);
  memcpy(r.last_error, v + ONREV_HDR, vl - ONREV_HDR);
  r.last_error[vl - ONREV_HDR] = '\0';
  return c->cb(&r, c->arg) != 0 ? 1 : 0;
}

int teex_sm_chain_revocations_pending(
    struct teex_sm *sm,
    int (*cb)(const struct teex_sm_chain_revocation *r, void *arg), void *arg,
    struct teex_err *err) {
  struct pending_ctx c = {cb, arg, 0};
  return rec_scan(sm, ONREV_PREFIX, 0, pending_cb, &c, err);
}

int teex_sm_chain_revocations(
    struct teex_sm *sm,
    int (*cb)(const struct teex_sm_chain_revocation *r, void *arg), void *arg,
    struct teex_err *err) {
  struct pending_ctx c = {cb, arg, 1};
  return rec_scan(sm, ONREV_PREFIX, 0, pending_cb, &c, err);
}
