/* raft's stream transport over mutual RA-TLS (see transport.h). */
#include "ds/transport.h"
#include "ds/keyset.h"

#include "teex/log.h"
#include "teex/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREAMBLE_FIXED TEEX_DS_PREAMBLE_FIXED
#define READ_CHUNK (64u << 10)
/* raft_uv waits a whole second after a failed connect before it tries
 * again, and queues messages meanwhile: a peer that came up a moment later
 * would stay unheard for that second (long enough for a leader to lose its
 * quorum contact). Failed connects are retried here after RETRY_MS, doubling
 * each time (50, 100, 200, 400 ms: few log lines for a peer that is down), for
 * up to RETRY_WINDOW_MS before raft hears of the failure. Refusals by policy
 * are reported at once. */
#define RETRY_MS 50u
#define RETRY_WINDOW_MS 900u

struct link;

struct tr {
  struct raft_uv_transport *t;
  struct teex_ds_transport_config cfg;
  uint64_t *members;
  uint64_t id;
  char addr[TEEX_DS_ADDR_MAX + 1];
  char bind[TEEX_DS_ADDR_MAX + 1];
  struct teex_tls_listener *listener;
  raft_uv_accept_cb accept_cb;
  struct link *links;
  int closing;
  uv_timer_t done_timer; /* closed last: its close callback ends close() */
  raft_uv_transport_close_cb close_cb;
  uint64_t refused;
  /* Non-members that asked for the key with accepted evidence (a small
   * ring), and the last refusal, for the leader's membership checks. */
  struct joiner {
    uint64_t id, seen_ms;
    char addr[TEEX_DS_ADDR_MAX + 1];
  } joiners[8];
  size_t n_joiners;
  char last_refusal[320];
};

struct link {
  struct tr *tr;
  struct teex_tls_conn *conn; /* NULL once its on_close ran */
  struct raft_uv_connect *req;
  raft_uv_connect_cb cb;
  uint64_t peer_id;
  struct teex_ds_preamble pre;
  int relaying;
  uv_pipe_t ours;
  int ours_open, ours_closing;
  size_t pending; /* bytes queued toward raft */
  /* Outgoing: where to, and until when failed connects are retried here. */
  char addr[TEEX_DS_ADDR_MAX + 1];
  uint64_t deadline;
  uv_timer_t retry;
  int retry_inited;
  unsigned retry_ms; /* the pause before this attempt (0: the first) */
  struct link *next, *prev;
};

struct wreq {
  uv_write_t req;
  struct link *l;
  size_t n;
  uint8_t data[];
};

static void link_maybe_free(struct link *l);

static void done_timer_closed(uv_handle_t *h) {
  struct tr *tr = h->data;
  if (tr->close_cb != NULL)
    tr->close_cb(tr->t);
}

static void tr_maybe_done(struct tr *tr) {
  if (tr->closing && tr->links == NULL &&
      !uv_is_closing((uv_handle_t *)&tr->done_timer))
    uv_close((uv_handle_t *)&tr->done_timer, done_timer_closed);
}

static struct link *link_new(struct tr *tr) {
  struct link *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  l->tr = tr;
  l->next = tr->links;
  if (tr->links)
    tr->links->prev = l;
  tr->links = l;
  return l;
}

static void link_maybe_free(struct link *l) {
  if (l->conn != NULL || l->ours_open || l->retry_inited)
    return;
  struct tr *tr = l->tr;
  if (l->prev)
    l->prev->next = l->next;
  else
    tr->links = l->next;
  if (l->next)
    l->next->prev = l->prev;
  free(l);
  tr_maybe_done(tr);
}

static void ours_closed(uv_handle_t *h) {
  struct link *l = h->data;
  l->ours_open = 0;
  l->ours_closing = 0;
  link_maybe_free(l);
}

static void ours_close(struct link *l) {
  if (l->ours_open && !l->ours_closing) {
    l->ours_closing = 1;
    uv_close((uv_handle_t *)&l->ours, ours_closed);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  buf->base = malloc(READ_CHUNK);
  buf->len = buf->base ? READ_CHUNK : 0;
}

/* Raft wrote bytes to its end: send them over TLS. */
static void on_ours_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct link *l = s->data;
  if (n > 0 && l->conn != NULL) {
    struct teex_err err;
    if (teex_tls_write(l->conn, buf->base, (size_t)n, &err) != 0)
      teex_tls_close_error(l->conn, TEEX_EBUSY, "raft relay: peer not reading");
  } else if (n < 0) {
    /* raft closed its end (or the pipe failed): end the TLS side too. */
    if (l->conn != NULL)
      teex_tls_close(l->conn);
    ours_close(l);
  }
  free(buf->base);
}

