/* The TEE-DS consensus interface implemented on canonical raft (libraft
 * 0.15). This file is the only one in TEE-DS that includes raft.h. */
#include "ds/consensus.h"

#include "teex/log.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>

/* Largest entry we hand raft: above a sealed maximal TEE-DS command
 * (TEEX_DS_CMD_MAX, about 4.2 MiB, plus 76 bytes of header and tag). */
#define RAFT_ENTRY_MAX (8u * 1024 * 1024)

struct craft {
  struct teex_ds_consensus base;
  struct raft_fsm fsm;
  struct raft *raft;
  /* The result of the entry being applied, until the proposer's callback
   * (which raft invokes right after fsm->apply, on the proposing replica
   * only) takes it; released at the next apply otherwise. */
  void *stash;
  int failed;
};

struct apply_req {
  struct raft_apply req;
  struct craft *c;
  teex_ds_propose_cb cb;
  void *arg;
};

struct barrier_req {
  struct raft_barrier req;
  teex_ds_barrier_cb cb;
  void *arg;
};

struct change_req {
  struct raft_change req;
  struct craft *c;
  uint64_t id;
  int step; /* 0: added as spare, 1: promoted */
  teex_ds_change_cb cb;
  void *arg;
};

static int map_err(int rv) {
  switch (rv) {
  case 0:
    return 0;
  case RAFT_NOMEM:
    return TEEX_ENOMEM;
  case RAFT_NOTLEADER:
  case RAFT_LEADERSHIPLOST:
    return TEEX_ESTATE;
  case RAFT_SHUTDOWN:
    return TEEX_ECANCELED;
  case RAFT_TOOBIG:
    return TEEX_ETOOBIG;
  case RAFT_CANTCHANGE:
    return TEEX_EAGAIN; /* another membership change is in progress */
  case RAFT_NOCONNECTION:
    return TEEX_ECONN; /* a promotion whose server did not catch up */
  case RAFT_DUPLICATEID:
  case RAFT_DUPLICATEADDRESS:
    return TEEX_EEXIST;
  case RAFT_BADID:
    return TEEX_ENOTFOUND;
  default:
    return TEEX_EINTERNAL;
  }
}

static void drop_stash(struct craft *c) {
  if (c->stash != NULL && c->base.hooks->result_free)
    c->base.hooks->result_free(c->base.sm, c->stash);
  c->stash = NULL;
}

/* raft_uv (0.15) mis-reads an open segment whose entries are not a multiple
 * of 8 bytes long after a restart: it loads the first batch only, so entries
 * acknowledged before a crash vanish from the log. Every proposal is padded:
 *   data | zero bytes | n   (total a multiple of 8; n = 1..8 bytes added)
 * and unpadded strictly before the state machine sees it. */
#define PAD_ALIGN 8u

static size_t padded_len(size_t len) {
  return (len / PAD_ALIGN + 1) * PAD_ALIGN; /* adds 1..8 bytes */
}

static int unpad(const struct raft_buffer *buf, size_t *len) {
  const uint8_t *p = buf->base;
  if (buf->len < PAD_ALIGN || buf->len % PAD_ALIGN != 0)
    return TEEX_EFORMAT;
  size_t n = p[buf->len - 1];
  if (n < 1 || n > PAD_ALIGN)
    return TEEX_EFORMAT;
  for (size_t i = buf->len - n; i < buf->len - 1; i++)
    if (p[i] != 0)
      return TEEX_EFORMAT;
  *len = buf->len - n;
  return 0;
}

/* ---- the FSM raft drives ---- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result) {
  struct craft *c = fsm->data;
  *result = NULL;
  drop_stash(c);
  if (c->failed)
    return RAFT_IOERR;
  /* raft updates last_applied after this returns: this entry's index is the
   * next one. */
  uint64_t index = raft_last_applied(c->raft) + 1;
  void *res = NULL;
  size_t len = 0;
  int rc = unpad(buf, &len);
  if (rc == 0)
    rc = c->base.hooks->apply(c->base.sm, index, buf->base, len, &res);
  if (rc != 0) {
    /* Refusing here stops raft from advancing last_applied: every later
     * entry waits behind this one, so the replica halts, never diverges. */
    c->failed = rc;
    teex_log(TEEX_LOG_ERROR, "ds", "replica halted: cannot apply entry",
             "index=%llu code=%s", (unsigned long long)index,
             teex_err_name(rc));
    return RAFT_IOERR;
  }
  c->stash = res;
  *result = c; /* non-NULL marker: the real result is in the stash */
  return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs) {
  struct craft *c = fsm->data;
  uint8_t *data;
  size_t len;
  if (c->failed || c->base.hooks->snapshot == NULL)
    return RAFT_IOERR;
  int rc = c->base.hooks->snapshot(c->base.sm, &data, &len);
  if (rc != 0)
    return rc == TEEX_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
  *bufs = malloc(sizeof(**bufs));
  if (*bufs == NULL) {
    free(data);
    return RAFT_NOMEM;
  }
  (*bufs)[0].base = data;
  (*bufs)[0].len = len;
  *n_bufs = 1;
  return 0;
}

