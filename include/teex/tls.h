/* TLS 1.3 channels on a libuv event loop.
 *
 * Every teex link is TLS 1.3 (OpenSSL 3) driven through memory BIOs, so one
 * libuv loop carries many non-blocking connections. The certificate, its key
 * and the peer check are parameters: a component passes its RA-TLS identity
 * and an evidence-verifying callback (include/teex/ratls.h); tests pass a
 * plain self-signed certificate. The peer check runs inside the handshake
 * (OpenSSL's certificate verification callback), so a peer that fails it
 * never receives or delivers a byte of application data. Plain TCP is never
 * offered, and session resumption is disabled so every handshake verifies
 * the peer's evidence afresh. */
#ifndef TEEX_TLS_H
#define TEEX_TLS_H

#include "teex/error.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TEEX_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u
/* Bytes accepted by teex_tls_write but not yet on the wire past which
 * teex_tls_write refuses with TEEX_EBUSY (a peer that does not read cannot
 * make us buffer without bound). */
#define TEEX_TLS_DEFAULT_MAX_PENDING (256u << 20)

struct teex_tls_conn;

/* Decides whether the peer's (leaf) certificate is acceptable: 0 to accept,
 * a negative TEEX_E* code with a message in err to refuse. Called during the
 * handshake on the connection c (which may keep what it learnt with
 * teex_tls_set_peer_info); peer is borrowed for the duration of the call. */
typedef int (*teex_tls_verify_fn)(void *arg, struct teex_tls_conn *c,
                                  X509 *peer, struct teex_err *err);

struct teex_tls_config {
  X509 *cert;    /* our certificate (borrowed; the context takes a ref).
                    Required for a server, and for a client in mutual mode. */
  EVP_PKEY *key; /* its private key (borrowed; the context takes a ref) */
  int mutual;    /* server: require and verify a client certificate.
                    client: present cert/key. */
  teex_tls_verify_fn verify_peer; /* required for a client, and for a server
                                     in mutual mode */
  void *verify_arg;
  uint32_t handshake_timeout_ms; /* 0: TEEX_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS */
  size_t max_pending;            /* 0: TEEX_TLS_DEFAULT_MAX_PENDING */
};

/* A configured TLS context (one SSL_CTX); shared by many connections. */
struct teex_tls_ctx;

/* Creates a server (is_server=1) or client context. TEEX_EINVAL when a
 * required field is missing, TEEX_ECRYPTO when OpenSSL refuses the key or
 * certificate. The caller owns *out (teex_tls_ctx_free); it must outlive
 * every connection made with it. */
int teex_tls_ctx_new(struct teex_tls_ctx **out,
                     const struct teex_tls_config *cfg, int is_server,
                     struct teex_err *err);
void teex_tls_ctx_free(struct teex_tls_ctx *ctx);

/* Replaces the certificate and key ctx presents on connections started
 * from now on; connections already open keep theirs. How a long-running
 * daemon renews its RA-TLS certificate before its evidence grows older
 * than its peers' max_age. The context takes its own references; nothing
 * changes on error: TEEX_EINVAL (NULL arguments), TEEX_ECRYPTO (the key is
 * not the certificate's). Call it on the thread that runs ctx's
 * connections. */
int teex_tls_ctx_set_identity(struct teex_tls_ctx *ctx, X509 *cert,
                              EVP_PKEY *key, struct teex_err *err);

struct teex_tls_conn;

/* Callbacks of one connection. All run on the loop thread. */
struct teex_tls_conn_cbs {
  /* The handshake completed and the peer was verified. */
  void (*on_ready)(struct teex_tls_conn *c, void *arg);
  /* Decrypted application data (borrowed for the call). */
  void (*on_data)(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                  void *arg);
  /* The connection is gone: called exactly once for a connection whose
   * creation succeeded, code 0 for an orderly close by either side, else a
   * TEEX_E* code with a one-line reason. After it returns the connection is
   * freed (once libuv has closed its handles): do not touch c again. */
  void (*on_close)(struct teex_tls_conn *c, int code, const char *reason,
                   void *arg);
};

/* Connects to ADDR ("127.0.0.1:7000", "[::1]:7000", "localhost:7000").
 * On success *out is valid until its on_close. A synchronous failure (bad
 * address) returns an error and fires no callback. */
int teex_tls_connect(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                     const char *addr, const struct teex_tls_conn_cbs *cbs,
                     void *arg, struct teex_tls_conn **out,
                     struct teex_err *err);

