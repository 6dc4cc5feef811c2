/* Sealed, rollback-evident raft term and vote (see sealed_io.h). */
#include "ds/sealed_io.h"

#include "teex/buf.h"
#include "teex/log.h"
#include "teex/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD_MAGIC "TXRS"
#define RECORD_LEN (4 + 5 * 8)
/* The persisted index is rewritten at most every this many raft ticks (one
 * per heartbeat: 30 ms with the daemon's settings, so about once a second),
 * and at a truncation and at close. */
#define RECORD_EVERY_TICKS 33
#define RECORD_MAX 4096 /* a sealed record file, bytes */
static const char record_ctx[] = "teex-ds raft term/vote/index record v2";

int teex_ds_write_atomic(const char *path, const void *p, size_t n,
                         struct teex_err *err) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "open %s: %s", tmp, strerror(errno));
  const uint8_t *q = p;
  size_t left = n;
  while (left > 0) {
    ssize_t w = write(fd, q, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return teex_err_set(err, TEEX_EIO, "write %s: %s", tmp, strerror(e));
    }
    q += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return teex_err_set(err, TEEX_EIO, "write %s: %s", path, strerror(e));
  }
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static int record_write(struct teex_ds_sealed_io *s, struct teex_err *err) {
  uint8_t pt[RECORD_LEN];
  memcpy(pt, RECORD_MAGIC, 4);
  put64(pt + 4, s->term);
  put64(pt + 12, s->vote);
  put64(pt + 20, s->prev_term);
  put64(pt + 28, s->prev_vote);
  put64(pt + 36, s->index);
  uint8_t ctx[sizeof(record_ctx) + 16];
  memcpy(ctx, record_ctx, sizeof(record_ctx));
  memcpy(ctx + sizeof(record_ctx), s->group_id, 16);
  struct teex_buf out;
  teex_buf_init(&out, RECORD_MAX, 0);
  int rc = teex_seal(s->tee, TEEX_SEAL_ENCLAVE, ctx, sizeof(ctx), pt,
                     sizeof(pt), &out, err);
  if (rc == 0)
    rc = teex_ds_write_atomic(s->path, out.data, out.len, err);
  teex_buf_free(&out);
  if (rc == 0)
    s->have_record = 1;
  return rc;
}

/* 0 and the record, TEEX_ENOTFOUND when absent, else why it is unusable. */
static int record_read(struct teex_ds_sealed_io *s, struct teex_err *err) {
  FILE *f = fopen(s->path, "rb");
  if (f == NULL)
    return errno == ENOENT ? TEEX_ENOTFOUND
                           : teex_err_set(err, TEEX_EIO, "open %s", s->path);
  uint8_t blob[RECORD_MAX];
  size_t n = fread(blob, 1, sizeof(blob), f);
  int big = fgetc(f) != EOF;
  fclose(f);
  if (big)
    return teex_err_set(err, TEEX_ETOOBIG, "%s: larger than %d bytes", s->path,
                        RECORD_MAX);
  uint8_t ctx[sizeof(record_ctx) + 16];
  memcpy(ctx, record_ctx, sizeof(record_ctx));
  memcpy(ctx + sizeof(record_ctx), s->group_id, 16);
  struct teex_buf pt;
  teex_buf_init(&pt, RECORD_MAX, 0);
  int rc = teex_unseal(s->tee, ctx, sizeof(ctx), blob, n, &pt, err);
  if (rc == 0 && (pt.len != RECORD_LEN || memcmp(pt.data, RECORD_MAGIC, 4)))
    rc =
        teex_err_set(err, TEEX_EFORMAT, "%s: not a raft state record", s->path);
  if (rc == 0) {
    s->term = get64(pt.data + 4);
    s->vote = get64(pt.data + 12);
    s->prev_term = get64(pt.data + 20);
    s->prev_vote = get64(pt.data + 28);
    s->index = get64(pt.data + 36);
    s->have_record = 1;
  }
  teex_buf_free(&pt);
  return rc;
}

#define SIO(io) ((struct teex_ds_sealed_io *)(io))
#define INNER_ERR(s, rv)                                                       \
  do {                                                                         \
    if ((rv) != 0)                                                             \
      snprintf((s)->io.errmsg, sizeof((s)->io.errmsg), "%s",                   \
               (s)->inner->errmsg);                                            \
  } while (0)

