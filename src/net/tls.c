/* TLS 1.3 over libuv with memory BIOs: see include/teex/tls.h.
 *
 * Each connection owns a uv_tcp_t, a uv_timer_t (handshake deadline, then
 * the close deadline) and an SSL whose read BIO we fill with what the socket
 * gives and whose write BIO we drain into uv_write. The connection is freed
 * only when both handles' close callbacks have run; the owner's on_close
 * fires right before that, exactly once. */
#include "teex/tls.h"

#include "teex/crypto.h"

#include "teex/log.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOSE_TIMEOUT_MS 5000u
#define READ_CHUNK 16384

struct teex_tls_ctx {
  SSL_CTX *ssl_ctx;
  int is_server;
  int mutual;
  teex_tls_verify_fn verify_peer;
  void *verify_arg;
  uint32_t handshake_timeout_ms;
  size_t max_pending;
};

enum conn_state {
  ST_CONNECTING, /* client: TCP connect in progress */
  ST_HANDSHAKE,
  ST_READY,
  ST_CLOSING, /* shutdown/close under way; no more callbacks but on_close */
};

struct teex_tls_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  uv_loop_t *loop;
  struct teex_tls_ctx *ctx;
  SSL *ssl;
  BIO *rbio; /* network -> SSL */
  BIO *wbio; /* SSL -> network */
  struct teex_tls_conn_cbs cbs;
  void *arg;
  void *data;
  enum conn_state state;
  int handles_open; /* handles whose close callback is still due */
  int silent;       /* created but never handed out: no on_close */
  int tcp_closing;
  int close_code;
  char close_reason[TEEX_ERRMSG_SIZE];
  size_t pending;
  int verify_failed;
  struct teex_err verify_err;
  void *peer_info;
  void (*peer_info_free)(void *);
  char peer[64];
};

struct write_req {
  uv_write_t req;
  struct teex_tls_conn *conn;
  size_t len;
  uint8_t data[];
};

struct teex_tls_listener {
  uv_tcp_t tcp;
  uv_loop_t *loop;
  struct teex_tls_ctx *ctx;
  teex_tls_accept_fn on_accept;
  void *arg;
  int port;
};

static int conn_ex_index = -1;
static uv_once_t ex_once = UV_ONCE_INIT;

static void ex_index_init(void) {
  conn_ex_index = SSL_get_ex_new_index(0, "teex conn", NULL, NULL, NULL);
}

/* The last OpenSSL error as text; clears the queue. */
static void ossl_reason(char *out, size_t n) {
  unsigned long e = ERR_get_error();
  unsigned long next;
  /* The first error is the root cause; drain the rest. */
  while ((next = ERR_get_error()) != 0)
    (void)next;
  if (e == 0) {
    snprintf(out, n, "unknown TLS error");
    return;
  }
  const char *r = ERR_reason_error_string(e);
  snprintf(out, n, "%s", r ? r : "TLS error");
}

/* ---- verification inside the handshake ---- */