static void on_ours_written(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  w->l->pending -= w->n;
  (void)status;
  free(w);
}

/* Bytes from the peer: hand them to raft. */
static void relay_to_raft(struct link *l, const uint8_t *p, size_t n) {
  if (n == 0 || !l->ours_open || l->ours_closing)
    return;
  if (l->pending + n > TEEX_DS_RELAY_MAX_PENDING) {
    teex_tls_close_error(l->conn, TEEX_EBUSY, "raft relay: raft not reading");
    return;
  }
  struct wreq *w = malloc(sizeof(*w) + n);
  if (w == NULL) {
    teex_tls_close_error(l->conn, TEEX_ENOMEM, "raft relay: out of memory");
    return;
  }
  w->l = l;
  w->n = n;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&l->ours, &b, 1, on_ours_written) != 0) {
    free(w);
    teex_tls_close_error(l->conn, TEEX_EIO, "raft relay: write failed");
    return;
  }
  l->pending += n;
}

static void free_raft_handle(uv_handle_t *h) {
  raft_free(h);
}

/* Creates the socketpair; *theirs (raft_malloc'd, owned by raft) is raft's
 * end. */
static int relay_open(struct link *l, uv_stream_t **theirs) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return -1;
  uv_pipe_t *p = raft_malloc(sizeof(*p));
  if (p == NULL || uv_pipe_init(l->tr->cfg.loop, &l->ours, 0) != 0) {
    raft_free(p);
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  l->ours.data = l;
  l->ours_open = 1;
  if (uv_pipe_open(&l->ours, sv[0]) != 0) {
    close(sv[0]);
    close(sv[1]);
    raft_free(p);
    ours_close(l);
    return -1;
  }
  if (uv_pipe_init(l->tr->cfg.loop, p, 0) != 0) {
    close(sv[1]);
    raft_free(p);
    ours_close(l);
    return -1;
  }
  if (uv_pipe_open(p, sv[1]) != 0) {
    close(sv[1]);
    uv_close((uv_handle_t *)p, free_raft_handle);
    ours_close(l);
    return -1;
  }
  uv_read_start((uv_stream_t *)&l->ours, on_alloc, on_ours_read);
  l->relaying = 1;
  *theirs = (uv_stream_t *)p;
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

size_t teex_ds_preamble_encode(uint8_t *out, int kind, uint64_t id,
                               const char *addr) {
  size_t a = strlen(addr);
  memcpy(out, TEEX_DS_PREAMBLE_MAGIC, 4);
  out[4] = (uint8_t)kind;
  put64(out + 5, id);
  out[13] = (uint8_t)(a >> 8);
  out[14] = (uint8_t)a;
  memcpy(out + 15, addr, a);
  return PREAMBLE_FIXED + a;
}

int teex_ds_preamble_feed(struct teex_ds_preamble *pr, const uint8_t *p,
                          size_t n, size_t *used) {
  *used = 0;
  size_t want = PREAMBLE_FIXED;
  if (pr->len >= PREAMBLE_FIXED)
    want += ((size_t)pr->buf[13] << 8) | pr->buf[14];
  while (n > 0 && pr->len < want) {
    size_t k = want - pr->len < n ? want - pr->len : n;
    memcpy(pr->buf + pr->len, p, k);
    pr->len += k;
    p += k;
    n -= k;
    *used += k;
    if (pr->len == PREAMBLE_FIXED) {
      size_t alen = ((size_t)pr->buf[13] << 8) | pr->buf[14];
      if (memcmp(pr->buf, TEEX_DS_PREAMBLE_MAGIC, 4) != 0 || alen == 0 ||
          alen > TEEX_DS_ADDR_MAX ||
          (pr->buf[4] != TEEX_DS_KIND_RAFT && pr->buf[4] != TEEX_DS_KIND_KEY))
        return TEEX_EPROTO;
      want += alen;
    }
  }
  if (pr->len < want)
    return 0;
  size_t alen = want - PREAMBLE_FIXED;
  memcpy(pr->addr, pr->buf + PREAMBLE_FIXED, alen);
  pr->addr[alen] = '\0';
  if (strlen(pr->addr) != alen)
    return TEEX_EPROTO;
  pr->kind = pr->buf[4];
  pr->id = get64(pr->buf + 5);
  return 1;
}

static int is_member(const struct tr *tr, uint64_t id) {
  if (tr->cfg.is_member != NULL)
    return tr->cfg.is_member(tr->cfg.member_arg, id);
  for (size_t i = 0; i < tr->cfg.n_members; i++)
    if (tr->members[i] == id)
      return 1;
  return 0;
}

/* Remembers a non-member that asked for the key with accepted evidence. */
static void note_joiner(struct tr *tr, uint64_t id, const char *addr) {
  size_t i = 0;
  while (i < tr->n_joiners && tr->joiners[i].id != id)
    i++;
  if (i == tr->n_joiners) {
    if (tr->n_joiners < sizeof(tr->joiners) / sizeof(tr->joiners[0]))
      tr->n_joiners++;
    else
      i = 0; /* full: replace the first (oldest-ish) entry */
  }
  tr->joiners[i].id = id;
  tr->joiners[i].seen_ms = uv_now(tr->cfg.loop);
  snprintf(tr->joiners[i].addr, sizeof(tr->joiners[i].addr), "%s", addr);
}

int teex_ds_transport_joiner(const struct raft_uv_transport *t, uint64_t id,
                             char *addr, size_t cap, uint64_t *seen_ms) {
  const struct tr *tr = t->impl;
  for (size_t i = 0; tr != NULL && i < tr->n_joiners; i++)
    if (tr->joiners[i].id == id) {
      snprintf(addr, cap, "%s", tr->joiners[i].addr);
      *seen_ms = tr->joiners[i].seen_ms;
      return 1;
    }
  return 0;
}

int teex_ds_transport_last_refusal(const struct raft_uv_transport *t, char *out,
                                   size_t cap) {
  const struct tr *tr = t->impl;
  if (tr == NULL || tr->last_refusal[0] == '\0')
    return 0;
  snprintf(out, cap, "%s", tr->last_refusal);
  return 1;
}

void teex_ds_addr_peer(const char *conf_addr, char *out, size_t cap) {
  size_t n = strcspn(conf_addr, " ");
  snprintf(out, cap, "%.*s", (int)n, conf_addr);
}

static int refusal(int code) {
  return code == TEEX_EATTEST || code == TEEX_EPOLICY ||
         code == TEEX_EEXPIRED || code == TEEX_EPERM || code == TEEX_EPROTO;
}

/* ---- outgoing ---- */

static void out_ready(struct teex_tls_conn *c, void *arg) {
  struct link *l = arg;
  uint8_t pre[PREAMBLE_FIXED + TEEX_DS_ADDR_MAX];
  size_t n =
      teex_ds_preamble_encode(pre, TEEX_DS_KIND_RAFT, l->tr->id, l->tr->addr);
  struct teex_err err;
  uv_stream_t *theirs = NULL;
  if (teex_tls_write(c, pre, n, &err) != 0 || relay_open(l, &theirs) != 0) {
    teex_tls_close_error(c, TEEX_EIO, "raft relay: cannot start");
    return;
  }
  struct raft_uv_connect *req = l->req;
  l->req = NULL;
  req->cb(req, theirs, 0);
}

static void link_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                      void *arg) {
  (void)c;
  struct link *l = arg;
  if (l->relaying)
    relay_to_raft(l, p, n);
}

