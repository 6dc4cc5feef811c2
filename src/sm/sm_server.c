/* The Service Manager daemon: the SM core (sm.c) behind two RA-TLS RPC
 * endpoints on a libuv loop — a mutual one for enclaves (workers,
 * dispatchers) and a server-only one for providers and users
 * (docs/network.md).
 *
 * Freshness: an enclave proves its evidence is fresh by binding, as its
 * evidence nonce, this TLS session's exporter value (label
 * TEEX_SM_FRESH_LABEL, context the method name). The exporter is unique to
 * the session and both sides contribute randomness to it, so the evidence
 * cannot have been made before this session nor be replayed on another. */
#include "teex/sm_server.h"

#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/harden.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/version.h"

#include "sm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sm_server {
  uv_loop_t *loop;
  struct teex_sm *sm;
  struct teex_tee *tee;
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *enclave_ctx, *client_ctx;
  struct teex_tls_ctx *ds_ctx;            /* to TEE-DS, when state is there */
  struct teex_ratls_verifier ds_verifier; /* replicas: role ds */
  struct teex_tls_ctx **refresh_ctxs[3];  /* what the refresher renews */
  struct teex_rpc_server *enclave_srv, *client_srv;
  uv_signal_t sigterm, sigint;
  uint64_t started_ms;
  struct teex_sm_data_ctx data; /* datasets: sm_data_server.c */
  uint8_t operator_token[32];   /* sm.Revoke, sm.Status */
};

int teex_sm_fresh_nonce(struct teex_tls_conn *c, const char *method,
                        uint8_t nonce[32], struct teex_err *err) {
  return teex_tls_export(c, TEEX_SM_FRESH_LABEL, (const uint8_t *)method,
                         strlen(method), nonce, 32, err);
}

int teex_tls_peer_spki_sha256(struct teex_tls_conn *c, uint8_t out[32]) {
  X509 *peer = teex_tls_peer_cert(c);
  return peer == NULL ? TEEX_ESTATE : teex_tls_cert_spki_sha256(peer, out);
}

static void respond_err(struct teex_rpc_call *call, int code,
                        const struct teex_err *err) {
  teex_rpc_call_respond(call, code, teex_err_msg(err), NULL, 0);
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
  teex_wipe(buf, n); /* responses may carry keys */
  free(buf);
}

static int field(const ProtobufCBinaryData *b, size_t want, const char *name,
                 struct teex_err *err) {
  if (b->len != want)
    return teex_err_set(err, TEEX_EINVAL, "%s must be %zu bytes, not %zu", name,
                        want, b->len);
  return 0;
}

static void on_info(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                    void *arg) {
  (void)p;
  (void)n;
  struct sm_server *s = arg;
  const struct teex_sm_config *cfg = teex_sm_config(s->sm);
  uint8_t addr[20], secp[64], x[32];
  teex_sm_address(s->sm, addr);
  teex_sm_public_keys(s->sm, secp, x);
  Teex__Sm__InfoResponse r = TEEX__SM__INFO_RESPONSE__INIT;
  r.address = (ProtobufCBinaryData){20, addr};
  r.x25519 = (ProtobufCBinaryData){32, x};
  r.chain_id = cfg->listing.chain_id;
  r.service_registry =
      (ProtobufCBinaryData){20, (uint8_t *)cfg->listing.verifying_contract};
  r.enclave_registry = (ProtobufCBinaryData){
      20, (uint8_t *)cfg->registration.verifying_contract};
  r.services = teex_sm_service_count(s->sm);
  if (teex_chain_has_datasets(&s->data.addrs))
    r.dataset_registry =
        (ProtobufCBinaryData){20, s->data.addrs.dataset_registry};
  respond_msg(call, &r.base);
}

static void on_health(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  (void)p;
  (void)n;
  struct sm_server *s = arg;
  Teex__Rpc__HealthResponse r = TEEX__RPC__HEALTH_RESPONSE__INIT;
  r.status = "ok";
  r.role = "sm";
  r.uptime_ms = teex_rpc_now(s->loop) - s->started_ms;
  r.version = (char *)teex_version();
  respond_msg(call, &r.base);
}

