/* An enclave's side of the SM (see include/teex/sm_client.h). */
#include "teex/sm_client.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm_server.h"

#include "sm/sm_session.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define SM_CLIENT_TIMEOUT_MS 20000

int teex_sm__session_open(struct teex_sm__session *s, struct teex_tee *tee,
                          X509 *cert, EVP_PKEY *key,
                          const uint8_t *secp256k1_pub, const char *sm_addr,
                          const struct teex_tee_policy *policy,
                          const char *method, uint32_t timeout_ms,
                          struct teex_buf *ev, struct teex_err *err) {
  memset(s, 0, sizeof(*s));
  s->v.policy = policy;
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &s->v};
  int rc = teex_tls_ctx_new(&s->ctx, &tc, 0, err);
  if (rc == 0)
    rc = teex_rpc_sync_connect(sm_addr, s->ctx, timeout_ms, &s->c, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "connect to the SM at %s", sm_addr);
    goto fail;
  }
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  if (teex_tls_cert_spki_sha256(cert, b.tls_spki_sha256) != 0) {
    rc = teex_err_set(err, TEEX_ECRYPTO, "certificate key");
    goto fail;
  }
  b.has_secp256k1 = 1;
  if (secp256k1_pub != NULL) {
    memcpy(b.secp256k1_pub, secp256k1_pub, 64);
  } else {
    uint8_t sk[32];
    teex_secp256k1_keypair(sk, b.secp256k1_pub);
    teex_wipe(sk, sizeof sk);
  }
  b.has_nonce = 1;
  if ((rc = teex_sm_fresh_nonce(teex_rpc_sync_conn(s->c), method, b.nonce,
                                err)) != 0 ||
      (rc = teex_tee_quote_binding(tee, &b, ev, err)) != 0)
    goto fail;
  return 0;
fail:
  teex_sm__session_close(s);
  return rc;
}

void teex_sm__session_close(struct teex_sm__session *s) {
  teex_rpc_sync_close(s->c);
  teex_tls_ctx_free(s->ctx);
  s->c = NULL;
  s->ctx = NULL;
}

