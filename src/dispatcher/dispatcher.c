/* The dispatcher daemon (include/teex/dispatcher.h, docs/network.md,
 * docs/internals/dispatcher.md): two RA-TLS RPC endpoints on one libuv loop
 * — mutual for workers, server-only for users — around the scheduler, the
 * ledger and a sealed store.
 *
 * Sealed store layout (same-build sealing key):
 *   "d/identity"       the enclave's secp256k1 secret key (32)
 *   "d/seq"            batches made so far (u64 BE)
 *   "t/<seq, 16 hex>"  a task not yet settled (record.c), in acceptance order
 *   "u/<user hex>"     cumulative settled on chain for the user (32, BE)
 *   "w/<addr hex>"     a registered worker: capacity (u32 BE) | endpoint
 *   "s/<task id hex>"  a settled task: batch id | root | cid length (1) | cid
 *                      | proof count (1) | proof | receipt (record.c)
 *   "f/<seq, 16 hex>"  a batch sent to the chain and not yet recorded:
 *                      batch id | root | cid length (1) | cid | users (u32
 *                      BE) | per user: address | cumulative (32, BE) |
 *                      tasks (u32 BE) | their task ids, in leaf order */
#include "teex/dispatcher.h"
#include "teex/sm_client.h"

#include "dispatcher/state.h"
#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/scheduler.h"
#include "teex/statestore.h"
#include "teex/store.h"
#include "teex/version.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define AMOUNT_MAX ((teex_amount) ~(teex_amount)0)

struct dsp_worker {
  int used;
  uint8_t addr[20];
  uint32_t handle;
  uint32_t capacity;
  uint32_t load; /* as reported */
  char endpoint[DSP_ENDPOINT_MAX + 1];
  uint64_t chain_ok_ms; /* when the chain last said active (0: not yet) */
};

struct dsp {
  const struct teex_dispatcher_config *cfg;
  uv_loop_t *loop;
  struct teex_store *store;   /* sealed; the bootstrap set (identity) */
  struct teex_statestore *ss; /* the rest: over store, or TEE-DS */
  struct teex_sched *sched;
  struct teex_ledger *ledger;
  uint8_t *sk; /* locked: the enclave's secp256k1 key */
  uint8_t pub[64];
  uint8_t addr[20];
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *worker_ctx, *user_ctx;
  struct teex_rpc_server *worker_srv, *user_srv;
  uv_signal_t sigterm, sigint;
  uv_timer_t tick;
  uint64_t started_ms;
  struct teex_tls_ctx *ds_ctx;            /* to TEE-DS, when state is there */
  struct teex_ratls_verifier ds_verifier; /* replicas: role ds */
  struct teex_tls_ctx **refresh_ctxs[3];  /* what the refresher renews */
  /* tasks: slots of allocated records, and an open-addressing index by task
   * id; gens counts each slot's reuse (scheduler references) */
  struct dsp_task **tasks;
  uint32_t *gens;
  uint32_t max_tasks, ntasks, free_hint;
  uint32_t *index; /* pool index + 1; 0 empty */
  uint32_t index_mask;
  uint64_t next_seq;
  /* workers */
  struct dsp_worker *workers;
  uint32_t max_workers;
  /* settlement */
  uint64_t batch_seq;
  uint32_t pending; /* receipts earned, not yet settled */
  uint64_t last_settle_ms;
  uint64_t chain_fail_logged_ms;
  int stopping;
};

/* ---- helpers ---- */

static uint64_t unix_now(void) {
  return (uint64_t)time(NULL);
}

static uint64_t now_ms(struct dsp *d) {
  return teex_rpc_now(d->loop);
}

static void hex_addr(const uint8_t a[20], char out[43]) {
  teex_eth_address_hex(a, out);
}

static void respond_msg(struct teex_rpc_call *call, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  protobuf_c_message_pack(m, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, n);
  free(buf);
}

static int field(const ProtobufCBinaryData *b, size_t want, const char *name,
                 struct teex_err *err) {
  if (b->len != want)
    return teex_err_set(err, TEEX_EINVAL, "%s must be %zu bytes, not %zu", name,
                        want, b->len);
  return 0;
}

static int amount_field(const ProtobufCBinaryData *b, const char *name,
                        teex_amount *out, struct teex_err *err) {
  int rc = field(b, 32, name, err);
  if (rc != 0)
    return rc;
  if (teex_amount_from_word(b->data, out) != 0)
    return teex_err_set(err, TEEX_EINVAL, "%s too large", name);
  return 0;
}

/* ---- task index ---- */

static uint32_t id_hash(const uint8_t id[32]) {
  return (uint32_t)id[0] | (uint32_t)id[1] << 8 | (uint32_t)id[2] << 16 |
         (uint32_t)id[3] << 24;
}

static uint32_t *index_slot(struct dsp *d, const uint8_t id[32]) {
  uint32_t i = id_hash(id) & d->index_mask;
  while (d->index[i] != 0 &&
         memcmp(d->tasks[d->index[i] - 1]->auth.task_id, id, 32) != 0)
    i = (i + 1) & d->index_mask;
  return &d->index[i];
}

static struct dsp_task *task_find(struct dsp *d, const uint8_t id[32]) {
  uint32_t v = *index_slot(d, id);
  return v ? d->tasks[v - 1] : NULL;
}

/* Backward-shift deletion keeps linear probing without tombstones. */
static void index_delete(struct dsp *d, const uint8_t id[32]) {
  uint32_t *slot = index_slot(d, id);
  if (*slot == 0)
    return;
  uint32_t i = (uint32_t)(slot - d->index);
  d->index[i] = 0;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & d->index_mask;
    if (d->index[j] == 0)
      return;
    uint32_t home =
        id_hash(d->tasks[d->index[j] - 1]->auth.task_id) & d->index_mask;
    /* move j back to i unless home lies cyclically in (i, j] */
    int keep = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (!keep) {
      d->index[i] = d->index[j];
      d->index[j] = 0;
      i = j;
    }
  }
}

static struct dsp_task *task_new(struct dsp *d, const uint8_t id[32]) {
  if (d->ntasks == d->max_tasks)
    return NULL;
  for (uint32_t k = 0; k < d->max_tasks; k++) {
    uint32_t i = (d->free_hint + k) % d->max_tasks;
    if (d->tasks[i] == NULL) {
      struct dsp_task *t = calloc(1, sizeof *t);
      if (t == NULL)
        return NULL;
      d->tasks[i] = t;
      d->gens[i]++;
      t->gen = d->gens[i];
      t->idx = i;
      t->used = 1;
      memcpy(t->auth.task_id, id, 32);
      *index_slot(d, id) = i + 1;
      d->ntasks++;
      d->free_hint = i + 1;
      return t;
    }
  }
  return NULL;
}

static void task_forget(struct dsp *d, struct dsp_task *t) {
  index_delete(d, t->auth.task_id);
  d->tasks[t->idx] = NULL;
  d->ntasks--;
  free(t);
}

static uint32_t task_idx(struct dsp *d, const struct dsp_task *t) {
  (void)d;
  return t->idx;
}

/* ---- workers ---- */

static struct dsp_worker *worker_by_addr(struct dsp *d, const uint8_t a[20]) {
  for (uint32_t i = 0; i < d->max_workers; i++)
    if (d->workers[i].used && memcmp(d->workers[i].addr, a, 20) == 0)
      return &d->workers[i];
  return NULL;
}

static struct dsp_worker *worker_by_handle(struct dsp *d, uint32_t h) {
  for (uint32_t i = 0; i < d->max_workers; i++)
    if (d->workers[i].used && d->workers[i].handle == h)
      return &d->workers[i];
  return NULL;
}

static struct dsp_worker *worker_slot(struct dsp *d) {
  for (uint32_t i = 0; i < d->max_workers; i++)
    if (!d->workers[i].used)
      return &d->workers[i];
  return NULL;
}

/* ---- persistence ---- */

/* One write of a chunk: a put of val (len bytes) or a delete. */
struct ss_op {
  char name[2 + 64 + 1];
  const uint8_t *val;
  size_t len;
  int del;
};

struct ss_chunk {
  const struct ss_op *ops;
  size_t n;
};

static int chunk_txn(struct teex_statestore_txn *txn, void *arg,
                     struct teex_err *err) {
  const struct ss_chunk *c = arg;
  int rc = 0;
  for (size_t i = 0; i < c->n && rc == 0; i++)
    rc = c->ops[i].del
             ? teex_statestore_txn_del(txn, c->ops[i].name, err)
             : teex_statestore_txn_put(txn, c->ops[i].name, c->ops[i].val,
                                       c->ops[i].len, err);
  return rc;
}

/* Applies ops in order: on the local store in one transaction; on TEE-DS
 * in transactions of at most TEEX_STATESTORE_TXN_MAX writes, one after
 * another (a crash may leave a prefix applied: callers order ops so that
 * any prefix is recoverable, see record_batch). */
static int ss_apply_by(struct dsp *d, const struct ss_op *ops, size_t n,
                       size_t per, int fault_exit, struct teex_err *err) {
  if (per == 0)
    per = strcmp(teex_statestore_backend(d->ss), "local") == 0
              ? n
              : TEEX_STATESTORE_TXN_MAX;
  if (per == 0)
    per = 1;
  for (size_t o = 0; o < n; o += per) {
    struct ss_chunk c = {ops + o, n - o < per ? n - o : per};
    int rc = teex_statestore_run(d->ss, chunk_txn, &c, err);
    if (rc != 0)
      return rc;
    if (fault_exit && o + per < n)
      _exit(71);
  }
  return 0;
}

static int ss_apply(struct dsp *d, const struct ss_op *ops, size_t n,
                    struct teex_err *err) {
  return ss_apply_by(d, ops, n, 0, 0, err);
}

static int ss_del(struct dsp *d, const char *name, struct teex_err *err) {
  struct ss_op op;
  memset(&op, 0, sizeof op);
  snprintf(op.name, sizeof op.name, "%s", name);
  op.del = 1;
  return ss_apply(d, &op, 1, err);
}

/* Forgets worker w: out of the scheduler, its tasks' slots released,
 * its record deleted (its running tasks fail at their deadline). */
static void drop_worker(struct dsp *d, struct dsp_worker *w) {
  struct teex_err err;
  teex_sched_worker_remove(d->sched, w->handle);
  for (uint32_t k = 0; k < d->max_tasks; k++)
    if (d->tasks[k] != NULL && d->tasks[k]->holds_slot &&
        d->tasks[k]->handle == w->handle)
      d->tasks[k]->holds_slot = 0;
  char key[2 + 40 + 1];
  memcpy(key, "w/", 2);
  teex_hex_encode(w->addr, 20, key + 2);
  teex_err_clear(&err);
  ss_del(d, key, &err);
  memset(w, 0, sizeof *w);
}

/* Whether the EnclaveRegistry still holds addr as an active worker, read
 * at most every worker_recheck_s (w, when known, caches the last yes).
 * 0 when it does (or there is no chain to ask), TEEX_EPERM when revoked or
 * not registered, the chain's error when it cannot be read. */
static int worker_on_chain(struct dsp *d, const uint8_t addr[20],
                           struct dsp_worker *w, struct teex_err *err) {
  const struct teex_dispatcher_chain *ch = &d->cfg->chain;
  if (ch->ops->worker_active == NULL)
    return 0;
  uint64_t every = (uint64_t)(d->cfg->worker_recheck_s
                                  ? d->cfg->worker_recheck_s
                                  : TEEX_DISPATCHER_WORKER_RECHECK_DEFAULT_S) *
                   1000;
  uint64_t now = now_ms(d);
  if (w != NULL && w->chain_ok_ms != 0 && now - w->chain_ok_ms < every)
    return 0;
  int active = 0;
  int rc = ch->ops->worker_active(ch->arg, addr, &active, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "cannot read the enclave registry");
  if (!active)
    return teex_err_set(err, TEEX_EPERM,
                        "worker is not registered on chain (or revoked)");
  if (w != NULL)
    w->chain_ok_ms = now;
  return 0;
}

static void task_key(const struct dsp_task *t, char out[19]) {
  snprintf(out, 19, "t/%016llx", (unsigned long long)t->seq);
}

static int task_save(struct dsp *d, const struct dsp_task *t,
                     struct teex_err *err) {
  uint8_t rec[DSP_TASK_REC_MAX];
  char key[19];
  task_key(t, key);
  size_t n = dsp_task_encode(t, rec);
  return teex_statestore_put(d->ss, key, rec, n, err);
}

static int put_u64(struct dsp *d, const char *key, uint64_t v,
                   struct teex_err *err) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (56 - 8 * i));
  return teex_statestore_put(d->ss, key, b, 8, err);
}

/* ---- identity ---- */

static int load_identity(struct dsp *d, struct teex_err *err) {
  struct teex_buf val;
  teex_buf_init(&val, 32, TEEX_BUF_SECRET);
  int rc = teex_store_get(d->store, "d/identity", 10, &val, err);
  if (rc == TEEX_ENOTFOUND) {
    rc = teex_secp256k1_keypair(d->sk, d->pub);
    if (rc == 0)
      rc = teex_store_put(d->store, "d/identity", 10, d->sk, 32, err);
    if (rc == 0)
      TEEX_INFO("dispatcher", "created dispatcher key", NULL);
  } else if (rc == 0) {
    if (val.len != 32)
      rc = teex_err_set(err, TEEX_EFORMAT, "identity record has %zu bytes",
                        val.len);
    else
      memcpy(d->sk, val.data, 32);
    if (rc == 0 && (rc = teex_secp256k1_public(d->sk, d->pub)) != 0)
      teex_err_set(err, rc, "dispatcher key invalid");
  }
  teex_buf_free(&val);
  if (rc == 0)
    teex_eth_address(d->pub, d->addr);
  return rc;
}

