/* The statestore front (include/teex/statestore.h) and its local backend:
 * names map one to one to keys of the sealed local store, a transaction is
 * one LMDB write transaction (serialised, so it never conflicts). */
#include "statestore_internal.h"

#include "teex/crypto.h"
#include "teex/log.h"
#include "teex/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int teex_statestore__check_category(const char *category, size_t len) {
  if (len == 0 || len > TEEX_STATESTORE_CATEGORY_MAX)
    return TEEX_EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = category[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return TEEX_EINVAL;
  }
  return 0;
}

int teex_statestore__check_name(const char *name, struct teex_err *err) {
  size_t n = name != NULL ? strnlen(name, TEEX_STATESTORE_NAME_MAX + 1) : 0;
  const char *slash = n > 0 ? memchr(name, '/', n) : NULL;
  if (n == 0 || n > TEEX_STATESTORE_NAME_MAX || slash == NULL ||
      slash + 1 == name + n ||
      teex_statestore__check_category(name, (size_t)(slash - name)) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "state record name must be CATEGORY/NAME (category "
                        "of [a-z0-9_-], at most %d bytes in all)",
                        TEEX_STATESTORE_NAME_MAX);
  return 0;
}

int teex_statestore_open_local(struct teex_store *store,
                               struct teex_statestore **out,
                               struct teex_err *err) {
  struct teex_statestore *s = calloc(1, sizeof *s);
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  s->kind = STATESTORE_LOCAL;
  s->store = store;
  *out = s;
  return 0;
}