static void become_fresh(struct teex_ds_sealed_io *s, const char *why) {
  struct teex_err err;
  if (record_write(s, &err) != 0) {
    TEEX_ERROR("ds", "cannot write the sealed raft record", "reason=\"%s\"",
               err.msg);
    return;
  }
  s->fresh = 1;
  if (s->rolled_back)
    TEEX_INFO("ds", "rolled-back replica caught up past the anchor",
              "anchor=%llu", (unsigned long long)s->anchor_floor);
  s->rolled_back = 0;
  TEEX_INFO("ds", "replica votes again", "reason=\"%s\" term=%llu", why,
            (unsigned long long)s->term);
}

static void check_caught_up(struct teex_ds_sealed_io *s) {
  struct raft *r = s->io.data;
  if (!s->fresh && s->catch_up_to > 0 && r != NULL &&
      raft_last_index(r) >= s->catch_up_to)
    become_fresh(s, "caught up with the leader's commit index");
}

static int w_init(struct raft_io *io, raft_id id, const char *address) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->init(s->inner, id, address);
  INNER_ERR(s, rv);
  return rv;
}

static void w_closed(struct raft_io *inner) {
  struct teex_ds_sealed_io *s = inner->data;
  free(s->outq);
  s->outq = NULL;
  s->n_outq = 0;
  if (s->close_cb != NULL)
    s->close_cb(&s->io);
}

static void w_close(struct raft_io *io, raft_io_close_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  if (s->fresh && s->have_record && s->persisted > s->index) {
    struct teex_err err;
    s->index = s->persisted;
    if (record_write(s, &err) != 0)
      TEEX_ERROR("ds", "cannot write the sealed raft record", "reason=\"%s\"",
                 err.msg);
  }
  teex_ds_sealed_io_flush(s); /* raft_uv cancels what it cannot send */
  s->close_cb = cb;
  s->inner->data = s;
  s->inner->close(s->inner, w_closed);
}

static void free_loaded(struct raft_snapshot *snap, struct raft_entry *entries,
                        size_t n) {
  void *last_batch = NULL;
  for (size_t i = 0; i < n; i++) {
    if (entries[i].batch != NULL && entries[i].batch != last_batch) {
      last_batch = entries[i].batch;
      raft_free(last_batch);
    }
  }
  raft_free(entries);
  if (snap != NULL) {
    raft_configuration_close(&snap->configuration);
    for (unsigned i = 0; i < snap->n_bufs; i++)
      raft_free(snap->bufs[i].base);
    raft_free(snap->bufs);
    raft_free(snap);
  }
}

/* A log that ends below the group's anchor on chain was rolled back (the
 * whole state directory restored from an older copy, which the sealed
 * record cannot tell): no vote and no candidacy until the group brings it
 * up to the anchor. If the whole group was rolled back nobody can, and the
 * group serves nothing (docs/threat-model.md). */
static void check_anchor(struct teex_ds_sealed_io *s, uint64_t last) {
  if (s->anchor_floor == 0 || last >= s->anchor_floor)
    return;
  s->fresh = 0;
  s->rolled_back = 1;
  if (s->catch_up_to < s->anchor_floor)
    s->catch_up_to = s->anchor_floor;
  TEEX_ERROR("ds",
             "state rolled back: the log ends below the group's anchor on "
             "chain; not voting or serving until the group brings it up to "
             "the anchor",
             "last=%llu anchored=%llu", (unsigned long long)last,
             (unsigned long long)s->anchor_floor);
}

