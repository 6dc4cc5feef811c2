/* RA-TLS verification for TLS channels (include/teex/ratls_channel.h). */
#include "teex/ratls_channel.h"

#include "teex/log.h"
#include "teex/ratls.h"

#include <stdlib.h>
#include <string.h>

/* Marks identities we attached, so teex_ratls_channel_peer never
 * misreads another verifier's peer info. */
struct peer_identity {
  uint32_t magic;
  struct teex_tee_identity id;
};
#define PEER_IDENTITY_MAGIC 0x52415453u /* "RATS" */

int teex_ratls_channel_verify(void *verifier, struct teex_tls_conn *c,
                              X509 *peer, struct teex_err *err) {
  const struct teex_ratls_verifier *v = verifier;
  if (v == NULL || v->policy == NULL)
    return teex_err_set(err, TEEX_EINVAL, "RA-TLS: no policy");
  struct peer_identity *pi = calloc(1, sizeof *pi);
  if (pi == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "RA-TLS: out of memory");
  int r = teex_ratls_verify_cert(peer, v->policy, NULL, &pi->id, err);
  if (r != 0) {
    free(pi);
    return teex_err_wrap(err, 0, "RA-TLS peer");
  }
  pi->magic = PEER_IDENTITY_MAGIC;
  teex_tls_set_peer_info(c, pi, free);
  return 0;
}

const struct teex_tee_identity *
teex_ratls_channel_peer(const struct teex_tls_conn *c) {
  const struct peer_identity *pi = teex_tls_peer_info(c);
  if (pi == NULL || pi->magic != PEER_IDENTITY_MAGIC)
    return NULL;
  return &pi->id;
}

/* ---- renewing a daemon's RA-TLS certificate ---- */

struct teex_ratls_refresher {
  uv_timer_t timer;
  struct teex_tee *tee;
  uint8_t secp[64], x25519[32];
  int has_secp, has_x25519;
  struct teex_tls_ctx **const *ctxs;
  size_t nctx;
  EVP_PKEY *key;
  X509 *cert;
  unsigned long count;
};

static void refresh_now(uv_timer_t *h) {
  struct teex_ratls_refresher *r = h->data;
  struct teex_ratls_keys keys = {.secp256k1_pub = r->has_secp ? r->secp : NULL,
                                 .x25519_pub =
                                     r->has_x25519 ? r->x25519 : NULL};
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_ratls_identity_new(r->tee, &keys, &key, &cert, &err);
  for (size_t i = 0; rc == 0 && i < r->nctx; i++)
    if (*r->ctxs[i] != NULL)
      rc = teex_tls_ctx_set_identity(*r->ctxs[i], cert, key, &err);
  if (rc != 0) {
    /* Contexts already renewed keep the new identity: each is whole. */
    TEEX_ERROR("ratls", "certificate not renewed; will retry", "reason=\"%s\"",
               err.msg);
    EVP_PKEY_free(key);
    X509_free(cert);
    return;
  }
  EVP_PKEY_free(r->key);
  X509_free(r->cert);
  r->key = key;
  r->cert = cert;
  r->count++;
  TEEX_INFO("ratls", "certificate renewed", "renewals=%lu", r->count);
}

int teex_ratls_refresher_start(uv_loop_t *loop, struct teex_tee *tee,
                               const struct teex_ratls_keys *keys,
                               EVP_PKEY *key, X509 *cert, unsigned interval_s,
                               struct teex_tls_ctx **const *ctxs, size_t nctx,
                               struct teex_ratls_refresher **out,
                               struct teex_err *err) {
  *out = NULL;
  if (loop == NULL || tee == NULL || key == NULL || cert == NULL ||
      nctx > TEEX_RATLS_REFRESH_MAX_CTXS || (keys != NULL && keys->nonce))
    return teex_err_set(err, TEEX_EINVAL, "certificate refresher: arguments");
  struct teex_ratls_refresher *r = calloc(1, sizeof *r);
  if (r == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  r->tee = tee;
  if (keys != NULL && keys->secp256k1_pub != NULL) {
    memcpy(r->secp, keys->secp256k1_pub, 64);
    r->has_secp = 1;
  }
  if (keys != NULL && keys->x25519_pub != NULL) {
    memcpy(r->x25519, keys->x25519_pub, 32);
    r->has_x25519 = 1;
  }
  r->ctxs = ctxs;
  r->nctx = nctx;
  if (EVP_PKEY_up_ref(key) != 1 || X509_up_ref(cert) != 1) {
    free(r);
    return teex_err_set(err, TEEX_ECRYPTO, "certificate refresher: refs");
  }
  r->key = key;
  r->cert = cert;
  uint64_t ms =
      1000ull * (interval_s ? interval_s : TEEX_RATLS_REFRESH_DEFAULT_S);
  if (uv_timer_init(loop, &r->timer) != 0) {
    EVP_PKEY_free(r->key);
    X509_free(r->cert);
    free(r);
    return teex_err_set(err, TEEX_EINTERNAL, "certificate refresher: timer");
  }
  r->timer.data = r;
  uv_timer_start(&r->timer, refresh_now, ms, ms);
  uv_unref((uv_handle_t *)&r->timer); /* never what keeps a daemon running */
  *out = r;
  return 0;
}

void teex_ratls_refresher_current(const struct teex_ratls_refresher *r,
                                  EVP_PKEY **key, X509 **cert) {
  *key = r->key;
  *cert = r->cert;
}

unsigned long teex_ratls_refresher_count(const struct teex_ratls_refresher *r) {
  return r->count;
}

static void refresher_closed(uv_handle_t *h) {
  struct teex_ratls_refresher *r = h->data;
  EVP_PKEY_free(r->key);
  X509_free(r->cert);
  free(r);
}

void teex_ratls_refresher_close(struct teex_ratls_refresher *r) {
  if (r == NULL)
    return;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, refresher_closed);
}