int teex_statestore_open_ds(const struct teex_statestore_ds_config *cfg,
                            struct teex_statestore **out,
                            struct teex_err *err) {
  struct teex_statestore *s = calloc(1, sizeof *s);
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  s->kind = STATESTORE_DS;
  int rc = teex_statestore__ds_open(cfg, &s->ds, err);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void teex_statestore_close(struct teex_statestore *s) {
  if (s == NULL)
    return;
  teex_statestore__ds_close(s->ds);
  free(s);
}

const char *teex_statestore_backend(const struct teex_statestore *s) {
  return s->kind == STATESTORE_DS ? "tee-ds" : "local";
}

int teex_statestore_txn_get(struct teex_statestore_txn *txn, const char *name,
                            struct teex_buf *out, struct teex_err *err) {
  int rc = teex_statestore__check_name(name, err);
  if (rc != 0)
    return rc;
  if (txn->ds != NULL)
    return teex_statestore__ds_txn_get(txn->ds, name, out, err);
  return teex_store_txn_get(txn->local, name, strlen(name), out, err);
}

int teex_statestore_txn_put(struct teex_statestore_txn *txn, const char *name,
                            const void *val, size_t len, struct teex_err *err) {
  int rc = teex_statestore__check_name(name, err);
  if (rc != 0)
    return rc;
  if (len > TEEX_STATESTORE_VALUE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "state record of %zu bytes", len);
  if (txn->ds != NULL)
    return teex_statestore__ds_txn_put(txn->ds, name, val, len, 0, err);
  return teex_store_txn_put(txn->local, name, strlen(name), val, len, err);
}

int teex_statestore_txn_del(struct teex_statestore_txn *txn, const char *name,
                            struct teex_err *err) {
  int rc = teex_statestore__check_name(name, err);
  if (rc != 0)
    return rc;
  if (txn->ds != NULL)
    return teex_statestore__ds_txn_put(txn->ds, name, NULL, 0, 1, err);
  rc = teex_store_txn_del(txn->local, name, strlen(name), err);
  return rc == TEEX_ENOTFOUND ? 0 : rc;
}

static int run_local(struct teex_statestore *s, teex_statestore_txn_fn fn,
                     void *arg, struct teex_err *err) {
  struct teex_statestore_txn txn = {.s = s};
  int rc = teex_store_txn_begin(s->store, 0, &txn.local, err);
  if (rc != 0)
    return rc;
  rc = fn(&txn, arg, err);
  if (rc != 0) {
    teex_store_txn_abort(txn.local);
    return rc;
  }
  return teex_store_txn_commit(txn.local, err);
}

static int run_ds(struct teex_statestore *s, teex_statestore_txn_fn fn,
                  void *arg, struct teex_err *err) {
  for (int attempt = 0; attempt <= TEEX_STATESTORE_RETRIES; attempt++) {
    struct teex_statestore_txn txn = {.s = s};
    int rc = teex_statestore__ds_txn_new(s->ds, &txn.ds);
    if (rc != 0)
      return teex_err_set(err, rc, NULL);
    rc = fn(&txn, arg, err);
    int conflict = 0;
    if (rc == 0) {
      rc = teex_statestore__ds_txn_commit(txn.ds, err);
      conflict = rc == TEEX_ESTATE; /* only the commit's: fn's are errors */
    }
    teex_statestore__ds_txn_free(txn.ds);
    if (!conflict)
      return rc;
    /* Something read changed (or the outcome is unknown): run again on
     * fresh reads, after a random pause that grows with the attempts, so
     * two writers of one hot record do not keep colliding. */
    TEEX_DEBUG("statestore", "transaction conflict, retrying", "attempt=%d",
               attempt + 1);
    if (attempt > 0) {
      uint32_t r;
      teex_random(&r, sizeof r);
      long max_us = 500L << (attempt < 6 ? attempt : 6);
      struct timespec ts = {0, (long)(r % (uint32_t)max_us) * 1000L};
      nanosleep(&ts, NULL);
    }
  }
  return teex_err_set(err, TEEX_EBUSY,
                      "state transaction still conflicting after %d attempts",
                      TEEX_STATESTORE_RETRIES + 1);
}

int teex_statestore_run(struct teex_statestore *s, teex_statestore_txn_fn fn,
                        void *arg, struct teex_err *err) {
  return s->kind == STATESTORE_DS ? run_ds(s, fn, arg, err)
                                  : run_local(s, fn, arg, err);
}

struct one_get {
  const char *name;
  struct teex_buf *out;
};

static int get_fn(struct teex_statestore_txn *txn, void *arg,
                  struct teex_err *err) {
  struct one_get *g = arg;
  return teex_statestore_txn_get(txn, g->name, g->out, err);
}

int teex_statestore_get(struct teex_statestore *s, const char *name,
                        struct teex_buf *out, struct teex_err *err) {
  int rc = teex_statestore__check_name(name, err);
  if (rc != 0)
    return rc;
  if (s->kind == STATESTORE_LOCAL)
    return teex_store_get(s->store, name, strlen(name), out, err);
  struct one_get g = {name, out};
  return run_ds(s, get_fn, &g, err); /* a read-only commit sends nothing */
}

struct one_put {
  const char *name;
  const void *val;
  size_t len;
};

static int put_fn(struct teex_statestore_txn *txn, void *arg,
                  struct teex_err *err) {
  struct one_put *p = arg;
  return teex_statestore_txn_put(txn, p->name, p->val, p->len, err);
}

int teex_statestore_put(struct teex_statestore *s, const char *name,
                        const void *val, size_t len, struct teex_err *err) {
  struct one_put p = {name, val, len};
  return teex_statestore_run(s, put_fn, &p, err);
}

int teex_statestore_scan(struct teex_statestore *s, const char *category,
                         int (*cb)(const char *name, const uint8_t *val,
                                   size_t len, void *arg),
                         void *arg, struct teex_err *err) {
  size_t cl = category != NULL ? strlen(category) : 0;
  if (teex_statestore__check_category(category, cl) != 0)
    return teex_err_set(err, TEEX_EINVAL, "bad state category");
  if (s->kind == STATESTORE_DS)
    return teex_statestore__ds_scan(s->ds, category, cb, arg, err);
  char prefix[TEEX_STATESTORE_CATEGORY_MAX + 2];
  memcpy(prefix, category, cl);
  prefix[cl] = '/';
  struct teex_store_txn *txn;
  struct teex_store_iter *it;
  int rc = teex_store_txn_begin(s->store, TEEX_STORE_TXN_RDONLY, &txn, err);
  if (rc != 0)
    return rc;
  rc = teex_store_iter_begin(txn, prefix, cl + 1, &it, err);
  if (rc == 0) {
    const uint8_t *k, *v;
    size_t kl, vl;
    char name[TEEX_STATESTORE_NAME_MAX + 1];
    while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, err)) == 1) {
      if (kl > TEEX_STATESTORE_NAME_MAX)
        continue; /* not a statestore name */
      memcpy(name, k, kl);
      name[kl] = '\0';
      if (cb(name, v, vl, arg) != 0)
        break;
    }
    teex_store_iter_free(it);
  }
  teex_store_txn_abort(txn);
  return rc < 0 ? rc : 0;
}

