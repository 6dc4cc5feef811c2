/* The I/O-free RPC state machine of one connection (include/teex/rpc.h).
 *
 * Open calls are kept in a list of entries. On a server an entry is a
 * request being received (ASSEMBLING), one being discarded after an error
 * answer (DISCARD), or one a handler is working on (RUNNING). On a client
 * it is a call waiting for (WAITING) or receiving (RECEIVING) its response,
 * or one whose remaining chunks we drop (DISCARD). */
#include "teex/rpc.h"

#include "teex/log.h"
#include "teex/proto/rpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum entry_phase {
  E_ASSEMBLING,
  E_RUNNING,
  E_DISCARD,
  E_WAITING,
  E_RECEIVING,
};

struct rpc_entry {
  struct rpc_entry *next, *prev;
  struct rpc_entry *hnext; /* the next one in its id bucket */
  uint64_t id;
  uint64_t deadline;
  uint32_t timeout_ms;
  enum entry_phase phase;
  int out_started; /* server: a streamed response has begun */
  char method[TEEX_RPC_MAX_METHOD + 1];
  struct teex_buf payload;
  uint64_t total_len;
  teex_rpc_done_fn done;
  teex_rpc_chunk_fn on_chunk;
  void *cb_arg;
};

static size_t max_out(const struct teex_rpc_session *s) {
  /* Room for a whole maximal message plus framing, several times over. */
  return 4 * s->lim.max_message + (1u << 20);
}

void teex_rpc_session_init(struct teex_rpc_session *s, enum teex_rpc_role role,
                           const struct teex_rpc_limits *lim,
                           const struct teex_rpc_session_cbs *cbs, void *arg) {
  memset(s, 0, sizeof *s);
  s->role = role;
  if (lim)
    s->lim = *lim;
  if (s->lim.max_message == 0)
    s->lim.max_message = TEEX_RPC_DEFAULT_MAX_MESSAGE;
  if (s->lim.max_inflight == 0)
    s->lim.max_inflight = TEEX_RPC_DEFAULT_MAX_INFLIGHT;
  if (s->lim.max_buffered == 0)
    s->lim.max_buffered = 2 * s->lim.max_message;
  if (s->lim.max_buffered < s->lim.max_message)
    s->lim.max_buffered = s->lim.max_message;
  if (s->lim.default_timeout_ms == 0)
    s->lim.default_timeout_ms = TEEX_RPC_DEFAULT_TIMEOUT_MS;
  if (cbs)
    s->cbs = *cbs;
  s->arg = arg;
  s->next_id = 1;
  teex_frame_reader_init(&s->reader, TEEX_FRAME_MAX_PAYLOAD);
  teex_buf_init(&s->out, max_out(s), 0);
}

/* ---- entries ---- */

/* Entries are also kept in a hash table by id (ids are mostly sequential,
 * so the low bits spread them), and the session keeps a lower bound of
 * their deadlines: with hundreds of calls in flight on one connection, a
 * list walk per frame and per timer re-arm cost more than the calls. */
#define BUCKETS_MIN 16u

static struct rpc_entry **bucket_of(const struct teex_rpc_session *s,
                                    uint64_t id) {
  return &s->buckets[id & (s->n_buckets - 1)];
}

static struct rpc_entry *entry_find(struct teex_rpc_session *s, uint64_t id) {
  if (s->buckets == NULL)
    return NULL;
  for (struct rpc_entry *e = *bucket_of(s, id); e; e = e->hnext)
    if (e->id == id)
      return e;
  return NULL;
}

/* Grows the table to at least twice the entries; 0 or TEEX_ENOMEM. */
static int buckets_grow(struct teex_rpc_session *s) {
  unsigned n = s->n_buckets ? s->n_buckets : BUCKETS_MIN;
  while (n < 2u * (s->n_entries + 1u))
    n *= 2;
  if (n == s->n_buckets)
    return 0;
  struct rpc_entry **b = calloc(n, sizeof *b);
  if (b == NULL)
    return TEEX_ENOMEM;
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = n;
  for (struct rpc_entry *e = s->entries; e; e = e->next) {
    struct rpc_entry **h = bucket_of(s, e->id);
    e->hnext = *h;
    *h = e;
  }
  return 0;
}