static int cert_verify_cb(X509_STORE_CTX *xs, void *arg) {
  struct teex_tls_ctx *ctx = arg;
  SSL *ssl =
      X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
  struct teex_tls_conn *c = ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
  X509 *leaf = X509_STORE_CTX_get0_cert(xs);
  struct teex_err local;
  struct teex_err *err = c ? &c->verify_err : &local;
  teex_err_clear(err);
  if (leaf == NULL || ctx->verify_peer == NULL || c == NULL) {
    teex_err_set(err, TEEX_EAUTH, "peer presented no certificate");
    goto refuse;
  }
  if (ctx->verify_peer(ctx->verify_arg, c, leaf, err) != 0) {
    if (err->code == 0)
      teex_err_set(err, TEEX_EAUTH, "peer certificate refused");
    goto refuse;
  }
  return 1;
refuse:
  if (c)
    c->verify_failed = 1;
  X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

int teex_tls_ctx_new(struct teex_tls_ctx **out,
                     const struct teex_tls_config *cfg, int is_server,
                     struct teex_err *err) {
  *out = NULL;
  uv_once(&ex_once, ex_index_init);
  if (conn_ex_index < 0)
    return teex_err_set(err, TEEX_ECRYPTO, "TLS: no ex_data index");
  int need_cert = is_server || cfg->mutual;
  int need_verify = !is_server || cfg->mutual;
  if (need_cert && (cfg->cert == NULL || cfg->key == NULL))
    return teex_err_set(err, TEEX_EINVAL, "TLS %s: certificate and key needed",
                        is_server ? "server" : "client");
  if (need_verify && cfg->verify_peer == NULL)
    return teex_err_set(err, TEEX_EINVAL,
                        "TLS %s: a peer verification callback is required",
                        is_server ? "server" : "client");

  struct teex_tls_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  ctx->is_server = is_server;
  ctx->mutual = cfg->mutual;
  ctx->verify_peer = cfg->verify_peer;
  ctx->verify_arg = cfg->verify_arg;
  ctx->handshake_timeout_ms = cfg->handshake_timeout_ms
                                  ? cfg->handshake_timeout_ms
                                  : TEEX_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
  ctx->max_pending =
      cfg->max_pending ? cfg->max_pending : TEEX_TLS_DEFAULT_MAX_PENDING;

  char why[160];
  ERR_clear_error();
  SSL_CTX *s =
      SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
  if (s == NULL)
    goto fail_ossl;
  ctx->ssl_ctx = s;
  if (!SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION))
    goto fail_ossl;
  /* No resumption: every handshake must verify the peer's evidence. */
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
  if (is_server)
    SSL_CTX_set_num_tickets(s, 0);
  if (need_cert) {
    if (SSL_CTX_use_certificate(s, cfg->cert) != 1 ||
        SSL_CTX_use_PrivateKey(s, cfg->key) != 1 ||
        SSL_CTX_check_private_key(s) != 1)
      goto fail_ossl;
  }
  if (need_verify) {
    int mode = SSL_VERIFY_PEER;
    if (is_server)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(s, mode, NULL);
    SSL_CTX_set_cert_verify_callback(s, cert_verify_cb, ctx);
  } else {
    SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
  }
  *out = ctx;
  return 0;

fail_ossl:
  ossl_reason(why, sizeof why);
  teex_tls_ctx_free(ctx);
  return teex_err_set(err, TEEX_ECRYPTO, "TLS context: %s", why);
}

int teex_tls_ctx_set_identity(struct teex_tls_ctx *ctx, X509 *cert,
                              EVP_PKEY *key, struct teex_err *err) {
  if (ctx == NULL || cert == NULL || key == NULL)
    return teex_err_set(err, TEEX_EINVAL, "TLS identity: missing argument");
  /* Checked first, so a mismatch leaves the context as it was. */
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return teex_err_set(err, TEEX_ECRYPTO,
                        "TLS identity: the key is not the certificate's");
  }
  if (SSL_CTX_use_certificate(ctx->ssl_ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey(ctx->ssl_ctx, key) != 1 ||
      SSL_CTX_check_private_key(ctx->ssl_ctx) != 1) {
    ERR_clear_error();
    return teex_err_set(err, TEEX_ECRYPTO, "TLS identity: OpenSSL refused it");
  }
  return 0;
}

void teex_tls_ctx_free(struct teex_tls_ctx *ctx) {
  if (ctx == NULL)
    return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx);
}

/* ---- connection lifetime ---- */

static void conn_free(struct teex_tls_conn *c) {
  if (c->peer_info_free)
    c->peer_info_free(c->peer_info);
  SSL_free(c->ssl); /* frees both BIOs */
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  struct teex_tls_conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  if (!c->silent && c->cbs.on_close)
    c->cbs.on_close(c, c->close_code,
                    c->close_reason[0] ? c->close_reason : "closed", c->arg);
  conn_free(c);
}

static void close_handles(struct teex_tls_conn *c) {
  if (c->tcp_closing)
    return;
  c->tcp_closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_close_timeout(uv_timer_t *t) {
  close_handles(t->data);
}

static void on_shutdown_done(uv_shutdown_t *req, int status) {
  (void)status;
  close_handles(req->data);
}

static void conn_flush(struct teex_tls_conn *c);

/* Starts closing: records the first reason, flushes what TLS still has to
 * say (close_notify or an alert), lets libuv finish queued writes (bounded
 * by CLOSE_TIMEOUT_MS), then closes the handles. */
static void conn_shutdown(struct teex_tls_conn *c, int code,
                          const char *reason) {
  if (c->state == ST_CLOSING)
    return;
  enum conn_state was = c->state;
  c->state = ST_CLOSING;
  c->close_code = code;
  snprintf(c->close_reason, sizeof c->close_reason, "%s",
           reason ? reason : "closed");
  if (code != 0 && !c->silent)
    TEEX_WARN("net", "connection closed", "peer=%s side=%s reason=\"%s\"",
              c->peer, c->ctx->is_server ? "server" : "client",
              c->close_reason);
  if (was == ST_CONNECTING) {
    /* uv_connect's callback will run with UV_ECANCELED and ignore it. */
    close_handles(c);
    return;
  }
  if (was == ST_READY && code == 0 && c->ssl) {
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
  }
  conn_flush(c);
  uv_timer_stop(&c->timer);
  c->shutdown_req.data = c;
  if (uv_timer_start(&c->timer, on_close_timeout, CLOSE_TIMEOUT_MS, 0) != 0 ||
      uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown_done) !=
          0)
    close_handles(c);
}

