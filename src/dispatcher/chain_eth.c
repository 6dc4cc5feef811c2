/* The dispatcher's chain through an Ethereum node: escrow and listings read
 * from the Settlement and ServiceRegistry contracts, batches settled from
 * the dispatcher enclave's account (include/teex/chain.h). */
#include "teex/chain.h"
#include "teex/dispatcher.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <stdlib.h>
#include <string.h>

struct echain {
  struct teex_eth_rpc *rpc;
  struct teex_chain_addrs a;
  struct teex_eth_sender *sender; /* made on first use (node may be down) */
  uint8_t *sk;                    /* locked; NULL until bound */
  uint8_t self[20];
};

static int ec_escrow(void *arg, const uint8_t user[20], teex_amount *escrow,
                     teex_amount *settled, struct teex_err *err) {
  struct echain *c = arg;
  struct teex_chain_escrow e;
  int rc = teex_chain_get_escrow(c->rpc, &c->a, user, c->self, &e, err);
  if (rc != 0)
    return rc;
  *escrow = e.balance;
  *settled = e.settled;
  return 0;
}

static int ec_service(void *arg, const uint8_t id[32], const uint8_t image[32],
                      struct teex_dispatcher_service *out,
                      struct teex_err *err) {
  struct echain *c = arg;
  struct teex_chain_service s;
  int rc = teex_chain_get_service(c->rpc, &c->a, id, &s, err);
  if (rc != 0)
    return rc;
  if (s.retired)
    return teex_err_set(err, TEEX_ENOTFOUND, "the service is retired");
  if (memcmp(s.image_hash, image, 32) != 0) {
    char cur[65];
    teex_hex_encode(s.image_hash, 32, cur);
    return teex_err_set(err, TEEX_ENOTFOUND,
                        "the image is not the service's current one "
                        "(version %u runs image 0x%s)",
                        (unsigned)s.version, cur);
  }
  memcpy(out->provider, s.provider, 20);
  out->price = s.price;
  out->remuneration = s.remuneration;
  out->is_private = s.is_private;
  return 0;
}

static int ec_may_invoke(void *arg, const uint8_t id[32],
                         const uint8_t caller[20], int *allowed,
                         struct teex_err *err) {
  struct echain *c = arg;
  return teex_chain_can_invoke(c->rpc, &c->a, id, caller, allowed, err);
}

static int ec_settle(void *arg, const struct teex_dispatcher_batch *b,
                     struct teex_err *err) {
  struct echain *c = arg;
  if (c->sk == NULL)
    return teex_err_set(err, TEEX_ESTATE, "chain not bound to a key");
  if (c->sender == NULL) {
    int rc = teex_eth_sender_new(c->rpc, c->sk, NULL, &c->sender, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "dispatcher account");
  }
  struct teex_chain_credit *cr =
      calloc(b->ncredits ? b->ncredits : 1, sizeof *cr);
  if (cr == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  for (size_t i = 0; i < b->ncredits; i++) {
    memcpy(cr[i].payee, b->credits[i].payee, 20);
    cr[i].amount = b->credits[i].amount;
  }
  struct teex_chain_batch cb = {.task_count = b->task_count,
                                .cid = b->cid,
                                .auths = b->auths,
                                .n_auths = b->nauths,
                                .credits = cr,
                                .n_credits = b->ncredits};
  memcpy(cb.batch_id, b->batch_id, 32);
  memcpy(cb.root, b->root, 32);
  uint64_t gas = 0;
  int rc = teex_chain_settle_batch(c->sender, &c->a, &cb, 0, &gas, err);
  free(cr);
  if (rc != 0 && (rc == TEEX_ECONN || rc == TEEX_ETIMEDOUT)) {
    /* the nonce may be taken by a transaction the node never saw */
    struct teex_err e2;
    teex_eth_sender_resync(c->sender, &e2);
  }
  return rc;
}

static int ec_worker_active(void *arg, const uint8_t addr[20], int *active,
                            struct teex_err *err) {
  struct echain *c = arg;
  return teex_chain_enclave_active(c->rpc, &c->a, addr, TEEX_ENCLAVE_WORKER,
                                   active, err);
}

static int ec_bind(void *arg, const uint8_t sk[32], const uint8_t addr[20],
                   struct teex_err *err) {
  struct echain *c = arg;
  if (c->sk == NULL && (c->sk = teex_secret_alloc(32)) == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "locked memory");
  memcpy(c->sk, sk, 32);
  memcpy(c->self, addr, 20);
  return 0;
}

static void ec_close(void *arg) {
  struct echain *c = arg;
  if (c == NULL)
    return;
  teex_eth_sender_free(c->sender);
  teex_eth_rpc_close(c->rpc);
  teex_secret_free(c->sk);
  free(c);
}

static int ec_batch_root(void *arg, const uint8_t batch_id[32],
                         uint8_t root[32], struct teex_err *err) {
  struct echain *c = arg;
  struct teex_chain_batch_record r;
  int rc = teex_chain_get_batch(c->rpc, &c->a, batch_id, &r, err);
  if (rc == 0)
    memcpy(root, r.root, 32);
  return rc;
}

static int ec_dataset(void *arg, const uint8_t id[32], const uint8_t svc[32],
                      const uint8_t image[32],
                      struct teex_dispatcher_dataset *out,
                      struct teex_err *err) {
  struct echain *c = arg;
  struct teex_chain_dataset ds;
  int ok = 0;
  int rc = teex_chain_get_dataset(c->rpc, &c->a, id, &ds, err);
  if (rc == TEEX_ENOTFOUND)
    return teex_err_set(err, rc, "not listed on chain");
  if (rc != 0)
    return rc;
  if (ds.revoked)
    return teex_err_set(err, TEEX_EPOLICY, "revoked by its provider");
  rc = teex_chain_dataset_approved(c->rpc, &c->a, id, svc, image, &ok, err);
  if (rc != 0)
    return rc;
  if (!ok)
    return teex_err_set(err, TEEX_EPERM,
                        "its provider has not approved this service at this "
                        "image hash");
  /* usable() also checks expiry against the chain's latest block. */
  rc = teex_chain_dataset_usable(c->rpc, &c->a, id, svc, image, &ok, err);
  if (rc != 0)
    return rc;
  if (!ok)
    return teex_err_set(err, TEEX_EEXPIRED, "expired");
  memcpy(out->provider, ds.provider, 20);
  out->price = ds.price;
  return 0;
}

static const struct teex_dispatcher_chain_ops eth_ops = {
    ec_escrow, ec_service,    ec_settle,     ec_worker_active, ec_bind,
    ec_close,  ec_batch_root, ec_may_invoke, ec_dataset};

int teex_dispatcher_chain_eth(const char *rpc_url,
                              const struct teex_chain_addrs *addrs,
                              struct teex_dispatcher_chain *out,
                              struct teex_err *err) {
  struct echain *c = calloc(1, sizeof *c);
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  struct teex_eth_rpc_opts o = {.timeout_ms = 10000, .connect_ms = 2000};
  int rc = teex_eth_rpc_open(rpc_url, &o, &c->rpc, err);
  if (rc != 0) {
    free(c);
    return rc;
  }
  teex_chain_use_errors(c->rpc);
  c->a = *addrs;
  out->ops = &eth_ops;
  out->arg = c;
  return 0;
}