static int w_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->load(s->inner, term, voted_for, snapshot, start_index,
                          entries, n_entries);
  INNER_ERR(s, rv);
  if (rv != 0)
    return rv;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = record_read(s, &err);
  int empty = *term == 0 && *n_entries == 0 && *snapshot == NULL;
  uint64_t last = *n_entries > 0      ? *start_index + *n_entries - 1
                  : *snapshot != NULL ? (*snapshot)->index
                                      : 0;
  if (rc == TEEX_ENOTFOUND) {
    s->index = 0;
    s->term = *term;
    s->vote = *voted_for;
    s->prev_term = s->term;
    s->prev_vote = s->vote;
    if (empty) {
      become_fresh(s, "new replica");
    } else {
      s->fresh = 0;
      TEEX_WARN("ds",
                "raft state without a sealed record: not voting until "
                "caught up",
                "term=%llu entries=%zu", (unsigned long long)*term, *n_entries);
    }
    check_anchor(s, last);
    return 0;
  }
  if (rc == 0 && ((*term == s->term && *voted_for == s->vote) ||
                  (*term == s->prev_term && *voted_for == s->prev_vote))) {
    s->term = *term;
    s->vote = *voted_for;
    s->persisted = last;
    s->fresh = 1;
    if (last < s->index) {
      s->fresh = 0;
      TEEX_WARN("ds",
                "log ends before the sealed record's persisted index: "
                "not voting until caught up",
                "last=%llu sealed=%llu", (unsigned long long)last,
                (unsigned long long)s->index);
    }
    check_anchor(s, last);
    return 0;
  }
  if (rc == 0)
    snprintf(io->errmsg, sizeof(io->errmsg),
             "raft metadata (term %llu, vote %llu) disagrees with the sealed "
             "record (term %llu, vote %llu): tampered or rolled back",
             (unsigned long long)*term, (unsigned long long)*voted_for,
             (unsigned long long)s->term, (unsigned long long)s->vote);
  else
    snprintf(io->errmsg, sizeof(io->errmsg), "sealed raft record unusable: %s",
             err.msg);
  free_loaded(*snapshot, *entries, *n_entries);
  *snapshot = NULL;
  *entries = NULL;
  *n_entries = 0;
  return RAFT_CORRUPT;
}

static void w_tick(struct raft_io *inner) {
  struct teex_ds_sealed_io *s = inner->data;
  check_caught_up(s);
  if (s->fresh && s->persisted > s->index && ++s->ticks >= RECORD_EVERY_TICKS) {
    struct teex_err err;
    uint64_t old = s->index;
    s->ticks = 0;
    s->index = s->persisted;
    if (record_write(s, &err) != 0) {
      s->index = old;
      TEEX_ERROR("ds", "cannot write the sealed raft record", "reason=\"%s\"",
                 err.msg);
    }
  }
  s->tick(&s->io);
}

static void w_recv(struct raft_io *inner, struct raft_message *msg) {
  struct teex_ds_sealed_io *s = inner->data;
  if (!s->fresh && msg->type == RAFT_IO_APPEND_ENTRIES && !s->commit_seen &&
      msg->append_entries.leader_commit > 0) {
    s->commit_seen = 1;
    if (msg->append_entries.leader_commit > s->catch_up_to)
      s->catch_up_to = msg->append_entries.leader_commit;
    TEEX_INFO("ds", "catching up before voting", "commit_index=%llu",
              (unsigned long long)s->catch_up_to);
  }
  s->recv(&s->io, msg);
  check_caught_up(s);
}

static int w_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                   raft_io_recv_cb recv) {
  struct teex_ds_sealed_io *s = SIO(io);
  s->tick = tick;
  s->recv = recv;
  s->inner->data = s;
  int rv = s->inner->start(s->inner, msecs, w_tick, w_recv);
  INNER_ERR(s, rv);
  if (rv == 0 && s->vote_guard_ms > 0)
    s->vote_guard_until = s->inner->time(s->inner) + s->vote_guard_ms;
  return rv;
}

static int w_bootstrap(struct raft_io *io,
                       const struct raft_configuration *conf) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->bootstrap(s->inner, conf);
  INNER_ERR(s, rv);
  if (rv == 0) {
    /* raft_uv's bootstrap stores term 1, no vote. */
    s->term = s->prev_term = 1;
    s->vote = s->prev_vote = 0;
    struct teex_err err;
    if (record_write(s, &err) != 0) {
      snprintf(io->errmsg, sizeof(io->errmsg), "%s", err.msg);
      return RAFT_IOERR;
    }
  }
  return rv;
}

static int w_recover(struct raft_io *io,
                     const struct raft_configuration *conf) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->recover(s->inner, conf);
  INNER_ERR(s, rv);
  return rv;
}