void teex_tls_close(struct teex_tls_conn *c) {
  if (c)
    conn_shutdown(c, 0, "closed by us");
}

void teex_tls_close_error(struct teex_tls_conn *c, int code,
                          const char *reason) {
  if (c)
    conn_shutdown(c, code ? code : TEEX_EPROTO, reason);
}

/* ---- writing ---- */

static void on_write_done(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct teex_tls_conn *c = w->conn;
  c->pending -= w->len;
  free(w);
  if (status < 0 && status != UV_ECANCELED && c->state != ST_CLOSING) {
    char why[128];
    snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
    conn_shutdown(c, TEEX_EIO, why);
  }
}

/* Moves whatever SSL wrote into the write BIO onto the socket. */
static void conn_flush(struct teex_tls_conn *c) {
  if (c->tcp_closing || c->ssl == NULL)
    return;
  size_t n = BIO_ctrl_pending(c->wbio);
  if (n == 0)
    return;
  struct write_req *w = malloc(sizeof *w + n);
  if (w == NULL) {
    conn_shutdown(c, TEEX_ENOMEM, "out of memory queueing a write");
    return;
  }
  int got = BIO_read(c->wbio, w->data, (int)n);
  if (got <= 0) {
    free(w);
    return;
  }
  w->conn = c;
  w->len = (size_t)got;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)got);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
  if (r != 0) {
    free(w); /* failed synchronously: the callback will not run */
    char why[128];
    snprintf(why, sizeof why, "write failed: %s", uv_strerror(r));
    conn_shutdown(c, TEEX_EIO, why);
    return;
  }
  c->pending += w->len;
}

int teex_tls_write(struct teex_tls_conn *c, const void *p, size_t n,
                   struct teex_err *err) {
  if (c->state != ST_READY)
    return teex_err_set(err, TEEX_ESTATE, "TLS write: connection not ready");
  if (c->pending + n > c->ctx->max_pending)
    return teex_err_set(err, TEEX_EBUSY,
                        "TLS write: %zu bytes already queued (limit %zu)",
                        c->pending, c->ctx->max_pending);
  const uint8_t *q = p;
  while (n > 0) {
    int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
    ERR_clear_error();
    int w = SSL_write(c->ssl, q, chunk);
    if (w <= 0) {
      char why[160];
      ossl_reason(why, sizeof why);
      return teex_err_set(err, TEEX_ECRYPTO, "TLS write: %s", why);
    }
    q += w;
    n -= (size_t)w;
  }
  conn_flush(c);
  return 0;
}

size_t teex_tls_pending(const struct teex_tls_conn *c) {
  return c->pending;
}

/* ---- reading and the handshake ---- */

static void handshake_failed(struct teex_tls_conn *c, int ssl_err) {
  char why[TEEX_ERRMSG_SIZE];
  if (c->verify_failed) {
    ERR_clear_error();
    snprintf(why, sizeof why, "peer verification failed: %s",
             teex_err_msg(&c->verify_err));
    conn_shutdown(c, c->verify_err.code ? c->verify_err.code : TEEX_EAUTH, why);
    return;
  }
  char ossl[160];
  if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN)
    snprintf(ossl, sizeof ossl, "peer closed the connection");
  else
    ossl_reason(ossl, sizeof ossl);
  snprintf(why, sizeof why, "TLS handshake failed: %s", ossl);
  conn_shutdown(c, TEEX_EAUTH, why);
}

