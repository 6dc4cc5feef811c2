/* The statestore's TEE-DS backend: records encrypted by the caller before
 * they leave the process, names hidden, optimistic transactions committed
 * with one TEEX_DS_TXN (include/teex/statestore.h).
 *
 * A record named N of category C lives at the TEE-DS key
 *   "<ns>/<C>/<hex(HMAC-SHA256(name key, N))>"
 * and its TEE-DS value is
 *   XChaCha20-Poly1305(aead key, ad = that TEE-DS key,
 *                      len(N) (u16 BE) | N | value)
 * with a random nonce, so two writes of the same value differ: the
 * ciphertext a transaction read is also the record's version, which the
 * commit's conditions compare. */
#include "statestore_internal.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_HEX 64
/* "<ns>/<category>/<64 hex>" */
#define DSKEY_MAX                                                              \
  (TEEX_DS_NS_MAX + 1 + TEEX_STATESTORE_CATEGORY_MAX + 1 + HASH_HEX)
#define SALT "teex statestore v1"

struct teex_statestore__ds {
  struct teex_ds_client_config cfg; /* replicas and tls borrowed */
  char ns[TEEX_DS_NS_MAX + 1];
  struct teex_ds_sync *sync; /* opened at the first operation */
  uint8_t *keys;             /* locked: aead key (32) | name key (32) */
};

/* One record a transaction touched. */
struct rec {
  char dskey[DSKEY_MAX + 1];
  size_t dskey_len;
  int read, read_present; /* read from TEE-DS, and what was there */
  uint8_t *read_ct;       /* the ciphertext read (its version) */
  size_t read_ct_len;
  int written, deleted; /* what the commit writes */
  uint8_t *write_ct;    /* the ciphertext to write */
  size_t write_ct_len;
  int present; /* the transaction's view */
  uint8_t *pt; /* ... and its value (secret) */
  size_t pt_len;
};

struct teex_statestore__dstxn {
  struct teex_statestore__ds *d;
  struct rec recs[TEEX_STATESTORE_TXN_MAX];
  size_t n;
};