static int store(struct teex_ds_sealed_io *s, uint64_t term, uint64_t vote) {
  s->prev_term = s->term;
  s->prev_vote = s->vote;
  s->term = term;
  s->vote = vote;
  struct teex_err err;
  if (record_write(s, &err) != 0) {
    snprintf(s->io.errmsg, sizeof(s->io.errmsg), "%s", err.msg);
    return RAFT_IOERR;
  }
  return 0;
}

static int w_set_term(struct raft_io *io, raft_term term) {
  struct teex_ds_sealed_io *s = SIO(io);
  TEEX_INFO("ds", "new term", "term=%llu", (unsigned long long)term);
  int rv = store(s, term, 0);
  if (rv != 0)
    return rv;
  rv = s->inner->set_term(s->inner, term);
  INNER_ERR(s, rv);
  return rv;
}

static int w_set_vote(struct raft_io *io, raft_id server_id) {
  struct teex_ds_sealed_io *s = SIO(io);
  TEEX_INFO("ds", "vote", "term=%llu for=%llu", (unsigned long long)s->term,
            (unsigned long long)server_id);
  int rv = store(s, s->term, server_id);
  if (rv != 0)
    return rv;
  rv = s->inner->set_vote(s->inner, server_id);
  INNER_ERR(s, rv);
  return rv;
}

/* ---- coalescing AppendEntries ----
 * raft (0.15) sends an AppendEntries to every follower for each proposal.
 * Messages to one peer that continue each other (same term, each one's
 * prev_log_index the end of the one before) are merged into one carrying
 * all their entries and the latest commit index, which is what raft itself
 * would send for a batch; each original send is completed when the merged
 * one is. raft keeps entry buffers alive until its send callback, so
 * holding them until the flush is safe. Any other message to that peer
 * first flushes what is held, so the order per peer is unchanged. */
#define OUTQ_MAX 16               /* peers */
#define OUTQ_ENTRIES_MAX 4096     /* entries in one merged message */
#define OUTQ_BYTES_MAX (4u << 20) /* entry bytes in one merged message */

struct sio_orig {
  struct raft_io_send *req;
  raft_io_send_cb cb;
};

struct sio_outq {
  raft_id id;
  int active;
  struct raft_message msg; /* entries: ents */
  char addr[256];
  struct raft_entry *ents;
  unsigned n_ents, cap_ents;
  size_t bytes;
  struct sio_orig *origs;
  unsigned n_origs, cap_origs;
};

struct sio_merged {
  struct raft_io_send req;
  struct raft_entry *ents;
  struct sio_orig *origs;
  unsigned n_origs;
};

static void merged_done(struct raft_io_send *req, int status) {
  struct sio_merged *m = req->data;
  for (unsigned i = 0; i < m->n_origs; i++)
    if (m->origs[i].cb)
      m->origs[i].cb(m->origs[i].req, status);
  free(m->ents);
  free(m->origs);
  free(m);
}

static void outq_reset(struct sio_outq *q) {
  q->active = 0;
  q->ents = NULL;
  q->n_ents = q->cap_ents = 0;
  q->origs = NULL;
  q->n_origs = q->cap_origs = 0;
  q->bytes = 0;
}

static void outq_send(struct teex_ds_sealed_io *s, struct sio_outq *q) {
  if (!q->active)
    return;
  struct sio_merged *m = calloc(1, sizeof(*m));
  int rv = RAFT_NOMEM;
  if (m != NULL) {
    m->ents = q->ents;
    m->origs = q->origs;
    m->n_origs = q->n_origs;
    m->req.data = m;
    q->msg.append_entries.entries = q->ents;
    q->msg.append_entries.n_entries = q->n_ents;
    q->msg.server_address = q->addr;
    rv = s->inner->send(s->inner, &m->req, &q->msg, merged_done);
  }
  if (rv != 0) {
    /* The originals were accepted: they learn the failure now. */
    for (unsigned i = 0; i < q->n_origs; i++)
      if (q->origs[i].cb)
        q->origs[i].cb(q->origs[i].req, rv);
    free(q->ents);
    free(q->origs);
    free(m);
  }
  outq_reset(q);
}

void teex_ds_sealed_io_flush(struct teex_ds_sealed_io *s) {
  for (unsigned i = 0; i < s->n_outq; i++)
    outq_send(s, &s->outq[i]);
}

