/* Helpers for the net tests: plain self-signed identities, a pinning verify
 * callback, and a bounded loop runner. Header-only (static). */
#ifndef TEEX_NETTEST_H
#define TEEX_NETTEST_H

#include "teex/rpc.h"
#include "teex/tls.h"

#include <string.h>

struct nt_identity {
  EVP_PKEY *key;
  X509 *cert;
  uint8_t fp[32];
};

struct nt_pin {
  const uint8_t *fp; /* accepted certificate fingerprint; NULL refuses all */
  int calls;         /* how many times verification ran */
};

static inline void nt_identity_new(struct nt_identity *id, const char *cn) {
  struct teex_err err;
  assert_int_equal(teex_tls_selfsigned_new(cn, 1, &id->key, &id->cert, &err),
                   0);
  assert_int_equal(teex_tls_cert_sha256(id->cert, id->fp), 0);
}

static inline void nt_identity_free(struct nt_identity *id) {
  X509_free(id->cert);
  EVP_PKEY_free(id->key);
}

static inline int nt_pin_verify(void *arg, struct teex_tls_conn *c, X509 *peer,
                                struct teex_err *err) {
  struct nt_pin *pin = arg;
  (void)c;
  uint8_t fp[32];
  pin->calls++;
  if (pin->fp == NULL || teex_tls_cert_sha256(peer, fp) != 0 ||
      memcmp(fp, pin->fp, 32) != 0)
    return teex_err_set(err, TEEX_EPOLICY, "certificate not pinned");
  return 0;
}

static inline void nt_guard_fired(uv_timer_t *t) {
  *(int *)t->data = 1;
}

static inline void nt_guard_closed(uv_handle_t *h) {
  free(h);
}

/* Runs the loop until *flag becomes nonzero or ms pass (a guard timer keeps
 * the loop from blocking forever). */
static inline void nt_run_until(uv_loop_t *loop, volatile int *flag, int ms) {
  static int fired;
  fired = 0;
  uv_timer_t *t = malloc(sizeof *t);
  uv_timer_init(loop, t);
  t->data = &fired;
  uv_timer_start(t, nt_guard_fired, (uint64_t)ms, 0);
  while (!*flag && !fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)t, nt_guard_closed);
}

/* Runs the loop until nothing is left (all handles closed). */
static inline void nt_drain(uv_loop_t *loop) {
  for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
    ;
}

#endif
