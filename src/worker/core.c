/* The worker's I/O-free core (include/teex/worker.h): the assignment check,
 * the worker.Run request decoder, and the task id memory that refuses
 * replays. */
#include "teex/worker.h"

#include "teex/crypto.h"
#include "teex/executor.h"
#include "teex/mem.h"
#include "teex/proto/worker.pb-c.h"

#include <stdlib.h>
#include <string.h>

int teex_worker_check_assignment(const struct teex_worker_policy *p,
                                 const struct teex_assignment *a,
                                 const uint8_t sig[65], uint64_t now,
                                 struct teex_err *err) {
  uint8_t digest[32], signer[20];
  char hex[43];
  teex_stmt_assignment_digest(a, digest);
  if (teex_stmt_recover(digest, sig, signer) != 0)
    return teex_err_set(err, TEEX_EBADSIG, "assignment signature malformed");
  if (!teex_ct_equal(signer, a->dispatcher, 20)) {
    teex_eth_address_hex(a->dispatcher, hex);
    return teex_err_set(err, TEEX_EBADSIG,
                        "assignment not signed by its dispatcher %s", hex);
  }
  int known = 0;
  for (size_t i = 0; i < p->n_dispatchers; i++)
    known |= memcmp(p->dispatchers[i], signer, 20) == 0;
  if (!known) {
    teex_eth_address_hex(signer, hex);
    return teex_err_set(err, TEEX_EBADSIG,
                        "assignment signed by %s, not a dispatcher of this "
                        "worker",
                        hex);
  }
  if (memcmp(a->worker, p->self, 20) != 0) {
    teex_eth_address_hex(a->worker, hex);
    return teex_err_set(err, TEEX_EPERM, "assignment is for worker %s", hex);
  }
  if (a->chain_id != p->chain_id)
    return teex_err_set(
        err, TEEX_EINVAL, "assignment for chain %llu, worker on chain %llu",
        (unsigned long long)a->chain_id, (unsigned long long)p->chain_id);
  if (a->expires_at <= now)
    return teex_err_set(err, TEEX_EEXPIRED, "assignment expired %llu s ago",
                        (unsigned long long)(now - a->expires_at));
  if (a->expires_at - now > TEEX_WORKER_MAX_ASSIGNMENT_TTL)
    return teex_err_set(err, TEEX_EINVAL,
                        "assignment valid for %llu s, more than the %u s a "
                        "worker accepts",
                        (unsigned long long)(a->expires_at - now),
                        TEEX_WORKER_MAX_ASSIGNMENT_TTL);
  return 0;
}

static int fixed(const ProtobufCBinaryData *b, size_t want, const char *name,
                 uint8_t *dst, struct teex_err *err) {
  if (b->len != want)
    return teex_err_set(err, TEEX_EINVAL, "%s must be %zu bytes, not %zu", name,
                        want, b->len);
  memcpy(dst, b->data, want);
  return 0;
}

int teex_worker_run_req_decode(const uint8_t *p, size_t n,
                               struct teex_worker_run_req *out,
                               struct teex_err *err) {
  memset(out, 0, sizeof *out);
  Teex__Worker__RunRequest *m = teex__worker__run_request__unpack(NULL, n, p);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "malformed worker.Run request");
  struct teex_assignment *a = &out->assignment;
  uint8_t price[32];
  int rc;
  if ((rc = fixed(&m->dispatcher, 20, "dispatcher", a->dispatcher, err)) ||
      (rc = fixed(&m->worker, 20, "worker", a->worker, err)) ||
      (rc = fixed(&m->user, 20, "user", a->user, err)) ||
      (rc = fixed(&m->task_id, 32, "task_id", a->task_id, err)) ||
      (rc = fixed(&m->service_id, 32, "service_id", a->service_id, err)) ||
      (rc = fixed(&m->image_hash, 32, "image_hash", a->image_hash, err)) ||
      (rc = fixed(&m->price, 32, "price", price, err)) ||
      (rc = fixed(&m->dispatcher_sig, 65, "dispatcher_sig", out->dispatcher_sig,
                  err)) ||
      (rc = fixed(&m->input_salt, 32, "input_salt", out->input_salt, err)))
    goto fail;
  if (teex_amount_from_word(price, &a->price) != 0) {
    rc = teex_err_set(err, TEEX_EINVAL, "price above 2^128");
    goto fail;
  }
  if (m->input.len > TEEX_EXEC_INPUT_MAX) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "input of %zu bytes, at most %u",
                      m->input.len, TEEX_EXEC_INPUT_MAX);
    goto fail;
  }
  /* Datasets: the ids must be exactly what the signed hash covers, so the
   * SM (which recomputes it) and the receipt agree with the dispatcher. */
  if (m->datasets_hash.len != 0 || m->dataset_ids.len != 0) {
    uint8_t h[32];
    size_t nd = m->dataset_ids.len / 32;
    if (m->datasets_hash.len != 32 || m->dataset_ids.len == 0 ||
        m->dataset_ids.len % 32 != 0 || nd > TEEX_EXEC_DATASETS_MAX) {
      rc = teex_err_set(err, TEEX_EINVAL,
                        "datasets: a 32-byte hash and 1..%d ids of 32 bytes",
                        TEEX_EXEC_DATASETS_MAX);
      goto fail;
    }
    teex_stmt_datasets_hash(m->dataset_ids.data, nd, h);
    if (memcmp(h, m->datasets_hash.data, 32) != 0) {
      rc = teex_err_set(err, TEEX_EINVAL,
                        "dataset ids do not hash to the datasets hash");
      goto fail;
    }
    memcpy(a->datasets_hash, h, 32);
    out->dataset_ids = m->dataset_ids.data;
    out->n_datasets = nd;
  }
  a->chain_id = m->chain_id;
  a->expires_at = m->expires_at;
  out->input = m->input.data;
  out->input_len = m->input.len;
  out->msg_ = m;
  return 0;