static struct rpc_entry *entry_add(struct teex_rpc_session *s, uint64_t id,
                                   enum entry_phase phase, uint64_t deadline) {
  if (s->n_buckets < 2u * (s->n_entries + 1u) && buckets_grow(s) != 0)
    return NULL;
  struct rpc_entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->id = id;
  e->phase = phase;
  e->deadline = deadline;
  teex_buf_init(&e->payload, s->lim.max_message, 0);
  e->next = s->entries;
  if (s->entries)
    s->entries->prev = e;
  s->entries = e;
  s->n_entries++;
  struct rpc_entry **h = bucket_of(s, id);
  e->hnext = *h;
  *h = e;
  if (deadline < s->min_deadline || s->n_entries == 1)
    s->min_deadline = deadline;
  return e;
}

static void entry_remove(struct teex_rpc_session *s, struct rpc_entry *e) {
  struct rpc_entry **h = bucket_of(s, e->id);
  while (*h != e)
    h = &(*h)->hnext;
  *h = e->hnext;
  if (e->prev)
    e->prev->next = e->next;
  else
    s->entries = e->next;
  if (e->next)
    e->next->prev = e->prev;
  s->n_entries--;
  s->buffered -= e->payload.len;
  teex_buf_free(&e->payload);
  free(e);
}

/* ---- encoding ---- */

static int emit(struct teex_rpc_session *s, const Teex__Rpc__RpcFrame *f) {
  size_t n = teex__rpc__rpc_frame__get_packed_size(f);
  if (n == 0 || n > TEEX_FRAME_MAX_PAYLOAD)
    return TEEX_ETOOBIG;
  int r = teex_buf_reserve(&s->out, TEEX_FRAME_HEADER_SIZE + n);
  if (r != 0)
    return r;
  teex_frame_header_encode(s->out.data + s->out.len, n);
  teex__rpc__rpc_frame__pack(f,
                             s->out.data + s->out.len + TEEX_FRAME_HEADER_SIZE);
  s->out.len += TEEX_FRAME_HEADER_SIZE + n;
  return 0;
}

static int emit_chunk(struct teex_rpc_session *s, uint64_t id, const uint8_t *p,
                      size_t n, int last, int code, const char *msg) {
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcChunk c = TEEX__RPC__RPC_CHUNK__INIT;
  f.id = id;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_CHUNK;
  f.chunk = &c;
  c.data.data = (uint8_t *)p;
  c.data.len = n;
  c.last = last != 0;
  c.code = code;
  if (msg)
    c.message = (char *)msg;
  return emit(s, &f);
}

/* Sends p as chunks after a first frame took `first` bytes. */
static int emit_rest(struct teex_rpc_session *s, uint64_t id, const uint8_t *p,
                     size_t len, size_t first) {
  size_t off = first;
  while (off < len) {
    size_t n = len - off;
    if (n > TEEX_RPC_CHUNK_SIZE)
      n = TEEX_RPC_CHUNK_SIZE;
    int r = emit_chunk(s, id, p + off, n, off + n == len, 0, NULL);
    if (r != 0)
      return r;
    off += n;
  }
  return 0;
}

static int emit_response(struct teex_rpc_session *s, uint64_t id, int code,
                         const char *msg, const uint8_t *p, size_t len) {
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcResponse r = TEEX__RPC__RPC_RESPONSE__INIT;
  char cut[TEEX_ERRMSG_SIZE];
  f.id = id;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_RESPONSE;
  f.response = &r;
  r.code = code;
  if (code != 0) {
    snprintf(cut, sizeof cut, "%s", msg ? msg : teex_strerror(code));
    r.message = cut;
    len = 0;
  }
  size_t first = len > TEEX_RPC_CHUNK_SIZE ? TEEX_RPC_CHUNK_SIZE : len;
  r.payload.data = (uint8_t *)p;
  r.payload.len = first;
  r.more = first < len;
  r.total_len = r.more ? len : 0;
  size_t mark = s->out.len;
  int rc = emit(s, &f);
  if (rc == 0 && r.more)
    rc = emit_rest(s, id, p, len, first);
  if (rc != 0)
    s->out.len = mark; /* never leave half a response queued */
  return rc;
}