int teex_statestore__ds_open(const struct teex_statestore_ds_config *cfg,
                             struct teex_statestore__ds **out,
                             struct teex_err *err) {
  size_t nl = cfg->client.ns != NULL ? strlen(cfg->client.ns) : 0;
  if (nl == 0 || nl > TEEX_DS_NS_MAX || cfg->secret == NULL ||
      cfg->secret_len < 32 || cfg->label == NULL || cfg->label[0] == '\0' ||
      strlen(cfg->label) > 64)
    return teex_err_set(err, TEEX_EINVAL,
                        "TEE-DS state: namespace, secret (>= 32 bytes) and "
                        "label needed");
  struct teex_statestore__ds *d = calloc(1, sizeof *d);
  if (d == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  d->keys = teex_secret_alloc(64);
  if (d->keys == NULL) {
    free(d);
    return teex_err_set(err, TEEX_ENOMEM, "locked memory for state keys");
  }
  memcpy(d->ns, cfg->client.ns, nl + 1);
  d->cfg = cfg->client;
  d->cfg.ns = d->ns;
  d->cfg.grant = NULL; /* the namespace is the enclave role's, not a grant */
  d->cfg.grant_len = 0;
  char info[96];
  int il = snprintf(info, sizeof info, "%s state aead", cfg->label);
  int rc = teex_hkdf_sha256((const uint8_t *)SALT, sizeof SALT - 1, cfg->secret,
                            cfg->secret_len, (uint8_t *)info, (size_t)il,
                            d->keys, 32);
  il = snprintf(info, sizeof info, "%s state names", cfg->label);
  if (rc == 0)
    rc = teex_hkdf_sha256((const uint8_t *)SALT, sizeof SALT - 1, cfg->secret,
                          cfg->secret_len, (uint8_t *)info, (size_t)il,
                          d->keys + 32, 32);
  if (rc != 0) {
    teex_statestore__ds_close(d);
    return teex_err_set(err, rc, "derive state keys");
  }
  *out = d;
  return 0;
}

void teex_statestore__ds_close(struct teex_statestore__ds *d) {
  if (d == NULL)
    return;
  teex_ds_sync_close(d->sync);
  teex_secret_free(d->keys);
  free(d);
}

/* Runs cmd on the group: 0 with *res (the command's own status inside), or
 * the transport's error, worded for whoever sees it. */
static int exec(struct teex_statestore__ds *d, const struct teex_ds_cmd *cmd,
                struct teex_ds_result *res, struct teex_err *err) {
  int rc;
  if (d->sync == NULL && (rc = teex_ds_sync_open(&d->cfg, &d->sync, err)) != 0)
    return teex_err_wrap(err, rc, "TEE-DS state");
  rc = teex_ds_sync_exec(d->sync, cmd, TEEX_DS_READ_LINEARIZABLE, res, err);
  if (rc == TEEX_ETIMEDOUT || rc == TEEX_ECONN)
    return teex_err_wrap(err, rc,
                         "TEE-DS state: group unreachable (nothing was "
                         "changed; try again once it is up)");
  if (rc != 0)
    return teex_err_wrap(err, rc, "TEE-DS state");
  if (res->status == TEEX_EPERM) {
    teex_ds_result_free(res);
    return teex_err_set(err, TEEX_EPERM,
                        "TEE-DS state: namespace '%s' not granted to this "
                        "enclave (group.conf [enclaves])",
                        d->ns);
  }
  return 0;
}

/* The TEE-DS key of name into r. */
static void ds_key(const struct teex_statestore__ds *d, const char *name,
                   struct rec *r) {
  const char *slash = strchr(name, '/');
  uint8_t h[32];
  teex_hmac_sha256(d->keys + 32, 32, name, strlen(name), h);
  char hex[HASH_HEX + 1];
  teex_hex_encode(h, 32, hex);
  int n = snprintf(r->dskey, sizeof r->dskey, "%s/%.*s/%s", d->ns,
                   (int)(slash - name), name, hex);
  r->dskey_len = (size_t)n;
}

int teex_statestore__record_seal(const uint8_t key[32], const char *dskey,
                                 size_t dskey_len, const char *name,
                                 const void *val, size_t len, uint8_t *out,
                                 size_t *out_len) {
  size_t nl = strlen(name);
  size_t plain = 2 + nl + len;
  uint8_t *msg = malloc(plain);
  if (msg == NULL)
    return TEEX_ENOMEM;
  msg[0] = (uint8_t)(nl >> 8);
  msg[1] = (uint8_t)nl;
  memcpy(msg + 2, name, nl);
  if (len > 0)
    memcpy(msg + 2 + nl, val, len);
  int rc = teex_xaead_seal(key, dskey, dskey_len, msg, plain, out);
  teex_wipe(msg, plain);
  free(msg);
  *out_len = plain + TEEX_XAEAD_OVERHEAD;
  return rc;
}

int teex_statestore__record_open(const uint8_t key[32], const char *dskey,
                                 size_t dskey_len, const uint8_t *ct,
                                 size_t ct_len,
                                 char name[TEEX_STATESTORE_NAME_MAX + 1],
                                 uint8_t **val, size_t *val_len,
                                 struct teex_err *err) {
  if (ct_len < TEEX_XAEAD_OVERHEAD + 2 ||
      ct_len > TEEX_DS_VALUE_MAX + TEEX_XAEAD_OVERHEAD)
    return teex_err_set(err, TEEX_EAUTH, "TEE-DS state: record size");
  size_t n = ct_len - TEEX_XAEAD_OVERHEAD;
  uint8_t *p = malloc(n);
  if (p == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (teex_xaead_open(key, dskey, dskey_len, ct, ct_len, p) != 0) {
    free(p);
    return teex_err_set(err, TEEX_EAUTH,
                        "TEE-DS state: a record does not open under this "
                        "SM's key (tampered, moved, or another's)");
  }
  /* Authentic, so written by us; checked all the same. */
  size_t nl = (size_t)p[0] << 8 | p[1];
  if (nl == 0 || nl > TEEX_STATESTORE_NAME_MAX || 2 + nl > n ||
      memchr(p + 2, '\0', nl) != NULL) {
    teex_wipe(p, n);
    free(p);
    return teex_err_set(err, TEEX_EAUTH, "TEE-DS state: record malformed");
  }
  memcpy(name, p + 2, nl);
  name[nl] = '\0';
  memmove(p, p + 2 + nl, n - 2 - nl);
  *val_len = n - 2 - nl;
  *val = p;
  return 0;
}

/* Opens a TEE-DS value of r's key: the name inside must be name. */
static int open_value(const struct teex_statestore__ds *d, const struct rec *r,
                      const char *name, const uint8_t *ct, size_t ct_len,
                      uint8_t **pt, size_t *pt_len, struct teex_err *err) {
  char inside[TEEX_STATESTORE_NAME_MAX + 1];
  int rc = teex_statestore__record_open(d->keys, r->dskey, r->dskey_len, ct,
                                        ct_len, inside, pt, pt_len, err);
  if (rc == 0 && strcmp(inside, name) != 0) {
    teex_wipe(*pt, *pt_len);
    free(*pt);
    *pt = NULL;
    rc = teex_err_set(err, TEEX_EAUTH,
                      "TEE-DS state: record holds another name");
  }
  return rc;
}

int teex_statestore__ds_txn_new(struct teex_statestore__ds *d,
                                struct teex_statestore__dstxn **out) {
  *out = calloc(1, sizeof **out);
  if (*out == NULL)
    return TEEX_ENOMEM;
  (*out)->d = d;
  return 0;
}

static void rec_clear(struct rec *r) {
  free(r->read_ct);
  free(r->write_ct);
  if (r->pt != NULL) {
    teex_wipe(r->pt, r->pt_len);
    free(r->pt);
  }
  memset(r, 0, sizeof *r);
}

void teex_statestore__ds_txn_free(struct teex_statestore__dstxn *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n; i++)
    rec_clear(&t->recs[i]);
  free(t);
}

/* The transaction's record for name (made when new), or NULL when the
 * transaction is full. */
static struct rec *rec_for(struct teex_statestore__dstxn *t, const char *name,
                           int *is_new) {
  struct rec probe;
  ds_key(t->d, name, &probe);
  *is_new = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->recs[i].dskey_len == probe.dskey_len &&
        memcmp(t->recs[i].dskey, probe.dskey, probe.dskey_len) == 0)
      return &t->recs[i];
  if (t->n == TEEX_STATESTORE_TXN_MAX)
    return NULL;
  struct rec *r = &t->recs[t->n++];
  memset(r, 0, sizeof *r);
  memcpy(r->dskey, probe.dskey, probe.dskey_len + 1);
  r->dskey_len = probe.dskey_len;
  *is_new = 1;
  return r;
}