fail:
  teex__worker__run_request__free_unpacked(m, NULL);
  memset(out, 0, sizeof *out);
  return rc;
}

void teex_worker_run_req_free(struct teex_worker_run_req *r) {
  if (r == NULL || r->msg_ == NULL)
    return;
  Teex__Worker__RunRequest *m = r->msg_;
  teex_wipe(m->input.data, m->input.len); /* the user's private input */
  teex__worker__run_request__free_unpacked(m, NULL);
  r->msg_ = NULL;
  r->input = NULL;
  r->input_len = 0;
}

/* ---- task id memory: open addressing on the id's first bytes ---- */

struct task_ent {
  uint8_t id[32];
  uint64_t expires_at; /* 0: empty slot */
};

struct teex_task_set {
  struct task_ent *t;
  size_t cap, n;
};

int teex_task_set_new(struct teex_task_set **out) {
  struct teex_task_set *s = calloc(1, sizeof *s);
  if (s == NULL)
    return TEEX_ENOMEM;
  s->cap = 64;
  s->t = calloc(s->cap, sizeof *s->t);
  if (s->t == NULL) {
    free(s);
    return TEEX_ENOMEM;
  }
  *out = s;
  return 0;
}

void teex_task_set_free(struct teex_task_set *s) {
  if (s == NULL)
    return;
  free(s->t);
  free(s);
}

size_t teex_task_set_count(const struct teex_task_set *s) {
  return s->n;
}

static size_t slot_of(const uint8_t id[32], size_t cap) {
  uint64_t h;
  memcpy(&h, id, 8); /* task ids are random or hashes: spread enough */
  return (size_t)(h & (cap - 1));
}

static void insert(struct task_ent *t, size_t cap, const struct task_ent *e) {
  size_t i = slot_of(e->id, cap);
  while (t[i].expires_at != 0)
    i = (i + 1) & (cap - 1);
  t[i] = *e;
}

/* Rebuilds into cap slots, dropping entries expired at now. */
static int rebuild(struct teex_task_set *s, size_t cap, uint64_t now) {
  struct task_ent *t = calloc(cap, sizeof *t);
  if (t == NULL)
    return TEEX_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < s->cap; i++)
    if (s->t[i].expires_at > now) {
      insert(t, cap, &s->t[i]);
      n++;
    }
  free(s->t);
  s->t = t;
  s->cap = cap;
  s->n = n;
  return 0;
}

int teex_task_set_add(struct teex_task_set *s, const uint8_t id[32],
                      uint64_t expires_at, uint64_t now) {
  for (size_t i = slot_of(id, s->cap); s->t[i].expires_at != 0;
       i = (i + 1) & (s->cap - 1))
    if (memcmp(s->t[i].id, id, 32) == 0) {
      if (s->t[i].expires_at > now)
        return TEEX_EREPLAY;
      s->t[i].expires_at = expires_at; /* expired: reuse in place */
      return 0;
    }
  if ((s->n + 1) * 2 > s->cap) {
    /* Drop the expired first; grow only if still over half full. */
    int rc = rebuild(s, s->cap, now);
    if (rc == 0 && (s->n + 1) * 2 > s->cap)
      rc = rebuild(s, s->cap * 2, now);
    if (rc != 0)
      return rc;
  }
  struct task_ent e;
  memcpy(e.id, id, 32);
  e.expires_at = expires_at ? expires_at : 1;
  insert(s->t, s->cap, &e);
  s->n++;
  return 0;
}
