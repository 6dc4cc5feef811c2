/* A TEE-DS replica: seals commands under the group key before proposing
 * them, and opens, checks and applies committed entries in log order. */
#include "ds/replica.h"

#include "ds/keyset.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct teex_ds_replica {
  uint8_t group_id[16];
  struct teex_ds_keyset *keys; /* locked memory; the last is current */
  int (*need_key)(void *, struct teex_ds_replica *, uint32_t);
  void *need_key_arg;
  uint64_t (*clock_ms)(void *);
  void *clock_arg;
  struct teex_ds_kv *kv;
  struct teex_ds_consensus *c;
  uint64_t seq;                 /* proposer sequence, per process */
  uint64_t last_term, last_seq; /* last applied entry's (term, seq) */
  uint64_t refused;
  uint8_t chain[32]; /* hash chain over every applied entry and its result */
  /* The chain after each of the last CHAIN_RING applied commands (ring,
   * oldest at ring_head once full): carried in snapshots, so a replica
   * restored from one still knows the chain at recent indexes. */
  struct chain_point *ring;
  size_t ring_n, ring_head;
  /* Freshness anchor: the chain expected as of log index watch_index (0:
   * none). Comparable while chain_valid: the chain was computed from the
   * first entry, or restored from a snapshot that carries it (a TXS1
   * snapshot, of an older build, does not). */
  uint64_t watch_index;
  uint8_t watch_chain[32];
  int chain_valid;
  int watch_result; /* enum teex_ds_watch */
  int failed;
  char failure[256];
};

#define CHAIN_RING 1024
#define CHAIN_POINT_LEN 40 /* index u64 | chain 32 */
struct chain_point {
  uint64_t index;
  uint8_t chain[32];
};