static struct sio_outq *outq_of(struct teex_ds_sealed_io *s, raft_id id) {
  for (unsigned i = 0; i < s->n_outq; i++)
    if (s->outq[i].id == id)
      return &s->outq[i];
  if (s->outq == NULL) {
    s->outq = calloc(OUTQ_MAX, sizeof(*s->outq));
    if (s->outq == NULL)
      return NULL;
  }
  if (s->n_outq == OUTQ_MAX)
    return NULL;
  struct sio_outq *q = &s->outq[s->n_outq++];
  q->id = id;
  return q;
}

/* Holds m (an AppendEntries) for its peer: 0, or a raft error (then the
 * caller sends it directly). */
static int outq_hold(struct teex_ds_sealed_io *s, struct raft_io_send *req,
                     const struct raft_message *m, raft_io_send_cb cb) {
  const struct raft_append_entries *ae = &m->append_entries;
  struct sio_outq *q = outq_of(s, m->server_id);
  if (q == NULL || strlen(m->server_address) >= sizeof(q->addr))
    return RAFT_NOMEM;
  size_t bytes = 0;
  for (unsigned i = 0; i < ae->n_entries; i++)
    bytes += ae->entries[i].buf.len;
  if (q->active) {
    const struct raft_append_entries *h = &q->msg.append_entries;
    int joins = h->term == ae->term &&
                h->prev_log_index + q->n_ents == ae->prev_log_index &&
                strcmp(q->addr, m->server_address) == 0 &&
                q->n_ents + ae->n_entries <= OUTQ_ENTRIES_MAX &&
                q->bytes + bytes <= OUTQ_BYTES_MAX;
    if (!joins)
      outq_send(s, q);
  }
  if (q->n_ents + ae->n_entries > q->cap_ents) {
    unsigned cap = q->cap_ents ? q->cap_ents : 8;
    while (cap < q->n_ents + ae->n_entries)
      cap *= 2;
    struct raft_entry *e = realloc(q->ents, cap * sizeof(*e));
    if (e == NULL)
      return RAFT_NOMEM;
    q->ents = e;
    q->cap_ents = cap;
  }
  if (q->n_origs == q->cap_origs) {
    unsigned cap = q->cap_origs ? 2 * q->cap_origs : 8;
    struct sio_orig *o = realloc(q->origs, cap * sizeof(*o));
    if (o == NULL)
      return RAFT_NOMEM;
    q->origs = o;
    q->cap_origs = cap;
  }
  if (!q->active) {
    q->active = 1;
    q->msg = *m;
    snprintf(q->addr, sizeof q->addr, "%s", m->server_address);
  } else {
    s->coalesced++;
    if (ae->leader_commit > q->msg.append_entries.leader_commit)
      q->msg.append_entries.leader_commit = ae->leader_commit;
  }
  if (ae->n_entries > 0)
    memcpy(q->ents + q->n_ents, ae->entries,
           ae->n_entries * sizeof(*ae->entries));
  q->n_ents += ae->n_entries;
  q->bytes += bytes;
  req->cb = cb;
  q->origs[q->n_origs].req = req;
  q->origs[q->n_origs].cb = cb;
  q->n_origs++;
  return 0;
}

static int w_send(struct raft_io *io, struct raft_io_send *req,
                  const struct raft_message *message, raft_io_send_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  if (s->coalesce) {
    if (message->type == RAFT_IO_APPEND_ENTRIES &&
        outq_hold(s, req, message, cb) == 0)
      return 0;
    struct sio_outq *q = NULL;
    for (unsigned i = 0; i < s->n_outq; i++)
      if (s->outq[i].id == message->server_id)
        q = &s->outq[i];
    if (q != NULL)
      outq_send(s, q); /* keep this peer's messages in order */
  }
  struct raft_message m = *message;
  if (!s->fresh) {
    /* raft_uv encodes the message before send returns: a copy is enough. */
    if (m.type == RAFT_IO_REQUEST_VOTE_RESULT &&
        m.request_vote_result.vote_granted) {
      m.request_vote_result.vote_granted = false;
      s->suppressed++;
    } else if (m.type == RAFT_IO_REQUEST_VOTE) {
      m.request_vote.last_log_index = 0;
      m.request_vote.last_log_term = 0;
      s->suppressed++;
    }
  }
  if (m.type == RAFT_IO_REQUEST_VOTE_RESULT &&
      m.request_vote_result.vote_granted && s->vote_guard_until > 0 &&
      s->inner->time(s->inner) < s->vote_guard_until) {
    m.request_vote_result.vote_granted = false;
    s->guarded++;
  }
  int rv = s->inner->send(s->inner, req, &m, cb);
  INNER_ERR(s, rv);
  return rv;
}

