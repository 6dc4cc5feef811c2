/* The user's side of worker.Hello and worker.Run (include/teex/client.h). */
#include "teex/client.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/proto/worker.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/rpc_sync.h"
#include "teex/tls.h"

#include <stdlib.h>
#include <string.h>

#define RUN_TIMEOUT_MS 120000u
#define RESP_MAX (TEEX_RPC_DEFAULT_MAX_MESSAGE)

struct teex_client_worker {
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
  uint8_t address[20];
  uint32_t timeout_ms;
};

int teex_client_connect(const char *addr, const struct teex_tee_policy *policy,
                        uint32_t timeout_ms, struct teex_client_worker **out,
                        struct teex_err *err) {
  *out = NULL;
  struct teex_client_worker *c = calloc(1, sizeof *c);
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  c->verifier.policy = policy;
  c->timeout_ms = timeout_ms ? timeout_ms : 10000;
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &c->verifier};
  int rc = teex_tls_ctx_new(&c->ctx, &tc, 0, err);
  if (rc == 0)
    rc = teex_rpc_sync_connect(addr, c->ctx, c->timeout_ms, &c->c, err);
  if (rc != 0) {
    teex_client_close(c);
    return teex_err_wrap(err, rc, "connect to worker %s", addr);
  }
  const struct teex_tee_identity *id =
      teex_ratls_channel_peer(teex_rpc_sync_conn(c->c));
  if (id == NULL || !id->has_binding || !id->binding.has_secp256k1 ||
      strcmp(id->role, "worker") != 0) {
    teex_client_close(c);
    return teex_err_set(err, TEEX_EATTEST,
                        "worker %s: its evidence binds no worker enclave key",
                        addr);
  }
  memcpy(c->address, id->binding.eth_address, 20);
  *out = c;
  return 0;
}

void teex_client_worker_address(const struct teex_client_worker *c,
                                uint8_t addr[20]) {
  memcpy(addr, c->address, 20);
}

void teex_client_close(struct teex_client_worker *c) {
  if (c == NULL)
    return;
  teex_rpc_sync_close(c->c);
  teex_tls_ctx_free(c->ctx);
  free(c);
}

int teex_client_hello(struct teex_client_worker *c,
                      const uint8_t service_id[32],
                      const uint8_t image_hash[32],
                      const uint8_t signing_key[20], struct teex_err *err) {
  uint8_t exporter[32], digest[32], signer[20];
  struct teex_tls_conn *conn = teex_rpc_sync_conn(c->c);
  if (conn == NULL)
    return teex_err_set(err, TEEX_ECLOSED, "worker connection closed");
  int rc = teex_tls_export(conn, TEEX_SERVICE_PROOF_LABEL, service_id, 32,
                           exporter, 32, err);
  if (rc != 0)
    return rc;
  Teex__Worker__HelloRequest req = TEEX__WORKER__HELLO_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, (uint8_t *)service_id};
  req.image_hash = (ProtobufCBinaryData){32, (uint8_t *)image_hash};
  uint8_t buf[128];
  size_t n = teex__worker__hello_request__pack(&req, buf);
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  /* The first Hello for an image may wait for the worker to load it. */
  rc = teex_rpc_sync_call(c->c, "worker.Hello", buf, n, RUN_TIMEOUT_MS, &resp,
                          err);
  if (rc != 0) {
    teex_buf_free(&resp);
    return teex_err_wrap(err, rc, "worker.Hello");
  }
  Teex__Worker__HelloResponse *r =
      teex__worker__hello_response__unpack(NULL, resp.len, resp.data);
  teex_buf_free(&resp);
  if (r == NULL || r->signature.len != 65)
    rc = teex_err_set(err, TEEX_EFORMAT, "malformed worker.Hello answer");
  if (rc == 0) {
    teex_stmt_service_proof_digest(service_id, exporter, digest);
    if (teex_stmt_recover(digest, r->signature.data, signer) != 0 ||
        memcmp(signer, signing_key, 20) != 0)
      rc = teex_err_set(err, TEEX_EBADSIG,
                        "the worker does not prove it holds the service key "
                        "on this connection");
  }
  if (r != NULL)
    teex__worker__hello_response__free_unpacked(r, NULL);
  return rc;
}

static int take(const ProtobufCBinaryData *b, size_t want, uint8_t *dst,
                const char *name, struct teex_err *err) {
  if (b->len != want)
    return teex_err_set(err, TEEX_EFORMAT, "receipt %s must be %zu bytes", name,
                        want);
  memcpy(dst, b->data, want);
  return 0;
}

