/* The SM daemon's chain revoker (sm_internal.h): every revocation the
 * operator makes is queued in the SM's state ("onrev/", sm_monitor.c); a
 * timer on the loop picks the pending ones, signs their EnclaveRevocation
 * and hands them to one job on libuv's thread pool, which submits
 * EnclaveRegistry.revoke from the SM's own enclave account and waits for
 * the receipt. The results are recorded back on the loop thread, so the
 * store is only ever touched there. A failed attempt stays pending and is
 * retried with a growing delay (an enclave not registered on chain yet is
 * revoked as soon as it registers). */
#include "sm_internal.h"

#include "teex/crypto.h"
#include "teex/eth_sender.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REVOKER_BATCH 16
#define REVOKER_TX_TIMEOUT_MS 60000
#define REVOKER_BACKOFF_MAX_S 300

struct rv_item {
  uint8_t enclave[20];
  uint8_t sig[65];
  int confirmed;
  char error[TEEX_SM_REASON_MAX + 1];
};

struct teex_sm__revoker {
  uv_loop_t *loop;
  struct teex_sm *sm;
  char *url;
  struct teex_chain_addrs addrs;
  uv_timer_t timer;
  uv_work_t work;
  int busy, closing, timer_closed;
  struct teex_eth_rpc *rpc;       /* the job's, made on first use */
  struct teex_eth_sender *sender; /* the SM's account */
  struct rv_item items[REVOKER_BATCH];
  size_t n;
};

struct pick_ctx {
  struct teex_sm__revoker *r;
  uint64_t now;
};

static int pick(const struct teex_sm_chain_revocation *c, void *arg) {
  struct pick_ctx *p = arg;
  struct teex_sm__revoker *r = p->r;
  if (r->n == REVOKER_BATCH)
    return 1;
  if (c->attempts > 0) {
    uint64_t wait = 1ull << (c->attempts < 9 ? c->attempts : 9);
    if (wait > REVOKER_BACKOFF_MAX_S)
      wait = REVOKER_BACKOFF_MAX_S;
    if (p->now < c->updated + wait)
      return 0;
  }
  struct rv_item *it = &r->items[r->n];
  memset(it, 0, sizeof *it);
  memcpy(it->enclave, c->enclave, 20);
  if (teex_sm_sign_revocation(r->sm, c->enclave, it->sig) != 0)
    return 0;
  r->n++;
  return 0;
}

/* Thread pool: the store is not touched here, only the chain. */
static void rv_work(uv_work_t *w) {
  struct teex_sm__revoker *r = w->data;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = 0;
  if (r->rpc == NULL) {
    rc = teex_eth_rpc_open(r->url, NULL, &r->rpc, &err);
    if (rc == 0)
      teex_chain_use_errors(r->rpc);
  }
  if (rc == 0 && r->sender == NULL)
    rc = teex_eth_sender_new(r->rpc, teex_sm__secp256k1_sk(r->sm), NULL,
                             &r->sender, &err);
  for (size_t i = 0; i < r->n; i++) {
    struct rv_item *it = &r->items[i];
    if (rc != 0) {
      snprintf(it->error, sizeof it->error, "%s", err.msg);
      continue;
    }
    struct teex_err e;
    teex_err_clear(&e);
    int x = teex_chain_revoke_enclave(r->sender, &r->addrs, it->enclave,
                                      it->sig, REVOKER_TX_TIMEOUT_MS, &e);
    /* Revoked already (by us before a restart, or by anyone holding the
     * signature): the registry says what we wanted. Either way it is
     * confirmed only once the registry reads it inactive in both roles (a
     * transaction to a wrong address is mined too). */
    if (x == 0 || strstr(e.msg, "EnclaveWasRevoked") != NULL) {
      int as_worker = 1, as_disp = 1;
      teex_err_clear(&e);
      if (teex_chain_enclave_active(r->rpc, &r->addrs, it->enclave,
                                    TEEX_ENCLAVE_WORKER, &as_worker, &e) == 0 &&
          teex_chain_enclave_active(r->rpc, &r->addrs, it->enclave,
                                    TEEX_ENCLAVE_DISPATCHER, &as_disp,
                                    &e) == 0 &&
          !as_worker && !as_disp)
        it->confirmed = 1;
      else
        snprintf(it->error, sizeof it->error, "mined, but the registry %s",
                 e.msg[0] ? e.msg : "still reads it active");
    } else {
      snprintf(it->error, sizeof it->error, "%s", e.msg);
      if (x == TEEX_ECONN || x == TEEX_ETIMEDOUT) {
        struct teex_err e2;
        teex_eth_sender_resync(r->sender, &e2);
      }
    }
  }
}