int teex_statestore__ds_txn_get(struct teex_statestore__dstxn *t,
                                const char *name, struct teex_buf *out,
                                struct teex_err *err) {
  int is_new;
  struct rec *r = rec_for(t, name, &is_new);
  if (r == NULL)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "state transaction touches more than %d records",
                        TEEX_STATESTORE_TXN_MAX);
  if (is_new) {
    struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = t->d->ns};
    c.key = (const uint8_t *)r->dskey;
    c.key_len = r->dskey_len;
    struct teex_ds_result res;
    int rc = exec(t->d, &c, &res, err);
    if (rc == 0 && res.status != 0 && res.status != TEEX_ENOTFOUND)
      rc = teex_err_set(err, res.status, "TEE-DS state: get refused: %s",
                        teex_strerror(res.status));
    if (rc == 0 && res.status == 0) {
      rc = open_value(t->d, r, name, res.val, res.val_len, &r->pt, &r->pt_len,
                      err);
      if (rc == 0) {
        r->read_present = r->present = 1;
        r->read_ct = res.val; /* taken from the result */
        r->read_ct_len = res.val_len;
        res.val = NULL;
        res.val_len = 0;
      }
    }
    if (rc == 0)
      r->read = 1;
    else
      t->n--; /* forget the record: nothing was learnt */
    teex_ds_result_free(&res);
    if (rc != 0)
      return rc;
  }
  if (!r->present)
    return TEEX_ENOTFOUND;
  teex_buf_reset(out);
  return teex_buf_append(out, r->pt, r->pt_len) != 0
             ? teex_err_set(err, TEEX_ETOOBIG, "state record of %zu bytes",
                            r->pt_len)
             : 0;
}