static int receipt_from_msg(const Teex__Dispatcher__Receipt *m,
                            struct teex_receipt *r, uint8_t sig[65],
                            struct teex_data_share *shares,
                            struct teex_err *err) {
  int rc;
  memset(r, 0, sizeof *r);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "no receipt in the answer");
  if (m->n_data_shares > TEEX_CLIENT_MAX_DATASETS)
    return teex_err_set(err, TEEX_EFORMAT, "receipt with too many data shares");
  for (size_t i = 0; i < m->n_data_shares; i++) {
    const Teex__Dispatcher__DataShare *x = m->data_shares[i];
    if ((rc = take(&x->dataset_id, 32, shares[i].dataset_id, "dataset_id",
                   err)) ||
        (rc = take(&x->payee, 20, shares[i].payee, "payee", err)) ||
        (rc = take(&x->amount, 32, shares[i].amount, "amount", err)))
      return rc;
  }
  r->shares = shares;
  r->nshares = m->n_data_shares;
  if ((rc = take(&m->task_id, 32, r->task_id, "task_id", err)) ||
      (rc = take(&m->service_id, 32, r->service_id, "service_id", err)) ||
      (rc = take(&m->image_hash, 32, r->image_hash, "image_hash", err)) ||
      (rc = take(&m->user, 20, r->user, "user", err)) ||
      (rc = take(&m->dispatcher, 20, r->dispatcher, "dispatcher", err)) ||
      (rc = take(&m->worker, 20, r->worker, "worker", err)) ||
      (rc = take(&m->provider, 20, r->provider, "provider", err)) ||
      (rc = take(&m->input_commitment, 32, r->input_commitment,
                 "input_commitment", err)) ||
      (rc = take(&m->output_commitment, 32, r->output_commitment,
                 "output_commitment", err)) ||
      (rc = take(&m->price, 32, r->price, "price", err)) ||
      (rc = take(&m->worker_amount, 32, r->worker_amount, "worker_amount",
                 err)) ||
      (rc = take(&m->provider_amount, 32, r->provider_amount, "provider_amount",
                 err)) ||
      (rc = take(&m->signature, 65, sig, "signature", err)))
    return rc;
  return 0;
}

