/* The Service Manager daemon's dataset methods (include/teex/sm.h,
 * "datasets"): sm.EscrowDataKey from data providers (server-only RA-TLS,
 * authenticated by the provider's signature) and sm.LeaseDataKey from
 * workers (mutual RA-TLS with fresh evidence, as sm.FetchKeys). The
 * listing's state comes from the chain at each lease; the core
 * (sm_data.c) decides.
 *
 * The chain reads are blocking JSON-RPC calls on the daemon's loop: a lease
 * waits for the node (a local one answers in about a millisecond). */
#include "sm_internal.h"

#include "teex/crypto.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int field(const ProtobufCBinaryData *b, size_t want, const char *name,
                 struct teex_err *err) {
  if (b->len != want)
    return teex_err_set(err, TEEX_EINVAL, "%s must be %zu bytes, not %zu", name,
                        want, b->len);
  return 0;
}

static void respond_msg(struct teex_rpc_call *call, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  protobuf_c_message_pack(m, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, n);
  teex_wipe(buf, n); /* a lease carries a data key */
  free(buf);
}

void teex_sm__on_escrow_data_key(struct teex_rpc_call *call, const uint8_t *p,
                                 size_t n, void *arg) {
  struct teex_sm_data_ctx *ctx = arg;
  struct teex_err err;
  struct teex_sm_escrow e;
  int rc;
  teex_err_clear(&err);
  memset(&e, 0, sizeof e);
  Teex__Sm__EscrowDataKeyRequest *req =
      teex__sm__escrow_data_key_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  if ((rc = field(&req->dataset_id, 32, "dataset_id", &err)) ||
      (rc = field(&req->provider, 20, "provider", &err)) ||
      (rc = field(&req->plaintext_hash, 32, "plaintext_hash", &err)) ||
      (rc = field(&req->data_key, 32, "data_key", &err)) ||
      (rc = field(&req->provider_sig, 65, "provider_sig", &err)))
    goto out;
  if (strlen(req->name) > TEEX_SM_DATASET_NAME_MAX ||
      strlen(req->ciphertext_cid) > TEEX_SM_CID_MAX) {
    rc = teex_err_set(&err, TEEX_EINVAL, "name or ciphertext_cid too long");
    goto out;
  }
  if (req->ciphertext.len == 0) {
    rc = teex_err_set(&err, TEEX_EINVAL,
                      "ciphertext missing: the SM checks the plaintext hash "
                      "against it");
    goto out;
  }
  memcpy(e.dataset_id, req->dataset_id.data, 32);
  snprintf(e.name, sizeof e.name, "%s", req->name);
  memcpy(e.provider, req->provider.data, 20);
  memcpy(e.plaintext_hash, req->plaintext_hash.data, 32);
  e.plaintext_size = req->plaintext_size;
  snprintf(e.cid, sizeof e.cid, "%s", req->ciphertext_cid);
  memcpy(e.data_key, req->data_key.data, 32);
  e.ciphertext = req->ciphertext.data;
  e.ciphertext_len = req->ciphertext.len;
  memcpy(e.provider_sig, req->provider_sig.data, 65);
  /* Not listed on chain yet: an earlier escrow may be replaced (a retried
   * publish). Without a chain endpoint, never. */
  if (ctx->rpc != NULL && teex_chain_has_datasets(&ctx->addrs)) {
    struct teex_chain_dataset d;
    struct teex_err cerr;
    e.replace_unlisted =
        teex_chain_get_dataset(ctx->rpc, &ctx->addrs, e.dataset_id, &d,
                               &cerr) == TEEX_ENOTFOUND;
  }
  rc = teex_sm_escrow_data_key(ctx->sm, &e, &err);
  if (rc == 0) {
    uint8_t addr[20];
    teex_sm_address(ctx->sm, addr);
    Teex__Sm__EscrowDataKeyResponse resp =
        TEEX__SM__ESCROW_DATA_KEY_RESPONSE__INIT;
    resp.dataset_id = (ProtobufCBinaryData){32, e.dataset_id};
    resp.sm_address = (ProtobufCBinaryData){20, addr};
    respond_msg(call, &resp.base);
  }
out:
  if (rc != 0) {
    TEEX_WARN("sm", "data key escrow refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    teex_rpc_call_respond(call, rc, teex_err_msg(&err), NULL, 0);
  }
  teex_wipe(&e, sizeof e);
  teex_wipe(req->data_key.data, req->data_key.len);
  teex__sm__escrow_data_key_request__free_unpacked(req, NULL);
}

int teex_sm__data_terms(struct teex_sm_data_ctx *ctx,
                        const uint8_t dataset_id[32],
                        const struct teex_assignment *a,
                        struct teex_sm_data_terms *t, struct teex_err *err) {
  struct teex_chain_dataset d;
  int rc;
  memset(t, 0, sizeof *t);
  if (ctx->rpc == NULL || !teex_chain_has_datasets(&ctx->addrs))
    return teex_err_set(err, TEEX_ECONFIG,
                        "this SM has no chain endpoint or dataset registry "
                        "(teex sm run --chain-rpc, --dataset-registry)");
  rc = teex_chain_enclave_active(ctx->rpc, &ctx->addrs, a->dispatcher,
                                 TEEX_ENCLAVE_DISPATCHER, &t->dispatcher_active,
                                 err);
  if (rc != 0)
    return rc;
  rc = teex_chain_get_dataset(ctx->rpc, &ctx->addrs, dataset_id, &d, err);
  if (rc == TEEX_ENOTFOUND)
    return 0; /* t->listed = 0: the core names the refusal */
  if (rc != 0)
    return rc;
  t->listed = 1;
  memcpy(t->provider, d.provider, 20);
  t->revoked = d.revoked;
  t->expires_at = d.expires_at;
  t->max_uses = d.max_uses;
  t->max_output_bytes = d.max_output_bytes;
  t->price = d.price;
  return teex_chain_dataset_approved(ctx->rpc, &ctx->addrs, dataset_id,
                                     a->service_id, a->image_hash, &t->approved,
                                     err);
}

static int decode_lease(const Teex__Sm__LeaseDataKeyRequest *m,
                        struct teex_sm_lease_req *r, struct teex_err *err) {
  struct teex_assignment *a = &r->assignment;
  int rc;
  if ((rc = field(&m->dispatcher, 20, "dispatcher", err)) ||
      (rc = field(&m->worker, 20, "worker", err)) ||
      (rc = field(&m->user, 20, "user", err)) ||
      (rc = field(&m->task_id, 32, "task_id", err)) ||
      (rc = field(&m->service_id, 32, "service_id", err)) ||
      (rc = field(&m->image_hash, 32, "image_hash", err)) ||
      (rc = field(&m->price, 32, "price", err)) ||
      (rc = field(&m->dispatcher_sig, 65, "dispatcher_sig", err)))
    return rc;
  if (m->datasets.len == 0 || m->datasets.len % 32 != 0 ||
      m->datasets.len > 32u * TEEX_SM_TASK_DATASETS_MAX)
    return teex_err_set(err, TEEX_EINVAL,
                        "datasets must be 1 to %d ids of 32 bytes",
                        TEEX_SM_TASK_DATASETS_MAX);
  a->chain_id = m->chain_id;
  memcpy(a->dispatcher, m->dispatcher.data, 20);
  memcpy(a->worker, m->worker.data, 20);
  memcpy(a->user, m->user.data, 20);
  memcpy(a->task_id, m->task_id.data, 32);
  memcpy(a->service_id, m->service_id.data, 32);
  memcpy(a->image_hash, m->image_hash.data, 32);
  if (teex_amount_from_word(m->price.data, &a->price) != 0)
    return teex_err_set(err, TEEX_EINVAL, "price above 128 bits");
  a->expires_at = m->expires_at;
  teex_stmt_datasets_hash(m->datasets.data, m->datasets.len / 32,
                          a->datasets_hash);
  memcpy(r->dispatcher_sig, m->dispatcher_sig.data, 65);
  r->dataset_ids = m->datasets.data;
  r->n_datasets = m->datasets.len / 32;
  r->index = m->index;
  return 0;
}

void teex_sm__on_lease_data_key(struct teex_rpc_call *call, const uint8_t *p,
                                size_t n, void *arg) {
  struct teex_sm_data_ctx *ctx = arg;
  struct teex_err err;
  struct teex_tee_identity id;
  struct teex_sm_lease_req r;
  struct teex_sm_data_terms t;
  struct teex_sm_data_lease l;
  int rc;
  teex_err_clear(&err);
  memset(&r, 0, sizeof r);
  memset(&l, 0, sizeof l);
  Teex__Sm__LeaseDataKeyRequest *req =
      teex__sm__lease_data_key_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  /* The datasets hash is recomputed from the ids the worker sends: the
   * dispatcher's signature then covers exactly those ids. */
  rc = decode_lease(req, &r, &err);
  if (rc == 0)
    rc = teex_sm__check_caller(ctx->sm, call, "sm.LeaseDataKey",
                               req->evidence.data, req->evidence.len, "worker",
                               &id, &err);
  if (rc == 0) {
    memcpy(r.worker, id.binding.eth_address, 20);
    if (r.index >= r.n_datasets)
      rc = teex_err_set(&err, TEEX_EINVAL, "index past the task's datasets");
  }
  if (rc == 0)
    rc = teex_sm__data_terms(ctx, r.dataset_ids + 32 * r.index, &r.assignment,
                             &t, &err);
  if (rc == 0)
    rc =
        teex_sm_lease_data_key(ctx->sm, &r, &t, (uint64_t)time(NULL), &l, &err);
  if (rc == 0) {
    /* Recorded before it leaves: the SM never gave what it cannot show. */
    struct teex_sm_holding h = {.kind = TEEX_SM_HELD_LEASE,
                                .expires_at = l.expires_at};
    memcpy(h.id, r.dataset_ids + 32 * r.index, 32);
    memcpy(h.sub, r.assignment.task_id, 32);
    rc =
        teex_sm_note_holding(ctx->sm, r.worker, &h, (uint64_t)time(NULL), &err);
  }
  if (rc == 0) {
    Teex__Sm__LeaseDataKeyResponse resp =
        TEEX__SM__LEASE_DATA_KEY_RESPONSE__INIT;
    resp.data_key = (ProtobufCBinaryData){32, l.data_key};
    resp.ciphertext_cid = l.cid;
    resp.plaintext_hash = (ProtobufCBinaryData){32, l.plaintext_hash};
    resp.plaintext_size = l.plaintext_size;
    resp.max_output_bytes = l.max_output_bytes;
    resp.expires_at = l.expires_at;
    resp.uses = l.uses;
    uint8_t price[32];
    teex_amount_word(l.price, price);
    resp.name = l.name;
    resp.provider = (ProtobufCBinaryData){20, l.provider};
    resp.price = (ProtobufCBinaryData){32, price};
    respond_msg(call, &resp.base);
    char who[43], ds[65];
    teex_eth_address_hex(r.worker, who);
    teex_hex_encode(r.dataset_ids + 32 * r.index, 32, ds);
    TEEX_INFO("sm", "data key leased", "worker=%s dataset=%s uses=%u", who, ds,
              l.uses);
  } else {
    TEEX_WARN("sm", "data key lease refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    teex_rpc_call_respond(call, rc, teex_err_msg(&err), NULL, 0);
  }
  teex_wipe(&l, sizeof l);
  teex__sm__lease_data_key_request__free_unpacked(req, NULL);
}