int teex_statestore__ds_txn_put(struct teex_statestore__dstxn *t,
                                const char *name, const void *val, size_t len,
                                int del, struct teex_err *err) {
  int is_new;
  struct rec *r = rec_for(t, name, &is_new);
  if (r == NULL)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "state transaction touches more than %d records",
                        TEEX_STATESTORE_TXN_MAX);
  uint8_t *ct = NULL, *pt = NULL;
  size_t ct_len = 0;
  if (!del) {
    ct = malloc(2 + strlen(name) + len + TEEX_XAEAD_OVERHEAD);
    pt = malloc(len ? len : 1);
    int rc =
        ct == NULL || pt == NULL
            ? TEEX_ENOMEM
            : teex_statestore__record_seal(t->d->keys, r->dskey, r->dskey_len,
                                           name, val, len, ct, &ct_len);
    if (rc != 0) {
      free(ct);
      free(pt);
      if (is_new)
        t->n--;
      return teex_err_set(err, rc, "seal state record");
    }
    if (len > 0)
      memcpy(pt, val, len);
  }
  free(r->write_ct);
  if (r->pt != NULL) {
    teex_wipe(r->pt, r->pt_len);
    free(r->pt);
  }
  r->write_ct = ct;
  r->write_ct_len = ct_len;
  r->pt = pt;
  r->pt_len = del ? 0 : len;
  r->written = 1;
  r->deleted = del;
  r->present = !del;
  return 0;
}

int teex_statestore__ds_txn_commit(struct teex_statestore__dstxn *t,
                                   struct teex_err *err) {
  struct teex_ds_pair pairs[TEEX_DS_MSET_MAX];
  uint8_t kinds[TEEX_DS_MSET_MAX];
  size_t n = 0, writes = 0;
  for (size_t i = 0; i < t->n; i++)
    writes += t->recs[i].written;
  if (writes == 0)
    return 0; /* read-only: each read was linearizable on its own */
  for (size_t i = 0; i < t->n; i++) {
    const struct rec *r = &t->recs[i];
    if (!r->read)
      continue;
    if (n == TEEX_DS_MSET_MAX)
      goto too_big;
    pairs[n] = (struct teex_ds_pair){(const uint8_t *)r->dskey, r->dskey_len,
                                     r->read_ct, r->read_ct_len};
    kinds[n++] = r->read_present ? TEEX_DS_TXN_EQ : TEEX_DS_TXN_ABSENT;
  }
  for (size_t i = 0; i < t->n; i++) {
    const struct rec *r = &t->recs[i];
    if (!r->written)
      continue;
    if (n == TEEX_DS_MSET_MAX)
      goto too_big;
    pairs[n] = (struct teex_ds_pair){(const uint8_t *)r->dskey, r->dskey_len,
                                     r->write_ct, r->write_ct_len};
    kinds[n++] = r->deleted ? TEEX_DS_TXN_DEL : TEEX_DS_TXN_PUT;
  }
  struct teex_ds_cmd c = {.op = TEEX_DS_TXN, .grant = t->d->ns};
  c.pairs = pairs;
  c.n_pairs = n;
  c.expect = kinds;
  c.expect_len = n;
  struct teex_ds_result res;
  int rc = exec(t->d, &c, &res, err);
  if (rc == TEEX_ECLOSED || rc == TEEX_ESTATE)
    return TEEX_ESTATE; /* outcome unknown: the caller runs it again */
  if (rc != 0)
    return rc;
  rc = res.status;
  teex_ds_result_free(&res);
  if (rc == TEEX_ESTATE)
    return TEEX_ESTATE; /* a record read changed: run again */
  if (rc != 0)
    return teex_err_set(err, rc, "TEE-DS state: commit refused: %s",
                        teex_strerror(rc));
  return 0;
too_big:
  return teex_err_set(err, TEEX_ETOOBIG,
                      "state transaction reads and writes more than %d "
                      "records",
                      TEEX_DS_MSET_MAX);
}

