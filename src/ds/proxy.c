/* The RESP proxy (include/teex/ds_proxy.h): a libuv TCP server on
 * loopback. Each connection parses requests as they arrive (resp.c) and
 * pipelines them: up to PIPE_MAX commands of one connection run through
 * the backend at once (resp_cmds.c decides what to run and what to reply),
 * each with its own reply buffer, and replies are written strictly in
 * request order; a pipeline answered in one read is written in one write
 * where possible. Commands are begun (parsed, checked, session state
 * changed) in request order, and the backend receives them in that order;
 * what that guarantees about the order they take effect in is in
 * docs/internals/ds.md ("Ordering"). A heavy command (MGET, MSET, SCAN,
 * KEYS, INFO, DBSIZE, or any request over LIGHT_MAX bytes) runs alone:
 * it waits for the commands before it and holds the ones after it, so a
 * connection buffers at most one large request and one large reply. */
#include "teex/ds_proxy.h"

#include "ds/resp.h"
#include "ds/resp_cmds.h"
#include "teex/log.h"
#include "teex/mem.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_CHUNK (64 * 1024)
/* Replies waiting in a connection's buffer before they are handed to the
 * socket; one reply may be up to a full MGET. */
#define OUT_MAX ((size_t)TEEX_RESP_ARGS_MAX * (TEEX_DS_VALUE_MAX + 64))
/* Commands of one connection in flight at once, and the largest request
 * that may run beside others (a SET of a full value with a full key). */
#define PIPE_MAX 64u
#define LIGHT_MAX (TEEX_DS_VALUE_MAX + TEEX_DS_KEY_MAX + 256u)
/* A reply of a light command (a GET of a full value) fits in this. */
#define LIGHT_OUT_MAX (TEEX_DS_VALUE_MAX + 1024u)

struct teex_ds_proxy;
struct conn;

/* One command of a connection's pipeline, from its parse to its reply. */
struct pcall {
  struct pcall *next;
  struct conn *c;
  struct teex_resp_call call;
  struct teex_buf out; /* its reply, until those before it are written */
  int busy;            /* a backend call is pending */
  int deferred;        /* begun; runs once it is the head (see process) */
  int heavy;           /* runs alone */
  int read;            /* a read: a write after it waits for its answer */
  int done;            /* the reply is complete */
};

struct conn {
  uv_tcp_t tcp;
  struct teex_ds_proxy *px;
  struct conn *prev, *next;
  struct teex_resp_parser parser;
  struct teex_resp_session sess;
  struct teex_resp_cmd *cmd;
  struct pcall *head, *tail; /* the pipeline, in request order */
  unsigned calls;            /* in the pipeline */
  unsigned pending;          /* backend calls pending */
  struct pcall *hold;        /* no new command begins while this one is deferred
                                or, if heavy, until it is answered */
  unsigned reads;            /* reads in the pipeline not yet answered */
  struct teex_buf out;       /* replies not yet handed to the socket */
  size_t in_flight;          /* bytes handed to uv_write, not yet written */
  int reading;
  int closing;       /* uv_close requested */
  int handle_closed; /* its close callback ran */
  int close_after_write;
};

struct teex_ds_proxy {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  char ns[TEEX_DS_NS_MAX + 1];
  int read_mode;
  unsigned max_clients;
  struct teex_ds_backend *backend;
  struct conn *conns;
  unsigned open;
  uint64_t accepted;
  int closing, listener_closed;
  struct teex_resp_cursors cursors; /* SCAN cursors of every connection */
  char read_buf[READ_CHUNK];
};

struct write_req {
  uv_write_t req;
  struct conn *c;
  uint8_t *data;
  size_t len;
};

static void maybe_free_proxy(struct teex_ds_proxy *px) {
  if (px->closing && px->listener_closed && px->conns == NULL)
    free(px);
}

static void pcall_free(struct pcall *p) {
  teex_resp_call_reset(&p->call);
  teex_buf_free(&p->out); /* TEEX_BUF_SECRET: wiped */
  free(p);
}