static void on_register_service(struct teex_rpc_call *call, const uint8_t *p,
                                size_t n, void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Sm__RegisterServiceRequest *req =
      teex__sm__register_service_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  int rc;
  if ((rc = field(&req->service_id, 32, "service_id", &err)) ||
      (rc = field(&req->provider, 20, "provider", &err)) ||
      (rc = field(&req->image_hash, 32, "image_hash", &err)) ||
      (rc = field(&req->image_key, 32, "image_key", &err)) ||
      (rc = field(&req->provider_sig, 65, "provider_sig", &err)))
    goto out;
  if (strlen(req->image_cid) > TEEX_SM_CID_MAX) {
    rc = teex_err_set(&err, TEEX_EINVAL, "image_cid too long");
    goto out;
  }
  if (req->image_ciphertext.len == 0) {
    rc = teex_err_set(&err, TEEX_EINVAL,
                      "image_ciphertext missing: the SM checks the image "
                      "hash against it");
    goto out;
  }
  memcpy(r.service_id, req->service_id.data, 32);
  r.version = req->version;
  memcpy(r.provider, req->provider.data, 20);
  memcpy(r.image_hash, req->image_hash.data, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", req->image_cid);
  memcpy(r.image_key, req->image_key.data, 32);
  r.ciphertext = req->image_ciphertext.data;
  r.ciphertext_len = req->image_ciphertext.len;
  memcpy(r.provider_sig, req->provider_sig.data, 65);
  struct teex_sm_registered out;
  rc = teex_sm_register_service(s->sm, &r, &out, &err);
  if (rc == 0) {
    uint8_t addr[20];
    teex_sm_address(s->sm, addr);
    Teex__Sm__RegisterServiceResponse resp =
        TEEX__SM__REGISTER_SERVICE_RESPONSE__INIT;
    resp.signing_key = (ProtobufCBinaryData){20, out.signing_key};
    resp.encryption_key = (ProtobufCBinaryData){32, out.encryption_key};
    resp.listing_sig = (ProtobufCBinaryData){65, out.listing_sig};
    resp.sm_address = (ProtobufCBinaryData){20, addr};
    resp.version = r.version;
    respond_msg(call, &resp.base);
  }
out:
  if (rc != 0) {
    TEEX_WARN("sm", "service registration refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  teex_wipe(r.image_key, 32);
  teex_wipe(req->image_key.data, req->image_key.len);
  teex__sm__register_service_request__free_unpacked(req, NULL);
}

int teex_sm__check_caller(struct teex_sm *sm, struct teex_rpc_call *call,
                          const char *method, const uint8_t *evidence,
                          size_t len, const char *role,
                          struct teex_tee_identity *id, struct teex_err *err) {
  struct teex_tls_conn *c = teex_rpc_call_conn(call);
  uint8_t nonce[32], spki[32];
  if (c == NULL)
    return teex_err_set(err, TEEX_ECLOSED, "connection gone");
  int rc = teex_sm_fresh_nonce(c, method, nonce, err);
  if (rc != 0)
    return rc;
  if (teex_tls_peer_spki_sha256(c, spki) != 0)
    return teex_err_set(err, TEEX_EATTEST, "no peer certificate");
  return teex_sm_check_enclave(sm, evidence, len, nonce, spki, role,
                               (uint64_t)time(NULL), id, err);
}

/* Verifies the caller's fresh evidence for method; fills id. */
static int check_caller(struct sm_server *s, struct teex_rpc_call *call,
                        const char *method, const ProtobufCBinaryData *ev,
                        const char *role, struct teex_tee_identity *id,
                        struct teex_err *err) {
  return teex_sm__check_caller(s->sm, call, method, ev->data, ev->len, role, id,
                               err);
}

static void on_fetch_keys(struct teex_rpc_call *call, const uint8_t *p,
                          size_t n, void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_identity id;
  struct teex_sm_keys keys;
  memset(&keys, 0, sizeof keys);
  Teex__Sm__FetchKeysRequest *req =
      teex__sm__fetch_keys_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  int rc;
  if ((rc = field(&req->service_id, 32, "service_id", &err)) ||
      (rc = field(&req->image_hash, 32, "image_hash", &err)))
    goto out;
  rc = check_caller(s, call, "sm.FetchKeys", &req->evidence, "worker", &id,
                    &err);
  if (rc != 0)
    goto out;
  rc = teex_sm_fetch_keys(s->sm, req->service_id.data, req->image_hash.data,
                          &keys, &err);
  if (rc != 0)
    goto out;
  Teex__Sm__FetchKeysResponse resp = TEEX__SM__FETCH_KEYS_RESPONSE__INIT;
  resp.image_key = (ProtobufCBinaryData){32, keys.image_key};
  resp.image_cid = keys.image_cid;
  resp.service_secp256k1 = (ProtobufCBinaryData){32, keys.service_secp256k1};
  resp.service_x25519 = (ProtobufCBinaryData){32, keys.service_x25519};
  resp.version = keys.version;
  resp.provider = (ProtobufCBinaryData){20, keys.provider};
  /* The worker's way into the service's TEE-DS namespace, and no other. */
  uint8_t grant[TEEX_DS_GRANT_MAX];
  size_t grant_len = 0;
  uint64_t expires = 0;
  if (teex_sm_ds_grant(s->sm, req->service_id.data, id.binding.eth_address,
                       grant, &grant_len, &expires) == 0) {
    resp.ds_grant = (ProtobufCBinaryData){grant_len, grant};
    resp.ds_grant_expires = expires;
  }
  respond_msg(call, &resp.base);
  char who[43];
  teex_eth_address_hex(id.binding.eth_address, who);
  TEEX_INFO("sm", "keys released", "worker=%s version=%u", who, keys.version);
out:
  if (rc != 0) {
    TEEX_WARN("sm", "key release refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  teex_wipe(&keys, sizeof keys);
  teex__sm__fetch_keys_request__free_unpacked(req, NULL);
}

static void on_register_enclave(struct teex_rpc_call *call, const uint8_t *p,
                                size_t n, void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_identity id;
  Teex__Sm__RegisterEnclaveRequest *req =
      teex__sm__register_enclave_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  uint8_t role, sig[65];
  int rc = check_caller(s, call, "sm.RegisterEnclave", &req->evidence, NULL,
                        &id, &err);
  if (rc == 0)
    rc = teex_sm_sign_registration(s->sm, &id, &role, sig, &err);
  if (rc == 0) {
    Teex__Sm__RegisterEnclaveResponse resp =
        TEEX__SM__REGISTER_ENCLAVE_RESPONSE__INIT;
    resp.enclave = (ProtobufCBinaryData){20, id.binding.eth_address};
    resp.role = role;
    resp.measurement = (ProtobufCBinaryData){32, id.mr_enclave};
    resp.issued_at = id.issued_at;
    resp.signature = (ProtobufCBinaryData){65, sig};
    respond_msg(call, &resp.base);
  } else {
    TEEX_WARN("sm", "enclave registration refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  teex__sm__register_enclave_request__free_unpacked(req, NULL);
}

static void on_ds_group_key(struct teex_rpc_call *call, const uint8_t *p,
                            size_t n, void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_identity id;
  uint8_t key[32];
  Teex__Sm__DsGroupKeyRequest *req =
      teex__sm__ds_group_key_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  int rc = field(&req->group_id, 16, "group_id", &err);
  if (rc == 0)
    rc =
        check_caller(s, call, "sm.DsGroupKey", &req->evidence, "ds", &id, &err);
  if (rc == 0)
    rc = teex_sm_ds_group_key(s->sm, req->group_id.data, key, &err);
  if (rc == 0) {
    Teex__Sm__DsGroupKeyResponse resp = TEEX__SM__DS_GROUP_KEY_RESPONSE__INIT;
    resp.group_key = (ProtobufCBinaryData){32, key};
    respond_msg(call, &resp.base);
    char gid[33];
    teex_hex_encode(req->group_id.data, 16, gid);
    TEEX_INFO("sm", "ds group key released", "group=%s", gid);
  } else {
    TEEX_WARN("sm", "ds group key refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  teex_wipe(key, sizeof key);
  teex__sm__ds_group_key_request__free_unpacked(req, NULL);
}

/* The operator's token: new at every start, written where only the SM's
 * host user (and root) can read it. */
static int write_operator_token(struct sm_server *s, const char *path,
                                struct teex_err *err) {
  teex_random(s->operator_token, 32);
  char hex[66];
  teex_hex_encode(s->operator_token, 32, hex);
  hex[64] = '\n';
  (void)unlink(path); /* a fresh file: no one keeps an old descriptor */
  int fd =
      open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "create %s: %s", path, strerror(errno));
  int ok = fchmod(fd, 0600) == 0 && write(fd, hex, 65) == 65;
  teex_wipe(hex, sizeof hex);
  if (close(fd) != 0 || !ok)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

static int check_operator(struct sm_server *s, const ProtobufCBinaryData *tok,
                          struct teex_err *err) {
  if (tok->len != 32 || !teex_ct_equal(tok->data, s->operator_token, 32))
    return teex_err_set(err, TEEX_EPERM,
                        "not the SM's operator: the token is wrong");
  return 0;
}

struct status_rows {
  struct teex_sm_enclave *e;
  size_t n, cap;
};

static int status_row(const struct teex_sm_enclave *e, void *arg) {
  struct status_rows *r = arg;
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 16;
    struct teex_sm_enclave *ne = realloc(r->e, nc * sizeof *ne);
    if (ne == NULL)
      return 1;
    r->e = ne;
    r->cap = nc;
  }
  r->e[r->n++] = *e;
  return 0;
}

static void on_revoke(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Sm__RevokeRequest *req = teex__sm__revoke_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  int rc = check_operator(s, &req->operator_token, &err);
  if (rc == 0) {
    if (req->kind == TEEX_SM_REVOKE_ENCLAVE)
      rc = field(&req->value, 20, "enclave address", &err);
    else if (req->kind == TEEX_SM_REVOKE_MEASUREMENT)
      rc = field(&req->value, 32, "measurement", &err);
    else
      rc = teex_err_set(&err, TEEX_EINVAL, "unknown revocation kind %u",
                        req->kind);
  }
  if (rc == 0)
    rc = teex_sm_revoke(s->sm, (enum teex_sm_revoke_kind)req->kind,
                        req->value.data, req->reason, (uint64_t)time(NULL),
                        &err);
  struct status_rows r;
  memset(&r, 0, sizeof r);
  if (rc == 0 && req->kind == TEEX_SM_REVOKE_MEASUREMENT)
    rc = teex_sm_enclaves(s->sm, status_row, &r, &err);
  size_t nrev = 0;
  Teex__Sm__Revocation *revs = NULL, **ptrs = NULL;
  uint8_t(*sigs)[65] = NULL;
  size_t cap = r.n + 1;
  if (rc == 0) {
    revs = calloc(cap, sizeof *revs);
    ptrs = calloc(cap, sizeof *ptrs);
    sigs = calloc(cap, sizeof *sigs);
    if (revs == NULL || ptrs == NULL || sigs == NULL)
      rc = teex_err_set(&err, TEEX_ENOMEM, "revocations");
  }
  for (size_t i = 0; rc == 0 && i < cap; i++) {
    const uint8_t *who;
    if (req->kind == TEEX_SM_REVOKE_ENCLAVE) {
      if (i > 0)
        break;
      who = req->value.data;
    } else if (i < r.n && memcmp(r.e[i].mr_enclave, req->value.data, 32) == 0) {
      who = r.e[i].address;
    } else {
      continue;
    }
    if ((rc = teex_sm_sign_revocation(s->sm, who, sigs[nrev])) != 0) {
      teex_err_set(&err, rc, "sign revocation");
      break;
    }
    teex__sm__revocation__init(&revs[nrev]);
    revs[nrev].enclave = (ProtobufCBinaryData){20, (uint8_t *)who};
    revs[nrev].signature = (ProtobufCBinaryData){65, sigs[nrev]};
    ptrs[nrev] = &revs[nrev];
    nrev++;
  }
  if (rc == 0) {
    Teex__Sm__RevokeResponse resp = TEEX__SM__REVOKE_RESPONSE__INIT;
    resp.n_revocations = nrev;
    resp.revocations = ptrs;
    respond_msg(call, &resp.base);
  } else {
    TEEX_WARN("sm", "revocation refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  free(revs);
  free(ptrs);
  free(sigs);
  free(r.e);
  teex__sm__revoke_request__free_unpacked(req, NULL);
}

static void on_status(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  struct sm_server *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Sm__StatusRequest *req = teex__sm__status_request__unpack(NULL, n, p);
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_EFORMAT, "malformed request", NULL, 0);
    return;
  }
  struct status_rows r;
  memset(&r, 0, sizeof r);
  Teex__Sm__EnclaveStatus *rows = NULL, **ptrs = NULL;
  int rc = check_operator(s, &req->operator_token, &err);
  if (rc == 0)
    rc = teex_sm_enclaves(s->sm, status_row, &r, &err);
  if (rc == 0 && r.n > 0) {
    rows = calloc(r.n, sizeof *rows);
    ptrs = calloc(r.n, sizeof *ptrs);
    if (rows == NULL || ptrs == NULL)
      rc = teex_err_set(&err, TEEX_ENOMEM, "status");
  }
  if (rc == 0) {
    for (size_t i = 0; i < r.n; i++) {
      Teex__Sm__EnclaveStatus *row = &rows[i];
      teex__sm__enclave_status__init(row);
      row->address = (ProtobufCBinaryData){20, r.e[i].address};
      row->role = r.e[i].role;
      row->measurement = (ProtobufCBinaryData){32, r.e[i].mr_enclave};
      row->first_seen = r.e[i].first_seen;
      row->last_attested = r.e[i].last_attested;
      row->revoked = r.e[i].revoked != 0;
      row->revoked_at = r.e[i].revoked_at;
      row->reason = r.e[i].reason;
      ptrs[i] = row;
    }
    Teex__Sm__StatusResponse resp = TEEX__SM__STATUS_RESPONSE__INIT;
    resp.n_enclaves = r.n;
    resp.enclaves = ptrs;
    resp.services = teex_sm_service_count(s->sm);
    respond_msg(call, &resp.base);
  } else {
    TEEX_WARN("sm", "status refused", "peer=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), err.msg);
    respond_err(call, rc, &err);
  }
  free(rows);
  free(ptrs);
  free(r.e);
  teex__sm__status_request__free_unpacked(req, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct sm_server *s = h->data;
  TEEX_INFO("sm", "stopping", "signal=%d", signum);
  teex_rpc_server_close(s->enclave_srv);
  teex_rpc_server_close(s->client_srv);
  s->enclave_srv = s->client_srv = NULL;
  uv_signal_stop(&s->sigterm);
  uv_signal_stop(&s->sigint);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
}

static int write_ready(const char *path, struct sm_server *s,
                       struct teex_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "write %s", tmp);
  uint8_t addr[20];
  char hex[43];
  teex_sm_address(s->sm, addr);
  teex_eth_address_hex(addr, hex);
  fprintf(f, "enclave_port = %d\nclient_port = %d\naddress = %s\n",
          teex_rpc_server_port(s->enclave_srv),
          teex_rpc_server_port(s->client_srv), hex);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

/* The SM's state goes to TEE-DS: a mutual RA-TLS client context (our
 * certificate; replicas checked against ds_policy), then teex_sm_use_ds
 * (which migrates local records once). */
static int use_ds(struct sm_server *s, const struct teex_sm_server_config *cfg,
                  EVP_PKEY *key, X509 *cert, struct teex_err *err) {
  if (cfg->ds_policy == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "TEE-DS state needs a policy for "
                        "its replicas");
  s->ds_verifier.policy = cfg->ds_policy;
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &s->ds_verifier};
  int rc = teex_tls_ctx_new(&s->ds_ctx, &tc, 0, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "TEE-DS client context");
  struct teex_ds_client_config cc = {
      .replicas = cfg->ds_replicas,
      .n_replicas = cfg->n_ds_replicas,
      .tls = s->ds_ctx,
      .ns = cfg->ds_ns != NULL ? cfg->ds_ns : "sm",
      .timeout_ms = cfg->ds_timeout_ms ? cfg->ds_timeout_ms : 3000,
      .connect_timeout_ms = 1000};
  if ((rc = teex_sm_use_ds(s->sm, &cc, err)) != 0)
    return teex_err_wrap(err, rc, "SM state in TEE-DS");
  TEEX_INFO("sm", "state in TEE-DS", "replicas=%zu ns=%s", cfg->n_ds_replicas,
            cc.ns);
  return 0;
}

int teex_sm_serve(const struct teex_sm_server_config *cfg,
                  struct teex_err *err) {
  struct sm_server s;
  memset(&s, 0, sizeof s);
  struct teex_ratls_refresher *refresher = NULL;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  int rc;
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return teex_err_set(err, TEEX_EIO, "event loop");
  s.loop = &loop;
  s.tee = cfg->tee;
  rc = teex_sm_open(cfg->tee, &cfg->sm, &s.sm, err);
  if (rc != 0)
    goto out;
  s.data.sm = s.sm;
  s.data.addrs.chain_id = cfg->sm.registration.chain_id;
  memcpy(s.data.addrs.enclave_registry, cfg->sm.registration.verifying_contract,
         20);
  memcpy(s.data.addrs.service_registry, cfg->sm.listing.verifying_contract, 20);
  memcpy(s.data.addrs.dataset_registry, cfg->dataset_registry, 20);
  if (cfg->chain_rpc != NULL) {
    rc = teex_eth_rpc_open(cfg->chain_rpc, NULL, &s.data.rpc, err);
    if (rc != 0) {
      teex_err_wrap(err, rc, "chain endpoint");
      goto out;
    }
    teex_chain_use_errors(s.data.rpc);
  }
  if (s.data.rpc != NULL && teex_chain_has_datasets(&s.data.addrs)) {
    char reg[43];
    teex_eth_address_hex(s.data.addrs.dataset_registry, reg);
    TEEX_INFO("sm", "data-key leases enabled", "dataset_registry=%s chain=%s",
              reg, teex_eth_rpc_url(s.data.rpc));
  } else {
    TEEX_INFO("sm", "data-key leases disabled", "reason=\"%s\"",
              "no --chain-rpc and --dataset-registry");
  }
  uint8_t secp[64], x[32];
  teex_sm_public_keys(s.sm, secp, x);
  struct teex_ratls_keys keys = {.secp256k1_pub = secp, .x25519_pub = x};
  rc = teex_ratls_identity_new(cfg->tee, &keys, &key, &cert, err);
  if (rc != 0)
    goto out;
  s.verifier.policy = &teex_sm_config(s.sm)->policy;
  struct teex_tls_config enclave_tls = {.cert = cert,
                                        .key = key,
                                        .mutual = 1,
                                        .verify_peer =
                                            teex_ratls_channel_verify,
                                        .verify_arg = &s.verifier};
  struct teex_tls_config client_tls = {.cert = cert, .key = key};
  if ((rc = teex_tls_ctx_new(&s.enclave_ctx, &enclave_tls, 1, err)) != 0 ||
      (rc = teex_tls_ctx_new(&s.client_ctx, &client_tls, 1, err)) != 0)
    goto out;
  s.refresh_ctxs[0] = &s.enclave_ctx;
  s.refresh_ctxs[1] = &s.client_ctx;
  s.refresh_ctxs[2] = &s.ds_ctx;
  if (cfg->n_ds_replicas > 0 && (rc = use_ds(&s, cfg, key, cert, err)) != 0)
    goto out;
  if ((rc = teex_ratls_refresher_start(&loop, cfg->tee, &keys, key, cert,
                                       cfg->cert_refresh_s, s.refresh_ctxs, 3,
                                       &refresher, err)) != 0)
    goto out;
  if ((rc = teex_rpc_server_new(&loop, s.enclave_ctx, cfg->enclave_listen, NULL,
                                &s.enclave_srv, err)) != 0 ||
      (rc = teex_rpc_server_new(&loop, s.client_ctx, cfg->client_listen, NULL,
                                &s.client_srv, err)) != 0)
    goto out;
  teex_rpc_server_register(s.enclave_srv, "teex.Health", on_health, &s);
  teex_rpc_server_register(s.enclave_srv, "sm.Info", on_info, &s);
  teex_rpc_server_register(s.enclave_srv, "sm.FetchKeys", on_fetch_keys, &s);
  teex_rpc_server_register(s.enclave_srv, "sm.RegisterEnclave",
                           on_register_enclave, &s);
  teex_rpc_server_register(s.enclave_srv, "sm.LeaseDataKey",
                           teex_sm__on_lease_data_key, &s.data);
  teex_rpc_server_register(s.enclave_srv, "sm.DsGroupKey", on_ds_group_key, &s);
  teex_rpc_server_register(s.client_srv, "teex.Health", on_health, &s);
  teex_rpc_server_register(s.client_srv, "sm.Info", on_info, &s);
  teex_rpc_server_register(s.client_srv, "sm.RegisterService",
                           on_register_service, &s);
  teex_rpc_server_register(s.client_srv, "sm.EscrowDataKey",
                           teex_sm__on_escrow_data_key, &s.data);
  teex_rpc_server_register(s.client_srv, "sm.Revoke", on_revoke, &s);
  teex_rpc_server_register(s.client_srv, "sm.Status", on_status, &s);
  s.started_ms = teex_rpc_now(&loop);
  uv_signal_init(&loop, &s.sigterm);
  uv_signal_init(&loop, &s.sigint);
  s.sigterm.data = s.sigint.data = &s;
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);
  uv_signal_start(&s.sigint, on_signal, SIGINT);
  {
    char tok[4096];
    if (cfg->operator_token_file != NULL)
      snprintf(tok, sizeof tok, "%s", cfg->operator_token_file);
    else
      snprintf(tok, sizeof tok, "%s/%s", cfg->sm.state_dir,
               TEEX_SM_OPERATOR_TOKEN_FILE);
    if ((rc = write_operator_token(&s, tok, err)) != 0)
      goto out;
  }
  if (cfg->ready_file != NULL && (rc = write_ready(cfg->ready_file, &s, err)))
    goto out;
  {
    uint8_t addr[20];
    char hex[43];
    teex_sm_address(s.sm, addr);
    teex_eth_address_hex(addr, hex);
    TEEX_INFO("sm", "serving", "address=%s enclave_port=%d client_port=%d", hex,
              teex_rpc_server_port(s.enclave_srv),
              teex_rpc_server_port(s.client_srv));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  if (s.enclave_srv)
    teex_rpc_server_close(s.enclave_srv);
  if (s.client_srv)
    teex_rpc_server_close(s.client_srv);
  teex_ratls_refresher_close(refresher);
  uv_run(&loop, UV_RUN_DEFAULT); /* let handles close */
  uv_loop_close(&loop);
  teex_sm_close(s.sm); /* before ds_ctx: its TEE-DS client uses it */
  s.sm = NULL;
  teex_tls_ctx_free(s.enclave_ctx);
  teex_tls_ctx_free(s.client_ctx);
  teex_tls_ctx_free(s.ds_ctx);
  EVP_PKEY_free(key);
  X509_free(cert);
  teex_eth_rpc_close(s.data.rpc);
  teex_wipe(s.operator_token, sizeof s.operator_token);
  return rc;
}