static const struct teex_tls_conn_cbs out_cbs;

static void retry_closed(uv_handle_t *h) {
  struct link *l = h->data;
  l->retry_inited = 0;
  link_maybe_free(l);
}

static void retry_fire(uv_timer_t *t) {
  struct link *l = t->data;
  uv_close((uv_handle_t *)&l->retry, retry_closed);
  struct teex_err err;
  if (teex_tls_connect(l->tr->cfg.loop, l->tr->cfg.client_ctx, l->addr,
                       &out_cbs, l, &l->conn, &err) != 0) {
    l->conn = NULL;
    struct raft_uv_connect *req = l->req;
    l->req = NULL;
    req->cb(req, NULL, RAFT_NOCONNECTION);
  }
}

/* Moves l's pending connect to a new link that tries again shortly. */
static int retry_later(struct link *l) {
  struct link *n = link_new(l->tr);
  if (n == NULL)
    return -1;
  n->req = l->req;
  n->peer_id = l->peer_id;
  n->deadline = l->deadline;
  n->retry_ms = l->retry_ms ? 2 * l->retry_ms : RETRY_MS;
  memcpy(n->addr, l->addr, sizeof(n->addr));
  uv_timer_init(l->tr->cfg.loop, &n->retry);
  n->retry.data = n;
  n->retry_inited = 1;
  uv_timer_start(&n->retry, retry_fire, n->retry_ms, 0);
  return 0;
}