static void emit_cancel(struct teex_rpc_session *s, uint64_t id) {
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcCancel c = TEEX__RPC__RPC_CANCEL__INIT;
  f.id = id;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_CANCEL;
  f.cancel = &c;
  (void)emit(s, &f);
}

/* ---- client ---- */

int teex_rpc_session_call(struct teex_rpc_session *s, const char *method,
                          const uint8_t *payload, size_t len,
                          uint32_t timeout_ms, uint64_t now_ms,
                          teex_rpc_done_fn done, teex_rpc_chunk_fn on_chunk,
                          void *arg, uint64_t *id_out, struct teex_err *err) {
  if (s->role != TEEX_RPC_CLIENT)
    return teex_err_set(err, TEEX_ESTATE, "call: not a client session");
  if (s->failed)
    return teex_err_set(err, TEEX_ECLOSED, "call: connection failed");
  size_t ml = method ? strlen(method) : 0;
  if (ml == 0 || ml > TEEX_RPC_MAX_METHOD)
    return teex_err_set(err, TEEX_EINVAL,
                        "call: method name must be 1-%d bytes",
                        TEEX_RPC_MAX_METHOD);
  if (len > s->lim.max_message)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "call %s: %zu-byte payload exceeds %zu", method, len,
                        s->lim.max_message);
  if (s->n_entries >= s->lim.max_inflight)
    return teex_err_set(err, TEEX_EBUSY, "call %s: %u calls already open",
                        method, s->n_entries);
  if (timeout_ms == 0)
    timeout_ms = s->lim.default_timeout_ms;
  if (timeout_ms > TEEX_RPC_MAX_TIMEOUT_MS)
    timeout_ms = TEEX_RPC_MAX_TIMEOUT_MS;

  uint64_t id = s->next_id++;
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcRequest rq = TEEX__RPC__RPC_REQUEST__INIT;
  f.id = id;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_REQUEST;
  f.request = &rq;
  rq.method = (char *)method;
  size_t first = len > TEEX_RPC_CHUNK_SIZE ? TEEX_RPC_CHUNK_SIZE : len;
  rq.payload.data = (uint8_t *)payload;
  rq.payload.len = first;
  rq.timeout_ms = timeout_ms;
  rq.more = first < len;
  rq.total_len = rq.more ? len : 0;
  size_t mark = s->out.len;
  int r = emit(s, &f);
  if (r == 0 && rq.more)
    r = emit_rest(s, id, payload, len, first);
  if (r != 0) {
    s->out.len = mark;
    return teex_err_set(err, r, "call %s: cannot queue the request", method);
  }
  struct rpc_entry *e = entry_add(s, id, E_WAITING, now_ms + timeout_ms);
  if (e == NULL) {
    s->out.len = mark;
    return teex_err_set(err, TEEX_ENOMEM, "call %s: out of memory", method);
  }
  e->timeout_ms = timeout_ms;
  snprintf(e->method, sizeof e->method, "%s", method);
  e->done = done;
  e->on_chunk = on_chunk;
  e->cb_arg = arg;
  if (id_out)
    *id_out = id;
  return 0;
}

/* Ends a client call: removes it first so done may start new calls. */
static void client_finish(struct teex_rpc_session *s, struct rpc_entry *e,
                          int code, const char *msg) {
  teex_rpc_done_fn done = e->done;
  void *arg = e->cb_arg;
  struct teex_buf payload = e->payload;
  teex_buf_init(&e->payload, 0, 0);
  s->buffered -= payload.len;
  entry_remove(s, e);
  if (done)
    done(arg, code, code ? msg : NULL, code ? NULL : payload.data,
         code ? 0 : payload.len);
  teex_buf_free(&payload);
}

/* A piece of response payload for call e. */
static void client_take(struct teex_rpc_session *s, struct rpc_entry *e,
                        const uint8_t *p, size_t n, int last) {
  if (e->on_chunk) {
    if (n > 0)
      e->on_chunk(e->cb_arg, p, n);
  } else if (n > 0) {
    if (s->buffered + n > s->lim.max_buffered ||
        teex_buf_append(&e->payload, p, n) != 0) {
      char msg[160];
      snprintf(msg, sizeof msg,
               "response to %s exceeds %zu bytes (or %zu on the connection)",
               e->method, s->lim.max_message, s->lim.max_buffered);
      emit_cancel(s, e->id);
      e->phase = E_DISCARD; /* drop its remaining chunks */
      teex_rpc_done_fn done = e->done;
      e->done = NULL;
      s->buffered -= e->payload.len;
      teex_buf_free(&e->payload);
      teex_buf_init(&e->payload, 0, 0);
      if (done)
        done(e->cb_arg, TEEX_ETOOBIG, msg, NULL, 0);
      if (last)
        entry_remove(s, e);
      return;
    }
    s->buffered += n;
  }
  if (last)
    client_finish(s, e, 0, NULL);
}