static void conn_free(struct conn *c) {
  struct teex_ds_proxy *px = c->px;
  if (c->prev)
    c->prev->next = c->next;
  else
    px->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  px->open--;
  teex_resp_parser_free(&c->parser);
  while (c->head != NULL) {
    struct pcall *p = c->head;
    c->head = p->next;
    pcall_free(p);
  }
  free(c->cmd);
  if (c->out.data)
    teex_wipe(c->out.data, c->out.len);
  teex_buf_free(&c->out);
  free(c);
  maybe_free_proxy(px);
}

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  c->handle_closed = 1;
  if (c->pending == 0)
    conn_free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void process(struct conn *c);
static void update_reading(struct conn *c);

/* Everything answered and written: a QUIT or a protocol error may close. */
static int drained(const struct conn *c) {
  return c->calls == 0 && c->in_flight == 0 && c->out.len == 0;
}

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct conn *c = w->c;
  c->in_flight -= w->len;
  teex_wipe(w->data, w->len);
  free(w->data);
  free(w);
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->close_after_write && drained(c)) {
    conn_close(c);
    return;
  }
  update_reading(c);
}

/* Hands the buffered replies to the socket. */
static void flush(struct conn *c) {
  if (c->closing || c->out.len == 0)
    return;
  struct write_req *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    conn_close(c);
    return;
  }
  w->c = c;
  w->data = teex_buf_steal(&c->out, &w->len);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  c->in_flight += w->len;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc != 0) {
    c->in_flight -= w->len;
    free(w->data);
    free(w);
    conn_close(c);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  struct conn *c = h->data;
  buf->base = c->px->read_buf;
  buf->len = sizeof(c->px->read_buf);
}

static struct pcall *pcall_new(struct conn *c, size_t out_max) {
  struct pcall *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->c = c;
  teex_buf_init(&p->out, out_max, TEEX_BUF_SECRET);
  if (c->tail)
    c->tail->next = p;
  else
    c->head = p;
  c->tail = p;
  c->calls++;
  return p;
}

/* Redis answers a protocol error after the replies before it, then closes
 * the connection: the error takes its place in the pipeline. */
static void queue_protocol_error(struct conn *c, const char *msg) {
  c->close_after_write = 1;
  struct pcall *p = pcall_new(c, 1024);
  if (p == NULL) {
    conn_close(c);
    return;
  }
  teex_resp_error(&p->out, "ERR %s", msg);
  p->done = 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n == 0)
    return;
  int rc =
      teex_resp_parser_feed(&c->parser, (const uint8_t *)buf->base, (size_t)n);
  teex_wipe(buf->base, (size_t)n);
  if (rc != 0)
    queue_protocol_error(c, "Protocol error: request too large");
  process(c);
}

/* Reads only while the connection keeps up: not while a long pipeline
 * waits to be parsed or a slow reader has megabytes of replies pending. */
