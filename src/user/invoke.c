/* The whole invocation of a service by a user (see include/teex/user.h). */
#include "teex/user.h"

#include "teex/chain.h"
#include "teex/client.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INVOKE_DEADLINE_S 120

/* The service's listing and each dataset's: the data shares the receipt
 * must carry (provider, listed price) and their sum. */
static int read_listing(const char *chain_conf, const uint8_t service_id[32],
                        struct teex_chain_service *svc, const uint8_t *ids,
                        size_t n, struct teex_data_share *shares,
                        teex_amount *data_price, struct teex_err *err) {
  struct teex_config c;
  struct teex_chain_addrs addrs;
  struct teex_eth_rpc *rpc = NULL;
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, &addrs, err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        err);
  if (rc == 0) {
    teex_chain_use_errors(rpc); /* ServiceNotFound is TEEX_ENOTFOUND */
    rc = teex_chain_get_service(rpc, &addrs, service_id, svc, err);
  }
  if (rc == TEEX_ENOTFOUND)
    teex_err_set(err, rc, "no such service on chain");
  *data_price = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    struct teex_chain_dataset ds;
    char hex[65];
    teex_hex_encode(ids + 32 * i, 32, hex);
    rc = teex_chain_get_dataset(rpc, &addrs, ids + 32 * i, &ds, err);
    if (rc == TEEX_ENOTFOUND)
      teex_err_set(err, rc, "dataset 0x%s is not listed on chain", hex);
    else if (rc != 0)
      teex_err_wrap(err, rc, "dataset 0x%s", hex);
    else if (ds.revoked)
      rc = teex_err_set(err, TEEX_EPOLICY,
                        "dataset %s (0x%s) was revoked by its provider",
                        ds.name, hex);
    else if (*data_price + ds.price < *data_price)
      rc = teex_err_set(err, TEEX_EINVAL, "dataset prices overflow");
    if (rc != 0)
      break;
    for (size_t j = 0; j < i; j++)
      if (memcmp(ids + 32 * j, ids + 32 * i, 32) == 0)
        rc = teex_err_set(err, TEEX_EINVAL, "dataset 0x%s named twice", hex);
    memcpy(shares[i].dataset_id, ids + 32 * i, 32);
    memcpy(shares[i].payee, ds.provider, 20);
    teex_amount_word(ds.price, shares[i].amount);
    *data_price += ds.price;
  }
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  return rc;
}

/* Runs the task on the assigned worker. Returns 0, a service error
 * (TEEX_EREMOTE / TEEX_ETIMEDOUT from the worker: final), or a transport
 * error (the worker failed: try another). *worker_failed tells which. */
static int run_on_worker(const struct teex_invoke_request *req,
                         const struct teex_user_assignment *ua,
                         const struct teex_chain_service *svc,
                         const struct teex_domain *domain,
                         const struct teex_data_share *shares, size_t nshares,
                         struct teex_invoke_result *out, int *worker_failed,
                         struct teex_err *err) {
  struct teex_client_worker *w = NULL;
  struct teex_client_result r;
  memset(&r, 0, sizeof r);
  struct teex_client_expect ex;
  memcpy(ex.signing_key, svc->signing_key, 20);
  ex.settlement = *domain;
  ex.shares = shares;
  ex.nshares = nshares;
  *worker_failed = 1;
  int rc =
      teex_client_connect(ua->endpoint, req->enclave_policy, 15000, &w, err);
  if (rc == 0)
    rc = teex_client_hello(w, ua->a.service_id, ua->a.image_hash,
                           svc->signing_key, err);
  if (rc == 0) {
    rc = teex_client_run(w, &ua->a, ua->signature, &ex, req->input,
                         req->input_len, &r, err);
    /* The worker answered: a service error is the task's outcome, and a
     * result that fails verification is the worker's fault. A policy
     * refusal (the SM would not lease a dataset: revoked, no use left) is
     * final too: another worker would be refused the same. */
    if (rc == 0 || rc == TEEX_EREMOTE || rc == TEEX_EPOLICY)
      *worker_failed = 0;
  }
  if (rc == 0) {
    out->output = malloc(r.output_len ? r.output_len : 1);
    if (out->output == NULL) {
      rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    } else {
      memcpy(out->output, r.output, r.output_len);
      out->output_len = r.output_len;
      out->duration_us = r.duration_us;
    }
  }
  teex_client_result_free(&r);
  teex_client_close(w);
  return rc;
}