int teex_statestore__ds_scan(struct teex_statestore__ds *d,
                             const char *category,
                             int (*cb)(const char *name, const uint8_t *val,
                                       size_t len, void *arg),
                             void *arg, struct teex_err *err) {
  char prefix[DSKEY_MAX + 1], after[DSKEY_MAX + 1];
  int pl = snprintf(prefix, sizeof prefix, "%s/%s/", d->ns, category);
  size_t after_len = 0;
  int more = 1, rc = 0, stop = 0;
  while (more && !stop && rc == 0) {
    struct teex_ds_cmd c = {.op = TEEX_DS_SCAN, .grant = d->ns};
    c.key = (const uint8_t *)prefix;
    c.key_len = (size_t)pl;
    c.after = (const uint8_t *)after;
    c.after_len = after_len;
    c.limit = TEEX_DS_SCAN_MAX;
    struct teex_ds_result res;
    if ((rc = exec(d, &c, &res, err)) != 0)
      break;
    if (res.status != 0) {
      rc = teex_err_set(err, res.status, "TEE-DS state: scan refused: %s",
                        teex_strerror(res.status));
      teex_ds_result_free(&res);
      break;
    }
    for (size_t i = 0; i < res.n_items && !stop && rc == 0; i++) {
      const struct teex_ds_pair *p = &res.items[i];
      struct rec r;
      if (p->key_len > DSKEY_MAX) {
        rc = teex_err_set(err, TEEX_EPROTO, "TEE-DS state: key too long");
        break;
      }
      memcpy(r.dskey, p->key, p->key_len);
      r.dskey[p->key_len] = '\0';
      r.dskey_len = p->key_len;
      /* The name is inside; open, then check it hashes to this key. */
      char name[TEEX_STATESTORE_NAME_MAX + 1];
      uint8_t *val = NULL;
      size_t vl = 0;
      rc = teex_statestore__record_open(d->keys, r.dskey, r.dskey_len, p->val,
                                        p->val_len, name, &val, &vl, err);
      if (rc != 0)
        break;
      struct rec check;
      if (teex_statestore__check_name(name, NULL) != 0)
        rc = teex_err_set(err, TEEX_EAUTH, "TEE-DS state: record malformed");
      if (rc == 0) {
        ds_key(d, name, &check);
        if (check.dskey_len != r.dskey_len ||
            memcmp(check.dskey, r.dskey, r.dskey_len) != 0)
          rc = teex_err_set(err, TEEX_EAUTH,
                            "TEE-DS state: record holds another name");
        else
          stop = cb(name, val, vl, arg) != 0;
      }
      teex_wipe(val, vl);
      free(val);
    }
    more = res.more;
    if (res.n_items > 0) {
      const struct teex_ds_pair *last = &res.items[res.n_items - 1];
      if (last->key_len > DSKEY_MAX) {
        rc = rc ? rc : teex_err_set(err, TEEX_EPROTO, "TEE-DS state: key");
      } else {
        memcpy(after, last->key, last->key_len);
        after_len = last->key_len;
      }
    } else {
      more = 0;
    }
    teex_ds_result_free(&res);
  }
  return rc;
}