static void link_close(struct teex_tls_conn *c, int code, const char *reason,
                       void *arg) {
  (void)c;
  struct link *l = arg;
  l->conn = NULL;
  if (code != 0 && refusal(code) && !l->relaying) {
    l->tr->refused++;
    TEEX_WARN("ds", "replica connection refused", "peer_id=%llu reason=\"%s\"",
              (unsigned long long)l->peer_id, reason ? reason : "");
    snprintf(l->tr->last_refusal, sizeof(l->tr->last_refusal), "%s (%s %s)",
             reason ? reason : "refused", l->req != NULL ? "to" : "from",
             l->req != NULL ? l->addr
             : c != NULL    ? teex_tls_peer_addr(c)
                            : "?");
  }
  if (l->req != NULL && !l->tr->closing && !refusal(code) &&
      uv_now(l->tr->cfg.loop) < l->deadline && retry_later(l) == 0) {
    l->req = NULL; /* handed to the retry */
  } else if (l->req != NULL) {
    struct raft_uv_connect *req = l->req;
    l->req = NULL;
    req->cb(req, NULL, l->tr->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
  }
  ours_close(l);
  link_maybe_free(l);
}

static const struct teex_tls_conn_cbs out_cbs = {out_ready, link_data,
                                                 link_close};

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb) {
  struct tr *tr = t->impl;
  if (tr->closing)
    return RAFT_CANCELED;
  struct link *l = link_new(tr);
  if (l == NULL)
    return RAFT_NOMEM;
  l->req = req;
  req->cb = cb;
  l->peer_id = id;
  teex_ds_addr_peer(address, l->addr, sizeof(l->addr));
  l->deadline = uv_now(tr->cfg.loop) + RETRY_WINDOW_MS;
  struct teex_err err;
  if (teex_tls_connect(tr->cfg.loop, tr->cfg.client_ctx, l->addr, &out_cbs, l,
                       &l->conn, &err) != 0) {
    l->req = NULL;
    l->conn = NULL;
    link_maybe_free(l);
    snprintf(t->errmsg, sizeof(t->errmsg), "connect %s: %s", address, err.msg);
    return RAFT_NOCONNECTION;
  }
  return 0;
}

/* ---- incoming ---- */

static void in_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                    void *arg) {
  struct link *l = arg;
  struct tr *tr = l->tr;
  if (l->relaying) {
    relay_to_raft(l, p, n);
    return;
  }
  /* Gather the preamble, at most its maximum size. */
  size_t used = 0;
  int rc = teex_ds_preamble_feed(&l->pre, p, n, &used);
  if (rc < 0) {
    tr->refused++;
    teex_tls_close_error(c, TEEX_EPROTO, "ds peer: bad preamble");
    return;
  }
  if (rc == 0)
    return;
  p += used;
  n -= used;
  int kind = l->pre.kind;
  l->peer_id = l->pre.id;
  const char *addr = l->pre.addr;
  if (!is_member(tr, l->peer_id)) {
    if (kind == TEEX_DS_KIND_KEY)
      note_joiner(tr, l->peer_id, addr);
    tr->refused++;
    TEEX_WARN("ds", "replica connection refused",
              "peer=%s id=%llu reason=\"not a member of the group\"",
              teex_tls_peer_addr(c), (unsigned long long)l->peer_id);
    teex_tls_close_error(c, TEEX_EPERM, "ds peer: not a member");
    return;
  }
  if (kind == TEEX_DS_KIND_KEY) {
    struct teex_err err;
    size_t klen = tr->cfg.group_keys_len ? *tr->cfg.group_keys_len : 0;
    if (tr->cfg.group_keys == NULL || klen == 0 ||
        klen > TEEX_DS_KEYS_ENC_MAX) {
      teex_tls_close_error(c, TEEX_ESTATE, "ds peer: no group key here");
      return;
    }
    uint8_t out[16 + TEEX_DS_KEYS_ENC_MAX];
    memcpy(out, tr->cfg.group_id, 16);
    memcpy(out + 16, tr->cfg.group_keys, klen);
    rc = teex_tls_write(c, out, 16 + klen, &err);
    teex_wipe(out, sizeof(out));
    TEEX_INFO("ds", "group key handed to an attested replica", "id=%llu",
              (unsigned long long)l->peer_id);
    if (rc != 0)
      teex_tls_close_error(c, rc, "ds peer: write key");
    else
      teex_tls_close(c);
    return;
  }
  uv_stream_t *theirs = NULL;
  if (tr->accept_cb == NULL || tr->closing || relay_open(l, &theirs) != 0) {
    teex_tls_close_error(c, TEEX_EIO, "raft relay: cannot start");
    return;
  }
  tr->accept_cb(tr->t, l->peer_id, addr, theirs);
  relay_to_raft(l, p, n);
}