int teex_client_check_result(const struct teex_assignment *a,
                             const uint8_t worker[20],
                             const struct teex_client_expect *ex,
                             const uint8_t *input, size_t input_len,
                             const struct teex_client_result *r,
                             struct teex_err *err) {
  uint8_t in_c[32], out_c[32], digest[32], signer[20], price[32];
  teex_settle_commit(r->input_salt, input, input_len, in_c);
  teex_settle_commit(r->output_salt, r->output, r->output_len, out_c);
  teex_stmt_result_digest(a->task_id, a->service_id, a->image_hash, in_c, out_c,
                          digest);
  if (teex_stmt_recover(digest, r->result_sig, signer) != 0 ||
      memcmp(signer, ex->signing_key, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG,
                        "the output is not signed by the service key (altered "
                        "output or another service)");
  const struct teex_receipt *rc = &r->receipt;
  teex_amount_word(a->price, price);
  const char *bad = NULL;
  if (memcmp(rc->task_id, a->task_id, 32) != 0)
    bad = "task id";
  else if (memcmp(rc->service_id, a->service_id, 32) != 0)
    bad = "service";
  else if (memcmp(rc->image_hash, a->image_hash, 32) != 0)
    bad = "image";
  else if (memcmp(rc->user, a->user, 20) != 0)
    bad = "user";
  else if (memcmp(rc->dispatcher, a->dispatcher, 20) != 0)
    bad = "dispatcher";
  else if (memcmp(rc->worker, worker, 20) != 0 ||
           memcmp(rc->worker, a->worker, 20) != 0)
    bad = "worker";
  else if (memcmp(rc->input_commitment, in_c, 32) != 0)
    bad = "input commitment";
  else if (memcmp(rc->output_commitment, out_c, 32) != 0)
    bad = "output commitment";
  else if (memcmp(rc->price, price, 32) != 0)
    bad = "price";
  else if (!teex_settle_split_ok(rc))
    bad = "price split";
  else if (rc->nshares != ex->nshares ||
           (ex->nshares > 0 &&
            memcmp(rc->shares, ex->shares, ex->nshares * sizeof *ex->shares)))
    bad = "data shares";
  if (bad != NULL)
    return teex_err_set(err, TEEX_EAUTH, "receipt %s does not match the task",
                        bad);
  teex_stmt_receipt_digest(&ex->settlement, rc, digest);
  if (teex_stmt_recover(digest, r->receipt_sig, signer) != 0 ||
      memcmp(signer, worker, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG,
                        "receipt not signed by the worker's enclave key");
  return 0;
}

int teex_client_run(struct teex_client_worker *c,
                    const struct teex_assignment *a,
                    const uint8_t dispatcher_sig[65],
                    const struct teex_client_expect *ex, const uint8_t *input,
                    size_t input_len, struct teex_client_result *out,
                    struct teex_err *err) {
  memset(out, 0, sizeof *out);
  /* Never send the input to a worker other than the assigned one. */
  if (memcmp(c->address, a->worker, 20) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "this worker is not the one the task is assigned to");
  struct teex_client_result r;
  memset(&r, 0, sizeof r);
  teex_random(r.input_salt, 32);
  uint8_t price[32];
  teex_amount_word(a->price, price);
  Teex__Worker__RunRequest req = TEEX__WORKER__RUN_REQUEST__INIT;
  req.chain_id = a->chain_id;
  req.dispatcher = (ProtobufCBinaryData){20, (uint8_t *)a->dispatcher};
  req.worker = (ProtobufCBinaryData){20, (uint8_t *)a->worker};
  req.user = (ProtobufCBinaryData){20, (uint8_t *)a->user};
  req.task_id = (ProtobufCBinaryData){32, (uint8_t *)a->task_id};
  req.service_id = (ProtobufCBinaryData){32, (uint8_t *)a->service_id};
  req.image_hash = (ProtobufCBinaryData){32, (uint8_t *)a->image_hash};
  req.price = (ProtobufCBinaryData){32, price};
  req.expires_at = a->expires_at;
  req.dispatcher_sig = (ProtobufCBinaryData){65, (uint8_t *)dispatcher_sig};
  req.input = (ProtobufCBinaryData){input_len, (uint8_t *)input};
  req.input_salt = (ProtobufCBinaryData){32, r.input_salt};
  uint8_t ids[32 * TEEX_CLIENT_MAX_DATASETS];
  if (ex->nshares > TEEX_CLIENT_MAX_DATASETS)
    return teex_err_set(err, TEEX_EINVAL, "more than %d datasets",
                        TEEX_CLIENT_MAX_DATASETS);
  if (ex->nshares > 0) {
    for (size_t i = 0; i < ex->nshares; i++)
      memcpy(ids + 32 * i, ex->shares[i].dataset_id, 32);
    req.datasets_hash = (ProtobufCBinaryData){32, (uint8_t *)a->datasets_hash};
    req.dataset_ids = (ProtobufCBinaryData){32 * ex->nshares, ids};
  }
  size_t n = teex__worker__run_request__get_packed_size(&req);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  teex__worker__run_request__pack(&req, buf);
  struct teex_buf resp;
  teex_buf_init(&resp, RESP_MAX, TEEX_BUF_SECRET);
  int rc = teex_rpc_sync_call(c->c, "worker.Run", buf, n, RUN_TIMEOUT_MS, &resp,
                              err);
  teex_wipe(buf, n);
  free(buf);
  Teex__Worker__RunResponse *m = NULL;
  if (rc != 0)
    goto out;
  m = teex__worker__run_response__unpack(NULL, resp.len, resp.data);
  if (m == NULL || m->output_salt.len != 32 || m->result_sig.len != 65) {
    rc = teex_err_set(err, TEEX_EFORMAT, "malformed worker.Run answer");
    goto out;
  }
  if ((rc = receipt_from_msg(m->receipt, &r.receipt, r.receipt_sig, r.shares,
                             err)) != 0)
    goto out;
  memcpy(r.output_salt, m->output_salt.data, 32);
  memcpy(r.result_sig, m->result_sig.data, 65);
  r.duration_us = m->duration_us;
  r.output = malloc(m->output.len ? m->output.len : 1);
  if (r.output == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto out;
  }
  memcpy(r.output, m->output.data, m->output.len);
  r.output_len = m->output.len;
  rc = teex_client_check_result(a, c->address, ex, input, input_len, &r, err);
  if (rc == 0) {
    *out = r;
    out->receipt.shares = out->shares; /* into out's own copy */
    memset(&r, 0, sizeof r);
  }
out:
  if (m != NULL) {
    teex_wipe(m->output.data, m->output.len);
    teex__worker__run_response__free_unpacked(m, NULL);
  }
  teex_client_result_free(&r);
  teex_buf_free(&resp);
  return rc;
}

void teex_client_result_free(struct teex_client_result *r) {
  if (r == NULL)
    return;
  if (r->output != NULL) {
    teex_wipe(r->output, r->output_len);
    free(r->output);
  }
  memset(r, 0, sizeof *r);
}