static void update_reading(struct conn *c) {
  if (c->closing)
    return;
  int want = !c->close_after_write && c->in_flight < TEEX_DS_PROXY_OUT_HIGH &&
             teex_resp_parser_pending(&c->parser) <= TEEX_RESP_REQUEST_MAX;
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void on_done(void *arg, int status, struct teex_ds_result *res);

/* Runs the call while it asks for backend commands; returns with the call
 * pending (busy) or finished (done). rc: what begin/next returned.
 * Negative: the connection cannot go on (out of memory, reply too big). */
static int drive(struct pcall *p, int rc) {
  struct conn *c = p->c;
  while (rc == TEEX_RESP_EXEC) {
    struct teex_err err;
    teex_err_clear(&err);
    p->busy = 1;
    c->pending++;
    int r = c->px->backend->ops->exec(c->px->backend, &p->call.cmd,
                                      p->call.read_mode, on_done, p, &err);
    if (r == 0)
      return 0; /* on_done continues */
    p->busy = 0;
    c->pending--;
    rc = teex_resp_call_next(&c->sess, &p->call, r, NULL, &p->out);
  }
  if (rc == TEEX_RESP_DONE) {
    p->done = 1;
    if (p->read)
      c->reads--;
  }
  return rc;
}

/* Moves the replies at the head of the pipeline, complete and in order, to
 * the connection's output, and starts a heavy command once it is the head.
 * Negative: the connection cannot go on. */
static int deliver(struct conn *c) {
  while (c->head != NULL && !c->closing) {
    struct pcall *p = c->head;
    if (p->deferred) {
      p->deferred = 0;
      int rc = drive(p, TEEX_RESP_EXEC);
      if (rc < 0)
        return rc;
    }
    if (c->hold == p && !p->heavy)
      c->hold = NULL; /* running: those after it may begin */
    if (!p->done)
      break;
    if (teex_buf_append(&c->out, p->out.data, p->out.len) != 0)
      return TEEX_ETOOBIG;
    c->head = p->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->calls--;
    if (c->hold == p)
      c->hold = NULL;
    pcall_free(p);
  }
  return 0;
}

static void on_done(void *arg, int status, struct teex_ds_result *res) {
  struct pcall *p = arg;
  struct conn *c = p->c;
  p->busy = 0;
  c->pending--;
  int rc = 0;
  if (!c->closing)
    rc = teex_resp_call_next(&c->sess, &p->call, status, res, &p->out);
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
  if (c->closing) {
    if (c->handle_closed && c->pending == 0)
      conn_free(c);
    return;
  }
  rc = drive(p, rc);
  if (rc < 0) {
    conn_close(c);
    return;
  }
  process(c);
}

static int name_in(const struct teex_resp_cmd *cmd, const char *const *set,
                   size_t n) {
  size_t len = cmd->argv[0].len;
  const char *name = (const char *)cmd->argv[0].p;
  for (size_t i = 0; i < n; i++)
    if (strlen(set[i]) == len && strncasecmp(name, set[i], len) == 0)
      return 1;
  return 0;
}

/* Single-key commands with small replies may run beside others. */
static int is_light(const struct teex_resp_cmd *cmd) {
  static const char *const light[] = {
      "get",     "set",     "setnx", "setex", "psetex", "strlen", "del",
      "unlink",  "exists",  "incr",  "decr",  "incrby", "decrby", "expire",
      "pexpire", "persist", "ttl",   "pttl",  "ping",   "echo"};
  size_t bytes = 0;
  for (size_t i = 0; i < cmd->argc; i++)
    bytes += cmd->argv[i].len + 16;
  return bytes <= LIGHT_MAX &&
         name_in(cmd, light, sizeof(light) / sizeof(light[0]));
}

/* Light commands that only read. Any other command that reaches the
 * backend is taken for a write. */
static int is_read(const struct teex_resp_cmd *cmd) {
  static const char *const reads[] = {"get", "strlen", "exists", "ttl", "pttl"};
  return name_in(cmd, reads, sizeof(reads) / sizeof(reads[0]));
}

/* Begins the parsed requests in order, while the pipeline has room. */
static void process(struct conn *c) {
  int rc = deliver(c);
  while (rc >= 0 && !c->closing && !c->close_after_write && c->hold == NULL &&
         c->calls < PIPE_MAX) {
    rc = teex_resp_parser_next(&c->parser, c->cmd);
    if (rc == 0)
      break;
    if (rc < 0) {
      queue_protocol_error(c, c->parser.err);
      rc = 0;
      break;
    }
    int heavy = !is_light(c->cmd);
    struct pcall *p = pcall_new(c, heavy ? OUT_MAX : LIGHT_OUT_MAX);
    if (p == NULL) {
      rc = TEEX_ENOMEM;
      break;
    }
    p->heavy = heavy;
    int read = !heavy && is_read(c->cmd);
    rc = teex_resp_call_begin(&c->sess, &p->call, c->cmd, &p->out);
    if (rc == TEEX_RESP_EXEC && read) {
      p->read = 1;
      c->reads++;
    } else if (rc == TEEX_RESP_EXEC && (heavy || c->reads > 0)) {
      /* A heavy command runs alone: after those before it, before those
       * after it. A write waits for the reads before it: the replica
       * answers a read at a state with every write it received before the
       * read, and possibly later ones, so a write sent while an earlier
       * read waits could show in that read's answer. */
      c->hold = p;
      if (p != c->head)
        p->deferred = 1;
    }
    if (!p->deferred)
      rc = drive(p, rc);
    if (rc < 0)
      break;
    if (c->sess.quit)
      c->close_after_write = 1;
    rc = deliver(c);
    /* a long pipeline: hand replies over as they accumulate */
    if (c->out.len >= READ_CHUNK)
      flush(c);
  }
  if (rc >= 0)
    rc = deliver(c);
  flush(c);
  if (rc < 0) {
    conn_close(c);
    return;
  }
  if (c->close_after_write && drained(c)) {
    conn_close(c);
    return;
  }
  update_reading(c);
}

static void backend_info(void *arg, struct teex_ds_backend_info *out) {
  struct teex_ds_backend *b = arg;
  if (b->ops->info)
    b->ops->info(b, out);
}

static void on_connection(uv_stream_t *server, int status) {
  struct teex_ds_proxy *px = server->data;
  if (status < 0 || px->closing)
    return;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->px = px;
  c->cmd = malloc(sizeof(*c->cmd));
  teex_resp_parser_init(&c->parser);
  teex_buf_init(&c->out, OUT_MAX, TEEX_BUF_SECRET);
  uv_tcp_init(px->loop, &c->tcp);
  c->tcp.data = c;
  c->next = px->conns;
  if (px->conns)
    px->conns->prev = c;
  px->conns = c;
  px->open++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || c->cmd == NULL ||
      teex_resp_session_init(&c->sess, px->ns, ++px->accepted) != 0) {
    conn_close(c);
    return;
  }
  c->sess.read_mode = px->read_mode;
  c->sess.cursors = &px->cursors;
  c->sess.info = backend_info;
  c->sess.info_arg = px->backend;
  uv_tcp_nodelay(&c->tcp, 1);
  if (px->open > px->max_clients) {
    teex_resp_error(&c->out, "ERR max number of clients reached");
    c->close_after_write = 1;
    flush(c);
    return;
  }
  update_reading(c);
}