/* Version 2: raft does not own the snapshot buffers; we free them here. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs) {
  (void)fsm;
  if (*bufs != NULL) {
    for (unsigned i = 0; i < *n_bufs; i++)
      free((*bufs)[i].base);
    free(*bufs);
  }
  *bufs = NULL;
  *n_bufs = 0;
  return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf) {
  struct craft *c = fsm->data;
  if (c->base.hooks->restore == NULL)
    return RAFT_IOERR;
  int rc = c->base.hooks->restore(c->base.sm, buf->base, buf->len);
  if (rc != 0) {
    c->failed = rc;
    teex_log(TEEX_LOG_ERROR, "ds", "replica halted: cannot restore snapshot",
             "code=%s", teex_err_name(rc));
    return RAFT_IOERR;
  }
  raft_free(buf->base); /* on success the FSM owns the buffer */
  return 0;
}

/* ---- ops ---- */

static void apply_done(struct raft_apply *req, int status, void *result) {
  struct apply_req *a = req->data;
  struct craft *c = a->c;
  void *res = NULL;
  if (status == 0 && result == c) {
    res = c->stash;
    c->stash = NULL;
  }
  if (a->cb)
    a->cb(a->arg, map_err(status), res);
  else if (res)
    c->base.hooks->result_free(c->base.sm, res);
  free(a);
}

static int op_propose(struct teex_ds_consensus *base, const uint8_t *data,
                      size_t len, teex_ds_propose_cb cb, void *arg) {
  struct craft *c = (struct craft *)base;
  if (c->raft == NULL || raft_state(c->raft) != RAFT_LEADER)
    return TEEX_ESTATE;
  if (len == 0 || len > RAFT_ENTRY_MAX)
    return TEEX_ETOOBIG;
  struct apply_req *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return TEEX_ENOMEM;
  size_t total = padded_len(len);
  struct raft_buffer b = {raft_malloc(total), total};
  if (b.base == NULL) {
    free(a);
    return TEEX_ENOMEM;
  }
  memcpy(b.base, data, len);
  memset((uint8_t *)b.base + len, 0, total - len);
  ((uint8_t *)b.base)[total - 1] = (uint8_t)(total - len);
  a->req.data = a;
  a->c = c;
  a->cb = cb;
  a->arg = arg;
  int rv = raft_apply(c->raft, &a->req, &b, 1, apply_done);
  if (rv != 0) {
    raft_free(b.base);
    free(a);
    return map_err(rv);
  }
  return 0;
}

static void barrier_done(struct raft_barrier *req, int status) {
  struct barrier_req *b = req->data;
  if (b->cb)
    b->cb(b->arg, map_err(status));
  free(b);
}

static int op_barrier(struct teex_ds_consensus *base, teex_ds_barrier_cb cb,
                      void *arg) {
  struct craft *c = (struct craft *)base;
  if (c->raft == NULL || raft_state(c->raft) != RAFT_LEADER)
    return TEEX_ESTATE;
  struct barrier_req *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return TEEX_ENOMEM;
  b->req.data = b;
  b->cb = cb;
  b->arg = arg;
  int rv = raft_barrier(c->raft, &b->req, barrier_done);
  if (rv != 0) {
    free(b);
    return map_err(rv);
  }
  return 0;
}

static void change_done(struct raft_change *req, int status) {
  struct change_req *ch = req->data;
  if (status == 0 && ch->step == 0) {
    /* Added as a spare; now promote it. libraft catches it up first. */
    ch->step = 1;
    int rv =
        raft_assign(ch->c->raft, &ch->req, ch->id, RAFT_VOTER, change_done);
    if (rv == 0)
      return;
    status = rv;
  }
  if (ch->cb)
    ch->cb(ch->arg, map_err(status));
  free(ch);
}

