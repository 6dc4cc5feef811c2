/* A user's side of the dispatcher (see include/teex/user.h). */
#include "teex/user.h"

#include "teex/buf.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_TIMEOUT_MS 30000

struct teex_user_dispatcher {
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
};

int teex_user_dispatcher_connect(const char *addr,
                                 const struct teex_tee_policy *policy,
                                 struct teex_user_dispatcher **out,
                                 struct teex_err *err) {
  struct teex_user_dispatcher *d = calloc(1, sizeof *d);
  if (d == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  d->verifier.policy = policy;
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &d->verifier};
  int rc = teex_tls_ctx_new(&d->ctx, &tc, 0, err);
  if (rc == 0)
    rc = teex_rpc_sync_connect(addr, d->ctx, USER_TIMEOUT_MS, &d->c, err);
  if (rc != 0) {
    teex_user_dispatcher_close(d);
    return teex_err_wrap(err, rc, "connect to the dispatcher at %s", addr);
  }
  *out = d;
  return 0;
}

void teex_user_dispatcher_close(struct teex_user_dispatcher *d) {
  if (d == NULL)
    return;
  teex_rpc_sync_close(d->c);
  teex_tls_ctx_free(d->ctx);
  free(d);
}

static int call(struct teex_user_dispatcher *d, const char *method,
                const ProtobufCMessage *m, struct teex_buf *resp,
                struct teex_err *err) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  protobuf_c_message_pack(m, buf);
  int rc = teex_rpc_sync_call(d->c, method, buf, n, USER_TIMEOUT_MS, resp, err);
  free(buf);
  return rc;
}

static int amount_of(const ProtobufCBinaryData *b, teex_amount *v) {
  return b->len == 32 ? teex_amount_from_word(b->data, v) : TEEX_EFORMAT;
}

int teex_user_base(struct teex_user_dispatcher *d, const uint8_t user[20],
                   struct teex_user_base *out, struct teex_err *err) {
  Teex__Dispatcher__BaseRequest req = TEEX__DISPATCHER__BASE_REQUEST__INIT;
  req.user = (ProtobufCBinaryData){20, (uint8_t *)user};
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  int rc = call(d, "dispatcher.Base", &req.base, &resp, err);
  if (rc == 0) {
    Teex__Dispatcher__BaseResponse *r =
        teex__dispatcher__base_response__unpack(NULL, resp.len, resp.data);
    if (r == NULL || amount_of(&r->cumulative_base, &out->base) != 0 ||
        amount_of(&r->escrow, &out->escrow) != 0 ||
        amount_of(&r->settled, &out->settled) != 0 || r->dispatcher.len != 20 ||
        r->settlement.len != 20) {
      rc = teex_err_set(err, TEEX_EPROTO, "malformed dispatcher.Base answer");
    } else {
      memcpy(out->dispatcher, r->dispatcher.data, 20);
      out->domain.chain_id = r->chain_id;
      memcpy(out->domain.verifying_contract, r->settlement.data, 20);
    }
    if (r != NULL)
      teex__dispatcher__base_response__free_unpacked(r, NULL);
  }
  teex_buf_free(&resp);
  return rc;
}

int teex_user_sign_auth(const struct teex_domain *domain,
                        struct teex_payment_auth *a, const uint8_t sk[32]) {
  uint8_t digest[32];
  teex_stmt_payment_auth_digest(domain, a, digest);
  return teex_stmt_sign(sk, digest, a->sig);
}