static void rv_free(struct teex_sm__revoker *r) {
  teex_eth_sender_free(r->sender);
  teex_eth_rpc_close(r->rpc);
  free(r->url);
  free(r);
}

static void rv_after(uv_work_t *w, int status) {
  struct teex_sm__revoker *r = w->data;
  uint64_t now = (uint64_t)time(NULL);
  for (size_t i = 0; status == 0 && i < r->n; i++) {
    struct rv_item *it = &r->items[i];
    struct teex_err err;
    char who[43];
    teex_eth_address_hex(it->enclave, who);
    if (teex_sm_chain_revocation_result(r->sm, it->enclave, it->confirmed,
                                        it->error, now, &err) != 0)
      TEEX_WARN("sm", "chain revocation not recorded",
                "enclave=%s reason=\"%s\"", who, err.msg);
    else if (it->confirmed)
      TEEX_INFO("sm", "revoked on chain", "enclave=%s", who);
    else
      TEEX_WARN("sm", "chain revocation failed, will retry",
                "enclave=%s reason=\"%s\"", who, it->error);
  }
  r->n = 0;
  r->busy = 0;
  if (r->timer_closed)
    rv_free(r);
}

static void rv_tick(uv_timer_t *t) {
  struct teex_sm__revoker *r = t->data;
  if (r->busy || r->closing)
    return;
  struct teex_err err;
  struct pick_ctx p = {r, (uint64_t)time(NULL)};
  r->n = 0;
  if (teex_sm_chain_revocations_pending(r->sm, pick, &p, &err) != 0) {
    TEEX_WARN("sm", "chain revocations unreadable", "reason=\"%s\"", err.msg);
    return;
  }
  if (r->n == 0)
    return;
  r->busy = 1;
  r->work.data = r;
  if (uv_queue_work(r->loop, &r->work, rv_work, rv_after) != 0) {
    r->busy = 0;
    r->n = 0;
  }
}

int teex_sm__revoker_start(uv_loop_t *loop, struct teex_sm *sm, const char *url,
                           const struct teex_chain_addrs *a,
                           unsigned interval_ms, struct teex_sm__revoker **out,
                           struct teex_err *err) {
  struct teex_sm__revoker *r = calloc(1, sizeof *r);
  if (r == NULL || (r->url = strdup(url)) == NULL) {
    free(r);
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  r->loop = loop;
  r->sm = sm;
  r->addrs = *a;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, rv_tick, 0, interval_ms ? interval_ms : 5000);
  uv_unref((uv_handle_t *)&r->timer); /* never what keeps the loop alive */
  *out = r;
  return 0;
}

void teex_sm__revoker_kick(struct teex_sm__revoker *r) {
  if (r != NULL && !r->busy)
    rv_tick(&r->timer);
}

static void rv_timer_closed(uv_handle_t *h) {
  struct teex_sm__revoker *r = h->data;
  r->timer_closed = 1;
  if (!r->busy) /* else rv_after frees it */
    rv_free(r);
}

void teex_sm__revoker_close(struct teex_sm__revoker *r) {
  if (r == NULL)
    return;
  r->closing = 1;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, rv_timer_closed);
}
