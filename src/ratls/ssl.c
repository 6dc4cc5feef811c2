/* The RA-TLS verify callback on OpenSSL contexts (include/teex/ratls.h).
 *
 * The policy hangs off the SSL_CTX; each SSL gets a small state with the
 * verified peer identity or the refusal reason. OpenSSL calls the callback
 * more than once for the leaf (once per tolerated error, then at the end),
 * so the result is cached per certificate: the evidence is verified once per
 * handshake. */
#include "teex/ratls.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct peer_state {
  X509 *cert;  /* the certificate checked (own reference) */
  int verdict; /* 0 accepted, else TEEX_E* */
  struct teex_tee_identity id;
  struct teex_err err;
};

static int ctx_idx = -1, ssl_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                       long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  struct peer_state *s = ptr;
  if (s == NULL)
    return;
  X509_free(s->cert);
  free(s);
}

static void make_idx(void) {
  ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, state_free);
}

static int indices(void) {
  pthread_once(&idx_once, make_idx);
  return ctx_idx >= 0 && ssl_idx >= 0;
}

static struct peer_state *state_of(SSL *ssl) {
  struct peer_state *s = SSL_get_ex_data(ssl, ssl_idx);
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL || !SSL_set_ex_data(ssl, ssl_idx, s)) {
      free(s);
      return NULL;
    }
  }
  return s;
}

static int verify_cb(int preverify_ok, X509_STORE_CTX *xs) {
  /* OpenSSL's own verdict is about CA chains, which a self-signed RA-TLS
   * certificate never has; the evidence check below replaces it. */
  (void)preverify_ok;
  SSL *ssl =
      X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
  if (ssl == NULL)
    return 0;
  const struct teex_tee_policy *policy =
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx);
  struct peer_state *s = state_of(ssl);
  if (policy == NULL || s == NULL) {
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  X509 *cert = X509_STORE_CTX_get_current_cert(xs);
  if (X509_STORE_CTX_get_error_depth(xs) != 0) {
    s->verdict = teex_err_set(&s->err, TEEX_EATTEST,
                              "RA-TLS peer sent a certificate chain, not one "
                              "self-signed certificate");
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  if (s->cert == NULL || X509_cmp(s->cert, cert) != 0) {
    X509_free(s->cert);
    s->cert = NULL;
    memset(&s->id, 0, sizeof s->id);
    teex_err_clear(&s->err);
    s->verdict = teex_ratls_verify_cert(cert, policy, NULL, &s->id, &s->err);
    if (X509_up_ref(cert))
      s->cert = cert;
  }
  if (s->verdict != 0) {
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  X509_STORE_CTX_set_error(xs, X509_V_OK);
  return 1;
}

int teex_ratls_ssl_ctx_set_verify(SSL_CTX *ctx,
                                  const struct teex_tee_policy *policy,
                                  unsigned flags, struct teex_err *err) {
  if (!indices())
    return teex_err_set(err, TEEX_ECRYPTO, "ra-tls: no OpenSSL ex_data index");
  if (!SSL_CTX_set_ex_data(ctx, ctx_idx, (void *)policy))
    return teex_err_set(err, TEEX_ENOMEM, "ra-tls: SSL_CTX_set_ex_data");
  int mode = SSL_VERIFY_PEER;
  if (flags & TEEX_RATLS_MUTUAL)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, verify_cb);
  return 0;
}

int teex_ratls_ssl_ctx_use_identity(SSL_CTX *ctx, EVP_PKEY *key, X509 *cert,
                                    struct teex_err *err) {
  if (SSL_CTX_use_certificate(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    return teex_err_set(err, TEEX_ECRYPTO,
                        "ra-tls: cannot install the identity on the context");
  return 0;
}

int teex_ratls_peer_identity(const SSL *ssl, struct teex_tee_identity *out) {
  if (!indices())
    return TEEX_ESTATE;
  const struct peer_state *s = SSL_get_ex_data(ssl, ssl_idx);
  if (s == NULL || s->cert == NULL || s->verdict != 0)
    return TEEX_ESTATE;
  /* The cached verdict must be about the certificate of this session. */
  X509 *peer = SSL_get0_peer_certificate(ssl);
  if (peer == NULL || X509_cmp(peer, s->cert) != 0)
    return TEEX_ESTATE;
  if (out != NULL)
    *out = s->id;
  return 0;
}

const char *teex_ratls_peer_error(const SSL *ssl) {
  if (!indices())
    return NULL;
  const struct peer_state *s = SSL_get_ex_data(ssl, ssl_idx);
  if (s == NULL || s->verdict == 0)
    return NULL;
  return teex_err_msg(&s->err);
}