static const struct teex_tls_conn_cbs in_cbs = {NULL, in_data, link_close};

static void on_accept(struct teex_tls_listener *lst, struct teex_tls_conn *c,
                      void *arg) {
  (void)lst;
  struct tr *tr = arg;
  struct link *l = tr->closing ? NULL : link_new(tr);
  if (l == NULL) {
    /* The connection still needs callbacks; close it at once. */
    static const struct teex_tls_conn_cbs none = {NULL, NULL, NULL};
    teex_tls_set_cbs(c, &none, NULL);
    teex_tls_close(c);
    return;
  }
  l->conn = c;
  teex_tls_set_cbs(c, &in_cbs, l);
}

static int tr_init(struct raft_uv_transport *t, raft_id id,
                   const char *address) {
  struct tr *tr = t->impl;
  if (strlen(address) > TEEX_DS_ADDR_MAX)
    return RAFT_INVALID;
  tr->id = id;
  snprintf(tr->addr, sizeof(tr->addr), "%s", address);
  return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  struct tr *tr = t->impl;
  struct teex_err err;
  tr->accept_cb = cb;
  const char *bind = tr->bind[0] ? tr->bind : tr->addr;
  if (teex_tls_listen(tr->cfg.loop, tr->cfg.server_ctx, bind, on_accept, tr,
                      &tr->listener, &err) != 0) {
    snprintf(t->errmsg, sizeof(t->errmsg), "listen %s: %s", bind, err.msg);
    return RAFT_IOERR;
  }
  return 0;
}

static void tr_close(struct raft_uv_transport *t,
                     raft_uv_transport_close_cb cb) {
  struct tr *tr = t->impl;
  tr->closing = 1;
  tr->close_cb = cb;
  if (tr->listener != NULL) {
    teex_tls_listener_close(tr->listener);
    tr->listener = NULL;
  }
  /* Closing a link may free it: walk a snapshot of the list. */
  for (struct link *l = tr->links, *next; l != NULL; l = next) {
    next = l->next;
    if (l->req != NULL) {
      struct raft_uv_connect *req = l->req;
      l->req = NULL;
      req->cb(req, NULL, RAFT_CANCELED);
    }
    if (l->retry_inited && !uv_is_closing((uv_handle_t *)&l->retry))
      uv_close((uv_handle_t *)&l->retry, retry_closed);
    if (l->conn != NULL)
      teex_tls_close(l->conn);
    ours_close(l);
  }
  tr_maybe_done(tr);
}

int teex_ds_transport_init(struct raft_uv_transport *t,
                           const struct teex_ds_transport_config *cfg,
                           struct teex_err *err) {
  memset(t, 0, sizeof(*t));
  struct tr *tr = calloc(1, sizeof(*tr));
  if (tr == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  tr->members = calloc(cfg->n_members ? cfg->n_members : 1, sizeof(uint64_t));
  if (tr->members == NULL) {
    free(tr);
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  }
  memcpy(tr->members, cfg->members, cfg->n_members * sizeof(uint64_t));
  tr->cfg = *cfg;
  tr->t = t;
  if (cfg->bind_addr != NULL)
    snprintf(tr->bind, sizeof(tr->bind), "%s", cfg->bind_addr);
  uv_timer_init(cfg->loop, &tr->done_timer);
  tr->done_timer.data = tr;
  /* The timer handle's close callback is what reports "closed" to raft. */
  t->impl = tr;
  t->init = tr_init;
  t->listen = tr_listen;
  t->connect = tr_connect;
  t->close = tr_close;
  return 0;
}

void teex_ds_transport_free(struct raft_uv_transport *t) {
  struct tr *tr = t->impl;
  if (tr == NULL)
    return;
  free(tr->members);
  free(tr);
  t->impl = NULL;
}

uint64_t teex_ds_transport_refused(const struct raft_uv_transport *t) {
  const struct tr *tr = t->impl;
  return tr ? tr->refused : 0;
}

/* ---- group key hand-over ---- */

struct fetch {
  uv_loop_t loop;
  struct teex_tls_ctx *ctx;
  const char *const *addrs;
  size_t n, next;
  uint64_t self_id;
  const char *self_addr;
  uint64_t deadline;
  uv_timer_t timer;
  uint8_t got[16 + TEEX_DS_KEYS_ENC_MAX];
  size_t got_len;
  int done;
  char last[256];
};

static void fetch_try(struct fetch *f);

static void fetch_ready(struct teex_tls_conn *c, void *arg) {
  struct fetch *f = arg;
  uint8_t pre[PREAMBLE_FIXED + TEEX_DS_ADDR_MAX];
  size_t n =
      teex_ds_preamble_encode(pre, TEEX_DS_KIND_KEY, f->self_id, f->self_addr);
  struct teex_err err;
  if (teex_tls_write(c, pre, n, &err) != 0)
    teex_tls_close(c);
}

static void fetch_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                       void *arg) {
  struct fetch *f = arg;
  if (f->got_len + n > sizeof(f->got)) {
    teex_tls_close_error(c, TEEX_EPROTO, "group key: too long");
    return;
  }
  memcpy(f->got + f->got_len, p, n);
  f->got_len += n;
}