static void conn_process(struct teex_tls_conn *c) {
  if (c->state == ST_HANDSHAKE) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn_flush(c);
        return;
      }
      conn_flush(c); /* carry the alert to the peer */
      handshake_failed(c, e);
      return;
    }
    c->state = ST_READY;
    uv_timer_stop(&c->timer);
    conn_flush(c);
    if (c->cbs.on_ready)
      c->cbs.on_ready(c, c->arg);
  }
  uint8_t buf[READ_CHUNK];
  while (c->state == ST_READY) {
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n > 0) {
      if (c->cbs.on_data)
        c->cbs.on_data(c, buf, (size_t)n, c->arg);
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      conn_shutdown(c, 0, "peer closed the connection");
    } else {
      char ossl[160], why[220];
      ossl_reason(ossl, sizeof ossl);
      snprintf(why, sizeof why, "TLS error: %s", ossl);
      conn_shutdown(c, TEEX_EPROTO, why);
    }
    break;
  }
  OPENSSL_cleanse(buf, sizeof buf);
  conn_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  /* Each loop thread reads into its own slab; on_read copies it at once. */
  static _Thread_local char slab[65536];
  *b = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct teex_tls_conn *c = s->data;
  if (nread == 0 || c->state == ST_CLOSING)
    return;
  if (nread < 0) {
    char why[160];
    if (nread == UV_EOF)
      snprintf(why, sizeof why, "peer vanished (%s)",
               c->state == ST_HANDSHAKE ? "during the TLS handshake"
                                        : "without TLS close_notify");
    else
      snprintf(why, sizeof why, "read failed: %s", uv_strerror((int)nread));
    conn_shutdown(c, TEEX_ECLOSED, why);
    return;
  }
  if (BIO_write(c->rbio, b->base, (int)nread) != (int)nread) {
    conn_shutdown(c, TEEX_ENOMEM, "out of memory buffering input");
    return;
  }
  conn_process(c);
}

static void on_handshake_timeout(uv_timer_t *t) {
  struct teex_tls_conn *c = t->data;
  char why[96];
  snprintf(why, sizeof why, "TLS handshake timed out after %u ms",
           c->ctx->handshake_timeout_ms);
  conn_shutdown(c, TEEX_ETIMEDOUT, why);
}

static void set_peer_name(struct teex_tls_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      uv_ip4_name(a, host, sizeof host);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, host, sizeof host);
      port = ntohs(a->sin6_port);
    }
  }
  snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
}

/* Allocates a connection with both handles initialised (handles_open = 2). */
static struct teex_tls_conn *conn_new(uv_loop_t *loop,
                                      struct teex_tls_ctx *ctx) {
  struct teex_tls_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->loop = loop;
  c->ctx = ctx;
  snprintf(c->peer, sizeof c->peer, "?");
  if (uv_tcp_init(loop, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  uv_timer_init(loop, &c->timer); /* cannot fail */
  c->tcp.data = c;
  c->timer.data = c;
  c->handles_open = 2;
  return c;
}

static int conn_setup_ssl(struct teex_tls_conn *c) {
  ERR_clear_error();
  c->ssl = SSL_new(c->ctx->ssl_ctx);
  if (c->ssl == NULL)
    return -1;
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (c->rbio == NULL || c->wbio == NULL) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    c->rbio = c->wbio = NULL;
    return -1;
  }
  BIO_set_mem_eof_return(c->rbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_ex_data(c->ssl, conn_ex_index, c);
  if (c->ctx->is_server)
    SSL_set_accept_state(c->ssl);
  else
    SSL_set_connect_state(c->ssl);
  return 0;
}

static void on_connected(uv_connect_t *req, int status) {
  struct teex_tls_conn *c = req->data;
  if (status == UV_ECANCELED || c->state == ST_CLOSING)
    return;
  if (status < 0) {
    char why[160];
    snprintf(why, sizeof why, "connect failed: %s", uv_strerror(status));
    conn_shutdown(c, TEEX_ECONN, why);
    return;
  }
  set_peer_name(c);
  uv_tcp_nodelay(&c->tcp, 1);
  if (conn_setup_ssl(c) != 0) {
    conn_shutdown(c, TEEX_ENOMEM, "cannot create TLS session");
    return;
  }
  c->state = ST_HANDSHAKE;
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r != 0) {
    char why[160];
    snprintf(why, sizeof why, "read start failed: %s", uv_strerror(r));
    conn_shutdown(c, TEEX_EIO, why);
    return;
  }
  conn_process(c); /* sends the ClientHello */
}

int teex_net_parse_addr(const char *addr, struct sockaddr_storage *ss,
                        struct teex_err *err) {
  char host[128];
  const char *colon;
  memset(ss, 0, sizeof *ss);
  if (addr == NULL || *addr == '\0')
    return teex_err_set(err, TEEX_EINVAL, "empty address");
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (end == NULL || end[1] != ':')
      return teex_err_set(err, TEEX_EINVAL, "bad address '%s' (want [v6]:port)",
                          addr);
    size_t hl = (size_t)(end - addr - 1);
    if (hl >= sizeof host)
      return teex_err_set(err, TEEX_EINVAL, "address too long");
    memcpy(host, addr + 1, hl);
    host[hl] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL)
      return teex_err_set(err, TEEX_EINVAL, "bad address '%s' (want host:port)",
                          addr);
    size_t hl = (size_t)(colon - addr);
    if (hl == 0 || hl >= sizeof host)
      return teex_err_set(err, TEEX_EINVAL, "bad host in '%s'", addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
  }
  const char *ps = colon + 1;
  char *endp;
  if (*ps == '\0')
    return teex_err_set(err, TEEX_EINVAL, "missing port in '%s'", addr);
  unsigned long port = strtoul(ps, &endp, 10);
  if (*endp != '\0' || port > 65535)
    return teex_err_set(err, TEEX_EINVAL, "bad port in '%s'", addr);
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 &&
      strchr(host, ':') == NULL)
    return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return teex_err_set(err, TEEX_EINVAL,
                      "bad host '%s' (want a literal IP or localhost)", host);
}