int teex_rpc_session_cancel(struct teex_rpc_session *s, uint64_t id) {
  struct rpc_entry *e = entry_find(s, id);
  if (e == NULL || s->role != TEEX_RPC_CLIENT || e->phase == E_DISCARD)
    return TEEX_ENOTFOUND;
  emit_cancel(s, id);
  client_finish(s, e, TEEX_ECANCELED, "call canceled");
  return 0;
}

static int client_frame(struct teex_rpc_session *s, Teex__Rpc__RpcFrame *f,
                        struct teex_err *err) {
  struct rpc_entry *e = entry_find(s, f->id);
  switch (f->body_case) {
  case TEEX__RPC__RPC_FRAME__BODY_RESPONSE: {
    Teex__Rpc__RpcResponse *r = f->response;
    /* A call that timed out or was canceled here may still be answered. */
    if (e == NULL)
      return 0;
    if (e->phase != E_WAITING)
      return teex_err_set(err, TEEX_EPROTO, "second response for call %llu",
                          (unsigned long long)f->id);
    if (r->code > 0)
      return teex_err_set(err, TEEX_EPROTO, "response code %d is not <= 0",
                          (int)r->code);
    if (r->code != 0) {
      char msg[TEEX_ERRMSG_SIZE];
      snprintf(msg, sizeof msg, "%s",
               r->message && *r->message ? r->message : teex_strerror(r->code));
      if (r->more)
        return teex_err_set(err, TEEX_EPROTO, "error response with chunks");
      client_finish(s, e, r->code, msg);
      return 0;
    }
    if (r->more && r->total_len > s->lim.max_message) {
      char msg[128];
      snprintf(msg, sizeof msg, "response to %s announces %llu bytes > %zu",
               e->method, (unsigned long long)r->total_len, s->lim.max_message);
      emit_cancel(s, e->id);
      e->phase = E_DISCARD;
      teex_rpc_done_fn done = e->done;
      e->done = NULL;
      if (done)
        done(e->cb_arg, TEEX_ETOOBIG, msg, NULL, 0);
      return 0;
    }
    e->phase = E_RECEIVING;
    e->total_len = r->total_len;
    client_take(s, e, r->payload.data, r->payload.len, !r->more);
    return 0;
  }
  case TEEX__RPC__RPC_FRAME__BODY_CHUNK: {
    Teex__Rpc__RpcChunk *c = f->chunk;
    if (e == NULL)
      return 0;
    if (e->phase == E_DISCARD) {
      if (c->last)
        entry_remove(s, e);
      return 0;
    }
    if (e->phase != E_RECEIVING)
      return teex_err_set(err, TEEX_EPROTO, "chunk before response for %llu",
                          (unsigned long long)f->id);
    if (c->code != 0) {
      if (!c->last || c->code > 0)
        return teex_err_set(err, TEEX_EPROTO, "bad chunk error code");
      char msg[TEEX_ERRMSG_SIZE];
      snprintf(msg, sizeof msg, "%s",
               c->message && *c->message ? c->message : teex_strerror(c->code));
      client_finish(s, e, c->code, msg);
      return 0;
    }
    if (e->total_len && e->payload.len + c->data.len > e->total_len &&
        !e->on_chunk)
      return teex_err_set(err, TEEX_EPROTO, "response longer than announced");
    client_take(s, e, c->data.data, c->data.len, c->last);
    return 0;
  }
  default:
    return teex_err_set(err, TEEX_EPROTO, "server sent a %s frame",
                        f->body_case == TEEX__RPC__RPC_FRAME__BODY_REQUEST
                            ? "request"
                            : "cancel");
  }
}

/* ---- server ---- */