/* ---- one-time migration (local -> TEE-DS) ---- */

struct migrate_rec {
  char name[TEEX_STATESTORE_NAME_MAX + 1];
  uint8_t *val;
  size_t len;
};

struct migrate {
  struct migrate_rec *recs;
  size_t n, cap;
  int oom;
  int (*keep)(const char *name, void *arg);
  void *keep_arg;
  const char *owner;
};

static int migrate_collect(const char *name, const uint8_t *val, size_t len,
                           void *arg) {
  struct migrate *m = arg;
  if (m->keep != NULL && m->keep(name, m->keep_arg))
    return 0;
  if (m->n == m->cap) {
    size_t nc = m->cap ? 2 * m->cap : 64;
    struct migrate_rec *nr = realloc(m->recs, nc * sizeof *nr);
    if (nr == NULL)
      return m->oom = 1;
    m->recs = nr, m->cap = nc;
  }
  struct migrate_rec *r = &m->recs[m->n];
  if ((r->val = malloc(len ? len : 1)) == NULL)
    return m->oom = 1;
  snprintf(r->name, sizeof r->name, "%s", name);
  if (len > 0)
    memcpy(r->val, val, len);
  r->len = len;
  m->n++;
  return 0;
}

struct migrate_one_arg {
  const struct migrate_rec *r;
  const char *owner;
};

/* Copies one record unless `to` holds it already (identical). */
static int migrate_one(struct teex_statestore_txn *txn, void *arg,
                       struct teex_err *err) {
  const struct migrate_one_arg *a = arg;
  const struct migrate_rec *r = a->r;
  struct teex_buf cur;
  teex_buf_init(&cur, TEEX_STATESTORE_VALUE_MAX, TEEX_BUF_SECRET);
  int rc = teex_statestore_txn_get(txn, r->name, &cur, err);
  if (rc == TEEX_ENOTFOUND)
    rc = teex_statestore_txn_put(txn, r->name, r->val, r->len, err);
  else if (rc == 0 &&
           (cur.len != r->len || !teex_ct_equal(cur.data, r->val, r->len)))
    rc = teex_err_set(err, TEEX_EEXIST,
                      "local record %.*s.. differs from the one in TEE-DS "
                      "(two %ss' state in one namespace?): nothing migrated",
                      (int)(strchr(r->name, '/') - r->name + 1), r->name,
                      a->owner);
  teex_buf_free(&cur);
  return rc;
}

static int migrate_delete(struct teex_statestore_txn *txn, void *arg,
                          struct teex_err *err) {
  const struct migrate *m = arg;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < m->n; i++)
    rc = teex_statestore_txn_del(txn, m->recs[i].name, err);
  return rc;
}

int teex_statestore_migrate(struct teex_statestore *from,
                            struct teex_statestore *to,
                            const char *const *categories, size_t n,
                            int (*keep)(const char *name, void *arg),
                            void *keep_arg, const char *owner, size_t *moved,
                            struct teex_err *err) {
  if (moved != NULL)
    *moved = 0;
  if (from->kind != STATESTORE_LOCAL)
    return teex_err_set(err, TEEX_EINVAL,
                        "migration source must be the local store");
  struct migrate m = {.keep = keep, .keep_arg = keep_arg, .owner = owner};
  int rc = 0;
  for (size_t c = 0; c < n && rc == 0 && !m.oom; c++)
    rc = teex_statestore_scan(from, categories[c], migrate_collect, &m, err);
  if (rc == 0 && m.oom)
    rc = teex_err_set(err, TEEX_ENOMEM, "migrate %s state", owner);
  for (size_t i = 0; rc == 0 && i < m.n; i++) {
    struct migrate_one_arg a = {&m.recs[i], owner};
    rc = teex_statestore_run(to, migrate_one, &a, err);
  }
  /* All copied: now the local copies go, in one transaction (the local
   * backend's run is one LMDB write transaction, whatever its size). A
   * crash before this commit leaves both; the next start copies again
   * (the records are identical) and deletes. */
  if (rc == 0 && m.n > 0)
    rc = teex_statestore_run(from, migrate_delete, &m, err);
  if (rc == 0 && moved != NULL)
    *moved = m.n;
  for (size_t i = 0; i < m.n; i++) {
    teex_wipe(m.recs[i].val, m.recs[i].len);
    free(m.recs[i].val);
  }
  free(m.recs);
  return rc;
}