/* ---- chain state ---- */

/* Reads the user's escrow and settled amount from the chain into the
 * ledger. A failure is logged (at most every 5 s) and returned. */
static int refresh_user(struct dsp *d, const uint8_t user[20],
                        struct teex_err *err) {
  teex_amount escrow = 0, settled = 0;
  const struct teex_dispatcher_chain *c = &d->cfg->chain;
  int rc = c->ops->escrow(c->arg, user, &escrow, &settled, err);
  if (rc != 0) {
    uint64_t now = now_ms(d);
    if (now - d->chain_fail_logged_ms > 5000 || d->chain_fail_logged_ms == 0) {
      TEEX_ERROR("dispatcher", "chain read failed; will retry", "reason=\"%s\"",
                 err->msg);
      d->chain_fail_logged_ms = now;
    }
    return teex_err_wrap(err, rc, "cannot read escrow from the chain");
  }
  rc = teex_ledger_set_chain(d->ledger, user, escrow, settled);
  if (rc != 0)
    return teex_err_set(err, rc, "dispatcher ledger full (users)");
  return 0;
}

/* ---- assignments ---- */

static void assignment_of(struct dsp *d, const struct dsp_task *t,
                          struct teex_assignment *a) {
  memset(a, 0, sizeof *a);
  a->chain_id = d->cfg->domain.chain_id;
  memcpy(a->dispatcher, d->addr, 20);
  memcpy(a->worker, t->worker, 20);
  memcpy(a->user, t->auth.user, 20);
  memcpy(a->task_id, t->auth.task_id, 32);
  memcpy(a->service_id, t->auth.service_id, 32);
  memcpy(a->image_hash, t->auth.image_hash, 32);
  a->price = t->auth.price;
  a->expires_at = t->expires_at;
  if (t->nds > 0) /* else all zero: hashes as before datasets existed */
    memcpy(a->datasets_hash, t->auth.datasets_hash, 32);
}

static void respond_assignment(struct dsp *d, struct teex_rpc_call *call,
                               const struct dsp_task *t, int retry) {
  struct teex_assignment a;
  assignment_of(d, t, &a);
  uint8_t price[32];
  teex_amount_word(a.price, price);
  const struct dsp_worker *w = worker_by_addr(d, t->worker);
  Teex__Dispatcher__Assignment m = TEEX__DISPATCHER__ASSIGNMENT__INIT;
  m.chain_id = a.chain_id;
  m.dispatcher = (ProtobufCBinaryData){20, a.dispatcher};
  m.worker = (ProtobufCBinaryData){20, a.worker};
  m.user = (ProtobufCBinaryData){20, a.user};
  m.task_id = (ProtobufCBinaryData){32, a.task_id};
  m.service_id = (ProtobufCBinaryData){32, a.service_id};
  m.image_hash = (ProtobufCBinaryData){32, a.image_hash};
  m.price = (ProtobufCBinaryData){32, price};
  m.expires_at = a.expires_at;
  m.signature = (ProtobufCBinaryData){65, (uint8_t *)t->asig};
  m.endpoint = w ? (char *)w->endpoint : "";
  if (t->nds > 0)
    m.datasets_hash = (ProtobufCBinaryData){32, a.datasets_hash};
  Teex__Dispatcher__SubmitResponse r = TEEX__DISPATCHER__SUBMIT_RESPONSE__INIT;
  r.assignment = &m;
  r.retry = retry;
  respond_msg(call, &r.base);
}

static int in_list(const uint8_t (*list)[20], unsigned n, const uint8_t a[20]) {
  for (unsigned i = 0; i < n; i++)
    if (memcmp(list[i], a, 20) == 0)
      return 1;
  return 0;
}

/* Gives the task's worker slot back (ok: the worker ran it). */
static void release_slot(struct dsp *d, struct dsp_task *t, int ok) {
  if (t->holds_slot) {
    teex_sched_release(d->sched, t->handle, t->auth.image_hash, ok);
    t->holds_slot = 0;
  }
}

/* The task now holds a slot on worker handle h: sign its assignment. */
static int assign(struct dsp *d, struct dsp_task *t, uint32_t h,
                  struct teex_err *err) {
  struct dsp_worker *w = worker_by_handle(d, h);
  if (w == NULL) {
    teex_sched_release(d->sched, h, t->auth.image_hash, 0);
    return teex_err_set(err, TEEX_EINTERNAL, "scheduler chose unknown worker");
  }
  t->state = DSP_ASSIGNED;
  t->holds_slot = 1;
  t->handle = h;
  memcpy(t->worker, w->addr, 20);
  if (!in_list((const uint8_t(*)[20])t->assigned, t->nassigned, w->addr) &&
      t->nassigned < DSP_MAX_ASSIGNED)
    memcpy(t->assigned[t->nassigned++], w->addr, 20);
  t->expires_at = unix_now() + d->cfg->assignment_ttl_s;
  t->fail_at = t->expires_at + d->cfg->receipt_grace_s;
  struct teex_assignment a;
  uint8_t digest[32];
  assignment_of(d, t, &a);
  teex_stmt_assignment_digest(&a, digest);
  int rc = teex_stmt_sign(d->sk, digest, t->asig);
  if (rc != 0)
    return teex_err_set(err, rc, "signing the assignment failed");
  rc = task_save(d, t, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "persist task");
  char wh[43];
  hex_addr(w->addr, wh);
  TEEX_INFO("dispatcher", "task assigned", "worker=%s", wh);
  return 0;
}

/* Fills the scheduler's view of t. */
static void sched_task_of(struct dsp *d, const struct dsp_task *t,
                          struct teex_sched_task *st) {
  memset(st, 0, sizeof *st);
  st->task_ref = (uint64_t)t->gen << 32 | task_idx(d, t);
  memcpy(st->image, t->auth.image_hash, 32);
  memcpy(st->user, t->auth.user, 20);
  if (t->deadline != 0) {
    uint64_t now = unix_now();
    uint64_t left = t->deadline > now ? t->deadline - now : 0;
    st->deadline_ms = now_ms(d) + left * 1000 + 1;
  }
  for (unsigned i = 0; i < t->nfailed; i++) {
    struct dsp_worker *w = worker_by_addr(d, t->failed[i]);
    if (w != NULL && st->nexclude < TEEX_SCHED_EXCLUDE_MAX)
      st->exclude[st->nexclude++] = w->handle;
  }
}

static struct dsp_task *task_of_ref(struct dsp *d, uint64_t ref) {
  uint32_t idx = (uint32_t)ref, gen = (uint32_t)(ref >> 32);
  if (idx >= d->max_tasks)
    return NULL;
  struct dsp_task *t = d->tasks[idx];
  return (t != NULL && t->gen == gen) ? t : NULL;
}

/* Places waiting tasks on freed slots and answers their Submit calls. */
static void drain_queue(struct dsp *d) {
  struct teex_sched_task st;
  uint32_t h;
  struct teex_err err;
  int r;
  while ((r = teex_sched_next(d->sched, now_ms(d), &st, &h)) != 0) {
    struct dsp_task *t = task_of_ref(d, st.task_ref);
    if (r == 1) {
      if (t == NULL || t->state != DSP_QUEUED) {
        teex_sched_release(d->sched, h, st.image, 0);
        continue;
      }
      teex_err_clear(&err);
      if (assign(d, t, h, &err) != 0) {
        TEEX_ERROR("dispatcher", "assignment failed", "reason=\"%s\"", err.msg);
        if (t->waiting)
          teex_rpc_call_respond(t->waiting, err.code, err.msg, NULL, 0);
      } else if (t->waiting) {
        respond_assignment(d, t->waiting, t, 0);
      }
      t->waiting = NULL;
    } else if (t != NULL && t->waiting) {
      teex_rpc_call_respond(t->waiting, TEEX_ETIMEDOUT,
                            "no worker was free before the task's deadline; "
                            "submit the same authorisation again to retry",
                            NULL, 0);
      t->waiting = NULL;
    }
  }
}

/* Picks a worker for t now, or queues it (answering call later). Answers
 * call in every case. */
static void place(struct dsp *d, struct dsp_task *t, struct teex_rpc_call *call,
                  int retry) {
  struct teex_sched_task st;
  struct teex_err err;
  teex_err_clear(&err);
  sched_task_of(d, t, &st);
  uint32_t h;
  int rc = teex_sched_pick(d->sched, &st, now_ms(d), &h);
  if (rc == 0) {
    if (assign(d, t, h, &err) != 0) {
      teex_rpc_call_respond(call, err.code, err.msg, NULL, 0);
      return;
    }
    respond_assignment(d, call, t, retry);
    return;
  }
  t->state = DSP_QUEUED;
  task_save(d, t, &err);
  if (rc == TEEX_EBUSY && teex_sched_enqueue(d->sched, &st) == 0) {
    t->waiting = call; /* answered by drain_queue */
    return;
  }
  if (rc == TEEX_EBUSY)
    teex_rpc_call_respond(call, TEEX_EBUSY,
                          "every worker is busy and the queue is full; submit "
                          "the same authorisation again later (not charged "
                          "twice)",
                          NULL, 0);
  else
    teex_rpc_call_respond(call, TEEX_EAGAIN,
                          "no eligible worker is available now; submit the "
                          "same authorisation again later (not charged twice)",
                          NULL, 0);
}

/* ---- worker endpoint ---- */

/* The caller's attested worker address. */
static int peer_worker(struct teex_rpc_call *call, uint8_t addr[20],
                       struct teex_err *err) {
  struct teex_tls_conn *c = teex_rpc_call_conn(call);
  const struct teex_tee_identity *id = c ? teex_ratls_channel_peer(c) : NULL;
  if (id == NULL || !id->has_binding || !id->binding.has_secp256k1)
    return teex_err_set(err, TEEX_EATTEST,
                        "the peer's evidence binds no enclave address");
  if (strcmp(id->role, "worker") != 0)
    return teex_err_set(err, TEEX_EPOLICY, "peer role is %s, not worker",
                        id->role);
  memcpy(addr, id->binding.eth_address, 20);
  return 0;
}

static int warm_list(ProtobufCBinaryData *imgs, size_t n, uint8_t *out,
                     size_t *nout, struct teex_err *err) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (imgs[i].len != 32)
      return teex_err_set(err, TEEX_EINVAL, "warm image %zu is not 32 bytes",
                          i);
    if (n - i <= TEEX_SCHED_WARM_MAX)
      memcpy(out + 32 * k++, imgs[i].data, 32);
  }
  *nout = k;
  return 0;
}