static void server_run(struct teex_rpc_session *s, struct rpc_entry *e,
                       const uint8_t *p, size_t n) {
  e->phase = E_RUNNING;
  if (s->cbs.on_request)
    s->cbs.on_request(s->arg, e->id, e->method, p, n, e->deadline);
  else
    teex_rpc_session_respond(s, e->id, TEEX_EUNSUPPORTED, "no handlers", NULL,
                             0);
}

/* Answers an error at once; the call's remaining chunks are dropped. */
static void server_refuse(struct teex_rpc_session *s, struct rpc_entry *e,
                          int more, int code, const char *msg) {
  emit_response(s, e->id, code, msg, NULL, 0);
  if (more) {
    e->phase = E_DISCARD;
    s->buffered -= e->payload.len;
    teex_buf_free(&e->payload);
    teex_buf_init(&e->payload, 0, 0);
  } else {
    entry_remove(s, e);
  }
}

static int server_frame(struct teex_rpc_session *s, Teex__Rpc__RpcFrame *f,
                        uint64_t now, struct teex_err *err) {
  struct rpc_entry *e = entry_find(s, f->id);
  switch (f->body_case) {
  case TEEX__RPC__RPC_FRAME__BODY_REQUEST: {
    Teex__Rpc__RpcRequest *rq = f->request;
    if (e != NULL)
      return teex_err_set(err, TEEX_EPROTO, "call id %llu reused while open",
                          (unsigned long long)f->id);
    uint32_t t = rq->timeout_ms ? rq->timeout_ms : s->lim.default_timeout_ms;
    if (t > TEEX_RPC_MAX_TIMEOUT_MS)
      t = TEEX_RPC_MAX_TIMEOUT_MS;
    /* Over the limit of open calls: answer at once, keep no state unless
     * chunks follow (which must be recognised and dropped). */
    if (s->n_entries >= s->lim.max_inflight && !rq->more) {
      emit_response(s, f->id, TEEX_EBUSY, "too many open calls", NULL, 0);
      return 0;
    }
    if (s->n_entries >= s->lim.max_inflight + 64u)
      return teex_err_set(err, TEEX_EPROTO, "too many open calls");
    e = entry_add(s, f->id, E_ASSEMBLING, now + t);
    if (e == NULL)
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    e->timeout_ms = t;
    size_t ml = rq->method ? strlen(rq->method) : 0;
    snprintf(e->method, sizeof e->method, "%s", ml ? rq->method : "");
    if (s->n_entries > s->lim.max_inflight) {
      server_refuse(s, e, rq->more, TEEX_EBUSY, "too many open calls");
      return 0;
    }
    if (ml == 0 || ml > TEEX_RPC_MAX_METHOD) {
      server_refuse(s, e, rq->more, TEEX_EINVAL, "bad method name length");
      return 0;
    }
    if (!rq->more) {
      server_run(s, e, rq->payload.data, rq->payload.len);
      return 0;
    }
    if (rq->total_len > s->lim.max_message || rq->payload.len > rq->total_len) {
      char msg[128];
      snprintf(msg, sizeof msg, "request of %llu bytes exceeds the limit %zu",
               (unsigned long long)rq->total_len, s->lim.max_message);
      server_refuse(s, e, 1, TEEX_ETOOBIG, msg);
      return 0;
    }
    e->total_len = rq->total_len;
    if (s->buffered + rq->payload.len > s->lim.max_buffered) {
      server_refuse(s, e, 1, TEEX_EBUSY,
                    "too much request data in flight on this connection");
      return 0;
    }
    if (teex_buf_append(&e->payload, rq->payload.data, rq->payload.len) != 0)
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    s->buffered += rq->payload.len;
    return 0;
  }
  case TEEX__RPC__RPC_FRAME__BODY_CHUNK: {
    Teex__Rpc__RpcChunk *c = f->chunk;
    if (e == NULL)
      return 0; /* a call that expired or was refused before it began */
    if (e->phase == E_DISCARD) {
      if (c->last)
        entry_remove(s, e);
      return 0;
    }
    if (e->phase != E_ASSEMBLING)
      return teex_err_set(err, TEEX_EPROTO, "chunk after the request ended");
    if (c->code != 0)
      return teex_err_set(err, TEEX_EPROTO, "error code in a request chunk");
    if (e->payload.len + c->data.len > e->total_len) {
      server_refuse(s, e, !c->last, TEEX_EPROTO,
                    "request longer than announced");
      return 0;
    }
    if (s->buffered + c->data.len > s->lim.max_buffered) {
      server_refuse(s, e, !c->last, TEEX_EBUSY,
                    "too much request data in flight on this connection");
      return 0;
    }
    if (teex_buf_append(&e->payload, c->data.data, c->data.len) != 0)
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    s->buffered += c->data.len;
    if (!c->last)
      return 0;
    if (e->payload.len != e->total_len) {
      server_refuse(s, e, 0, TEEX_EPROTO, "request shorter than announced");
      return 0;
    }
    /* The handler gets the assembled payload; free it once it returns. */
    struct teex_buf p = e->payload;
    teex_buf_init(&e->payload, 0, 0);
    s->buffered -= p.len;
    server_run(s, e, p.data, p.len);
    teex_buf_free(&p);
    return 0;
  }
  case TEEX__RPC__RPC_FRAME__BODY_CANCEL:
    if (e == NULL)
      return 0;
    if (e->phase == E_RUNNING || e->phase == E_ASSEMBLING) {
      int was_running = e->phase == E_RUNNING;
      entry_remove(s, e);
      if (was_running && s->cbs.on_call_gone)
        s->cbs.on_call_gone(s->arg, f->id, TEEX_ECANCELED);
    } else {
      /* DISCARD: chunks may still come; the entry goes with the last one. */
    }
    return 0;
  default:
    return teex_err_set(err, TEEX_EPROTO, "client sent a response frame");
  }
}