/* ---- the listen address ---- */

static int sa_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    static const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                         0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a = in6->sin6_addr.s6_addr;
    if (memcmp(a, lo, 16) == 0)
      return 1;
    return memcmp(a, v4mapped, 12) == 0 && a[12] == 127;
  }
  return 0;
}

int teex_ds_proxy_check_listen(const char *addr, teex_ds_resolve_fn resolve,
                               teex_ds_freeaddr_fn freeaddr,
                               struct sockaddr_storage *out,
                               struct teex_err *err) {
  char host[256];
  const char *port;
  memset(out, 0, sizeof(*out));
  if (addr == NULL || *addr == '\0')
    return teex_err_set(err, TEEX_EINVAL, "listen address: empty");
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
      return teex_err_set(err, TEEX_EINVAL,
                          "listen address '%s': want [v6]:port", addr);
    memcpy(host, addr + 1, (size_t)(end - addr - 1));
    host[end - addr - 1] = '\0';
    port = end + 2;
  } else {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof host)
      return teex_err_set(err, TEEX_EINVAL,
                          "listen address '%s': want host:port", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port = colon + 1;
  }
  char *endp;
  unsigned long pn = strtoul(port, &endp, 10);
  if (*port == '\0' || *endp != '\0' || pn > 65535)
    return teex_err_set(err, TEEX_EINVAL, "listen address '%s': bad port",
                        addr);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int gai = resolve ? resolve(host, port, &hints, &res)
                    : getaddrinfo(host, port, &hints, &res);
  if (gai != 0 || res == NULL)
    return teex_err_set(err, TEEX_EINVAL,
                        "listen address '%s': cannot resolve '%s'%s%s", addr,
                        host, gai != 0 && !resolve ? ": " : "",
                        gai != 0 && !resolve ? gai_strerror(gai) : "");
  int rc = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (!sa_is_loopback(ai->ai_addr)) {
      char txt[INET6_ADDRSTRLEN] = "?";
      if (ai->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, txt,
                  sizeof txt);
      else if (ai->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
                  txt, sizeof txt);
      rc = teex_err_set(err, TEEX_EPERM,
                        "listen address '%s' resolves to %s, which is not "
                        "loopback: the Redis proxy serves local tools only "
                        "(127.0.0.0/8 or ::1)",
                        addr, txt);
      break;
    }
  }
  if (rc == 0) {
    if (res->ai_addrlen > sizeof(*out))
      rc = teex_err_set(err, TEEX_EINVAL, "listen address: too long");
    else
      memcpy(out, res->ai_addr, res->ai_addrlen);
  }
  if (resolve)
    (freeaddr ? freeaddr : freeaddrinfo)(res);
  else
    freeaddrinfo(res);
  return rc;
}