/* An append, to learn the index raft_uv confirmed persisted. */
struct wappend {
  struct raft_io_append inner_req;
  struct raft_io_append *req;
  raft_io_append_cb cb;
  struct teex_ds_sealed_io *s;
  uint64_t last; /* the log's last index when the append was made */
};

static void w_append_done(struct raft_io_append *inner_req, int status) {
  struct wappend *w = (struct wappend *)inner_req;
  /* raft_uv completes appends in order: everything up to last is on disk. */
  if (status == 0 && w->last > w->s->persisted)
    w->s->persisted = w->last;
  raft_io_append_cb cb = w->cb;
  struct raft_io_append *req = w->req;
  free(w);
  cb(req, status);
}

static int w_append(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  struct wappend *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return RAFT_NOMEM;
  struct raft *r = s->io.data;
  w->req = req;
  w->cb = cb;
  w->s = s;
  /* raft puts entries in its in-memory log before it writes them; should it
   * not, last is lower than the truth, which only makes the check weaker. */
  w->last = r != NULL ? raft_last_index(r) : 0;
  int rv = s->inner->append(s->inner, &w->inner_req, entries, n, w_append_done);
  INNER_ERR(s, rv);
  if (rv != 0)
    free(w);
  return rv;
}

static int w_truncate(struct raft_io *io, raft_index index) {
  struct teex_ds_sealed_io *s = SIO(io);
  /* Entries from index on go away: lower the sealed index first. */
  if (s->persisted >= index)
    s->persisted = index - 1;
  if (s->index >= index) {
    s->index = index - 1;
    struct teex_err err;
    if (record_write(s, &err) != 0) {
      snprintf(s->io.errmsg, sizeof(s->io.errmsg), "%s", err.msg);
      return RAFT_IOERR;
    }
  }
  int rv = s->inner->truncate(s->inner, index);
  INNER_ERR(s, rv);
  return rv;
}

static int w_snapshot_put(struct raft_io *io, unsigned trailing,
                          struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot,
                          raft_io_snapshot_put_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->snapshot_put(s->inner, trailing, req, snapshot, cb);
  INNER_ERR(s, rv);
  return rv;
}

static int w_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->snapshot_get(s->inner, req, cb);
  INNER_ERR(s, rv);
  return rv;
}

static raft_time w_time(struct raft_io *io) {
  return SIO(io)->inner->time(SIO(io)->inner);
}

static int w_random(struct raft_io *io, int min, int max) {
  return SIO(io)->inner->random(SIO(io)->inner, min, max);
}

static int w_async_work(struct raft_io *io, struct raft_io_async_work *req,
                        raft_io_async_work_cb cb) {
  struct teex_ds_sealed_io *s = SIO(io);
  int rv = s->inner->async_work(s->inner, req, cb);
  INNER_ERR(s, rv);
  return rv;
}

void teex_ds_sealed_io_init(struct teex_ds_sealed_io *s, struct raft_io *inner,
                            struct teex_tee *tee, const char *path,
                            const uint8_t group_id[16]) {
  memset(s, 0, sizeof(*s));
  s->inner = inner;
  s->tee = tee;
  snprintf(s->path, sizeof(s->path), "%s", path);
  memcpy(s->group_id, group_id, 16);
  struct raft_io *io = &s->io;
  io->version = inner->version;
  io->init = w_init;
  io->close = w_close;
  io->load = w_load;
  io->start = w_start;
  io->bootstrap = w_bootstrap;
  io->recover = w_recover;
  io->set_term = w_set_term;
  io->set_vote = w_set_vote;
  io->send = w_send;
  io->append = w_append;
  io->truncate = w_truncate;
  io->snapshot_put = w_snapshot_put;
  io->snapshot_get = w_snapshot_get;
  io->time = w_time;
  io->random = w_random;
  io->async_work = inner->version >= 2 ? w_async_work : NULL;
}