int teex_tls_connect(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                     const char *addr, const struct teex_tls_conn_cbs *cbs,
                     void *arg, struct teex_tls_conn **out,
                     struct teex_err *err) {
  struct sockaddr_storage ss;
  *out = NULL;
  if (ctx->is_server)
    return teex_err_set(err, TEEX_EINVAL, "connect: a client context needed");
  int r = teex_net_parse_addr(addr, &ss, err);
  if (r != 0)
    return teex_err_wrap(err, 0, "connect");
  struct teex_tls_conn *c = conn_new(loop, ctx);
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "connect: out of memory");
  c->cbs = *cbs;
  c->arg = arg;
  c->state = ST_CONNECTING;
  snprintf(c->peer, sizeof c->peer, "%s", addr);
  c->connect_req.data = c;
  r = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&ss,
                     on_connected);
  if (r != 0) {
    c->silent = 1; /* failed synchronously: no callback of the caller's */
    c->state = ST_CLOSING;
    close_handles(c);
    return teex_err_set(err, TEEX_ECONN, "connect %s: %s", addr,
                        uv_strerror(r));
  }
  uv_timer_start(&c->timer, on_handshake_timeout, ctx->handshake_timeout_ms, 0);
  *out = c;
  return 0;
}

/* ---- listening ---- */

static void on_connection(uv_stream_t *server, int status) {
  struct teex_tls_listener *l = server->data;
  if (status < 0) {
    TEEX_WARN("net", "accept failed", "error=\"%s\"", uv_strerror(status));
    return;
  }
  struct teex_tls_conn *c = conn_new(l->loop, l->ctx);
  if (c == NULL) {
    TEEX_WARN("net", "accept failed", "error=\"out of memory\"");
    return;
  }
  c->state = ST_HANDSHAKE;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      conn_setup_ssl(c) != 0) {
    c->silent = 1;
    c->state = ST_CLOSING;
    close_handles(c);
    return;
  }
  set_peer_name(c);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, on_handshake_timeout, l->ctx->handshake_timeout_ms,
                 0);
  l->on_accept(l, c, l->arg);
  if (c->state == ST_CLOSING)
    return;
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r != 0) {
    char why[160];
    snprintf(why, sizeof why, "read start failed: %s", uv_strerror(r));
    conn_shutdown(c, TEEX_EIO, why);
  }
}

int teex_tls_listen(uv_loop_t *loop, struct teex_tls_ctx *ctx, const char *addr,
                    teex_tls_accept_fn on_accept, void *arg,
                    struct teex_tls_listener **out, struct teex_err *err) {
  struct sockaddr_storage ss;
  *out = NULL;
  if (!ctx->is_server)
    return teex_err_set(err, TEEX_EINVAL, "listen: a server context needed");
  int r = teex_net_parse_addr(addr, &ss, err);
  if (r != 0)
    return teex_err_wrap(err, 0, "listen");
  struct teex_tls_listener *l = calloc(1, sizeof *l);
  if (l == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "listen: out of memory");
  l->loop = loop;
  l->ctx = ctx;
  l->on_accept = on_accept;
  l->arg = arg;
  r = uv_tcp_init(loop, &l->tcp);
  if (r != 0) {
    free(l);
    return teex_err_set(err, TEEX_EIO, "listen: %s", uv_strerror(r));
  }
  l->tcp.data = l;
  r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&l->tcp, 512, on_connection);
  if (r != 0) {
    teex_tls_listener_close(l);
    return teex_err_set(err, TEEX_EIO, "listen on %s: %s", addr,
                        uv_strerror(r));
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen) == 0)
    l->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
  *out = l;
  return 0;
}

