/* The RESP proxy (include/teex/ds_proxy.h): a libuv TCP server on
 * loopback. Each connection parses requests as they arrive (resp.c), runs
 * them one after another through the backend (resp_cmds.c decides what to
 * run and what to reply), and writes the replies in order; a pipeline of
 * requests in one read is answered in one write where possible. One command
 * at a time per connection keeps Redis's per-connection ordering whatever
 * the backend does with concurrent calls. */
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

#define READ_CHUNK (64 * 1024)
/* Replies waiting in a connection's buffer before they are handed to the
 * socket; one reply may be up to a full MGET. */
#define OUT_MAX ((size_t)TEEX_RESP_ARGS_MAX * (TEEX_DS_VALUE_MAX + 64))

struct teex_ds_proxy;

struct conn {
  uv_tcp_t tcp;
  struct teex_ds_proxy *px;
  struct conn *prev, *next;
  struct teex_resp_parser parser;
  struct teex_resp_session sess;
  struct teex_resp_call *call;
  struct teex_resp_cmd *cmd;
  struct teex_buf out; /* replies not yet handed to the socket */
  size_t in_flight;    /* bytes handed to uv_write, not yet written */
  int busy;            /* a backend call is pending */
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
  teex_resp_call_reset(c->call);
  free(c->call);
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
  if (!c->busy)
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
  if (c->close_after_write && c->in_flight == 0 && c->out.len == 0) {
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
  if (rc != 0) {
    teex_resp_error(&c->out, "ERR Protocol error: request too large");
    c->close_after_write = 1;
    flush(c);
    return;
  }
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
 * pending (busy) or finished. rc: what begin/next returned. Negative: the
 * connection cannot go on (out of memory, reply buffer full). */
static int drive(struct conn *c, int rc) {
  while (rc == TEEX_RESP_EXEC) {
    struct teex_err err;
    teex_err_clear(&err);
    c->busy = 1;
    int r = c->px->backend->ops->exec(c->px->backend, &c->call->cmd,
                                      c->call->read_mode, on_done, c, &err);
    if (r == 0)
      return 0; /* on_done continues */
    c->busy = 0;
    rc = teex_resp_call_next(&c->sess, c->call, r, NULL, &c->out);
  }
  return rc;
}

static void on_done(void *arg, int status, struct teex_ds_result *res) {
  struct conn *c = arg;
  c->busy = 0;
  int rc = 0;
  if (!c->closing)
    rc = teex_resp_call_next(&c->sess, c->call, status, res, &c->out);
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
  if (c->closing) {
    teex_resp_call_reset(c->call);
    if (c->handle_closed)
      conn_free(c);
    return;
  }
  rc = drive(c, rc);
  if (rc < 0) {
    conn_close(c);
    return;
  }
  if (!c->busy)
    process(c);
}

/* Runs the parsed requests in order until one waits for the backend. */
static void process(struct conn *c) {
  while (!c->busy && !c->closing && !c->close_after_write) {
    int rc = teex_resp_parser_next(&c->parser, c->cmd);
    if (rc == 0)
      break;
    if (rc < 0) {
      /* Redis answers a protocol error and closes the connection. */
      teex_resp_error(&c->out, "ERR %s", c->parser.err);
      c->close_after_write = 1;
      break;
    }
    rc = teex_resp_call_begin(&c->sess, c->call, c->cmd, &c->out);
    rc = drive(c, rc);
    if (rc < 0) {
      flush(c);
      conn_close(c);
      return;
    }
    if (c->sess.quit)
      c->close_after_write = 1;
    /* a long pipeline: hand replies over as they accumulate */
    if (c->out.len >= READ_CHUNK)
      flush(c);
  }
  flush(c);
  if (c->close_after_write && !c->busy && c->in_flight == 0 &&
      c->out.len == 0) {
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
  c->call = calloc(1, sizeof(*c->call));
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
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || c->call == NULL ||
      c->cmd == NULL ||
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