int teex_rpc_session_respond(struct teex_rpc_session *s, uint64_t id, int code,
                             const char *msg, const uint8_t *payload,
                             size_t len) {
  struct rpc_entry *e = entry_find(s, id);
  if (e == NULL || e->phase != E_RUNNING || s->role != TEEX_RPC_SERVER)
    return TEEX_ENOTFOUND;
  if (code > 0)
    code = TEEX_EINTERNAL;
  int r;
  if (e->out_started)
    r = code ? emit_chunk(s, id, NULL, 0, 1, code, msg)
             : emit_rest(s, id, payload, len, 0);
  else if (len > s->lim.max_message)
    r = emit_response(s, id, TEEX_ETOOBIG, "response exceeds the limit", NULL,
                      0);
  else
    r = emit_response(s, id, code, msg, payload, len);
  if (r != 0)
    r = emit_response(s, id, TEEX_ETOOBIG, "response could not be queued", NULL,
                      0);
  entry_remove(s, e);
  return r;
}

int teex_rpc_session_stream(struct teex_rpc_session *s, uint64_t id,
                            const uint8_t *data, size_t len, int last, int code,
                            const char *msg) {
  struct rpc_entry *e = entry_find(s, id);
  if (e == NULL || e->phase != E_RUNNING || s->role != TEEX_RPC_SERVER)
    return TEEX_ENOTFOUND;
  int r = 0;
  if (!e->out_started) {
    if (code != 0 && last) {
      r = emit_response(s, id, code, msg, NULL, 0);
      entry_remove(s, e);
      return r;
    }
    Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
    Teex__Rpc__RpcResponse rs = TEEX__RPC__RPC_RESPONSE__INIT;
    f.id = id;
    f.body_case = TEEX__RPC__RPC_FRAME__BODY_RESPONSE;
    f.response = &rs;
    size_t first = len > TEEX_RPC_CHUNK_SIZE ? TEEX_RPC_CHUNK_SIZE : len;
    rs.payload.data = (uint8_t *)data;
    rs.payload.len = first;
    rs.more = !(last && first == len);
    r = emit(s, &f);
    e->out_started = 1;
    data += first;
    len -= first;
    if (r == 0 && !rs.more) {
      entry_remove(s, e);
      return 0;
    }
  }
  while (r == 0 && len > 0) {
    size_t n = len > TEEX_RPC_CHUNK_SIZE ? TEEX_RPC_CHUNK_SIZE : len;
    int end = last && n == len && code == 0;
    r = emit_chunk(s, id, data, n, end, 0, NULL);
    data += n;
    len -= n;
    if (end) {
      entry_remove(s, e);
      return r;
    }
  }
  if (r == 0 && last)
    r = emit_chunk(s, id, NULL, 0, 1, code, msg);
  if (last || r != 0)
    entry_remove(s, e);
  return r;
}