static int op_add_voter(struct teex_ds_consensus *base, uint64_t id,
                        const char *address, teex_ds_change_cb cb, void *arg) {
  struct craft *c = (struct craft *)base;
  if (c->raft == NULL || raft_state(c->raft) != RAFT_LEADER)
    return TEEX_ESTATE;
  if (id == 0 || address == NULL)
    return TEEX_EINVAL;
  struct change_req *ch = calloc(1, sizeof(*ch));
  if (ch == NULL)
    return TEEX_ENOMEM;
  ch->req.data = ch;
  ch->c = c;
  ch->id = id;
  ch->cb = cb;
  ch->arg = arg;
  int rv = raft_add(c->raft, &ch->req, id, address, change_done);
  if (rv != 0) {
    free(ch);
    return rv == RAFT_DUPLICATEID ? TEEX_EEXIST : map_err(rv);
  }
  return 0;
}

static int op_remove(struct teex_ds_consensus *base, uint64_t id,
                     teex_ds_change_cb cb, void *arg) {
  struct craft *c = (struct craft *)base;
  if (c->raft == NULL || raft_state(c->raft) != RAFT_LEADER)
    return TEEX_ESTATE;
  struct change_req *ch = calloc(1, sizeof(*ch));
  if (ch == NULL)
    return TEEX_ENOMEM;
  ch->req.data = ch;
  ch->c = c;
  ch->id = id;
  ch->step = 1;
  ch->cb = cb;
  ch->arg = arg;
  int rv = raft_remove(c->raft, &ch->req, id, change_done);
  if (rv != 0) {
    free(ch);
    return rv == RAFT_BADID ? TEEX_ENOTFOUND : map_err(rv);
  }
  return 0;
}

struct transfer_req {
  struct raft_transfer req;
  teex_ds_change_cb cb;
  void *arg;
};

static void transfer_done(struct raft_transfer *req) {
  struct transfer_req *t = req->data;
  if (t->cb)
    t->cb(t->arg, 0);
  free(t);
}

static int op_transfer(struct teex_ds_consensus *base, uint64_t to,
                       teex_ds_change_cb cb, void *arg) {
  struct craft *c = (struct craft *)base;
  if (c->raft == NULL || raft_state(c->raft) != RAFT_LEADER)
    return TEEX_ESTATE;
  struct transfer_req *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return TEEX_ENOMEM;
  t->req.data = t;
  t->cb = cb;
  t->arg = arg;
  int rv = raft_transfer(c->raft, &t->req, to, transfer_done);
  if (rv != 0) {
    free(t);
    return rv == RAFT_BADID ? TEEX_ENOTFOUND : map_err(rv);
  }
  return 0;
}

static int op_is_leader(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  return c->raft != NULL && raft_state(c->raft) == RAFT_LEADER;
}

static uint64_t op_leader_id(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  raft_id id = 0;
  const char *addr = NULL;
  if (c->raft)
    raft_leader(c->raft, &id, &addr);
  return id;
}

static uint64_t op_self_id(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  return c->raft ? c->raft->id : 0;
}

static uint64_t op_term(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  return c->raft ? c->raft->current_term : 0;
}

static uint64_t op_last_applied(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  return c->raft ? raft_last_applied(c->raft) : 0;
}

static uint64_t op_last_index(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  return c->raft ? raft_last_index(c->raft) : 0;
}

static int op_failed(struct teex_ds_consensus *base) {
  return ((struct craft *)base)->failed;
}

static void op_free(struct teex_ds_consensus *base) {
  struct craft *c = (struct craft *)base;
  if (c == NULL)
    return;
  drop_stash(c);
  free(c);
}

static const struct teex_ds_consensus_ops raft_ops = {
    .version = TEEX_DS_CONSENSUS_VERSION,
    .propose = op_propose,
    .barrier = op_barrier,
    .is_leader = op_is_leader,
    .leader_id = op_leader_id,
    .self_id = op_self_id,
    .term = op_term,
    .last_applied = op_last_applied,
    .last_index = op_last_index,
    .add_voter = op_add_voter,
    .remove = op_remove,
    .failed = op_failed,
    .free = op_free,
    .transfer = op_transfer,
};

int teex_ds_raft_new(const struct teex_ds_sm_hooks *hooks, void *sm,
                     struct teex_ds_consensus **out) {
  struct craft *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return TEEX_ENOMEM;
  c->base.ops = &raft_ops;
  c->base.hooks = hooks;
  c->base.sm = sm;
  c->fsm.version = 2;
  c->fsm.data = c;
  c->fsm.apply = fsm_apply;
  c->fsm.snapshot = fsm_snapshot;
  c->fsm.restore = fsm_restore;
  c->fsm.snapshot_finalize = fsm_snapshot_finalize;
  *out = &c->base;
  return 0;
}

struct raft_fsm *teex_ds_raft_fsm(struct teex_ds_consensus *base) {
  return &((struct craft *)base)->fsm;
}

void teex_ds_raft_attach(struct teex_ds_consensus *base, struct raft *r) {
  ((struct craft *)base)->raft = r;
}
