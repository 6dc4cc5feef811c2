/* A worker's side of sm.LeaseDataKey (see include/teex/sm_client.h). */
#include "teex/sm_client.h"

#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm_server.h"

#include "sm/sm_session.h"

#include <stdlib.h>
#include <string.h>

#define LEASE_TIMEOUT_MS 20000

static int decode(const struct teex_buf *resp, struct teex_sm_data_lease *out,
                  struct teex_err *err) {
  Teex__Sm__LeaseDataKeyResponse *r =
      teex__sm__lease_data_key_response__unpack(NULL, resp->len, resp->data);
  int rc = 0;
  if (r == NULL || r->data_key.len != 32 || r->plaintext_hash.len != 32 ||
      strlen(r->ciphertext_cid) > TEEX_SM_CID_MAX || r->provider.len != 20 ||
      r->price.len != 32 || strlen(r->name) == 0 ||
      strlen(r->name) > TEEX_SM_DATASET_NAME_MAX ||
      teex_amount_from_word(r->price.data, &out->price) != 0)
    rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
  else {
    memcpy(out->name, r->name, strlen(r->name) + 1);
    memcpy(out->provider, r->provider.data, 20);
    memcpy(out->data_key, r->data_key.data, 32);
    memcpy(out->plaintext_hash, r->plaintext_hash.data, 32);
    memcpy(out->cid, r->ciphertext_cid, strlen(r->ciphertext_cid) + 1);
    out->plaintext_size = r->plaintext_size;
    out->max_output_bytes = r->max_output_bytes;
    out->expires_at = r->expires_at;
    out->uses = r->uses;
  }
  if (r != NULL) {
    teex_wipe(r->data_key.data, r->data_key.len);
    teex__sm__lease_data_key_response__free_unpacked(r, NULL);
  }
  return rc;
}

int teex_sm_client_lease_data(
    struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
    const uint8_t secp256k1_pub[64], const char *sm_addr,
    const struct teex_tee_policy *sm_policy, const struct teex_assignment *a,
    const uint8_t dispatcher_sig[65], const uint8_t *dataset_ids, size_t n,
    size_t index, struct teex_sm_data_lease *out, struct teex_err *err) {
  struct teex_sm__session ss = {0};
  struct teex_buf ev, resp;
  uint8_t price[32];
  memset(out, 0, sizeof *out);
  if (n == 0 || n > TEEX_SM_TASK_DATASETS_MAX || index >= n)
    return teex_err_set(err, TEEX_EINVAL, "1 to %d datasets per task",
                        TEEX_SM_TASK_DATASETS_MAX);
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 4096, TEEX_BUF_SECRET);
  int rc = teex_sm__session_open(&ss, tee, cert, key, secp256k1_pub, sm_addr,
                                 sm_policy, "sm.LeaseDataKey", LEASE_TIMEOUT_MS,
                                 &ev, err);
  if (rc != 0)
    goto out;
  teex_amount_word(a->price, price);
  Teex__Sm__LeaseDataKeyRequest req = TEEX__SM__LEASE_DATA_KEY_REQUEST__INIT;
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
  req.datasets = (ProtobufCBinaryData){32 * n, (uint8_t *)dataset_ids};
  req.index = (uint32_t)index;
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  rc =
      teex_sm__session_call(&ss, "sm.LeaseDataKey", &req.base, LEASE_TIMEOUT_MS,
                            "the SM refused the data key", &resp, err);
  if (rc != 0)
    goto out;
  rc = decode(&resp, out, err);
out:
  teex_sm__session_close(&ss);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}