/* ---- start / stop ---- */

static void on_failed_close(uv_handle_t *h) {
  free(h->data);
}

int teex_ds_proxy_start(uv_loop_t *loop, const struct teex_ds_proxy_config *cfg,
                        struct teex_ds_proxy **out, struct teex_err *err) {
  *out = NULL;
  if (cfg->backend == NULL || cfg->backend->ops == NULL ||
      cfg->backend->ops->exec == NULL)
    return teex_err_set(err, TEEX_EINVAL, "ds proxy: no backend");
  struct teex_resp_session probe;
  if (teex_resp_session_init(&probe, cfg->ns, 0) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "ds proxy: bad namespace '%s' (1-%d of a-z 0-9 _ - .)",
                        cfg->ns ? cfg->ns : "", TEEX_DS_NS_MAX);
  if (cfg->read_mode != TEEX_DS_PROXY_READ_LINEARIZABLE &&
      cfg->read_mode != TEEX_DS_PROXY_READ_FOLLOWER)
    return teex_err_set(err, TEEX_EINVAL, "ds proxy: bad read mode");
  struct sockaddr_storage ss;
  int rc = teex_ds_proxy_check_listen(cfg->listen, cfg->resolve, cfg->freeaddr,
                                      &ss, err);
  if (rc != 0)
    return teex_err_wrap(err, 0, "ds proxy");
  struct teex_ds_proxy *px = calloc(1, sizeof(*px));
  if (px == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds proxy: out of memory");
  px->loop = loop;
  snprintf(px->ns, sizeof px->ns, "%s", cfg->ns);
  px->read_mode = cfg->read_mode;
  px->max_clients =
      cfg->max_clients ? cfg->max_clients : TEEX_DS_PROXY_CLIENTS_MAX;
  px->backend = cfg->backend;
  uv_tcp_init(loop, &px->listener);
  px->listener.data = px;
  int r = uv_tcp_bind(&px->listener, (struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&px->listener, 128, on_connection);
  if (r != 0) {
    rc = teex_err_set(err, TEEX_ECONN, "ds proxy: listen on %s: %s",
                      cfg->listen, uv_strerror(r));
    /* freed by the close callback, when the caller's loop runs */
    uv_close((uv_handle_t *)&px->listener, on_failed_close);
    return rc;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&px->listener, (struct sockaddr *)&bound, &len);
  px->port = ntohs(bound.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&bound)->sin6_port
                       : ((struct sockaddr_in *)&bound)->sin_port);
  *out = px;
  return 0;
}

int teex_ds_proxy_port(const struct teex_ds_proxy *p) {
  return p->port;
}

void teex_ds_proxy_stats(const struct teex_ds_proxy *p, uint64_t *accepted,
                         unsigned *open) {
  *accepted = p->accepted;
  *open = p->open;
}

static void on_listener_closed(uv_handle_t *h) {
  struct teex_ds_proxy *px = h->data;
  px->listener_closed = 1;
  maybe_free_proxy(px);
}

void teex_ds_proxy_close(struct teex_ds_proxy *p) {
  if (p == NULL || p->closing)
    return;
  p->closing = 1;
  for (struct conn *c = p->conns; c != NULL; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&p->listener, on_listener_closed);
}