int teex_sm__session_call(struct teex_sm__session *s, const char *method,
                          const ProtobufCMessage *req, uint32_t timeout_ms,
                          const char *refused, struct teex_buf *resp,
                          struct teex_err *err) {
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *wire = malloc(n ? n : 1);
  if (wire == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  protobuf_c_message_pack(req, wire);
  int rc = teex_rpc_sync_call(s->c, method, wire, n, timeout_ms, resp, err);
  free(wire);
  return rc == 0 ? 0 : teex_err_wrap(err, rc, "%s", refused);
}

int teex_sm_client_register(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                            const uint8_t secp256k1_pub[64],
                            const char *sm_addr,
                            const struct teex_tee_policy *sm_policy,
                            struct teex_enclave_registration *out,
                            struct teex_err *err) {
  struct teex_sm__session ss;
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 4096, 0);
  int rc = teex_sm__session_open(&ss, tee, cert, key, secp256k1_pub, sm_addr,
                                 sm_policy, "sm.RegisterEnclave",
                                 SM_CLIENT_TIMEOUT_MS, &ev, err);
  if (rc != 0)
    goto out;
  Teex__Sm__RegisterEnclaveRequest req =
      TEEX__SM__REGISTER_ENCLAVE_REQUEST__INIT;
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  rc = teex_sm__session_call(&ss, "sm.RegisterEnclave", &req.base,
                             SM_CLIENT_TIMEOUT_MS,
                             "the SM refused (is this enclave's measurement "
                             "in its policy?)",
                             &resp, err);
  if (rc != 0)
    goto out;
  Teex__Sm__RegisterEnclaveResponse *r =
      teex__sm__register_enclave_response__unpack(NULL, resp.len, resp.data);
  if (r == NULL || r->enclave.len != 20 || r->measurement.len != 32 ||
      r->signature.len != 65 || (r->role != 1 && r->role != 2)) {
    if (r != NULL)
      teex__sm__register_enclave_response__free_unpacked(r, NULL);
    rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
    goto out;
  }
  memcpy(out->enclave, r->enclave.data, 20);
  out->role = (uint8_t)r->role;
  memcpy(out->measurement, r->measurement.data, 32);
  out->issued_at = r->issued_at;
  memcpy(out->signature, r->signature.data, 65);
  teex__sm__register_enclave_response__free_unpacked(r, NULL);
  /* The statement must be for our own key. */
  uint8_t mine[20];
  teex_eth_address(secp256k1_pub, mine);
  if (memcmp(mine, out->enclave, 20) != 0)
    rc = teex_err_set(err, TEEX_EPROTO, "the SM signed for another address");
out:
  teex_sm__session_close(&ss);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

int teex_sm_client_attest(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                          const uint8_t secp256k1_pub[64], const char *sm_addr,
                          const struct teex_tee_policy *sm_policy,
                          uint64_t *valid_until, struct teex_err *err) {
  struct teex_sm__session ss;
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 4096, 0);
  int rc = teex_sm__session_open(&ss, tee, cert, key, secp256k1_pub, sm_addr,
                                 sm_policy, "sm.Attest", SM_CLIENT_TIMEOUT_MS,
                                 &ev, err);
  if (rc != 0)
    goto out;
  Teex__Sm__AttestRequest req = TEEX__SM__ATTEST_REQUEST__INIT;
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  rc = teex_sm__session_call(&ss, "sm.Attest", &req.base, SM_CLIENT_TIMEOUT_MS,
                             "the SM refused the re-attestation", &resp, err);
  if (rc != 0)
    goto out;
  Teex__Sm__AttestResponse *r =
      teex__sm__attest_response__unpack(NULL, resp.len, resp.data);
  if (r == NULL) {
    rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
    goto out;
  }
  *valid_until = r->valid_until;
  teex__sm__attest_response__free_unpacked(r, NULL);
out:
  teex_sm__session_close(&ss);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

int teex_sm_client_ds_group_key(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                                const char *sm_addr,
                                const struct teex_tee_policy *sm_policy,
                                const uint8_t group_id[16],
                                uint8_t group_key[32], struct teex_err *err) {
  struct teex_sm__session ss;
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 4096, TEEX_BUF_SECRET);
  /* A replica has no address of its own: the evidence binds a throwaway
   * secp256k1 key beside this session's TLS key. */
  int rc =
      teex_sm__session_open(&ss, tee, cert, key, NULL, sm_addr, sm_policy,
                            "sm.DsGroupKey", SM_CLIENT_TIMEOUT_MS, &ev, err);
  if (rc != 0)
    goto out;
  Teex__Sm__DsGroupKeyRequest req = TEEX__SM__DS_GROUP_KEY_REQUEST__INIT;
  req.group_id = (ProtobufCBinaryData){16, (uint8_t *)group_id};
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  rc = teex_sm__session_call(&ss, "sm.DsGroupKey", &req.base,
                             SM_CLIENT_TIMEOUT_MS,
                             "the SM refused the group key", &resp, err);
  if (rc != 0)
    goto out;
  Teex__Sm__DsGroupKeyResponse *r =
      teex__sm__ds_group_key_response__unpack(NULL, resp.len, resp.data);
  if (r == NULL || r->group_key.len != 32) {
    rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
  } else {
    memcpy(group_key, r->group_key.data, 32);
  }
  if (r != NULL) {
    teex_wipe(r->group_key.data, r->group_key.len);
    teex__sm__ds_group_key_response__free_unpacked(r, NULL);
  }
out:
  teex_sm__session_close(&ss);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

int teex_enclave_registration_write(const struct teex_enclave_registration *r,
                                    const char *path, struct teex_err *err) {
  char tmp[4096], enclave[43], meas[65], sig[131];
  teex_eth_address_hex(r->enclave, enclave);
  teex_hex_encode(r->measurement, 32, meas);
  teex_hex_encode(r->signature, 65, sig);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "write %s: %s", tmp, strerror(errno));
  fprintf(f,
          "# EnclaveRegistration signed by the SM: submit it to the "
          "EnclaveRegistry\nenclave = %s\nrole = %u\nmeasurement = "
          "0x%s\nissued_at = %llu\nsignature = 0x%s\n",
          enclave, r->role, meas, (unsigned long long)r->issued_at, sig);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

int teex_enclave_registration_read(const char *path,
                                   struct teex_enclave_registration *r,
                                   struct teex_err *err) {
  struct teex_config c;
  teex_config_init(&c);
  int rc = teex_config_load(&c, path, err);
  uint64_t role = 0;
  size_t n1 = 0, n2 = 0;
  if (rc == 0)
    rc = teex_config_get_u64(&c, "role", 0, &role, err);
  if (rc == 0)
    rc = teex_config_get_u64(&c, "issued_at", 0, &r->issued_at, err);
  if (rc == 0 && (teex_eth_address_parse(teex_config_get(&c, "enclave", ""),
                                         r->enclave) != 0 ||
                  teex_hex_decode(teex_config_get(&c, "measurement", ""),
                                  r->measurement, 32, &n1) != 0 ||
                  n1 != 32 ||
                  teex_hex_decode(teex_config_get(&c, "signature", ""),
                                  r->signature, 65, &n2) != 0 ||
                  n2 != 65 || (role != 1 && role != 2)))
    rc = teex_err_set(err, TEEX_EFORMAT, "%s: not a registration statement",
                      path);
  r->role = (uint8_t)role;
  teex_config_free(&c);
  return rc;
}