static void on_register(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                        void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__RegisterRequest *req =
      teex__dispatcher__register_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  uint8_t who[20], warm[32 * TEEX_SCHED_WARM_MAX];
  size_t nwarm = 0;
  uint32_t h;
  int rc;
  if ((rc = field(&req->address, 20, "address", &err)) ||
      (rc = peer_worker(call, who, &err)))
    goto out;
  if (memcmp(who, req->address.data, 20) != 0) {
    rc = teex_err_set(&err, TEEX_EATTEST,
                      "address is not the one the worker's evidence binds");
    goto out;
  }
  if (req->capacity == 0 || req->capacity > 4096) {
    rc = teex_err_set(&err, TEEX_EINVAL, "capacity must be 1..4096");
    goto out;
  }
  size_t elen = strlen(req->endpoint);
  if (elen == 0 || elen > DSP_ENDPOINT_MAX ||
      strchr(req->endpoint, ':') == NULL) {
    rc = teex_err_set(&err, TEEX_EINVAL, "endpoint must be host:port");
    goto out;
  }
  if ((rc =
           warm_list(req->warm_images, req->n_warm_images, warm, &nwarm, &err)))
    goto out;
  if ((rc = worker_on_chain(d, who, NULL, &err)) != 0)
    goto out;
  struct dsp_worker *w = worker_by_addr(d, who);
  if (w == NULL && (w = worker_slot(d)) == NULL) {
    rc = teex_err_set(&err, TEEX_ETOOBIG, "too many workers registered");
    goto out;
  }
  rc = teex_sched_worker_add(d->sched, who, req->capacity, now_ms(d), &h);
  if (rc != 0) {
    teex_err_set(&err, rc, "scheduler refused the worker");
    goto out;
  }
  teex_sched_worker_heartbeat(d->sched, h, now_ms(d), warm, nwarm);
  w->used = 1;
  memcpy(w->addr, who, 20);
  w->handle = h;
  w->capacity = req->capacity;
  w->chain_ok_ms = now_ms(d);
  snprintf(w->endpoint, sizeof w->endpoint, "%s", req->endpoint);
  /* Remembered so that a restarted dispatcher still knows it until it is
   * silent past the timeout. */
  char key[2 + 40 + 1];
  uint8_t rec[4 + DSP_ENDPOINT_MAX];
  memcpy(key, "w/", 2);
  teex_hex_encode(who, 20, key + 2);
  rec[0] = (uint8_t)(req->capacity >> 24);
  rec[1] = (uint8_t)(req->capacity >> 16);
  rec[2] = (uint8_t)(req->capacity >> 8);
  rec[3] = (uint8_t)req->capacity;
  memcpy(rec + 4, req->endpoint, elen);
  if ((rc = teex_statestore_put(d->ss, key, rec, 4 + elen, &err)))
    goto out;
  Teex__Dispatcher__RegisterResponse r =
      TEEX__DISPATCHER__REGISTER_RESPONSE__INIT;
  r.dispatcher = (ProtobufCBinaryData){20, d->addr};
  r.heartbeat_interval_ms = d->cfg->heartbeat_timeout_ms / 3;
  r.chain_id = d->cfg->domain.chain_id;
  r.settlement =
      (ProtobufCBinaryData){20, (uint8_t *)d->cfg->domain.verifying_contract};
  respond_msg(call, &r.base);
  char wh[43];
  hex_addr(who, wh);
  TEEX_INFO("dispatcher", "worker registered", "worker=%s capacity=%u", wh,
            req->capacity);
out:
  if (rc != 0) {
    TEEX_WARN("dispatcher", "worker registration refused",
              "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  }
  teex__dispatcher__register_request__free_unpacked(req, NULL);
  if (rc == 0)
    drain_queue(d);
}

static void on_heartbeat(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                         void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__HeartbeatRequest *req =
      teex__dispatcher__heartbeat_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  uint8_t who[20], warm[32 * TEEX_SCHED_WARM_MAX];
  size_t nwarm = 0;
  int rc = peer_worker(call, who, &err);
  if (rc == 0)
    rc = warm_list(req->warm_images, req->n_warm_images, warm, &nwarm, &err);
  struct dsp_worker *w = rc == 0 ? worker_by_addr(d, who) : NULL;
  if (rc == 0 && w == NULL)
    rc = teex_err_set(&err, TEEX_ENOTFOUND,
                      "worker not registered (dropped or dispatcher "
                      "restarted): call dispatcher.Register");
  /* A worker revoked on chain since it registered gets no more tasks. A
   * chain that cannot be read keeps the worker (an outage is no verdict). */
  if (rc == 0) {
    struct teex_err cerr;
    teex_err_clear(&cerr);
    int crc = worker_on_chain(d, who, w, &cerr);
    if (crc == TEEX_EPERM) {
      char wh[43];
      hex_addr(who, wh);
      TEEX_WARN("dispatcher", "worker revoked on chain: dropped", "worker=%s",
                wh);
      drop_worker(d, w);
      w = NULL;
      rc = teex_err_set(&err, TEEX_EPERM, "%s", cerr.msg);
    } else if (crc != 0) {
      TEEX_WARN("dispatcher", "worker not rechecked on chain", "reason=\"%s\"",
                cerr.msg);
    }
  }
  if (rc == 0 && teex_sched_worker_heartbeat(d->sched, w->handle, now_ms(d),
                                             warm, nwarm) != 0)
    rc = teex_err_set(&err, TEEX_ENOTFOUND,
                      "worker not registered: call dispatcher.Register");
  if (rc == 0) {
    w->load = req->load;
    Teex__Dispatcher__HeartbeatResponse r =
        TEEX__DISPATCHER__HEARTBEAT_RESPONSE__INIT;
    int load = teex_sched_worker_load(d->sched, w->handle);
    r.assigned = load > 0 ? (uint32_t)load : 0;
    respond_msg(call, &r.base);
  } else {
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  }
  teex__dispatcher__heartbeat_request__free_unpacked(req, NULL);
}

/* shares: room for TEEX_EXEC_DATASETS_MAX; r->shares points at it. */
static int receipt_from_msg(const Teex__Dispatcher__Receipt *m,
                            struct teex_receipt *r, uint8_t sig[65],
                            struct teex_data_share *shares,
                            struct teex_err *err) {
  int rc;
  memset(r, 0, sizeof *r);
  if ((rc = field(&m->task_id, 32, "task_id", err)) ||
      (rc = field(&m->service_id, 32, "service_id", err)) ||
      (rc = field(&m->image_hash, 32, "image_hash", err)) ||
      (rc = field(&m->user, 20, "user", err)) ||
      (rc = field(&m->dispatcher, 20, "dispatcher", err)) ||
      (rc = field(&m->worker, 20, "worker", err)) ||
      (rc = field(&m->provider, 20, "provider", err)) ||
      (rc = field(&m->input_commitment, 32, "input_commitment", err)) ||
      (rc = field(&m->output_commitment, 32, "output_commitment", err)) ||
      (rc = field(&m->price, 32, "price", err)) ||
      (rc = field(&m->worker_amount, 32, "worker_amount", err)) ||
      (rc = field(&m->provider_amount, 32, "provider_amount", err)) ||
      (rc = field(&m->signature, 65, "signature", err)))
    return rc;
  if (m->n_data_shares > TEEX_EXEC_DATASETS_MAX)
    return teex_err_set(err, TEEX_EINVAL, "more than %d data shares",
                        TEEX_EXEC_DATASETS_MAX);
  for (size_t i = 0; i < m->n_data_shares; i++) {
    const Teex__Dispatcher__DataShare *x = m->data_shares[i];
    if ((rc = field(&x->dataset_id, 32, "data share dataset_id", err)) ||
        (rc = field(&x->payee, 20, "data share payee", err)) ||
        (rc = field(&x->amount, 32, "data share amount", err)))
      return rc;
    memcpy(shares[i].dataset_id, x->dataset_id.data, 32);
    memcpy(shares[i].payee, x->payee.data, 20);
    memcpy(shares[i].amount, x->amount.data, 32);
  }
  r->shares = shares;
  r->nshares = m->n_data_shares;
  memcpy(r->task_id, m->task_id.data, 32);
  memcpy(r->service_id, m->service_id.data, 32);
  memcpy(r->image_hash, m->image_hash.data, 32);
  memcpy(r->user, m->user.data, 20);
  memcpy(r->dispatcher, m->dispatcher.data, 20);
  memcpy(r->worker, m->worker.data, 20);
  memcpy(r->provider, m->provider.data, 20);
  memcpy(r->input_commitment, m->input_commitment.data, 32);
  memcpy(r->output_commitment, m->output_commitment.data, 32);
  memcpy(r->price, m->price.data, 32);
  memcpy(r->worker_amount, m->worker_amount.data, 32);
  memcpy(r->provider_amount, m->provider_amount.data, 32);
  memcpy(sig, m->signature.data, 65);
  return 0;
}

static int same_receipt(const struct teex_receipt *a,
                        const struct teex_receipt *b) {
  uint8_t la[32], lb[32];
  teex_settle_receipt_leaf(a, la);
  teex_settle_receipt_leaf(b, lb);
  return memcmp(la, lb, 32) == 0;
}

static void maybe_settle(struct dsp *d, int force);

/* Checks a receipt against its task; 0 when it may be recorded. */
static int check_receipt(struct dsp *d, const struct dsp_task *t,
                         const struct teex_receipt *r, const uint8_t sig[65],
                         const uint8_t peer[20], struct teex_err *err) {
  const struct teex_payment_auth *a = &t->auth;
  if (memcmp(peer, r->worker, 20) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "receipt names another worker than the caller");
  if (!in_list((const uint8_t(*)[20])t->assigned, t->nassigned, r->worker))
    return teex_err_set(err, TEEX_EPERM,
                        "task was not assigned to this worker");
  if (memcmp(r->service_id, a->service_id, 32) != 0 ||
      memcmp(r->image_hash, a->image_hash, 32) != 0 ||
      memcmp(r->user, a->user, 20) != 0 ||
      memcmp(r->dispatcher, d->addr, 20) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "receipt does not match the task's authorisation");
  teex_amount price, wa, pa;
  if (teex_amount_from_word(r->price, &price) != 0 ||
      teex_amount_from_word(r->worker_amount, &wa) != 0 ||
      teex_amount_from_word(r->provider_amount, &pa) != 0)
    return teex_err_set(err, TEEX_EINVAL, "receipt amount too large");
  if (!teex_settle_split_ok(r))
    return teex_err_set(err, TEEX_EINVAL,
                        "receipt split does not add up to its price");
  if (price != a->price || wa != t->svc.remuneration ||
      pa != t->svc.price - t->svc.remuneration ||
      memcmp(r->provider, t->svc.provider, 20) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "receipt split does not match the service listing");
  /* Each data provider gets exactly its listed price, in task order. */
  if (r->nshares != t->nds ||
      (t->nds > 0 && memcmp(r->shares, t->ds, t->nds * sizeof t->ds[0]) != 0))
    return teex_err_set(err, TEEX_EINVAL,
                        "receipt data shares do not match the task's "
                        "datasets and their listed prices");
  uint8_t digest[32], who[20];
  teex_stmt_receipt_digest(&d->cfg->domain, r, digest);
  if (teex_stmt_recover(digest, sig, who) != 0 || memcmp(who, r->worker, 20))
    return teex_err_set(err, TEEX_EBADSIG,
                        "receipt signature is not the worker's");
  return 0;
}

static int settled_with(struct dsp *d, const uint8_t id[32],
                        const struct teex_receipt *r);

static void on_receipt(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                       void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__Receipt *m = teex__dispatcher__receipt__unpack(NULL, n, p);
  if (m == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  struct teex_receipt r;
  struct teex_data_share shares[TEEX_EXEC_DATASETS_MAX];
  uint8_t sig[65], peer[20];
  int rc, dup = 0;
  if ((rc = receipt_from_msg(m, &r, sig, shares, &err)) ||
      (rc = peer_worker(call, peer, &err)))
    goto out;
  struct dsp_task *t = task_find(d, r.task_id);
  if (t == NULL && memcmp(peer, r.worker, 20) == 0 &&
      settled_with(d, r.task_id, &r)) {
    dup = 1; /* settled already: the report's answer was lost */
    goto out;
  }
  if (t == NULL) {
    rc = teex_err_set(&err, TEEX_ENOTFOUND, "unknown task (or settled)");
    goto out;
  }
  if (t->state == DSP_EARNED) {
    if (same_receipt(&t->rcpt, &r) && memcmp(peer, t->rcpt.worker, 20) == 0) {
      dup = 1; /* a retried report */
      goto out;
    }
    rc = teex_err_set(&err, TEEX_EREPLAY,
                      "task already earned by another receipt");
    goto out;
  }
  if (t->state == DSP_FAILED) {
    rc = teex_err_set(&err, TEEX_EEXPIRED,
                      "task failed (no receipt before its deadline)");
    goto out;
  }
  if ((rc = check_receipt(d, t, &r, sig, peer, &err)))
    goto out;
  /* Nothing from a worker revoked on chain is settled: its receipt is
   * refused (the task then fails at its deadline and costs the user
   * nothing). A chain that cannot be read is no verdict: the receipt of a
   * worker the registry said active at the last read is recorded (it
   * settles once the chain is back); of one never read, refused for now
   * (the worker reports again). */
  {
    struct dsp_worker *pw = worker_by_addr(d, peer);
    struct teex_err cerr;
    teex_err_clear(&cerr);
    int crc = worker_on_chain(d, peer, pw, &cerr);
    if (crc == TEEX_EPERM && pw != NULL)
      drop_worker(d, pw);
    if (crc != 0 && (crc == TEEX_EPERM || pw == NULL || pw->chain_ok_ms == 0)) {
      rc = teex_err_set(&err, crc, "receipt refused: %s", cerr.msg);
      goto out;
    }
    if (crc != 0)
      TEEX_WARN("dispatcher", "receipt recorded on the last registry read",
                "reason=\"%s\"", cerr.msg);
  }
  rc = teex_ledger_complete(d->ledger, r.task_id);
  if (rc != 0) {
    teex_err_set(&err, rc, "ledger refused the receipt");
    goto out;
  }
  t->rcpt = r;
  t->rcpt.shares = t->nds ? t->ds : NULL; /* equal to r's (checked) */
  t->rcpt.nshares = t->nds;
  memcpy(t->rsig, sig, 65);
  t->has_receipt = 1;
  t->state = DSP_EARNED;
  release_slot(d, t, 1);
  if (t->waiting) {
    teex_rpc_call_respond(t->waiting, TEEX_ESTATE, "task already ran", NULL, 0);
    t->waiting = NULL;
  }
  d->pending++;
  if ((rc = task_save(d, t, &err)) != 0) {
    TEEX_ERROR("dispatcher", "receipt not persisted", "reason=\"%s\"", err.msg);
    goto out;
  }
  char wh[43];
  hex_addr(peer, wh);
  TEEX_INFO("dispatcher", "receipt recorded", "worker=%s pending=%u", wh,
            d->pending);
out:
  if (rc != 0) {
    TEEX_WARN("dispatcher", "receipt refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  } else {
    Teex__Dispatcher__ReceiptResponse resp =
        TEEX__DISPATCHER__RECEIPT_RESPONSE__INIT;
    resp.recorded = !dup;
    respond_msg(call, &resp.base);
  }
  teex__dispatcher__receipt__free_unpacked(m, NULL);
  if (rc == 0 && !dup) {
    drain_queue(d);
    maybe_settle(d, 0);
  }
}

/* ---- user endpoint ---- */

static int auth_from_msg(const Teex__Dispatcher__Authorization *m,
                         struct teex_payment_auth *a, struct teex_err *err) {
  int rc;
  memset(a, 0, sizeof *a);
  if (m == NULL)
    return teex_err_set(err, TEEX_EINVAL, "authorisation missing");
  if ((rc = field(&m->user, 20, "user", err)) ||
      (rc = field(&m->dispatcher, 20, "dispatcher", err)) ||
      (rc = field(&m->task_id, 32, "task_id", err)) ||
      (rc = field(&m->service_id, 32, "service_id", err)) ||
      (rc = field(&m->image_hash, 32, "image_hash", err)) ||
      (rc = field(&m->datasets_hash, 32, "datasets_hash", err)) ||
      (rc = amount_field(&m->price, "price", &a->price, err)) ||
      (rc = amount_field(&m->cumulative, "cumulative", &a->cumulative, err)) ||
      (rc = field(&m->signature, 65, "signature", err)))
    return rc;
  memcpy(a->user, m->user.data, 20);
  memcpy(a->dispatcher, m->dispatcher.data, 20);
  memcpy(a->task_id, m->task_id.data, 32);
  memcpy(a->service_id, m->service_id.data, 32);
  memcpy(a->image_hash, m->image_hash.data, 32);
  memcpy(a->datasets_hash, m->datasets_hash.data, 32);
  memcpy(a->sig, m->signature.data, 65);
  return 0;
}

/* A private service runs only for its provider and the callers its
 * allow-list names (ServiceRegistry.canInvoke). Asked of the chain on every
 * Submit, like the listing itself: nothing is cached, so a change on chain
 * applies from the next Submit that reads the node after it was mined. The
 * caller is the authorisation's user, whose signature is already checked. */
static int check_access(struct dsp *d, const struct teex_payment_auth *a,
                        const struct teex_dispatcher_service *svc,
                        struct teex_err *err) {
  if (!svc->is_private || memcmp(a->user, svc->provider, 20) == 0)
    return 0;
  const struct teex_dispatcher_chain *c = &d->cfg->chain;
  int allowed = 0, rc = 0;
  if (c->ops->may_invoke != NULL &&
      (rc = c->ops->may_invoke(c->arg, a->service_id, a->user, &allowed,
                               err)) != 0)
    return teex_err_wrap(err, rc, "cannot read the service's allow-list");
  if (allowed)
    return 0;
  char who[43], id[65];
  hex_addr(a->user, who);
  teex_hex_encode(a->service_id, 32, id);
  return teex_err_set(err, TEEX_EPERM,
                      "service 0x%s is private and %s is not on its "
                      "allow-list (its provider can add it: teex service "
                      "access); nothing was reserved",
                      id, who);
}

/* Verifies what can be verified before the ledger: dispatcher, datasets,
 * the user's EIP-712 signature, the listing (current image, price, who may
 * invoke a private service). */
static int check_auth(struct dsp *d, const struct teex_payment_auth *a,
                      const ProtobufCBinaryData *ids,
                      struct teex_dispatcher_service *svc,
                      struct teex_data_share *ds, uint8_t *nds,
                      teex_amount *total, struct teex_err *err) {
  *nds = 0;
  if (memcmp(a->dispatcher, d->addr, 20) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "authorisation is for another dispatcher");
  if (ids->len % 32 != 0 || ids->len / 32 > TEEX_EXEC_DATASETS_MAX)
    return teex_err_set(err, TEEX_EINVAL,
                        "dataset_ids: at most %d ids of 32 bytes",
                        TEEX_EXEC_DATASETS_MAX);
  size_t n = ids->len / 32;
  uint8_t h[32];
  teex_stmt_datasets_hash(ids->data, n, h);
  if (memcmp(a->datasets_hash, h, 32) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "the authorisation's datasetsHash is not the hash of "
                        "the dataset ids sent");
  uint8_t digest[32], who[20];
  teex_stmt_payment_auth_digest(&d->cfg->domain, a, digest);
  if (teex_stmt_recover(digest, a->sig, who) != 0 ||
      memcmp(who, a->user, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG,
                        "authorisation signature is not the user's (EIP-712, "
                        "chain %llu)",
                        (unsigned long long)d->cfg->domain.chain_id);
  const struct teex_dispatcher_chain *c = &d->cfg->chain;
  int rc = c->ops->service(c->arg, a->service_id, a->image_hash, svc, err);
  if (rc == TEEX_ENOTFOUND)
    return teex_err_wrap(err, TEEX_ENOTFOUND,
                         "unknown service or image version");
  if (rc != 0)
    return teex_err_wrap(err, rc, "cannot read the service listing");
  if ((rc = check_access(d, a, svc, err)) != 0)
    return rc;
  /* Each dataset: listed, live, this exact image approved; its price is
   * added and becomes its provider's data share. */
  teex_amount sum = svc->price;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *id = ids->data + 32 * i;
    char hex[65];
    teex_hex_encode(id, 32, hex);
    for (size_t j = 0; j < i; j++)
      if (memcmp(ids->data + 32 * j, id, 32) == 0)
        return teex_err_set(err, TEEX_EINVAL, "dataset 0x%s named twice", hex);
    struct teex_dispatcher_dataset l;
    if (c->ops->dataset == NULL)
      return teex_err_set(err, TEEX_EUNSUPPORTED,
                          "this dispatcher's chain has no dataset registry");
    rc = c->ops->dataset(c->arg, id, a->service_id, a->image_hash, &l, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "dataset 0x%s", hex);
    if (sum + l.price < sum)
      return teex_err_set(err, TEEX_EINVAL, "price overflows");
    sum += l.price;
    memcpy(ds[i].dataset_id, id, 32);
    memcpy(ds[i].payee, l.provider, 20);
    teex_amount_word(l.price, ds[i].amount);
  }
  *nds = (uint8_t)n;
  *total = sum;
  if (a->price != sum) {
    char s1[40], s2[40];
    teex_amount_format(a->price, s1);
    teex_amount_format(sum, s2);
    return teex_err_set(err, TEEX_EINVAL,
                        "authorised price %s wei differs from the listed price "
                        "%s wei%s",
                        s1, s2,
                        n ? " (the service's plus each dataset's)" : "");
  }
  return 0;
}

static void on_submit(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__SubmitRequest *req =
      teex__dispatcher__submit_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  struct teex_payment_auth a;
  struct teex_dispatcher_service svc;
  struct teex_data_share ds[TEEX_EXEC_DATASETS_MAX];
  uint8_t nds = 0;
  teex_amount total = 0;
  int rc;
  if ((rc = auth_from_msg(req->auth, &a, &err)))
    goto out;
  if (req->failed_worker.len != 0 &&
      (rc = field(&req->failed_worker, 20, "failed_worker", &err)))
    goto out;
  if ((rc = check_auth(d, &a, &req->dataset_ids, &svc, ds, &nds, &total, &err)))
    goto out;
  struct dsp_task *t = task_find(d, a.task_id);
  if (t == NULL) {
    struct teex_sched_stats ss;
    teex_sched_stats(d->sched, &ss);
    if (ss.workers == 0) {
      rc = teex_err_set(&err, TEEX_EAGAIN,
                        "no worker is registered; nothing was reserved");
      goto out;
    }
    if ((rc = refresh_user(d, a.user, &err)))
      goto out;
  }
  rc = teex_ledger_accept(d->ledger, &a, total, &err);
  if (rc < 0)
    goto out;
  if (rc == TEEX_LEDGER_NEW) {
    if (t != NULL) { /* the ledger forgot it: settled long ago */
      rc = teex_err_set(&err, TEEX_EREPLAY, "task already settled");
      goto out;
    }
    t = task_new(d, a.task_id);
    if (t == NULL) {
      teex_ledger_fail(d->ledger, a.task_id);
      rc = teex_err_set(&err, TEEX_ETOOBIG, "dispatcher full (tasks)");
      goto out;
    }
    t->seq = d->next_seq++;
    t->auth = a;
    t->svc = svc;
    t->nds = nds;
    memcpy(t->ds, ds, nds * sizeof ds[0]);
    t->deadline = req->deadline;
    t->state = DSP_QUEUED;
    t->fail_at =
        unix_now() + d->cfg->assignment_ttl_s + d->cfg->receipt_grace_s;
    if ((rc = task_save(d, t, &err)) != 0) {
      teex_ledger_fail(d->ledger, a.task_id);
      task_forget(d, t);
      teex_err_wrap(&err, rc, "persist task");
      goto out;
    }
    teex__dispatcher__submit_request__free_unpacked(req, NULL);
    place(d, t, call, 0);
    return;
  }
  /* A retry: same task, same authorisation; never charged again. */
  if (t == NULL) {
    rc = teex_err_set(&err, TEEX_EINTERNAL, "ledger knows an unknown task");
    goto out;
  }
  if (req->failed_worker.len == 20) {
    const uint8_t *fw = req->failed_worker.data;
    if (!in_list((const uint8_t(*)[20])t->assigned, t->nassigned, fw)) {
      rc = teex_err_set(&err, TEEX_EINVAL,
                        "failed_worker was never assigned this task");
      goto out;
    }
    if (!in_list((const uint8_t(*)[20])t->failed, t->nfailed, fw)) {
      if (t->nfailed == TEEX_SCHED_EXCLUDE_MAX) {
        rc =
            teex_err_set(&err, TEEX_EPOLICY, "task failed on too many workers");
        goto out;
      }
      memcpy(t->failed[t->nfailed++], fw, 20);
      char wh[43];
      hex_addr(fw, wh);
      TEEX_INFO("dispatcher", "worker reported failed for a task", "worker=%s",
                wh);
    }
    if (t->state == DSP_ASSIGNED && memcmp(t->worker, fw, 20) == 0) {
      release_slot(d, t, 0);
      t->state = DSP_QUEUED;
    }
  }
  if (t->state == DSP_ASSIGNED) {
    teex__dispatcher__submit_request__free_unpacked(req, NULL);
    respond_assignment(d, call, t, 1);
    return;
  }
  if (t->waiting != NULL) {
    rc = teex_err_set(&err, TEEX_EBUSY,
                      "this task is already waiting for a worker");
    goto out;
  }
  if (req->deadline != 0)
    t->deadline = req->deadline;
  teex__dispatcher__submit_request__free_unpacked(req, NULL);
  place(d, t, call, 1);
  return;
out:
  TEEX_INFO("dispatcher", "task refused", "peer=%s reason=\"%s\"",
            teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
  teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  teex__dispatcher__submit_request__free_unpacked(req, NULL);
}

/* The shares go into sm/smp (room for TEEX_EXEC_DATASETS_MAX). */
static void fill_receipt_msg(Teex__Dispatcher__Receipt *m,
                             struct teex_receipt *r, uint8_t sig[65],
                             Teex__Dispatcher__DataShare *sm,
                             Teex__Dispatcher__DataShare **smp) {
  m->task_id = (ProtobufCBinaryData){32, r->task_id};
  m->service_id = (ProtobufCBinaryData){32, r->service_id};
  m->image_hash = (ProtobufCBinaryData){32, r->image_hash};
  m->user = (ProtobufCBinaryData){20, r->user};
  m->dispatcher = (ProtobufCBinaryData){20, r->dispatcher};
  m->worker = (ProtobufCBinaryData){20, r->worker};
  m->provider = (ProtobufCBinaryData){20, r->provider};
  m->input_commitment = (ProtobufCBinaryData){32, r->input_commitment};
  m->output_commitment = (ProtobufCBinaryData){32, r->output_commitment};
  m->price = (ProtobufCBinaryData){32, r->price};
  m->worker_amount = (ProtobufCBinaryData){32, r->worker_amount};
  m->provider_amount = (ProtobufCBinaryData){32, r->provider_amount};
  m->signature = (ProtobufCBinaryData){65, sig};
  for (size_t i = 0; i < r->nshares && i < TEEX_EXEC_DATASETS_MAX; i++) {
    struct teex_data_share *x = (struct teex_data_share *)&r->shares[i];
    teex__dispatcher__data_share__init(&sm[i]);
    sm[i].dataset_id = (ProtobufCBinaryData){32, x->dataset_id};
    sm[i].payee = (ProtobufCBinaryData){20, x->payee};
    sm[i].amount = (ProtobufCBinaryData){32, x->amount};
    smp[i] = &sm[i];
  }
  m->n_data_shares = r->nshares;
  m->data_shares = r->nshares ? smp : NULL;
}

/* Parses a settled task's record ("s/<id>": batch id | root | cid len |
 * cid | nproof | proof | receipt [| nshares | shares, 84 bytes each, only
 * for a task with datasets]): cid, the proof (*np hashes at *proof, inside
 * v), the receipt (its shares in `shares`, room for
 * TEEX_EXEC_DATASETS_MAX) and its signature. TEEX_EFORMAT if malformed. */
#define SETTLED_SHARE_LEN 84
static int settled_parse(const uint8_t *v, size_t len,
                         char cid[TEEX_CID_STR_SIZE], const uint8_t **proof,
                         size_t *np, struct teex_receipt *r, uint8_t sig[65],
                         struct teex_data_share *shares, struct teex_err *err) {
  size_t off = 64, need, end;
  if (len < off + 1 || (need = off + 1 + v[off]) >= len ||
      v[off] >= TEEX_CID_STR_SIZE || v[need] > TEEX_SETTLE_MAX_PROOF ||
      (end = need + 1 + 32u * v[need] + DSP_RECEIPT_LEN) > len ||
      (end != len && (v[end] == 0 || v[end] > TEEX_EXEC_DATASETS_MAX ||
                      end + 1 + (size_t)SETTLED_SHARE_LEN * v[end] != len)))
    return teex_err_set(err, TEEX_EFORMAT, "settled record malformed");
  memcpy(cid, v + off + 1, v[off]);
  cid[v[off]] = '\0';
  *np = v[need];
  *proof = v + need + 1;
  dsp_receipt_decode(v + need + 1 + 32 * *np, r, sig);
  if (end != len) {
    const uint8_t *q = v + end + 1;
    for (size_t i = 0; i < v[end]; i++, q += SETTLED_SHARE_LEN) {
      memcpy(shares[i].dataset_id, q, 32);
      memcpy(shares[i].payee, q + 32, 20);
      memcpy(shares[i].amount, q + 52, 32);
    }
    r->shares = shares;
    r->nshares = v[end];
  }
  return 0;
}

/* 1 when task id was settled with exactly receipt r (a report the worker
 * retries because the answer was lost, e.g. in a crash), else 0. */
static int settled_with(struct dsp *d, const uint8_t id[32],
                        const struct teex_receipt *r) {
  char key[2 + 64 + 1], cid[TEEX_CID_STR_SIZE];
  memcpy(key, "s/", 2);
  teex_hex_encode(id, 32, key + 2);
  struct teex_buf val;
  struct teex_err err;
  teex_buf_init(&val, 8192, 0);
  const uint8_t *pv;
  size_t np;
  struct teex_receipt sr;
  struct teex_data_share shares[TEEX_EXEC_DATASETS_MAX];
  uint8_t sig[65];
  int same = teex_statestore_get(d->ss, key, &val, &err) == 0 &&
             settled_parse(val.data, val.len, cid, &pv, &np, &sr, sig, shares,
                           &err) == 0 &&
             same_receipt(&sr, r);
  teex_buf_free(&val);
  return same;
}

static void on_status(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__StatusRequest *req =
      teex__dispatcher__status_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  int rc = field(&req->task_id, 32, "task_id", &err);
  Teex__Dispatcher__StatusResponse r = TEEX__DISPATCHER__STATUS_RESPONSE__INIT;
  Teex__Dispatcher__Receipt rm = TEEX__DISPATCHER__RECEIPT__INIT;
  struct teex_buf val;
  teex_buf_init(&val, 8192, 0);
  struct teex_receipt rc_r;
  struct teex_data_share rc_shares[TEEX_EXEC_DATASETS_MAX];
  Teex__Dispatcher__DataShare sm[TEEX_EXEC_DATASETS_MAX];
  Teex__Dispatcher__DataShare *smp[TEEX_EXEC_DATASETS_MAX];
  uint8_t rc_sig[65];
  ProtobufCBinaryData proof[TEEX_SETTLE_MAX_PROOF];
  char cid[TEEX_CID_STR_SIZE];
  if (rc != 0)
    goto out;
  struct dsp_task *t = task_find(d, req->task_id.data);
  if (t != NULL) {
    static const char *names[] = {"", "queued", "assigned", "earned", "failed"};
    r.state = (char *)names[t->state];
    if (t->nassigned > 0)
      r.worker = (ProtobufCBinaryData){20, t->worker};
    if (t->has_receipt) {
      fill_receipt_msg(&rm, &t->rcpt, t->rsig, sm, smp);
      r.receipt = &rm;
    }
    respond_msg(call, &r.base);
    goto done;
  }
  char key[2 + 64 + 1];
  memcpy(key, "s/", 2);
  teex_hex_encode(req->task_id.data, 32, key + 2);
  rc = teex_statestore_get(d->ss, key, &val, &err);
  if (rc == TEEX_ENOTFOUND) {
    teex_err_set(&err, TEEX_ENOTFOUND, "unknown task");
    goto out;
  }
  if (rc != 0)
    goto out;
  const uint8_t *v = val.data, *pv;
  size_t np;
  if ((rc = settled_parse(v, val.len, cid, &pv, &np, &rc_r, rc_sig, rc_shares,
                          &err)))
    goto out;
  for (size_t i = 0; i < np; i++)
    proof[i] = (ProtobufCBinaryData){32, (uint8_t *)pv + 32 * i};
  fill_receipt_msg(&rm, &rc_r, rc_sig, sm, smp);
  r.state = "settled";
  r.worker = (ProtobufCBinaryData){20, rc_r.worker};
  r.receipt = &rm;
  r.batch_id = (ProtobufCBinaryData){32, (uint8_t *)v};
  r.root = (ProtobufCBinaryData){32, (uint8_t *)v + 32};
  r.n_proof = np;
  r.proof = proof;
  r.cid = cid;
  respond_msg(call, &r.base);
  goto done;
out:
  teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
done:
  teex_buf_free(&val);
  teex__dispatcher__status_request__free_unpacked(req, NULL);
}

static void on_base(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                    void *arg) {
  struct dsp *d = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Dispatcher__BaseRequest *req =
      teex__dispatcher__base_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  int rc = field(&req->user, 20, "user", &err);
  teex_amount escrow = 0, settled = 0, base = 0;
  if (rc == 0) {
    const struct teex_dispatcher_chain *c = &d->cfg->chain;
    rc = c->ops->escrow(c->arg, req->user.data, &escrow, &settled, &err);
    if (rc == 0)
      rc = teex_ledger_set_chain(d->ledger, req->user.data, escrow, settled);
    else
      teex_err_wrap(&err, rc, "cannot read escrow from the chain");
  }
  if (rc == 0) {
    teex_ledger_base(d->ledger, req->user.data, &base);
    uint8_t wb[32], we[32], ws[32];
    teex_amount_word(base, wb);
    teex_amount_word(escrow, we);
    teex_amount_word(settled, ws);
    Teex__Dispatcher__BaseResponse r = TEEX__DISPATCHER__BASE_RESPONSE__INIT;
    r.cumulative_base = (ProtobufCBinaryData){32, wb};
    r.escrow = (ProtobufCBinaryData){32, we};
    r.settled = (ProtobufCBinaryData){32, ws};
    r.dispatcher = (ProtobufCBinaryData){20, d->addr};
    r.chain_id = d->cfg->domain.chain_id;
    r.settlement =
        (ProtobufCBinaryData){20, (uint8_t *)d->cfg->domain.verifying_contract};
    respond_msg(call, &r.base);
  } else {
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  }
  teex__dispatcher__base_request__free_unpacked(req, NULL);
}

static void on_health(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  (void)p;
  (void)n;
  struct dsp *d = arg;
  Teex__Rpc__HealthResponse r = TEEX__RPC__HEALTH_RESPONSE__INIT;
  r.status = "ok";
  r.role = "dispatcher";
  r.uptime_ms = now_ms(d) - d->started_ms;
  r.version = (char *)teex_version();
  respond_msg(call, &r.base);
}

/* ---- settlement ---- */

struct batch_user {
  uint8_t addr[20];
  struct teex_payment_auth due;
  teex_amount debit, sum;
  int ok;
};

static int credit_add(struct teex_dispatcher_credit *cr, size_t *n,
                      const uint8_t payee[20], teex_amount v) {
  if (v == 0)
    return 0;
  for (size_t i = 0; i < *n; i++)
    if (memcmp(cr[i].payee, payee, 20) == 0) {
      cr[i].amount += v;
      return 0;
    }
  memcpy(cr[*n].payee, payee, 20);
  cr[*n].amount = v;
  (*n)++;
  return 0;
}

#define SETTLED_REC_MAX                                                        \
  (64 + 1 + TEEX_CID_STR_SIZE + 1 + TEEX_SETTLE_MAX_PROOF * 32 +               \
   DSP_RECEIPT_LEN + 1 + SETTLED_SHARE_LEN * TEEX_EXEC_DATASETS_MAX)

/* Records a settled batch: per receipt its proof, the users' settled
 * amounts, and forgets what the ledger forgets; the in-flight record fkey
 * goes last. sel[i] NULL: receipt i is recorded already (a recovery after
 * a partial record). On the local store one transaction. On TEE-DS the
 * writes are chunked (a batch is more than one TEEX_DS_TXN holds), in an
 * order where every prefix is recoverable from the in-flight record, which
 * stays until the last chunk: 1. the receipts (s/), 2. the settled tasks
 * deleted (t/; a task missing after a restart is found by its s/ record,
 * see inflight_record), 3. the users' settled amounts (u/), 4. fkey.
 * Every write is idempotent, so recording again after a crash is safe. */
static int record_batch(struct dsp *d, const struct teex_dispatcher_batch *b,
                        struct dsp_task **sel, size_t nsel,
                        const uint8_t *leaves, struct batch_user *users,
                        size_t nusers, const char *fkey, struct teex_err *err) {
  size_t cap = nsel + nusers + d->max_tasks + 1, n = 0;
  struct ss_op *ops = calloc(cap, sizeof *ops);
  uint8_t *recs = malloc(nsel ? nsel * (size_t)SETTLED_REC_MAX : 1);
  uint8_t *words = malloc(nusers ? nusers * (size_t)32 : 1);
  int rc = ops == NULL || recs == NULL || words == NULL
               ? teex_err_set(err, TEEX_ENOMEM, NULL)
               : 0;
  uint8_t proof[TEEX_SETTLE_MAX_PROOF * 32];
  size_t cidlen = strlen(b->cid);
  for (size_t i = 0; i < nsel && rc == 0; i++) {
    if (sel[i] == NULL)
      continue;
    size_t np = 0;
    rc = teex_settle_merkle_proof(leaves, nsel, i, proof, &np);
    if (rc != 0)
      break;
    uint8_t *rec = recs + i * (size_t)SETTLED_REC_MAX;
    size_t o = 0;
    memcpy(rec, b->batch_id, 32);
    memcpy(rec + 32, b->root, 32);
    o = 64;
    rec[o++] = (uint8_t)cidlen;
    memcpy(rec + o, b->cid, cidlen);
    o += cidlen;
    rec[o++] = (uint8_t)np;
    memcpy(rec + o, proof, 32 * np);
    o += 32 * np;
    dsp_receipt_encode(&sel[i]->rcpt, sel[i]->rsig, rec + o);
    o += DSP_RECEIPT_LEN;
    if (sel[i]->nds > 0) { /* appended only for a task with datasets */
      rec[o++] = sel[i]->nds;
      for (unsigned k = 0; k < sel[i]->nds; k++, o += SETTLED_SHARE_LEN) {
        memcpy(rec + o, sel[i]->ds[k].dataset_id, 32);
        memcpy(rec + o + 32, sel[i]->ds[k].payee, 20);
        memcpy(rec + o + 52, sel[i]->ds[k].amount, 32);
      }
    }
    memcpy(ops[n].name, "s/", 2);
    teex_hex_encode(sel[i]->auth.task_id, 32, ops[n].name + 2);
    ops[n].val = rec;
    ops[n++].len = o;
  }
  /* finished tasks at or below the settled amount are done with */
  for (size_t u = 0; u < nusers && rc == 0; u++) {
    if (!users[u].ok)
      continue;
    for (uint32_t i = 0; i < d->max_tasks && n < cap; i++) {
      struct dsp_task *t = d->tasks[i];
      if (t == NULL || memcmp(t->auth.user, users[u].addr, 20) != 0 ||
          (t->state != DSP_EARNED && t->state != DSP_FAILED) ||
          t->auth.cumulative > users[u].due.cumulative)
        continue;
      task_key(t, ops[n].name);
      ops[n++].del = 1;
    }
  }
  for (size_t u = 0; u < nusers && rc == 0 && n < cap; u++) {
    if (!users[u].ok)
      continue;
    memcpy(ops[n].name, "u/", 2);
    teex_hex_encode(users[u].addr, 20, ops[n].name + 2);
    teex_amount_word(users[u].due.cumulative, words + 32 * u);
    ops[n].val = words + 32 * u;
    ops[n++].len = 32;
  }
  if (rc == 0 && n < cap) {
    snprintf(ops[n].name, sizeof ops[n].name, "%s", fkey);
    ops[n++].del = 1;
  }
  /* A fault-injection point for the crash-recovery test: records in
   * chunks of TEEX_FAULT_RECORD_CHUNK writes and dies after the first of
   * several (a crash there cannot be timed from outside; it gives the host
   * nothing: it can kill the process at any time). */
  const char *fault = getenv("TEEX_FAULT_RECORD_CHUNK");
  uint64_t fper = 0;
  if (fault != NULL && (teex_parse_u64(fault, &fper) != 0 || fper > 64))
    fper = 0;
  if (rc == 0)
    rc = ss_apply_by(d, ops, n, (size_t)fper, fper != 0, err);
  free(ops);
  free(recs);
  free(words);
  return rc;
}

/* Forgets in memory the tasks a batch settled for users[]. */
static void forget_settled(struct dsp *d, const struct batch_user *users,
                           size_t nusers) {
  for (size_t u = 0; u < nusers; u++) {
    if (!users[u].ok)
      continue;
    for (uint32_t i = 0; i < d->max_tasks; i++) {
      struct dsp_task *t = d->tasks[i];
      if (t == NULL || memcmp(t->auth.user, users[u].addr, 20) != 0 ||
          (t->state != DSP_EARNED && t->state != DSP_FAILED) ||
          t->auth.cumulative > users[u].due.cumulative)
        continue;
      if (t->state == DSP_EARNED && d->pending > 0)
        d->pending--;
      task_forget(d, t);
    }
  }
}

static void inflight_key(uint64_t seq, char key[19]) {
  snprintf(key, 19, "f/%016llx", (unsigned long long)seq);
}

/* Seals what a batch about to be sent holds, so that a dispatcher that
 * crashes after the chain confirms it can record it after a restart
 * (recover_batches) instead of leaving its tasks unsettled. */
static int inflight_put(struct dsp *d, uint64_t seq,
                        const struct teex_dispatcher_batch *b,
                        struct dsp_task **sel, size_t nsel,
                        const struct batch_user *users, size_t nusers,
                        struct teex_err *err) {
  struct dsp_inflight f;
  memset(&f, 0, sizeof f);
  memcpy(f.batch_id, b->batch_id, 32);
  memcpy(f.root, b->root, 32);
  snprintf(f.cid, sizeof f.cid, "%s", b->cid);
  for (size_t u = 0; u < nusers; u++)
    f.nusers += users[u].ok != 0;
  f.ntasks = (uint32_t)nsel;
  uint8_t *uv = malloc(f.nusers ? (size_t)f.nusers * DSP_INFLIGHT_USER_LEN : 1);
  uint8_t *tv = malloc(32 * nsel);
  uint8_t *rec = NULL;
  int rc = uv == NULL || tv == NULL ? teex_err_set(err, TEEX_ENOMEM, NULL) : 0;
  if (rc == 0) {
    size_t k = 0;
    for (size_t u = 0; u < nusers; u++) {
      if (!users[u].ok)
        continue;
      memcpy(uv + DSP_INFLIGHT_USER_LEN * k, users[u].addr, 20);
      teex_amount_word(users[u].due.cumulative,
                       uv + DSP_INFLIGHT_USER_LEN * k + 20);
      k++;
    }
    for (size_t i = 0; i < nsel; i++)
      memcpy(tv + 32 * i, sel[i]->auth.task_id, 32);
    f.users = uv;
    f.tasks = tv;
    if ((rec = malloc(dsp_inflight_len(&f))) == NULL)
      rc = teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  if (rc == 0) {
    dsp_inflight_encode(&f, rec);
    char key[19];
    inflight_key(seq, key);
    rc = teex_statestore_put(d->ss, key, rec, dsp_inflight_len(&f), err);
  }
  free(rec);
  free(uv);
  free(tv);
  return rc;
}

/* The leaf of task id's receipt from its settled record, which must be of
 * batch batch_id: a task a partial (chunked) record of that batch already
 * recorded and forgot. TEEX_ESTATE when there is none. */
static int recorded_leaf(struct dsp *d, const uint8_t id[32],
                         const uint8_t batch_id[32], uint8_t leaf[32],
                         struct teex_err *err) {
  char key[2 + 64 + 1], cid[TEEX_CID_STR_SIZE];
  memcpy(key, "s/", 2);
  teex_hex_encode(id, 32, key + 2);
  struct teex_buf val;
  teex_buf_init(&val, 8192, 0);
  const uint8_t *pv;
  size_t np;
  struct teex_receipt sr;
  struct teex_data_share shares[TEEX_EXEC_DATASETS_MAX];
  uint8_t sig[65];
  int rc = teex_statestore_get(d->ss, key, &val, err);
  if (rc == TEEX_ENOTFOUND)
    rc = teex_err_set(err, TEEX_ESTATE,
                      "in-flight batch: a task is no longer earned");
  if (rc == 0)
    rc = settled_parse(val.data, val.len, cid, &pv, &np, &sr, sig, shares, err);
  if (rc == 0 && (val.len < 32 || memcmp(val.data, batch_id, 32) != 0))
    rc = teex_err_set(err, TEEX_ESTATE,
                      "in-flight batch: a task was settled in another batch");
  if (rc == 0)
    teex_settle_receipt_leaf(&sr, leaf);
  teex_buf_free(&val);
  return rc;
}

/* Records one in-flight batch (key, its record v) the chain holds with
 * root: as after a confirmed settleBatch. */
static int inflight_record(struct dsp *d, const char *key, const uint8_t *v,
                           size_t vl, struct teex_err *err) {
  struct dsp_inflight f;
  if (dsp_inflight_decode(v, vl, d->max_tasks, &f) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "in-flight batch record");
  struct teex_dispatcher_batch b;
  memset(&b, 0, sizeof b);
  memcpy(b.batch_id, f.batch_id, 32);
  memcpy(b.root, f.root, 32);
  memcpy(b.cid, f.cid, sizeof b.cid);
  uint32_t nusers = f.nusers, nsel = f.ntasks;
  struct batch_user *users = calloc(nusers ? nusers : 1, sizeof *users);
  struct dsp_task **sel = calloc(nsel, sizeof *sel);
  uint8_t *leaves = malloc(32 * (size_t)nsel);
  int rc = users == NULL || sel == NULL || leaves == NULL
               ? teex_err_set(err, TEEX_ENOMEM, NULL)
               : 0;
  for (uint32_t u = 0; rc == 0 && u < nusers; u++) {
    const uint8_t *e = f.users + DSP_INFLIGHT_USER_LEN * (size_t)u;
    memcpy(users[u].addr, e, 20);
    if (teex_amount_from_word(e + 20, &users[u].due.cumulative) != 0)
      rc = teex_err_set(err, TEEX_EFORMAT, "in-flight batch: amount");
    users[u].ok = 1;
  }
  for (uint32_t i = 0; rc == 0 && i < nsel; i++) {
    sel[i] = task_find(d, f.tasks + 32 * (size_t)i);
    if (sel[i] != NULL && sel[i]->state == DSP_EARNED) {
      teex_settle_receipt_leaf(&sel[i]->rcpt, leaves + 32 * (size_t)i);
    } else { /* recorded before a crash cut a chunked record short */
      sel[i] = NULL;
      rc = recorded_leaf(d, f.tasks + 32 * (size_t)i, b.batch_id,
                         leaves + 32 * (size_t)i, err);
    }
  }
  uint8_t root[32];
  if (rc == 0 && (teex_settle_merkle_root(leaves, nsel, root) != 0 ||
                  memcmp(root, b.root, 32) != 0))
    rc = teex_err_set(err, TEEX_EINTERNAL,
                      "in-flight batch: receipts do not give its root");
  if (rc == 0) {
    b.task_count = nsel;
    for (uint32_t u = 0; u < nusers; u++)
      teex_ledger_settled(d->ledger, users[u].addr, users[u].due.cumulative);
    rc = record_batch(d, &b, sel, nsel, leaves, users, nusers, key, err);
    if (rc == 0) {
      forget_settled(d, users, nusers);
      char idh[65];
      teex_hex_encode(b.batch_id, 32, idh);
      TEEX_INFO("dispatcher", "batch found on chain after a restart; recorded",
                "batch=0x%s tasks=%u", idh, nsel);
    }
  }
  free(users);
  free(sel);
  free(leaves);
  return rc;
}

struct inflight_pick {
  char key[19];
  uint8_t *val;
  size_t len;
  int oom;
};

/* Batches sent but not recorded — a crash between the chain confirming
 * settleBatch and the local record, or an answer lost on the way — are
 * checked against the chain by their batch id: one the chain holds is
 * recorded now (never settled again); one it does not hold is dropped (its
 * tasks are still earned and go into the next batch). 0 when settlement
 * may go on; an error when the chain cannot be read (retry later). */
static int first_inflight(const char *name, const uint8_t *v, size_t len,
                          void *arg) {
  struct inflight_pick *p = arg;
  if (strlen(name) >= sizeof p->key)
    return 0;
  if ((p->val = malloc(len ? len : 1)) == NULL)
    return p->oom = 1;
  snprintf(p->key, sizeof p->key, "%s", name);
  memcpy(p->val, v, len);
  p->len = len;
  return 1;
}

static int recover_batches(struct dsp *d, struct teex_err *err) {
  const struct teex_dispatcher_chain *c = &d->cfg->chain;
  for (;;) {
    struct inflight_pick pick;
    memset(&pick, 0, sizeof pick);
    int rc = teex_statestore_scan(d->ss, "f", first_inflight, &pick, err);
    if (rc == 0 && pick.oom)
      rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    char *key = pick.key;
    uint8_t *val = pick.val;
    size_t len = pick.len;
    if (rc != 0 || key[0] == '\0') {
      free(val);
      return rc;
    }
    uint8_t root[32];
    static const uint8_t zero[32];
    rc = c->ops->batch_root == NULL || len < 64
             ? 0
             : c->ops->batch_root(c->arg, val, root, err);
    if (rc != 0) {
      free(val);
      return teex_err_wrap(err, rc, "check a batch sent before");
    }
    struct teex_err e2;
    teex_err_clear(&e2);
    int done = 0;
    if (c->ops->batch_root != NULL && len >= 64 &&
        memcmp(root, zero, 32) != 0) {
      if (memcmp(root, val + 32, 32) != 0)
        teex_err_set(&e2, TEEX_EINTERNAL,
                     "the chain holds another root for this batch id");
      else if ((rc = inflight_record(d, key, val, len, &e2)) == 0)
        done = 1;
      else if (rc == TEEX_ETIMEDOUT || rc == TEEX_ECONN || rc == TEEX_EBUSY) {
        /* the state is unreachable: keep the record, try again later */
        free(val);
        teex_err_set(err, rc, "%s", e2.msg);
        return rc;
      }
      if (!done)
        TEEX_ERROR("dispatcher", "batch on chain not recorded",
                   "key=%s reason=\"%s\"", key, e2.msg);
    }
    free(val);
    if (!done && (rc = ss_del(d, key, err)) != 0)
      return rc;
  }
}

static void settle_once(struct dsp *d) {
  struct teex_err err;
  teex_err_clear(&err);
  if (recover_batches(d, &err) != 0) {
    TEEX_ERROR("dispatcher", "settlement postponed; will retry",
               "reason=\"%s\"", err.msg);
    return;
  }
  /* the users with earned tasks */
  size_t cap = 0, nusers = 0;
  for (uint32_t i = 0; i < d->max_tasks; i++)
    if (d->tasks[i] != NULL && d->tasks[i]->state == DSP_EARNED)
      cap++;
  d->pending = (uint32_t)cap;
  if (cap == 0)
    return;
  struct batch_user *users = calloc(cap, sizeof *users);
  struct dsp_task **sel = calloc(cap, sizeof *sel);
  struct teex_receipt *rcpts = NULL;
  uint8_t *rsigs = NULL;
  struct teex_payment_auth *auths = calloc(cap, sizeof *auths);
  struct teex_dispatcher_credit *credits =
      calloc((2 + TEEX_EXEC_DATASETS_MAX) * cap, sizeof *credits);
  uint8_t *leaves = NULL;
  struct teex_buf content;
  teex_buf_init(&content, TEEX_CHAIN_BATCH_CONTENT_MAX, 0);
  size_t nsel = 0, nauths = 0, ncredits = 0;
  if (users == NULL || sel == NULL || auths == NULL || credits == NULL)
    goto out;
  for (uint32_t i = 0; i < d->max_tasks; i++) {
    struct dsp_task *t = d->tasks[i];
    if (t == NULL || t->state != DSP_EARNED)
      continue;
    size_t u = 0;
    while (u < nusers && memcmp(users[u].addr, t->auth.user, 20) != 0)
      u++;
    if (u == nusers && nusers < cap)
      memcpy(users[nusers++].addr, t->auth.user, 20);
  }
  for (size_t u = 0; u < nusers; u++) {
    struct batch_user *bu = &users[u];
    if (refresh_user(d, bu->addr, &err) != 0)
      goto out; /* logged; retried at the next interval */
    if (teex_ledger_due(d->ledger, bu->addr, &bu->due, &bu->debit) != 1)
      continue;
    teex_amount settled = bu->due.cumulative - bu->debit;
    /* the receipts this authorisation pays for: earned tasks above what was
     * settled, up to its cumulative; they must add up to the debit */
    for (uint32_t i = 0; i < d->max_tasks; i++) {
      struct dsp_task *t = d->tasks[i];
      if (t != NULL && t->state == DSP_EARNED &&
          memcmp(t->auth.user, bu->addr, 20) == 0 &&
          t->auth.cumulative > settled &&
          t->auth.cumulative <= bu->due.cumulative)
        bu->sum += t->auth.price;
    }
    if (bu->sum != bu->debit) {
      char uh[43];
      hex_addr(bu->addr, uh);
      TEEX_DEBUG("dispatcher", "user deferred to a later batch",
                 "user=%s reason=\"due authorisation and receipts differ\"",
                 uh);
      continue;
    }
    bu->ok = 1;
    auths[nauths++] = bu->due;
    for (uint32_t i = 0; i < d->max_tasks; i++) {
      struct dsp_task *t = d->tasks[i];
      if (t != NULL && t->state == DSP_EARNED &&
          memcmp(t->auth.user, bu->addr, 20) == 0 &&
          t->auth.cumulative > settled &&
          t->auth.cumulative <= bu->due.cumulative && nsel < cap)
        sel[nsel++] = t;
    }
  }
  if (nsel == 0)
    goto out;
  rcpts = calloc(nsel, sizeof *rcpts);
  rsigs = calloc(nsel, 65);
  leaves = malloc(32 * nsel);
  if (rcpts == NULL || rsigs == NULL || leaves == NULL)
    goto out;
  for (size_t i = 0; i < nsel; i++) {
    struct dsp_task *t = sel[i];
    rcpts[i] = t->rcpt;
    rcpts[i].shares = t->nds ? t->ds : NULL;
    rcpts[i].nshares = t->nds;
    memcpy(rsigs + 65 * i, t->rsig, 65);
    teex_settle_receipt_leaf(&t->rcpt, leaves + 32 * i);
    teex_amount wa = 0, pa = 0;
    teex_amount_from_word(t->rcpt.worker_amount, &wa);
    teex_amount_from_word(t->rcpt.provider_amount, &pa);
    credit_add(credits, &ncredits, t->rcpt.worker, wa);
    credit_add(credits, &ncredits, t->rcpt.provider, pa);
    for (unsigned k = 0; k < t->nds; k++) {
      teex_amount da = 0;
      teex_amount_from_word(t->ds[k].amount, &da);
      credit_add(credits, &ncredits, t->ds[k].payee, da);
    }
  }
  struct teex_dispatcher_batch b;
  memset(&b, 0, sizeof b);
  if (teex_settle_merkle_root(leaves, nsel, b.root) != 0)
    goto out;
  b.task_count = (uint32_t)nsel;
  b.auths = auths;
  b.nauths = nauths;
  b.credits = credits;
  b.ncredits = ncredits;
  uint64_t seq = d->batch_seq + 1;
  teex_dispatcher_batch_id(d->addr, seq, b.batch_id);
  if (put_u64(d, "d/seq", seq, &err) != 0) {
    TEEX_ERROR("dispatcher", "batch sequence not persisted", "reason=\"%s\"",
               err.msg);
    goto out;
  }
  d->batch_seq = seq;
  /* the content, encoded by the chain module's one encoder */
  struct teex_chain_credit *ccr = calloc(ncredits ? ncredits : 1, sizeof *ccr);
  if (ccr == NULL)
    goto out;
  for (size_t i = 0; i < ncredits; i++) {
    memcpy(ccr[i].payee, credits[i].payee, 20);
    ccr[i].amount = credits[i].amount;
  }
  struct teex_chain_batch cb = {.task_count = b.task_count,
                                .cid = "",
                                .auths = auths,
                                .n_auths = nauths,
                                .credits = ccr,
                                .n_credits = ncredits};
  memcpy(cb.batch_id, b.batch_id, 32);
  memcpy(cb.root, b.root, 32);
  struct teex_chain_batch_content bc = {.chain_id = d->cfg->domain.chain_id,
                                        .batch = &cb,
                                        .receipts = rcpts,
                                        .receipt_sigs =
                                            (const uint8_t(*)[65])rsigs,
                                        .n_receipts = nsel};
  memcpy(bc.settlement, d->cfg->domain.verifying_contract, 20);
  memcpy(bc.dispatcher, d->addr, 20);
  int enc = teex_chain_batch_content_encode(&bc, &content, &err);
  free(ccr);
  if (enc != 0) {
    TEEX_ERROR("dispatcher", "batch content not encoded", "reason=\"%s\"",
               err.msg);
    goto out;
  }
  struct teex_cid cid;
  if (teex_ipfs_add_buffer(d->cfg->ipfs, content.data, content.len, &cid,
                           &err) != 0 ||
      teex_ipfs_pin(d->cfg->ipfs, &cid, &err) != 0) {
    TEEX_ERROR("dispatcher", "batch content not stored; will retry",
               "reason=\"%s\"", err.msg);
    goto out;
  }
  teex_cid_to_string(&cid, b.cid);
  const struct teex_dispatcher_chain *c = &d->cfg->chain;
  char fkey[19];
  inflight_key(seq, fkey);
  if (inflight_put(d, seq, &b, sel, nsel, users, nusers, &err) != 0) {
    TEEX_ERROR("dispatcher", "batch not sealed before sending; will retry",
               "reason=\"%s\"", err.msg);
    goto out;
  }
  if (c->ops->settle(c->arg, &b, &err) != 0) {
    TEEX_ERROR("dispatcher", "settlement failed; will retry", "reason=\"%s\"",
               err.msg);
    goto out; /* the in-flight record is checked against the chain next */
  }
  /* A fault-injection point for the crash-recovery test: die where a
   * crash would leave a confirmed batch unrecorded. It gives the host
   * nothing it does not have (it can kill the process at any time). */
  if (getenv("TEEX_FAULT_EXIT_AFTER_SETTLE") != NULL)
    _exit(70);
  for (size_t u = 0; u < nusers; u++)
    if (users[u].ok)
      teex_ledger_settled(d->ledger, users[u].addr, users[u].due.cumulative);
  if (record_batch(d, &b, sel, nsel, leaves, users, nusers, fkey, &err) != 0)
    TEEX_ERROR("dispatcher", "settled batch not recorded locally",
               "reason=\"%s\"", err.msg);
  forget_settled(d, users, nusers);
  char idh[65], rh[65];
  teex_hex_encode(b.batch_id, 32, idh);
  teex_hex_encode(b.root, 32, rh);
  TEEX_INFO("dispatcher", "batch settled",
            "batch=0x%s root=0x%s tasks=%u users=%zu cid=%s", idh, rh,
            b.task_count, nauths, b.cid);
out:
  d->last_settle_ms = now_ms(d);
  teex_buf_free(&content);
  free(users);
  free(sel);
  free(rcpts);
  free(rsigs);
  free(auths);
  free(credits);
  free(leaves);
}

static void maybe_settle(struct dsp *d, int force) {
  if (d->pending == 0)
    return;
  if (force || d->pending >= d->cfg->settle_receipts ||
      now_ms(d) - d->last_settle_ms >= d->cfg->settle_interval_ms)
    settle_once(d);
}

/* ---- periodic work ---- */

static void on_tick(uv_timer_t *h) {
  struct dsp *d = h->data;
  struct teex_err err;
  uint32_t dropped[64];
  size_t nd;
  while ((nd = teex_sched_expire_workers(d->sched, now_ms(d), dropped, 64)) >
         0) {
    for (size_t i = 0; i < nd; i++) {
      struct dsp_worker *w = worker_by_handle(d, dropped[i]);
      if (w == NULL)
        continue;
      char wh[43];
      hex_addr(w->addr, wh);
      TEEX_WARN("dispatcher", "worker dropped (silent past the timeout)",
                "worker=%s", wh);
      drop_worker(d, w); /* removed from the scheduler already: harmless */
    }
    if (nd < 64)
      break;
  }
  /* tasks with no receipt by their deadline fail: nothing is charged */
  uint64_t now = unix_now();
  for (uint32_t i = 0; i < d->max_tasks; i++) {
    struct dsp_task *t = d->tasks[i];
    if (t == NULL || (t->state != DSP_QUEUED && t->state != DSP_ASSIGNED) ||
        now < t->fail_at || t->waiting != NULL)
      continue;
    release_slot(d, t, 0);
    teex_ledger_fail(d->ledger, t->auth.task_id);
    t->state = DSP_FAILED;
    teex_err_clear(&err);
    task_save(d, t, &err);
    TEEX_INFO("dispatcher", "task failed: no receipt before its deadline",
              NULL);
  }
  drain_queue(d);
  maybe_settle(d, 0);
}

/* ---- start, restore, stop ---- */

/* users' settled amounts */
static int restore_user(const char *name, const uint8_t *v, size_t vl,
                        void *arg) {
  struct dsp *d = arg;
  uint8_t user[20];
  size_t ul;
  teex_amount settled;
  if (strlen(name) != 42 || vl != 32 || teex_amount_from_word(v, &settled) != 0)
    return 0;
  if (teex_hex_decode(name + 2, user, 20, &ul) == 0 && ul == 20)
    teex_ledger_set_chain(d->ledger, user, AMOUNT_MAX, settled);
  return 0;
}

/* workers: known again until silent past the timeout */
static int restore_worker(const char *name, const uint8_t *v, size_t vl,
                          void *arg) {
  struct dsp *d = arg;
  struct dsp_worker *w = worker_slot(d);
  size_t al;
  if (w == NULL || strlen(name) != 42 || vl < 5 || vl > 4 + DSP_ENDPOINT_MAX)
    return 0;
  if (teex_hex_decode(name + 2, w->addr, 20, &al) != 0 || al != 20)
    return 0;
  w->capacity =
      (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
  memcpy(w->endpoint, v + 4, vl - 4);
  w->endpoint[vl - 4] = '\0';
  if (w->capacity == 0 || teex_sched_worker_add(d->sched, w->addr, w->capacity,
                                                now_ms(d), &w->handle) != 0)
    return 0;
  w->used = 1;
  return 0;
}

struct task_recs {
  struct dsp_task *recs;
  size_t n, cap;
  int bad, oom;
};

static int collect_task(const char *name, const uint8_t *v, size_t vl,
                        void *arg) {
  struct task_recs *tr = arg;
  (void)name;
  if (tr->n == tr->cap) {
    size_t nc = tr->cap ? 2 * tr->cap : 64;
    struct dsp_task *nr = realloc(tr->recs, nc * sizeof *nr);
    if (nr == NULL)
      return tr->oom = 1;
    tr->recs = nr, tr->cap = nc;
  }
  if (dsp_task_decode(v, vl, &tr->recs[tr->n]) != 0)
    return tr->bad = 1;
  tr->n++;
  return 0;
}

static int by_seq(const void *a, const void *b) {
  const struct dsp_task *x = a, *y = b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int restore(struct dsp *d, struct teex_err *err) {
  struct teex_buf val;
  teex_buf_init(&val, 8, 0);
  struct task_recs tr = {0};
  size_t ntasks = 0;
  int rc = teex_statestore_get(d->ss, "d/seq", &val, err);
  if (rc == 0 && val.len == 8)
    for (int i = 0; i < 8; i++)
      d->batch_seq = d->batch_seq << 8 | val.data[i];
  else if (rc != 0 && rc != TEEX_ENOTFOUND)
    goto done;
  if ((rc = teex_statestore_scan(d->ss, "u", restore_user, d, err)) != 0 ||
      (rc = teex_statestore_scan(d->ss, "w", restore_worker, d, err)) != 0 ||
      (rc = teex_statestore_scan(d->ss, "t", collect_task, &tr, err)) != 0)
    goto done;
  if (tr.oom) {
    rc = teex_err_set(err, TEEX_ENOMEM, "restore tasks");
    goto done;
  }
  if (tr.bad) {
    rc = teex_err_set(err, TEEX_EFORMAT, "task record malformed");
    goto done;
  }
  /* tasks, in acceptance order (TEE-DS scans in hashed order), replayed
   * through the ledger */
  if (tr.n > 1)
    qsort(tr.recs, tr.n, sizeof *tr.recs, by_seq);
  for (size_t r = 0; r < tr.n; r++) {
    const struct dsp_task *rec = &tr.recs[r];
    struct teex_err e2;
    teex_err_clear(&e2);
    teex_amount base;
    if (teex_ledger_base(d->ledger, rec->auth.user, &base) == TEEX_ENOTFOUND)
      teex_ledger_set_chain(d->ledger, rec->auth.user, AMOUNT_MAX, 0);
    int a = teex_ledger_accept(d->ledger, &rec->auth, rec->auth.price, &e2);
    if (a != TEEX_LEDGER_NEW) {
      TEEX_WARN("dispatcher", "stored task not restored", "reason=\"%s\"",
                e2.msg);
      continue;
    }
    struct dsp_task *t = task_new(d, rec->auth.task_id);
    if (t == NULL) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "more stored tasks than max");
      goto done;
    }
    uint32_t gen = t->gen, idx = t->idx;
    *t = *rec;
    t->gen = gen;
    t->idx = idx;
    t->used = 1;
    t->rcpt.shares = t->has_receipt && t->nds ? t->ds : NULL;
    t->rcpt.nshares = t->has_receipt ? t->nds : 0;
    if (t->seq >= d->next_seq)
      d->next_seq = t->seq + 1;
    if (t->state == DSP_EARNED) {
      teex_ledger_complete(d->ledger, t->auth.task_id);
      d->pending++;
    } else if (t->state == DSP_FAILED) {
      teex_ledger_fail(d->ledger, t->auth.task_id);
    } else if (t->state == DSP_QUEUED) {
      t->waiting = NULL;
    }
    ntasks++;
  }
  rc = 0;
  TEEX_INFO("dispatcher", "state restored",
            "tasks=%zu unsettled_receipts=%u batches=%llu backend=%s", ntasks,
            d->pending, (unsigned long long)d->batch_seq,
            teex_statestore_backend(d->ss));
done:
  if (tr.recs != NULL) {
    teex_wipe(tr.recs, tr.cap * sizeof *tr.recs);
    free(tr.recs);
  }
  teex_buf_free(&val);
  return rc;
}

/* ---- state in TEE-DS ---- */

/* What moves to TEE-DS: everything but the identity (d/identity). */
static const char *const ds_categories[] = {"d", "t", "s", "u", "w", "f"};

static int keep_identity(const char *name, void *arg) {
  (void)arg;
  return strcmp(name, "d/identity") == 0;
}

/* Moves the local records (but the identity) to ds once
 * (teex_statestore_migrate: all copied, then the local copies deleted in
 * one transaction; a crash between is repaired by the next start). */
static int migrate_to_ds(struct dsp *d, struct teex_statestore *ds,
                         struct teex_err *err) {
  size_t moved;
  int rc = teex_statestore_migrate(
      d->ss, ds, ds_categories, sizeof ds_categories / sizeof *ds_categories,
      keep_identity, NULL, "dispatcher", &moved, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "migrate dispatcher state to TEE-DS");
  if (moved > 0)
    TEEX_INFO("dispatcher", "state migrated to TEE-DS", "records=%zu", moved);
  return 0;
}

/* The state goes to TEE-DS: a mutual RA-TLS client context (our
 * certificate; replicas checked against ds_policy), a statestore keyed by
 * the dispatcher's identity, the local records migrated once. */
static int use_ds(struct dsp *d, EVP_PKEY *key, X509 *cert,
                  struct teex_err *err) {
  const struct teex_dispatcher_config *cfg = d->cfg;
  if (cfg->ds_policy == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "TEE-DS state needs a policy for its replicas");
  d->ds_verifier.policy = cfg->ds_policy;
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &d->ds_verifier};
  int rc = teex_tls_ctx_new(&d->ds_ctx, &tc, 0, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "TEE-DS client context");
  struct teex_statestore_ds_config dc = {
      .client = {.replicas = cfg->ds_replicas,
                 .n_replicas = cfg->n_ds_replicas,
                 .tls = d->ds_ctx,
                 .ns = cfg->ds_ns != NULL ? cfg->ds_ns : "dispatcher",
                 .timeout_ms = cfg->ds_timeout_ms ? cfg->ds_timeout_ms : 3000,
                 .connect_timeout_ms = 1000},
      .secret = d->sk,
      .secret_len = 32,
      .label = "dispatcher"};
  struct teex_statestore *ds;
  if ((rc = teex_statestore_open_ds(&dc, &ds, err)) != 0)
    return rc;
  if ((rc = migrate_to_ds(d, ds, err)) != 0) {
    teex_statestore_close(ds);
    return rc;
  }
  teex_statestore_close(d->ss);
  d->ss = ds;
  TEEX_INFO("dispatcher", "state in TEE-DS", "replicas=%zu ns=%s",
            cfg->n_ds_replicas, dc.client.ns);
  return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
  struct dsp *d = h->data;
  TEEX_INFO("dispatcher", "stopping", "signal=%d", signum);
  d->stopping = 1;
  for (uint32_t i = 0; i < d->max_tasks; i++)
    if (d->tasks[i] != NULL && d->tasks[i]->waiting) {
      teex_rpc_call_respond(d->tasks[i]->waiting, TEEX_ECANCELED,
                            "dispatcher stopping", NULL, 0);
      d->tasks[i]->waiting = NULL;
    }
  teex_rpc_server_close(d->worker_srv);
  teex_rpc_server_close(d->user_srv);
  d->worker_srv = d->user_srv = NULL;
  uv_timer_stop(&d->tick);
  uv_close((uv_handle_t *)&d->tick, NULL);
  uv_signal_stop(&d->sigterm);
  uv_signal_stop(&d->sigint);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
}

static int write_ready(const char *path, struct dsp *d, struct teex_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "write %s", tmp);
  char hex[43];
  hex_addr(d->addr, hex);
  fprintf(f, "worker_port = %d\nuser_port = %d\naddress = %s\n",
          teex_rpc_server_port(d->worker_srv),
          teex_rpc_server_port(d->user_srv), hex);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

int teex_dispatcher_serve(const struct teex_dispatcher_config *cfg_in,
                          struct teex_err *err) {
  struct teex_dispatcher_config cfg = *cfg_in;
  if (cfg.heartbeat_timeout_ms == 0)
    cfg.heartbeat_timeout_ms = 10000;
  if (cfg.settle_interval_ms == 0)
    cfg.settle_interval_ms = 60000;
  if (cfg.settle_receipts == 0)
    cfg.settle_receipts = 100;
  if (cfg.assignment_ttl_s == 0)
    cfg.assignment_ttl_s = 300;
  if (cfg.receipt_grace_s == 0)
    cfg.receipt_grace_s = 60;
  if (cfg.max_workers == 0)
    cfg.max_workers = 10000;
  if (cfg.max_tasks == 0)
    cfg.max_tasks = 100000;
  if (cfg.chain.ops == NULL || cfg.ipfs == NULL || cfg.tee == NULL)
    return teex_err_set(err, TEEX_EINVAL, "dispatcher needs tee, chain, ipfs");
  struct dsp d;
  memset(&d, 0, sizeof d);
  d.cfg = &cfg;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  struct teex_ratls_refresher *refresher = NULL;
  int rc;
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return teex_err_set(err, TEEX_EIO, "event loop");
  d.loop = &loop;
  d.max_tasks = cfg.max_tasks;
  d.max_workers = cfg.max_workers;
  uint32_t isz = 1;
  while (isz < 2 * cfg.max_tasks)
    isz <<= 1;
  d.index_mask = isz - 1;
  d.tasks = calloc(cfg.max_tasks, sizeof *d.tasks);
  d.gens = calloc(cfg.max_tasks, sizeof *d.gens);
  d.index = calloc(isz, sizeof *d.index);
  d.workers = calloc(cfg.max_workers, sizeof *d.workers);
  d.sk = teex_secret_alloc(32);
  if (d.tasks == NULL || d.gens == NULL || d.index == NULL ||
      d.workers == NULL || d.sk == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "dispatcher tables");
    goto out;
  }
  struct teex_sched_config sc = {.max_workers = cfg.max_workers,
                                 .max_queued = cfg.max_tasks,
                                 .max_queued_per_user = cfg.max_tasks / 4 + 1,
                                 .heartbeat_timeout_ms =
                                     cfg.heartbeat_timeout_ms};
  teex_random(&sc.seed, sizeof sc.seed);
  d.sched = teex_sched_new(&sc);
  if (d.sched == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "scheduler");
    goto out;
  }
  if (mkdir(cfg.state_dir, 0700) != 0 && errno != EEXIST) {
    rc = teex_err_set(err, TEEX_EIO, "create %s: %s", cfg.state_dir,
                      strerror(errno));
    goto out;
  }
  /* Same-build sealing: only this exact code reads the dispatcher's state. */
  uint8_t root[32];
  rc = teex_tee_seal_key(cfg.tee, TEEX_SEAL_ENCLAVE, 0, root, err);
  if (rc != 0)
    goto out;
  rc = teex_store_open(cfg.state_dir, root, TEEX_STORE_CREATE, &d.store, err);
  teex_wipe(root, sizeof root);
  if (rc != 0) {
    teex_err_wrap(err, rc, "open dispatcher state");
    goto out;
  }
  if ((rc = load_identity(&d, err)) != 0 ||
      (rc = teex_statestore_open_local(d.store, &d.ss, err)) != 0)
    goto out;
  if (cfg.chain.ops->bind != NULL &&
      (rc = cfg.chain.ops->bind(cfg.chain.arg, d.sk, d.addr, err)) != 0)
    goto out;
  struct teex_ledger_limits ll = {.max_users = cfg.max_tasks,
                                  .max_tasks = cfg.max_tasks};
  d.ledger = teex_ledger_new(d.addr, &ll);
  if (d.ledger == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "ledger");
    goto out;
  }
  struct teex_ratls_keys keys = {.secp256k1_pub = d.pub};
  if ((rc = teex_ratls_identity_new(cfg.tee, &keys, &key, &cert, err)) != 0)
    goto out;
  if (cfg.n_ds_replicas > 0 && (rc = use_ds(&d, key, cert, err)) != 0)
    goto out;
  if ((rc = restore(&d, err)) != 0) {
    teex_err_wrap(err, rc, "restore dispatcher state (%s)",
                  teex_statestore_backend(d.ss));
    goto out;
  }
  d.verifier.policy = &cfg.policy;
  if (cfg.sm_addr != NULL) {
    struct teex_enclave_registration reg;
    rc = teex_sm_client_register(cfg.tee, cert, key, d.pub, cfg.sm_addr,
                                 cfg.sm_policy, &reg, err);
    if (rc == 0 && cfg.registration_file != NULL)
      rc = teex_enclave_registration_write(&reg, cfg.registration_file, err);
    if (rc != 0) {
      teex_err_wrap(err, rc, "register with the SM");
      goto out;
    }
    TEEX_INFO("dispatcher", "registration signed by the SM", "file=%s",
              cfg.registration_file ? cfg.registration_file : "-");
  }
  struct teex_tls_config wtls = {.cert = cert,
                                 .key = key,
                                 .mutual = 1,
                                 .verify_peer = teex_ratls_channel_verify,
                                 .verify_arg = &d.verifier};
  struct teex_tls_config utls = {.cert = cert, .key = key};
  if ((rc = teex_tls_ctx_new(&d.worker_ctx, &wtls, 1, err)) != 0 ||
      (rc = teex_tls_ctx_new(&d.user_ctx, &utls, 1, err)) != 0)
    goto out;
  d.refresh_ctxs[0] = &d.worker_ctx;
  d.refresh_ctxs[1] = &d.user_ctx;
  d.refresh_ctxs[2] = &d.ds_ctx;
  if ((rc = teex_ratls_refresher_start(&loop, cfg.tee, &keys, key, cert,
                                       cfg.cert_refresh_s, d.refresh_ctxs, 3,
                                       &refresher, err)) != 0)
    goto out;
  if ((rc = teex_rpc_server_new(&loop, d.worker_ctx, cfg.worker_listen, NULL,
                                &d.worker_srv, err)) != 0 ||
      (rc = teex_rpc_server_new(&loop, d.user_ctx, cfg.user_listen, NULL,
                                &d.user_srv, err)) != 0)
    goto out;
  teex_rpc_server_register(d.worker_srv, "teex.Health", on_health, &d);
  teex_rpc_server_register(d.worker_srv, "dispatcher.Register", on_register,
                           &d);
  teex_rpc_server_register(d.worker_srv, "dispatcher.Heartbeat", on_heartbeat,
                           &d);
  teex_rpc_server_register(d.worker_srv, "dispatcher.Receipt", on_receipt, &d);
  teex_rpc_server_register(d.user_srv, "teex.Health", on_health, &d);
  teex_rpc_server_register(d.user_srv, "dispatcher.Submit", on_submit, &d);
  teex_rpc_server_register(d.user_srv, "dispatcher.Status", on_status, &d);
  teex_rpc_server_register(d.user_srv, "dispatcher.Base", on_base, &d);
  d.started_ms = d.last_settle_ms = now_ms(&d);
  uv_signal_init(&loop, &d.sigterm);
  uv_signal_init(&loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_timer_init(&loop, &d.tick);
  d.tick.data = &d;
  uint64_t period = cfg.heartbeat_timeout_ms / 4;
  if (period < 50)
    period = 50;
  if (period > 1000)
    period = 1000;
  uv_timer_start(&d.tick, on_tick, period, period);
  if (cfg.ready_file != NULL && (rc = write_ready(cfg.ready_file, &d, err)))
    goto out;
  {
    char hex[43];
    hex_addr(d.addr, hex);
    TEEX_INFO("dispatcher", "serving", "address=%s worker_port=%d user_port=%d",
              hex, teex_rpc_server_port(d.worker_srv),
              teex_rpc_server_port(d.user_srv));
  }
  {
    /* Batches a crash left in flight are resolved now, not at the next
     * settlement (which may be far: one receipt pending of a batch the
     * crash cut short). An error (the chain unreadable) leaves them to
     * settle_once. */
    struct teex_err e2;
    teex_err_clear(&e2);
    if (recover_batches(&d, &e2) != 0)
      TEEX_WARN("dispatcher", "batches in flight not checked yet",
                "reason=\"%s\"", e2.msg);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  if (!d.stopping) {
    if (d.worker_srv)
      teex_rpc_server_close(d.worker_srv);
    if (d.user_srv)
      teex_rpc_server_close(d.user_srv);
    if (uv_is_active((uv_handle_t *)&d.tick)) {
      uv_timer_stop(&d.tick);
      uv_close((uv_handle_t *)&d.tick, NULL);
      uv_close((uv_handle_t *)&d.sigterm, NULL);
      uv_close((uv_handle_t *)&d.sigint, NULL);
    }
  }
  teex_ratls_refresher_close(refresher);
  uv_run(&loop, UV_RUN_DEFAULT); /* let handles close */
  uv_loop_close(&loop);
  teex_statestore_close(d.ss); /* before the TLS context it borrows */
  teex_tls_ctx_free(d.worker_ctx);
  teex_tls_ctx_free(d.user_ctx);
  teex_tls_ctx_free(d.ds_ctx);
  EVP_PKEY_free(key);
  X509_free(cert);
  teex_ledger_free(d.ledger);
  teex_sched_free(d.sched);
  teex_store_close(d.store);
  teex_secret_free(d.sk);
  for (uint32_t i = 0; d.tasks != NULL && i < d.max_tasks; i++)
    free(d.tasks[i]);
  free(d.tasks);
  free(d.gens);
  free(d.index);
  free(d.workers);
  return rc;
}