static void fetch_timer(uv_timer_t *t) {
  fetch_try(t->data);
}

static void fetch_close(struct teex_tls_conn *c, int code, const char *reason,
                        void *arg) {
  (void)c;
  struct fetch *f = arg;
  struct teex_ds_keyset *ks = teex_secret_alloc(sizeof(*ks));
  int ok = code == 0 && ks != NULL && f->got_len > 16 &&
           teex_ds_keyset_decode(f->got + 16, f->got_len - 16, ks, NULL) == 0;
  teex_secret_free(ks);
  if (ok) {
    f->done = 1;
    uv_close((uv_handle_t *)&f->timer, NULL);
    return;
  }
  f->got_len = 0;
  snprintf(f->last, sizeof(f->last), "%s",
           code ? reason : "closed (not a group key set)");
  if (uv_now(&f->loop) >= f->deadline) {
    uv_close((uv_handle_t *)&f->timer, NULL);
    return;
  }
  uv_timer_start(&f->timer, fetch_timer, f->next % f->n == 0 ? 200 : 0, 0);
}

static const struct teex_tls_conn_cbs fetch_cbs = {fetch_ready, fetch_data,
                                                   fetch_close};

static void fetch_try(struct fetch *f) {
  const char *addr = f->addrs[f->next++ % f->n];
  struct teex_tls_conn *c;
  struct teex_err err;
  if (teex_tls_connect(&f->loop, f->ctx, addr, &fetch_cbs, f, &c, &err) != 0) {
    snprintf(f->last, sizeof(f->last), "%s", err.msg);
    if (uv_now(&f->loop) >= f->deadline)
      uv_close((uv_handle_t *)&f->timer, NULL);
    else
      uv_timer_start(&f->timer, fetch_timer, 200, 0);
  }
}

int teex_ds_fetch_group_key(struct teex_tls_ctx *client_ctx,
                            const char *const *addrs, size_t n_addrs,
                            uint64_t self_id, const char *self_addr,
                            uint32_t timeout_ms, uint8_t group_id[16],
                            uint8_t *keys, size_t *keys_len,
                            struct teex_err *err) {
  if (n_addrs == 0)
    return teex_err_set(err, TEEX_EINVAL, "no replica to ask for the key");
  struct fetch *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (uv_loop_init(&f->loop) != 0) {
    free(f);
    return teex_err_set(err, TEEX_EIO, "event loop");
  }
  f->ctx = client_ctx;
  f->addrs = addrs;
  f->n = n_addrs;
  f->self_id = self_id;
  f->self_addr = self_addr != NULL && strlen(self_addr) <= TEEX_DS_ADDR_MAX
                     ? self_addr
                     : "key";
  f->deadline = uv_now(&f->loop) + timeout_ms;
  uv_timer_init(&f->loop, &f->timer);
  f->timer.data = f;
  fetch_try(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  int rc = 0;
  if (f->done) {
    memcpy(group_id, f->got, 16);
    memcpy(keys, f->got + 16, f->got_len - 16);
    *keys_len = f->got_len - 16;
  } else {
    rc = teex_err_set(err, TEEX_ETIMEDOUT,
                      "no replica handed over the group key (last: %s)",
                      f->last[0] ? f->last : "no answer");
  }
  teex_wipe(f->got, sizeof(f->got));
  free(f);
  return rc;
}