int teex_user_submit(struct teex_user_dispatcher *d,
                     const struct teex_payment_auth *auth,
                     const uint8_t *dataset_ids, size_t n_datasets,
                     const uint8_t dispatcher[20], uint64_t deadline,
                     const uint8_t *failed_worker,
                     struct teex_user_assignment *out, struct teex_err *err) {
  uint8_t price[32], cum[32];
  teex_amount_word(auth->price, price);
  teex_amount_word(auth->cumulative, cum);
  Teex__Dispatcher__Authorization pa = TEEX__DISPATCHER__AUTHORIZATION__INIT;
  pa.user = (ProtobufCBinaryData){20, (uint8_t *)auth->user};
  pa.dispatcher = (ProtobufCBinaryData){20, (uint8_t *)auth->dispatcher};
  pa.task_id = (ProtobufCBinaryData){32, (uint8_t *)auth->task_id};
  pa.service_id = (ProtobufCBinaryData){32, (uint8_t *)auth->service_id};
  pa.image_hash = (ProtobufCBinaryData){32, (uint8_t *)auth->image_hash};
  pa.datasets_hash = (ProtobufCBinaryData){32, (uint8_t *)auth->datasets_hash};
  pa.price = (ProtobufCBinaryData){32, price};
  pa.cumulative = (ProtobufCBinaryData){32, cum};
  pa.signature = (ProtobufCBinaryData){65, (uint8_t *)auth->sig};
  Teex__Dispatcher__SubmitRequest req = TEEX__DISPATCHER__SUBMIT_REQUEST__INIT;
  req.auth = &pa;
  req.deadline = deadline;
  if (n_datasets > 0)
    req.dataset_ids =
        (ProtobufCBinaryData){32 * n_datasets, (uint8_t *)dataset_ids};
  if (failed_worker != NULL)
    req.failed_worker = (ProtobufCBinaryData){20, (uint8_t *)failed_worker};
  struct teex_buf resp;
  teex_buf_init(&resp, 16384, 0);
  int rc = call(d, "dispatcher.Submit", &req.base, &resp, err);
  if (rc != 0)
    goto out;
  Teex__Dispatcher__SubmitResponse *r =
      teex__dispatcher__submit_response__unpack(NULL, resp.len, resp.data);
  const Teex__Dispatcher__Assignment *m = r ? r->assignment : NULL;
  if (m == NULL || m->dispatcher.len != 20 || m->worker.len != 20 ||
      m->user.len != 20 || m->task_id.len != 32 || m->service_id.len != 32 ||
      m->image_hash.len != 32 || m->price.len != 32 || m->signature.len != 65 ||
      (m->datasets_hash.len != 0 && m->datasets_hash.len != 32) ||
      strlen(m->endpoint) > TEEX_USER_ENDPOINT_MAX) {
    rc = teex_err_set(err, TEEX_EPROTO, "malformed assignment");
  } else {
    struct teex_assignment *a = &out->a;
    memset(a, 0, sizeof *a); /* every field is in the signed digest */
    a->chain_id = m->chain_id;
    memcpy(a->dispatcher, m->dispatcher.data, 20);
    memcpy(a->worker, m->worker.data, 20);
    memcpy(a->user, m->user.data, 20);
    memcpy(a->task_id, m->task_id.data, 32);
    memcpy(a->service_id, m->service_id.data, 32);
    memcpy(a->image_hash, m->image_hash.data, 32);
    a->expires_at = m->expires_at;
    if (m->datasets_hash.len == 32)
      memcpy(a->datasets_hash, m->datasets_hash.data, 32);
    memcpy(out->signature, m->signature.data, 65);
    snprintf(out->endpoint, sizeof out->endpoint, "%s", m->endpoint);
    out->retry = r->retry;
    uint8_t digest[32], signer[20];
    if (teex_amount_from_word(m->price.data, &a->price) != 0) {
      rc = teex_err_set(err, TEEX_EPROTO, "assignment price too large");
    } else {
      teex_stmt_assignment_digest(a, digest);
      if (teex_stmt_recover(digest, out->signature, signer) != 0 ||
          memcmp(signer, dispatcher, 20) != 0 ||
          memcmp(a->dispatcher, dispatcher, 20) != 0)
        rc = teex_err_set(err, TEEX_EBADSIG,
                          "assignment not signed by the dispatcher");
      else if (memcmp(a->user, auth->user, 20) != 0 ||
               memcmp(a->task_id, auth->task_id, 32) != 0 ||
               memcmp(a->service_id, auth->service_id, 32) != 0 ||
               memcmp(a->image_hash, auth->image_hash, 32) != 0 ||
               a->price != auth->price ||
               (n_datasets > 0
                    ? memcmp(a->datasets_hash, auth->datasets_hash, 32) != 0
                    : m->datasets_hash.len != 0))
        rc = teex_err_set(err, TEEX_EPROTO,
                          "assignment does not match the task submitted");
    }
  }
  if (r != NULL)
    teex__dispatcher__submit_response__free_unpacked(r, NULL);
out:
  teex_buf_free(&resp);
  return rc;
}