/* ---- both ---- */

int teex_rpc_session_feed(struct teex_rpc_session *s, const uint8_t *p,
                          size_t n, uint64_t now_ms, struct teex_err *err) {
  if (s->failed)
    return teex_err_set(err, TEEX_EPROTO, "session already failed");
  while (n > 0) {
    const uint8_t *frame;
    size_t flen;
    int r = teex_frame_reader_next(&s->reader, &p, &n, &frame, &flen, err);
    if (r == 0)
      break;
    if (r < 0) {
      s->failed = 1;
      return r;
    }
    Teex__Rpc__RpcFrame *f = teex__rpc__rpc_frame__unpack(NULL, flen, frame);
    if (f == NULL) {
      s->failed = 1;
      return teex_err_set(err, TEEX_EFORMAT,
                          "frame of %zu bytes is not a valid RpcFrame", flen);
    }
    if (f->id == 0 || f->body_case == TEEX__RPC__RPC_FRAME__BODY__NOT_SET) {
      r = teex_err_set(err, TEEX_EPROTO, "frame without %s",
                       f->id == 0 ? "a call id" : "a body");
    } else if (s->role == TEEX_RPC_SERVER) {
      r = server_frame(s, f, now_ms, err);
    } else {
      r = client_frame(s, f, err);
    }
    teex__rpc__rpc_frame__free_unpacked(f, NULL);
    if (r != 0) {
      s->failed = 1;
      return r;
    }
  }
  return 0;
}

void teex_rpc_session_tick(struct teex_rpc_session *s, uint64_t now_ms) {
  struct rpc_entry *e = s->entries;
  while (e) {
    struct rpc_entry *next = e->next;
    if (e->deadline > now_ms) {
      e = next;
      continue;
    }
    uint64_t id = e->id;
    char msg[160];
    snprintf(msg, sizeof msg, "deadline of %u ms exceeded (%s)", e->timeout_ms,
             e->method);
    if (s->role == TEEX_RPC_CLIENT) {
      if (e->phase == E_DISCARD) {
        entry_remove(s, e);
      } else {
        emit_cancel(s, id);
        client_finish(s, e, TEEX_ETIMEDOUT, msg);
      }
    } else {
      int was_running = e->phase == E_RUNNING;
      if (e->phase == E_RUNNING || e->phase == E_ASSEMBLING) {
        if (e->out_started)
          emit_chunk(s, id, NULL, 0, 1, TEEX_ETIMEDOUT, msg);
        else
          emit_response(s, id, TEEX_ETIMEDOUT, msg, NULL, 0);
      }
      entry_remove(s, e);
      if (was_running && s->cbs.on_call_gone)
        s->cbs.on_call_gone(s->arg, id, TEEX_ETIMEDOUT);
    }
    /* A callback may have changed the list: start again from the head. */
    e = s->entries;
  }
  /* The bound becomes exact again (entries removed since may have held it). */
  uint64_t d = UINT64_MAX;
  for (e = s->entries; e; e = e->next)
    if (e->deadline < d)
      d = e->deadline;
  s->min_deadline = d;
}

uint64_t teex_rpc_session_next_deadline(const struct teex_rpc_session *s) {
  /* A lower bound, exact after each tick: a timer armed on it may fire
   * early (the tick then finds nothing due and tightens it), never late. */
  return s->entries ? s->min_deadline : UINT64_MAX;
}

void teex_rpc_session_close(struct teex_rpc_session *s, const char *why) {
  while (s->entries) {
    struct rpc_entry *e = s->entries;
    uint64_t id = e->id;
    if (s->role == TEEX_RPC_CLIENT && e->phase != E_DISCARD) {
      client_finish(s, e, TEEX_ECLOSED, why ? why : "connection closed");
    } else {
      int was_running = e->phase == E_RUNNING;
      entry_remove(s, e);
      if (was_running && s->cbs.on_call_gone)
        s->cbs.on_call_gone(s->arg, id, TEEX_ECLOSED);
    }
  }
  teex_frame_reader_free(&s->reader);
  teex_buf_free(&s->out);
  free(s->buckets);
  s->buckets = NULL;
  s->n_buckets = 0;
  s->failed = 1;
}