/* Encrypts and queues n bytes. Allowed once on_ready has fired. TEEX_ESTATE
 * before the handshake or after close, TEEX_EBUSY past max_pending. */
int teex_tls_write(struct teex_tls_conn *c, const void *p, size_t n,
                   struct teex_err *err);

/* Sends close_notify, flushes and closes; on_close fires later with code 0.
 * Idempotent. */
void teex_tls_close(struct teex_tls_conn *c);

/* Closes because of an error found above TLS (a protocol violation): logs
 * `reason` as one line and reports code/reason in on_close. Idempotent. */
void teex_tls_close_error(struct teex_tls_conn *c, int code,
                          const char *reason);

/* Bytes queued by teex_tls_write that libuv has not yet written. */
size_t teex_tls_pending(const struct teex_tls_conn *c);

/* The peer's verified certificate (borrowed; valid until on_close), NULL
 * before on_ready. */
X509 *teex_tls_peer_cert(const struct teex_tls_conn *c);

/* RFC 8446 / RFC 5705 keying material exporter: out_len bytes bound to this
 * TLS session (what a worker signs to prove it holds a service key on this
 * very channel). context may be NULL. TEEX_ESTATE before on_ready. */
int teex_tls_export(const struct teex_tls_conn *c, const char *label,
                    const uint8_t *context, size_t context_len, uint8_t *out,
                    size_t out_len, struct teex_err *err);

/* Attaches what the verify callback learnt about the peer (e.g. its
 * attested identity); free_fn (may be NULL) releases it when the connection
 * is freed, after on_close. Replaces (and frees) a previous value. */
void teex_tls_set_peer_info(struct teex_tls_conn *c, void *info,
                            void (*free_fn)(void *));
/* The value set by teex_tls_set_peer_info, or NULL. */
void *teex_tls_peer_info(const struct teex_tls_conn *c);

/* Peer address as text ("127.0.0.1:54321"), for logs. */
const char *teex_tls_peer_addr(const struct teex_tls_conn *c);

/* Opaque per-connection pointer for the owner. */
void teex_tls_set_data(struct teex_tls_conn *c, void *data);
void *teex_tls_get_data(const struct teex_tls_conn *c);
/* Replaces the callbacks (e.g. a server hands an accepted connection to its
 * RPC layer). */
void teex_tls_set_cbs(struct teex_tls_conn *c,
                      const struct teex_tls_conn_cbs *cbs, void *arg);

struct teex_tls_listener;

/* Called for each accepted TCP connection before its handshake; it must set
 * the connection's callbacks (teex_tls_set_cbs). */
typedef void (*teex_tls_accept_fn)(struct teex_tls_listener *l,
                                   struct teex_tls_conn *c, void *arg);

/* Listens on ADDR (port 0 picks a free port: see teex_tls_listener_port).
 * Synchronous failures return an error and fire nothing. */
int teex_tls_listen(uv_loop_t *loop, struct teex_tls_ctx *ctx, const char *addr,
                    teex_tls_accept_fn on_accept, void *arg,
                    struct teex_tls_listener **out, struct teex_err *err);
int teex_tls_listener_port(const struct teex_tls_listener *l);
/* Stops listening (live connections are not touched) and frees l once libuv
 * closed its handle. */
void teex_tls_listener_close(struct teex_tls_listener *l);

/* Parses "host:port" / "[v6]:port" (host a literal IP or "localhost") into
 * storage. TEEX_EINVAL with a message otherwise. */
int teex_net_parse_addr(const char *addr, struct sockaddr_storage *ss,
                        struct teex_err *err);

/* A fresh ECDSA P-256 key and a self-signed certificate for it (CN=cn,
 * valid for `days`), for tests and tools that need plain TLS identities.
 * The caller owns both (EVP_PKEY_free / X509_free). */
int teex_tls_selfsigned_new(const char *cn, int days, EVP_PKEY **key_out,
                            X509 **cert_out, struct teex_err *err);

/* SHA-256 of the DER certificate, for pinning in tests and tools. */
int teex_tls_cert_sha256(X509 *cert, uint8_t out[32]);

/* SHA-256 of the certificate's SubjectPublicKeyInfo (DER): what RA-TLS
 * evidence binds as the TLS key. TEEX_ECRYPTO when it cannot be encoded. */
int teex_tls_cert_spki_sha256(X509 *cert, uint8_t out[32]);

#endif