int teex_invoke(const struct teex_invoke_request *req,
                struct teex_invoke_result *out, struct teex_err *err) {
  memset(out, 0, sizeof *out);
  struct teex_chain_service svc;
  struct teex_data_share shares[TEEX_CLIENT_MAX_DATASETS];
  teex_amount data_price = 0;
  if (req->n_datasets > TEEX_CLIENT_MAX_DATASETS ||
      (req->n_datasets > 0 && req->dataset_ids == NULL))
    return teex_err_set(err, TEEX_EINVAL, "at most %d datasets per task",
                        TEEX_CLIENT_MAX_DATASETS);
  int rc =
      read_listing(req->chain_conf, req->service_id, &svc, req->dataset_ids,
                   req->n_datasets, shares, &data_price, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "read the listings");
  if (svc.price + data_price < svc.price)
    return teex_err_set(err, TEEX_EINVAL, "price overflows");
  teex_amount price = svc.price + data_price;
  if (svc.retired)
    return teex_err_set(err, TEEX_ENOTFOUND, "the service is retired");
  if (req->pin_image && memcmp(svc.image_hash, req->image_hash, 32) != 0)
    return teex_err_set(err, TEEX_EPOLICY,
                        "the listed image is not the one pinned: the "
                        "provider published another version");
  if (req->max_price != 0 && price > req->max_price) {
    char p[40], m[40];
    teex_amount_format(price, p);
    teex_amount_format(req->max_price, m);
    return teex_err_set(err, TEEX_EPOLICY,
                        "price %s wei%s is above --max-price %s wei", p,
                        req->n_datasets ? " (service and datasets)" : "", m);
  }
  uint8_t pub[64], user[20];
  if ((rc = teex_secp256k1_public(req->user_sk, pub)) != 0)
    return teex_err_set(err, rc, "user key invalid");
  teex_eth_address(pub, user);

  struct teex_user_dispatcher *d = req->conn;
  if (d == NULL && (rc = teex_user_dispatcher_connect(
                        req->dispatcher, req->enclave_policy, &d, err)) != 0)
    return rc;
  struct teex_user_base base;
  rc = teex_user_base(d, user, &base, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "dispatcher.Base");
    goto out;
  }
  teex_amount need = base.base + price - base.settled;
  if (need > base.escrow) {
    char have[40], want[40];
    teex_amount_format(base.escrow, have);
    teex_amount_format(need - base.escrow, want);
    rc = teex_err_set(err, TEEX_EFUNDS,
                      "escrow %s wei for this dispatcher is too small: "
                      "deposit %s wei more (teex deposit)",
                      have, want);
    goto out;
  }
  struct teex_payment_auth a;
  memset(&a, 0, sizeof a);
  memcpy(a.user, user, 20);
  memcpy(a.dispatcher, base.dispatcher, 20);
  teex_random(a.task_id, 32);
  memcpy(a.service_id, req->service_id, 32);
  memcpy(a.image_hash, svc.image_hash, 32);
  teex_stmt_datasets_hash(req->dataset_ids, req->n_datasets, a.datasets_hash);
  a.price = price;
  a.cumulative = base.base + price;
  if ((rc = teex_user_sign_auth(&base.domain, &a, req->user_sk)) != 0)
    goto out;
  memcpy(out->task_id, a.task_id, 32);
  out->price = a.price;
  out->data_price = data_price;
  out->cumulative = a.cumulative;

  unsigned attempts = req->max_attempts ? req->max_attempts : 3;
  uint8_t failed[20];
  int have_failed = 0;
  uint64_t deadline = (uint64_t)time(NULL) + INVOKE_DEADLINE_S;
  for (unsigned i = 0; i < attempts; i++) {
    struct teex_user_assignment ua;
    rc = teex_user_submit(d, &a, req->dataset_ids, req->n_datasets,
                          base.dispatcher, deadline,
                          have_failed ? failed : NULL, &ua, err);
    if (rc != 0) {
      teex_err_wrap(err, rc, "dispatcher.Submit");
      goto out;
    }
    out->attempts = i + 1;
    memcpy(out->worker, ua.a.worker, 20);
    int worker_failed = 0;
    rc = run_on_worker(req, &ua, &svc, &base.domain, shares, req->n_datasets,
                       out, &worker_failed, err);
    if (rc == 0 || !worker_failed)
      goto out;
    /* The worker failed: another one, same task id, same authorisation. */
    memcpy(failed, ua.a.worker, 20);
    have_failed = 1;
    teex_err_wrap(err, rc, "worker %s failed", ua.endpoint);
  }
out:
  if (d != req->conn)
    teex_user_dispatcher_close(d);
  return rc;
}