static uint64_t realtime_ms(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int teex_ds_replica_new(const struct teex_ds_replica_config *cfg,
                        struct teex_ds_replica **out, struct teex_err *err) {
  if (cfg == NULL || (cfg->group_key == NULL && cfg->group_keys == NULL))
    return teex_err_set(err, TEEX_EINVAL, "ds replica: no group key");
  struct teex_ds_replica *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds replica: out of memory");
  r->keys = teex_secret_alloc(sizeof(*r->keys));
  r->ring = calloc(CHAIN_RING, sizeof(*r->ring));
  if (r->keys == NULL || r->ring == NULL || teex_ds_kv_new(&r->kv) != 0) {
    teex_ds_replica_free(r);
    return teex_err_set(err, TEEX_ENOMEM, "ds replica: out of memory");
  }
  if (cfg->group_keys != NULL) {
    int rc = teex_ds_keyset_decode(cfg->group_keys, cfg->group_keys_len,
                                   r->keys, err);
    if (rc != 0) {
      teex_ds_replica_free(r);
      return teex_err_wrap(err, 0, "ds replica");
    }
  } else {
    r->keys->n = 1;
    memcpy(r->keys->key[0], cfg->group_key, 32);
  }
  r->need_key = cfg->need_key;
  r->need_key_arg = cfg->need_key_arg;
  memcpy(r->group_id, cfg->group_id, 16);
  r->clock_ms = cfg->clock_ms ? cfg->clock_ms : realtime_ms;
  r->clock_arg = cfg->clock_arg;
  r->chain_valid = 1;
  *out = r;
  return 0;
}

void teex_ds_replica_free(struct teex_ds_replica *r) {
  if (r == NULL)
    return;
  teex_secret_free(r->keys);
  teex_ds_kv_free(r->kv);
  free(r->ring);
  free(r);
}

void teex_ds_replica_bind(struct teex_ds_replica *r,
                          struct teex_ds_consensus *c) {
  r->c = c;
}

int teex_ds_replica_add_keys(struct teex_ds_replica *r, const uint8_t *keys,
                             size_t len, struct teex_err *err) {
  struct teex_ds_keyset *k = teex_secret_alloc(sizeof(*k));
  if (k == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  int rc = teex_ds_keyset_decode(keys, len, k, err);
  if (rc == 0) {
    /* all or nothing: merge into a copy */
    struct teex_ds_keyset *m = teex_secret_alloc(sizeof(*m));
    if (m == NULL)
      rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
    else {
      memcpy(m, r->keys, sizeof(*m));
      rc = teex_ds_keyset_merge(m, k, err);
      if (rc == 0)
        memcpy(r->keys, m, sizeof(*m));
      teex_secret_free(m);
    }
  }
  teex_secret_free(k);
  return rc;
}

int teex_ds_replica_rotate(struct teex_ds_replica *r, const uint8_t key[32],
                           uint32_t *epoch, struct teex_err *err) {
  uint32_t cur = teex_ds_keyset_current(r->keys);
  if (cur == UINT32_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "no key epoch left");
  int rc = teex_ds_keyset_add(r->keys, cur + 1, key, err);
  if (rc == 0 && epoch != NULL)
    *epoch = cur + 1;
  return rc;
}

size_t teex_ds_replica_keys_encode(const struct teex_ds_replica *r,
                                   uint8_t *out) {
  return teex_ds_keyset_encode(r->keys, out);
}

uint32_t teex_ds_replica_key_epoch(const struct teex_ds_replica *r) {
  return teex_ds_keyset_current(r->keys);
}

/* The key of epoch e, asking need_key once if this replica lacks it. */
static const uint8_t *key_of(struct teex_ds_replica *r, uint32_t e) {
  const uint8_t *k = teex_ds_keyset_get(r->keys, e);
  if (k == NULL && r->need_key != NULL &&
      r->need_key(r->need_key_arg, r, e) == 0)
    k = teex_ds_keyset_get(r->keys, e);
  return k;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

const struct teex_ds_kv *teex_ds_replica_kv(const struct teex_ds_replica *r) {
  return r->kv;
}

/* Builds the sealed entry for cmd at (term, seq). Caller frees *out. */
static int seal_entry(struct teex_ds_replica *r, const struct teex_ds_cmd *cmd,
                      uint64_t term, uint64_t seq, uint8_t **out,
                      size_t *out_len, struct teex_err *err) {
  uint8_t *enc;
  size_t enc_len;
  int rc = teex_ds_cmd_encode(cmd, &enc, &enc_len, err);
  if (rc != 0)
    return rc;
  size_t pt_len = 8 + enc_len;
  uint8_t *pt = malloc(pt_len);
  uint8_t *e = malloc(TEEX_DS_ENTRY_HDR2 + pt_len + TEEX_XAEAD_OVERHEAD);
  if (pt == NULL || e == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "seal entry: out of memory");
    goto done;
  }
  put_u64(pt, r->clock_ms(r->clock_arg));
  memcpy(pt + 8, enc, enc_len);
  /* Sealed under the current (last) epoch: TXD2. */
  uint32_t ep = teex_ds_keyset_current(r->keys);
  memcpy(e, TEEX_DS_ENTRY_MAGIC2, 4);
  memcpy(e + 4, r->group_id, 16);
  put_u32(e + 20, ep);
  put_u64(e + 24, term);
  put_u64(e + 32, seq);
  rc = teex_xaead_seal(teex_ds_keyset_get(r->keys, ep), e, TEEX_DS_ENTRY_HDR2,
                       pt, pt_len, e + TEEX_DS_ENTRY_HDR2);
  if (rc != 0) {
    rc = teex_err_set(err, rc, "seal entry: %s", teex_strerror(rc));
    goto done;
  }
  *out = e;
  *out_len = TEEX_DS_ENTRY_HDR2 + pt_len + TEEX_XAEAD_OVERHEAD;
  e = NULL;
done:
  teex_wipe(enc, enc_len);
  free(enc);
  if (pt != NULL) {
    teex_wipe(pt, pt_len);
    free(pt);
  }
  free(e);
  return rc;
}

struct pending {
  struct teex_ds_replica *r;
  teex_ds_done_cb cb;
  void *arg;
  /* reads: the command, re-decoded from its own copy after the barrier */
  uint8_t *enc;
  size_t enc_len;
};

static void submit_done(void *arg, int status, void *result) {
  struct pending *p = arg;
  p->cb(p->arg, status, status == 0 ? result : NULL);
  free(p);
}

int teex_ds_replica_submit(struct teex_ds_replica *r,
                           const struct teex_ds_cmd *cmd, teex_ds_done_cb cb,
                           void *arg, struct teex_err *err) {
  if (r->c == NULL || !r->c->ops->is_leader(r->c))
    return teex_err_set(err, TEEX_ESTATE, "ds submit: not the leader");
  if (r->failed)
    return teex_err_set(err, TEEX_ESTATE, "ds submit: replica halted: %s",
                        r->failure);
  uint8_t *e = NULL;
  size_t len = 0;
  int rc = seal_entry(r, cmd, r->c->ops->term(r->c), ++r->seq, &e, &len, err);
  if (rc != 0)
    return teex_err_wrap(err, 0, "ds submit");
  struct pending *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    free(e);
    return teex_err_set(err, TEEX_ENOMEM, "ds submit: out of memory");
  }
  p->r = r;
  p->cb = cb;
  p->arg = arg;
  rc = r->c->ops->propose(r->c, e, len, submit_done, p);
  free(e);
  if (rc != 0) {
    free(p);
    return teex_err_set(err, rc, "ds submit: propose: %s", teex_strerror(rc));
  }
  return 0;
}

static void read_done(void *arg, int status) {
  struct pending *p = arg;
  struct teex_ds_result *res = NULL;
  if (status == 0) {
    struct teex_ds_cmd_view *v = malloc(sizeof(*v));
    res = calloc(1, sizeof(*res));
    if (v == NULL || res == NULL ||
        teex_ds_cmd_decode(p->enc, p->enc_len, v, NULL) != 0 ||
        teex_ds_kv_read(p->r->kv, &v->cmd, res) != 0) {
      status = TEEX_ENOMEM;
      free(res);
      res = NULL;
    } else {
      res->index = p->r->c->ops->last_applied(p->r->c);
    }
    free(v);
  }
  p->cb(p->arg, status, res);
  teex_wipe(p->enc, p->enc_len);
  free(p->enc);
  free(p);
}

int teex_ds_replica_read(struct teex_ds_replica *r,
                         const struct teex_ds_cmd *cmd, teex_ds_done_cb cb,
                         void *arg, struct teex_err *err) {
  if (cmd->op != TEEX_DS_GET && cmd->op != TEEX_DS_SCAN &&
      cmd->op != TEEX_DS_COUNT)
    return teex_err_set(err, TEEX_EINVAL, "ds read: not a read command");
  if (r->c == NULL || !r->c->ops->is_leader(r->c))
    return teex_err_set(err, TEEX_ESTATE, "ds read: not the leader");
  struct pending *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds read: out of memory");
  /* Keep an encoded copy: the caller's buffers need not outlive the call. */
  int rc = teex_ds_cmd_encode(cmd, &p->enc, &p->enc_len, err);
  if (rc != 0) {
    free(p);
    return teex_err_wrap(err, 0, "ds read");
  }
  p->r = r;
  p->cb = cb;
  p->arg = arg;
  rc = r->c->ops->barrier(r->c, read_done, p);
  if (rc != 0) {
    free(p->enc);
    free(p);
    return teex_err_set(err, rc, "ds read: barrier: %s", teex_strerror(rc));
  }
  return 0;
}

int teex_ds_replica_read_local(struct teex_ds_replica *r,
                               const struct teex_ds_cmd *cmd,
                               struct teex_ds_result *res) {
  int rc = teex_ds_kv_read(r->kv, cmd, res);
  if (rc == 0 && r->c)
    res->index = r->c->ops->last_applied(r->c);
  return rc;
}

void teex_ds_replica_watch(struct teex_ds_replica *r, uint64_t index,
                           const uint8_t chain[32]) {
  r->watch_index = index;
  memcpy(r->watch_chain, chain, 32);
  r->watch_result = TEEX_DS_WATCH_PENDING;
}

enum teex_ds_watch
teex_ds_replica_watch_result(const struct teex_ds_replica *r) {
  return (enum teex_ds_watch)r->watch_result;
}

void teex_ds_replica_status(struct teex_ds_replica *r,
                            struct teex_ds_status *st) {
  memset(st, 0, sizeof(*st));
  if (r->c) {
    st->leader = r->c->ops->is_leader(r->c);
    st->self_id = r->c->ops->self_id(r->c);
    st->leader_id = r->c->ops->leader_id(r->c);
    st->term = r->c->ops->term(r->c);
    st->last_applied = r->c->ops->last_applied(r->c);
    st->last_index = r->c->ops->last_index(r->c);
  }
  st->clock_ms = teex_ds_kv_clock(r->kv);
  st->keys = teex_ds_kv_count(r->kv);
  st->refused = r->refused;
  st->failed = r->failed;
  memcpy(st->applied_chain, r->chain, 32);
  snprintf(st->failure, sizeof(st->failure), "%s", r->failure);
}

/* ---- hooks ---- */

static int halt(struct teex_ds_replica *r, int code, uint64_t index,
                const char *why) {
  r->failed = code;
  snprintf(r->failure, sizeof(r->failure), "entry %llu: %s",
           (unsigned long long)index, why);
  return code;
}

/* chain = SHA-256(chain | index | status | found | num | val_len |
 *                 SHA-256(sealed entry) | val | items): equal on two
 * replicas iff they applied the same entries (the sealed bytes, so a fork
 * whose commands happen to give the same results still differs) with the
 * same results. */
static void chain_result(struct teex_ds_replica *r, uint64_t index,
                         const uint8_t *entry, size_t entry_len,
                         const struct teex_ds_result *res) {
  struct teex_sha256_ctx h;
  uint8_t eh[32];
  teex_sha256(entry, entry_len, eh);
  uint8_t b[8 + 4 + 4 + 8 + 8];
  put_u64(b, index);
  put_u64(b + 8, (uint64_t)(uint32_t)res->status |
                     (uint64_t)(uint32_t)res->found << 32);
  put_u64(b + 16, (uint64_t)res->num);
  put_u64(b + 24, res->val_len);
  teex_sha256_init(&h);
  teex_sha256_update(&h, r->chain, 32);
  teex_sha256_update(&h, b, 32);
  teex_sha256_update(&h, eh, 32);
  if (res->val_len)
    teex_sha256_update(&h, res->val, res->val_len);
  for (size_t i = 0; i < res->n_items; i++) {
    teex_sha256_update(&h, res->items[i].key, res->items[i].key_len);
    teex_sha256_update(&h, res->items[i].val, res->items[i].val_len);
  }
  teex_sha256_final(&h, r->chain);
  struct chain_point *pt = &r->ring[(r->ring_head + r->ring_n) % CHAIN_RING];
  if (r->ring_n == CHAIN_RING)
    r->ring_head = (r->ring_head + 1) % CHAIN_RING; /* overwrite the oldest */
  else
    r->ring_n++;
  pt->index = index;
  memcpy(pt->chain, r->chain, 32);
}

/* Compares chain (the applied chain as of the watched index) with the
 * anchor's: 0 if it matches (or cannot be compared: recorded as skipped),
 * TEEX_EROLLBACK (replica halted) if it differs. */
static int watch_check(struct teex_ds_replica *r, const uint8_t chain[32],
                       uint64_t index) {
  if (!r->chain_valid) {
    r->watch_result = TEEX_DS_WATCH_SKIPPED;
  } else if (!teex_ct_equal(chain, r->watch_chain, 32)) {
    r->watch_result = TEEX_DS_WATCH_FORKED;
    return halt(r, TEEX_EROLLBACK, index,
                "forked: the applied hash chain differs from the group's "
                "anchor at this index");
  } else {
    r->watch_result = TEEX_DS_WATCH_MATCHED;
  }
  return 0;
}

static int watch_pending(const struct teex_ds_replica *r) {
  return r->watch_index != 0 && r->watch_result == TEEX_DS_WATCH_PENDING;
}

static int hook_apply(void *sm, uint64_t index, const uint8_t *data, size_t len,
                      void **result) {
  struct teex_ds_replica *r = sm;
  *result = NULL;
  int v2 = len >= 4 && memcmp(data, TEEX_DS_ENTRY_MAGIC2, 4) == 0;
  size_t hdr = v2 ? TEEX_DS_ENTRY_HDR2 : TEEX_DS_ENTRY_HDR;
  if (len < hdr + TEEX_XAEAD_OVERHEAD + 8 ||
      (!v2 && memcmp(data, TEEX_DS_ENTRY_MAGIC, 4) != 0))
    return halt(r, TEEX_EFORMAT, index, "not a TEE-DS entry");
  if (!teex_ct_equal(data + 4, r->group_id, 16))
    return halt(r, TEEX_EAUTH, index, "entry of another group");
  uint32_t epoch = v2 ? get_u32(data + 20) : 0;
  const uint8_t *key = key_of(r, epoch);
  if (key == NULL) {
    char m[96];
    snprintf(m, sizeof m, "no group key of epoch %u here", epoch);
    return halt(r, TEEX_EAUTH, index, m);
  }
  size_t pt_len = len - hdr - TEEX_XAEAD_OVERHEAD;
  uint8_t *pt = malloc(pt_len);
  struct teex_ds_cmd_view *v = malloc(sizeof(*v));
  struct teex_ds_result *res = calloc(1, sizeof(*res));
  int rc = 0;
  if (pt == NULL || v == NULL || res == NULL) {
    rc = TEEX_ENOMEM;
    goto done;
  }
  if (teex_xaead_open(key, data, hdr, data + hdr, len - hdr, pt) != 0) {
    rc = halt(r, TEEX_EAUTH, index,
              "cannot decrypt (wrong group key or tampered entry)");
    goto done;
  }
  uint64_t term = get_u64(data + hdr - 16), seq = get_u64(data + hdr - 8);
  /* Entries are in log order, terms never decrease along the log, and one
   * leader numbers its entries increasingly within its term: a (term, seq)
   * that does not increase is a replay or a reordering. Every replica sees
   * the same log, so every replica refuses it alike. */
  if (term < r->last_term || (term == r->last_term && seq <= r->last_seq)) {
    r->refused++;
    res->status = TEEX_EREPLAY;
    res->index = index;
    goto out;
  }
  r->last_term = term;
  r->last_seq = seq;
  struct teex_err e;
  teex_err_clear(&e);
  if (teex_ds_cmd_decode(pt + 8, pt_len - 8, v, &e) != 0) {
    /* Authentic but malformed: the leader sealed it, so every replica
     * refuses it alike (deterministic), and the proposer learns why. */
    res->status = e.code;
    res->index = index;
    goto out;
  }
  rc = teex_ds_kv_apply(r->kv, index, get_u64(pt), &v->cmd, res);
  if (rc != 0)
    goto done;
out:
  /* The anchored index may be an entry that is no command (a barrier, a
   * configuration): the chain as of it is then the chain before the first
   * command after it. */
  if (watch_pending(r) && index > r->watch_index &&
      (rc = watch_check(r, r->chain, r->watch_index)) != 0) {
    teex_ds_result_free(res);
    goto done;
  }
  chain_result(r, index, data, len, res);
  if (watch_pending(r) && index == r->watch_index &&
      (rc = watch_check(r, r->chain, index)) != 0) {
    teex_ds_result_free(res);
    goto done;
  }
  *result = res;
  res = NULL;
done:
  if (pt != NULL) {
    teex_wipe(pt, pt_len);
    free(pt);
  }
  free(v);
  free(res);
  return rc;
}

static void hook_result_free(void *sm, void *result) {
  (void)sm;
  teex_ds_result_free(result);
  free(result);
}

/* Snapshot: "TXS2" | group_id | last_term | last_seq | sealed(plaintext),
 * the 36-byte header as associated data, where
 *   plaintext = chain_valid u8 | n u32 | n x (index u64 | chain 32) | kv
 * the chain points oldest first (the last is the chain at the snapshot).
 * "TXS1" (no chain points: plaintext = kv) is still restored. */
static int hook_snapshot(void *sm, uint8_t **out, size_t *out_len) {
  struct teex_ds_replica *r = sm;
  uint8_t *kv;
  size_t kv_len;
  int rc = teex_ds_kv_snapshot(r->kv, &kv, &kv_len);
  if (rc != 0)
    return rc;
  size_t len = 5 + r->ring_n * CHAIN_POINT_LEN + kv_len;
  uint8_t *snap = malloc(len);
  uint8_t *e = malloc(TEEX_DS_ENTRY_HDR2 + len + TEEX_XAEAD_OVERHEAD);
  if (snap == NULL || e == NULL) {
    free(e);
    rc = TEEX_ENOMEM;
    teex_wipe(kv, kv_len);
    free(kv);
    len = 0;
    goto done;
  }
  snap[0] = (uint8_t)r->chain_valid;
  for (int i = 0; i < 4; i++)
    snap[1 + i] = (uint8_t)(r->ring_n >> (8 * i));
  for (size_t i = 0; i < r->ring_n; i++) {
    const struct chain_point *p = &r->ring[(r->ring_head + i) % CHAIN_RING];
    put_u64(snap + 5 + i * CHAIN_POINT_LEN, p->index);
    memcpy(snap + 5 + i * CHAIN_POINT_LEN + 8, p->chain, 32);
  }
  memcpy(snap + 5 + r->ring_n * CHAIN_POINT_LEN, kv, kv_len);
  teex_wipe(kv, kv_len);
  free(kv);
  uint32_t ep = teex_ds_keyset_current(r->keys);
  memcpy(e, "TXS3", 4);
  memcpy(e + 4, r->group_id, 16);
  put_u32(e + 20, ep);
  put_u64(e + 24, r->last_term);
  put_u64(e + 32, r->last_seq);
  rc = teex_xaead_seal(teex_ds_keyset_get(r->keys, ep), e, TEEX_DS_ENTRY_HDR2,
                       snap, len, e + TEEX_DS_ENTRY_HDR2);
  if (rc != 0) {
    free(e);
    goto done;
  }
  *out = e;
  *out_len = TEEX_DS_ENTRY_HDR2 + len + TEEX_XAEAD_OVERHEAD;
done:
  if (snap != NULL)
    teex_wipe(snap, len);
  free(snap);
  return rc;
}

/* Before a restore replaces anything: an anchored index the snapshot's
 * chain points cover is checked now against the chain as of it (the point
 * of the last command at or before it); one beyond them is compared when
 * applied; one older than them cannot be (recorded as skipped). points:
 * n x (index u64 | chain 32), indexes increasing. */
static int restore_watch(struct teex_ds_replica *r, const uint8_t *points,
                         size_t n, int valid) {
  if (!watch_pending(r) || n == 0)
    return 0;
  uint64_t first = get_u64(points),
           last = get_u64(points + (n - 1) * CHAIN_POINT_LEN);
  if (r->watch_index > last)
    return 0;
  if (r->watch_index < first || !valid) {
    r->watch_result = TEEX_DS_WATCH_SKIPPED;
    return 0;
  }
  size_t k = n - 1;
  while (get_u64(points + k * CHAIN_POINT_LEN) > r->watch_index)
    k--;
  return watch_check(r, points + k * CHAIN_POINT_LEN + 8, r->watch_index);
}

static int hook_restore(void *sm, const uint8_t *data, size_t len) {
  struct teex_ds_replica *r = sm;
  int v3 = len >= 4 && memcmp(data, "TXS3", 4) == 0;
  int v2 = v3 || (len >= 4 && memcmp(data, "TXS2", 4) == 0);
  size_t hdr = v3 ? TEEX_DS_ENTRY_HDR2 : TEEX_DS_ENTRY_HDR;
  if (len < hdr + TEEX_XAEAD_OVERHEAD ||
      (!v2 && memcmp(data, "TXS1", 4) != 0) ||
      !teex_ct_equal(data + 4, r->group_id, 16))
    return halt(r, TEEX_EFORMAT, 0, "not a snapshot of this group");
  uint32_t epoch = v3 ? get_u32(data + 20) : 0;
  const uint8_t *key = key_of(r, epoch);
  if (key == NULL)
    return halt(r, TEEX_EAUTH, 0, "no group key of the snapshot's epoch here");
  size_t pt_len = len - hdr - TEEX_XAEAD_OVERHEAD;
  uint8_t *pt = malloc(pt_len ? pt_len : 1);
  if (pt == NULL)
    return TEEX_ENOMEM;
  int rc = teex_xaead_open(key, data, hdr, data + hdr, len - hdr, pt);
  if (rc != 0) {
    rc = halt(r, TEEX_EAUTH, 0, "cannot decrypt snapshot");
  } else {
    /* The chain points (TXS2), checked before anything is replaced. */
    size_t off = 0, n = 0;
    int valid = 0;
    if (v2) {
      if (pt_len < 5 || pt[0] > 1)
        rc = TEEX_EFORMAT;
      else {
        valid = pt[0];
        n = (size_t)pt[1] | (size_t)pt[2] << 8 | (size_t)pt[3] << 16 |
            (size_t)pt[4] << 24;
        if (n > CHAIN_RING || pt_len - 5 < n * CHAIN_POINT_LEN)
          rc = TEEX_EFORMAT;
        off = 5 + n * CHAIN_POINT_LEN;
      }
      for (size_t i = 1; rc == 0 && i < n; i++)
        if (get_u64(pt + 5 + i * CHAIN_POINT_LEN) <=
            get_u64(pt + 5 + (i - 1) * CHAIN_POINT_LEN))
          rc = TEEX_EFORMAT; /* indexes must increase */
      if (rc != 0)
        halt(r, rc, 0, "snapshot: bad hash chain points");
      else
        rc = restore_watch(r, pt + 5, n, valid);
    }
    struct teex_err e;
    teex_err_clear(&e);
    if (rc == 0 &&
        (rc = teex_ds_kv_restore(r->kv, pt + off, pt_len - off, &e)) != 0) {
      halt(r, rc, 0, teex_err_msg(&e));
    } else if (rc == 0) {
      r->last_term = get_u64(data + hdr - 16);
      r->last_seq = get_u64(data + hdr - 8);
      r->chain_valid = valid;
      r->ring_head = 0;
      r->ring_n = n;
      for (size_t i = 0; i < n; i++) {
        r->ring[i].index = get_u64(pt + 5 + i * CHAIN_POINT_LEN);
        memcpy(r->ring[i].chain, pt + 5 + i * CHAIN_POINT_LEN + 8, 32);
      }
      if (n > 0)
        memcpy(r->chain, r->ring[n - 1].chain, 32);
      else
        memset(r->chain, 0, 32);
      if (!valid && watch_pending(r))
        r->watch_result = TEEX_DS_WATCH_SKIPPED;
    }
  }
  teex_wipe(pt, pt_len);
  free(pt);
  return rc;
}

const struct teex_ds_sm_hooks teex_ds_replica_hooks = {
    .apply = hook_apply,
    .result_free = hook_result_free,
    .snapshot = hook_snapshot,
    .restore = hook_restore,
};