int teex_tls_listener_port(const struct teex_tls_listener *l) {
  return l->port;
}

static void on_listener_closed(uv_handle_t *h) {
  free(h->data);
}

void teex_tls_listener_close(struct teex_tls_listener *l) {
  if (l == NULL)
    return;
  uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

/* ---- accessors ---- */

X509 *teex_tls_peer_cert(const struct teex_tls_conn *c) {
  if (c->state != ST_READY || c->ssl == NULL)
    return NULL;
  return SSL_get0_peer_certificate(c->ssl);
}

int teex_tls_export(const struct teex_tls_conn *c, const char *label,
                    const uint8_t *context, size_t context_len, uint8_t *out,
                    size_t out_len, struct teex_err *err) {
  if (c->state != ST_READY)
    return teex_err_set(err, TEEX_ESTATE, "TLS exporter: handshake not done");
  ERR_clear_error();
  if (SSL_export_keying_material(c->ssl, out, out_len, label, strlen(label),
                                 context, context_len, context != NULL) != 1)
    return teex_err_set(err, TEEX_ECRYPTO, "TLS exporter failed");
  return 0;
}

void teex_tls_set_peer_info(struct teex_tls_conn *c, void *info,
                            void (*free_fn)(void *)) {
  if (c->peer_info_free && c->peer_info != info)
    c->peer_info_free(c->peer_info);
  c->peer_info = info;
  c->peer_info_free = free_fn;
}

void *teex_tls_peer_info(const struct teex_tls_conn *c) {
  return c->peer_info;
}

const char *teex_tls_peer_addr(const struct teex_tls_conn *c) {
  return c->peer;
}

void teex_tls_set_data(struct teex_tls_conn *c, void *data) {
  c->data = data;
}

void *teex_tls_get_data(const struct teex_tls_conn *c) {
  return c->data;
}

void teex_tls_set_cbs(struct teex_tls_conn *c,
                      const struct teex_tls_conn_cbs *cbs, void *arg) {
  c->cbs = *cbs;
  c->arg = arg;
}

/* ---- plain identities for tests and tools ---- */

int teex_tls_selfsigned_new(const char *cn, int days, EVP_PKEY **key_out,
                            X509 **cert_out, struct teex_err *err) {
  *key_out = NULL;
  *cert_out = NULL;
  ERR_clear_error();
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_NAME *name = NULL;
  uint8_t serial[16];
  BIGNUM *bn = NULL;
  if (key == NULL || x == NULL)
    goto fail;
  if (RAND_bytes(serial, sizeof serial) != 1)
    goto fail;
  serial[0] &= 0x7f;
  bn = BN_bin2bn(serial, sizeof serial, NULL);
  if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
    goto fail;
  if (!X509_set_version(x, 2) ||
      X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
      X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) == NULL)
    goto fail;
  name = X509_NAME_new();
  if (name == NULL ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                  (const unsigned char *)cn, -1, -1, 0) ||
      !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
      !X509_set_pubkey(x, key) || X509_sign(x, key, EVP_sha256()) == 0)
    goto fail;
  X509_NAME_free(name);
  BN_free(bn);
  *key_out = key;
  *cert_out = x;
  return 0;
fail:;
  char why[160];
  ossl_reason(why, sizeof why);
  X509_NAME_free(name);
  BN_free(bn);
  X509_free(x);
  EVP_PKEY_free(key);
  return teex_err_set(err, TEEX_ECRYPTO, "self-signed certificate: %s", why);
}

int teex_tls_cert_spki_sha256(X509 *cert, uint8_t out[32]) {
  /* The certificate's own SPKI encoding (a plain ASN.1 re-encoding, much
   * cheaper in OpenSSL 3.0 than i2d_PUBKEY's encoder path). */
  unsigned char *der = NULL;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (n <= 0) {
    OPENSSL_free(der);
    return TEEX_ECRYPTO;
  }
  teex_sha256(der, (size_t)n, out);
  OPENSSL_free(der);
  return 0;
}

int teex_tls_cert_sha256(X509 *cert, uint8_t out[32]) {
  unsigned int n = 32;
  return X509_digest(cert, EVP_sha256(), out, &n) == 1 && n == 32
             ? 0
             : TEEX_ECRYPTO;
}