int teex_user_status(struct teex_user_dispatcher *d, const uint8_t task_id[32],
                     struct teex_user_status *out, struct teex_err *err) {
  Teex__Dispatcher__StatusRequest req = TEEX__DISPATCHER__STATUS_REQUEST__INIT;
  req.task_id = (ProtobufCBinaryData){32, (uint8_t *)task_id};
  struct teex_buf resp;
  teex_buf_init(&resp, 65536, 0);
  memset(out, 0, sizeof *out);
  int rc = call(d, "dispatcher.Status", &req.base, &resp, err);
  if (rc == 0) {
    Teex__Dispatcher__StatusResponse *r =
        teex__dispatcher__status_response__unpack(NULL, resp.len, resp.data);
    if (r == NULL || r->n_proof > 40) {
      rc = teex_err_set(err, TEEX_EPROTO, "malformed dispatcher.Status answer");
    } else {
      snprintf(out->state, sizeof out->state, "%s", r->state);
      const Teex__Dispatcher__Receipt *rc_ = r->receipt;
      if (rc_ != NULL && rc_->task_id.len == 32 && rc_->service_id.len == 32 &&
          rc_->image_hash.len == 32 && rc_->user.len == 20 &&
          rc_->dispatcher.len == 20 && rc_->worker.len == 20 &&
          rc_->provider.len == 20 && rc_->input_commitment.len == 32 &&
          rc_->output_commitment.len == 32 && rc_->price.len == 32 &&
          rc_->worker_amount.len == 32 && rc_->provider_amount.len == 32 &&
          rc_->signature.len == 65 &&
          rc_->n_data_shares <= sizeof out->shares / sizeof out->shares[0]) {
        size_t ns = 0;
        for (; ns < rc_->n_data_shares; ns++) {
          const Teex__Dispatcher__DataShare *x = rc_->data_shares[ns];
          if (x->dataset_id.len != 32 || x->payee.len != 20 ||
              x->amount.len != 32)
            break;
          memcpy(out->shares[ns].dataset_id, x->dataset_id.data, 32);
          memcpy(out->shares[ns].payee, x->payee.data, 20);
          memcpy(out->shares[ns].amount, x->amount.data, 32);
        }
        if (ns != rc_->n_data_shares) {
          rc = teex_err_set(err, TEEX_EPROTO, "malformed data share");
        } else {
          struct teex_receipt *x = &out->receipt;
          memcpy(x->task_id, rc_->task_id.data, 32);
          memcpy(x->service_id, rc_->service_id.data, 32);
          memcpy(x->image_hash, rc_->image_hash.data, 32);
          memcpy(x->user, rc_->user.data, 20);
          memcpy(x->dispatcher, rc_->dispatcher.data, 20);
          memcpy(x->worker, rc_->worker.data, 20);
          memcpy(x->provider, rc_->provider.data, 20);
          memcpy(x->input_commitment, rc_->input_commitment.data, 32);
          memcpy(x->output_commitment, rc_->output_commitment.data, 32);
          memcpy(x->price, rc_->price.data, 32);
          memcpy(x->worker_amount, rc_->worker_amount.data, 32);
          memcpy(x->provider_amount, rc_->provider_amount.data, 32);
          memcpy(out->receipt_sig, rc_->signature.data, 65);
          out->receipt.shares = ns ? out->shares : NULL;
          out->receipt.nshares = ns;
          out->has_receipt = 1;
        }
      }
      if (r->worker.len == 20)
        memcpy(out->worker, r->worker.data, 20);
      if (r->batch_id.len == 32 && r->root.len == 32) {
        out->settled = 1;
        memcpy(out->batch_id, r->batch_id.data, 32);
        memcpy(out->root, r->root.data, 32);
      }
      for (size_t i = 0; i < r->n_proof; i++) {
        if (r->proof[i].len != 32) {
          rc = teex_err_set(err, TEEX_EPROTO, "malformed proof");
          break;
        }
        memcpy(out->proof + 32 * i, r->proof[i].data, 32);
      }
      out->nproof = r->n_proof;
      snprintf(out->cid, sizeof out->cid, "%s", r->cid ? r->cid : "");
    }
    if (r != NULL)
      teex__dispatcher__status_response__free_unpacked(r, NULL);
  }
  teex_buf_free(&resp);
  return rc;
}
