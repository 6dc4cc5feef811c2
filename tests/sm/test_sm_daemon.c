/* The Service Manager daemon end to end: `teex sm run` started as a user
 * would, a provider registering a service over server-only RA-TLS, a worker
 * fetching keys over mutual RA-TLS with fresh evidence, refusals (stale
 * evidence, an enclave whose measurement the policy does not allow — refused
 * in the handshake), a restart keeping the service, a clean stop, and the
 * operator's `teex sm revoke` / `teex sm status` against the running SM. */
#include "testutil.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/eth_sender.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm_client.h"
#include "teex/sm_server.h"
#include "teex/statements.h"

#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SREG "0x5151515151515151515151515151515151515151"
#define EREG "0xe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"

struct fx {
  char *dir;
  char ready[4096], log[4096], policy[4096];
  uint8_t root[32];
  int pid;
  const char *cert_refresh; /* --cert-refresh for the next start, or NULL */
  const char *attest_valid; /* --attest-valid for the next start, or NULL */
  const char *ereg;         /* --enclave-registry (NULL: EREG) */
  const char *chain_rpc;    /* --chain-rpc for the next start, or NULL */
  int chain_up;             /* `teex chain up --dir DIR` ran: down at end */
  int client_port, enclave_port;
  struct teex_tee *worker;
  struct teex_tee_policy sm_policy; /* what clients require of the SM */
  struct teex_ratls_verifier verifier;
};

static struct teex_tee *open_tee(const char *dir, const char *role,
                                 const char *exe) {
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.data_dir = dir;
  c.role = role;
  c.exe_path = exe;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&c, &tee, &err) != 0)
    fail_msg("tee open: %s", err.msg);
  return tee;
}

static void start_sm(struct fx *f) {
  unlink(f->ready);
  char state[4096];
  snprintf(state, sizeof state, "%s/sm", f->dir);
  char *argv[] = {(char *)tu_teex_bin(),
                  "sm",
                  "run",
                  "--data-dir",
                  f->dir,
                  "--state",
                  state,
                  "--listen",
                  "127.0.0.1:0",
                  "--client-listen",
                  "127.0.0.1:0",
                  "--policy",
                  f->policy,
                  "--service-registry",
                  SREG,
                  "--enclave-registry",
                  f->ereg != NULL ? (char *)f->ereg : EREG,
                  "--ready-file",
                  f->ready,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
  size_t end = sizeof argv / sizeof *argv - 9;
  if (f->chain_rpc != NULL) {
    argv[end++] = "--chain-rpc";
    argv[end++] = (char *)f->chain_rpc;
    argv[end++] = "--chain-retry";
    argv[end++] = "200";
  }
  if (f->cert_refresh != NULL) {
    argv[end++] = "--cert-refresh";
    argv[end++] = (char *)f->cert_refresh;
  }
  if (f->attest_valid != NULL) {
    argv[end++] = "--attest-valid";
    argv[end++] = (char *)f->attest_valid;
  }
  f->pid = tu_spawn(argv, f->log);
  assert_true(f->pid > 0);
  if (tu_wait_file(f->ready, 10000) != 0) {
    size_t n;
    char *log = (char *)tu_read_file(f->log, &n);
    fail_msg("sm did not start: %s", log ? log : "");
  }
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->ready, &err), 0);
  uint64_t v;
  assert_int_equal(teex_config_get_u64(&c, "client_port", 0, &v, &err), 0);
  f->client_port = (int)v;
  assert_int_equal(teex_config_get_u64(&c, "enclave_port", 0, &v, &err), 0);
  f->enclave_port = (int)v;
  teex_config_free(&c);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("smd");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->ready, sizeof f->ready, "%s/sm.ready", f->dir);
  snprintf(f->log, sizeof f->log, "%s/sm.log", f->dir);
  snprintf(f->policy, sizeof f->policy, "%s/policy.conf", f->dir);
  /* This test process acts as the worker: its measurement is allowed. */
  f->worker = open_tee(f->dir, "worker", NULL);
  char root_hex[65], meas_hex[65];
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(f->worker)->mr_enclave, 32, meas_hex);
  char text[1024];
  int n = snprintf(text, sizeof text,
                   "[policy]\nallow_simulated = true\nroles = worker, "
                   "dispatcher\n[roots]\nnet = %s\n[measurements]\nworker = "
                   "%s\n",
                   root_hex, meas_hex);
  assert_int_equal(tu_write_file(f->policy, text, (size_t)n), 0);
  /* Clients pin the SM's measurement: the teex binary in role sm. */
  struct teex_tee *sm_view = open_tee(f->dir, "sm", tu_teex_bin());
  teex_tee_policy_init(&f->sm_policy);
  teex_tee_policy_add_root(&f->sm_policy, f->root);
  teex_tee_policy_add_measurement(&f->sm_policy,
                                  teex_tee_self(sm_view)->mr_enclave);
  teex_tee_policy_add_role(&f->sm_policy, "sm");
  f->sm_policy.allow_simulated = 1;
  teex_tee_close(sm_view);
  f->verifier.policy = &f->sm_policy;
  start_sm(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->pid > 0)
    tu_stop(f->pid, SIGKILL, 1000);
  if (f->chain_up) {
    char *down[] = {
        (char *)tu_teex_bin(), "chain", "down", "--dir", f->dir, NULL};
    char *o = NULL, *e = NULL;
    tu_run(down, NULL, 0, &o, &e);
    free(o);
    free(e);
  }
  teex_tee_close(f->worker);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static struct teex_rpc_sync *connect_provider(struct fx *f,
                                              struct teex_tls_ctx **ctx) {
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  struct teex_err err;
  assert_int_equal(teex_tls_ctx_new(ctx, &tc, 0, &err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->client_port);
  struct teex_rpc_sync *c = NULL;
  if (teex_rpc_sync_connect(addr, *ctx, 5000, &c, &err) != 0)
    fail_msg("provider connect: %s", err.msg);
  return c;
}

struct worker_conn {
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
  uint8_t secp_pub[64];
  uint8_t spki[32];
};

static int connect_worker(struct fx *f, struct teex_tee *tee,
                          struct worker_conn *w, struct teex_err *err) {
  uint8_t sk[32];
  memset(w, 0, sizeof *w);
  teex_secp256k1_keypair(sk, w->secp_pub);
  struct teex_ratls_keys keys = {.secp256k1_pub = w->secp_pub};
  assert_int_equal(teex_ratls_identity_new(tee, &keys, &w->key, &w->cert, err),
                   0);
  unsigned char *der = NULL;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(w->cert), &der);
  teex_sha256(der, (size_t)n, w->spki);
  OPENSSL_free(der);
  struct teex_tls_config tc = {.cert = w->cert,
                               .key = w->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&w->ctx, &tc, 0, err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->enclave_port);
  return teex_rpc_sync_connect(addr, w->ctx, 5000, &w->c, err);
}

static void worker_free(struct worker_conn *w) {
  teex_rpc_sync_close(w->c);
  teex_tls_ctx_free(w->ctx);
  X509_free(w->cert);
  EVP_PKEY_free(w->key);
}

static void sign_register(struct fx *f, Teex__Sm__RegisterServiceRequest *req,
                          const uint8_t sk[32], const uint8_t sm_addr[20]) {
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  memcpy(r.service_id, req->service_id.data, 32);
  r.version = req->version;
  memcpy(r.provider, req->provider.data, 20);
  memcpy(r.image_hash, req->image_hash.data, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", req->image_cid);
  uint8_t digest[32];
  teex_sm_register_digest(&r, 31337, sm_addr, digest);
  assert_int_equal(teex_stmt_sign(sk, digest, req->provider_sig.data), 0);
  (void)f;
}

static void test_deploy_then_fetch(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 20, TEEX_BUF_SECRET);

  /* The provider asks the SM who it is (after the RA-TLS check). */
  struct teex_tls_ctx *pctx;
  struct teex_rpc_sync *pc = connect_provider(f, &pctx);
  assert_int_equal(
      teex_rpc_sync_call(pc, "sm.Info", NULL, 0, 5000, &resp, &err), 0);
  Teex__Sm__InfoResponse *info =
      teex__sm__info_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(info);
  assert_int_equal(info->address.len, 20);
  uint8_t sm_addr[20];
  memcpy(sm_addr, info->address.data, 20);
  assert_int_equal(info->chain_id, 31337);
  teex__sm__info_response__free_unpacked(info, NULL);

  /* Register a service with an encrypted image. */
  uint8_t psk[32], ppub[64], paddr[20], key[32], id[32], hash[32], sig[65];
  teex_secp256k1_keypair(psk, ppub);
  teex_eth_address(ppub, paddr);
  teex_random(key, 32);
  memset(id, 0x42, 32);
  static const char image[] = "an image for the daemon test";
  uint8_t *ct;
  size_t ct_len;
  assert_int_equal(teex_image_encrypt(key, (const uint8_t *)image, sizeof image,
                                      &ct, &ct_len, &err),
                   0);
  teex_image_hash((const uint8_t *)image, sizeof image, hash);
  Teex__Sm__RegisterServiceRequest req =
      TEEX__SM__REGISTER_SERVICE_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, id};
  req.version = 1;
  req.provider = (ProtobufCBinaryData){20, paddr};
  req.image_hash = (ProtobufCBinaryData){32, hash};
  req.image_cid = "bafkreidaemontest";
  req.image_key = (ProtobufCBinaryData){32, key};
  req.image_ciphertext = (ProtobufCBinaryData){ct_len, ct};
  req.provider_sig = (ProtobufCBinaryData){65, sig};
  sign_register(f, &req, psk, sm_addr);
  size_t n = teex__sm__register_service_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__register_service_request__pack(&req, buf);
  if (teex_rpc_sync_call(pc, "sm.RegisterService", buf, n, 5000, &resp, &err) !=
      0)
    fail_msg("register: %s", err.msg);
  Teex__Sm__RegisterServiceResponse *reg =
      teex__sm__register_service_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(reg);
  uint8_t signing_key[20];
  memcpy(signing_key, reg->signing_key.data, 20);
  teex__sm__register_service_response__free_unpacked(reg, NULL);
  /* A malformed request is a clear error, and the connection lives on. */
  assert_int_equal(teex_rpc_sync_call(pc, "sm.RegisterService",
                                      (const uint8_t *)"\xff\xff", 2, 5000,
                                      &resp, &err),
                   TEEX_EFORMAT);
  assert_int_equal(
      teex_rpc_sync_call(pc, "sm.Info", NULL, 0, 5000, &resp, &err), 0);
  /* Providers cannot reach the enclave-only methods. */
  assert_int_not_equal(
      teex_rpc_sync_call(pc, "sm.FetchKeys", NULL, 0, 5000, &resp, &err), 0);
  teex_rpc_sync_close(pc);
  teex_tls_ctx_free(pctx);
  free(buf);
  free(ct);

  /* A worker fetches the keys with evidence fresh for this session. */
  struct worker_conn w;
  if (connect_worker(f, f->worker, &w, &err) != 0)
    fail_msg("worker connect: %s", err.msg);
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, w.spki, 32);
  b.has_secp256k1 = 1;
  memcpy(b.secp256k1_pub, w.secp_pub, 64);
  b.has_nonce = 1;
  assert_int_equal(teex_sm_fresh_nonce(teex_rpc_sync_conn(w.c), "sm.FetchKeys",
                                       b.nonce, &err),
                   0);
  struct teex_buf ev;
  teex_buf_init(&ev, 16384, 0);
  assert_int_equal(teex_tee_quote_binding(f->worker, &b, &ev, &err), 0);
  Teex__Sm__FetchKeysRequest fk = TEEX__SM__FETCH_KEYS_REQUEST__INIT;
  fk.service_id = (ProtobufCBinaryData){32, id};
  fk.image_hash = (ProtobufCBinaryData){32, hash};
  fk.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  n = teex__sm__fetch_keys_request__get_packed_size(&fk);
  buf = malloc(n);
  teex__sm__fetch_keys_request__pack(&fk, buf);
  if (teex_rpc_sync_call(w.c, "sm.FetchKeys", buf, n, 5000, &resp, &err) != 0)
    fail_msg("fetch keys: %s", err.msg);
  Teex__Sm__FetchKeysResponse *keys =
      teex__sm__fetch_keys_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(keys);
  assert_memory_equal(keys->image_key.data, key, 32);
  assert_string_equal(keys->image_cid, "bafkreidaemontest");
  uint8_t pub[64], addr[20];
  assert_int_equal(teex_secp256k1_public(keys->service_secp256k1.data, pub), 0);
  teex_eth_address(pub, addr);
  assert_memory_equal(addr, signing_key, 20);
  teex__sm__fetch_keys_response__free_unpacked(keys, NULL);
  free(buf);

  /* The same evidence on another session is stale: refused. */
  struct worker_conn w2;
  assert_int_equal(connect_worker(f, f->worker, &w2, &err), 0);
  n = teex__sm__fetch_keys_request__get_packed_size(&fk);
  buf = malloc(n);
  teex__sm__fetch_keys_request__pack(&fk, buf);
  int rc = teex_rpc_sync_call(w2.c, "sm.FetchKeys", buf, n, 5000, &resp, &err);
  assert_int_equal(rc, TEEX_EREPLAY);
  assert_non_null(strstr(err.msg, "another challenge"));
  free(buf);
  worker_free(&w2);
  worker_free(&w);
  teex_buf_free(&ev);

  /* The SM restarted still knows the service. */
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  start_sm(f);
  pc = connect_provider(f, &pctx);
  assert_int_equal(
      teex_rpc_sync_call(pc, "sm.Info", NULL, 0, 5000, &resp, &err), 0);
  info = teex__sm__info_response__unpack(NULL, resp.len, resp.data);
  assert_int_equal(info->services, 1);
  assert_memory_equal(info->address.data, sm_addr, 20);
  teex__sm__info_response__free_unpacked(info, NULL);
  teex_rpc_sync_close(pc);
  teex_tls_ctx_free(pctx);
  teex_buf_free(&resp);

  /* Nothing secret in the SM's log. */
  size_t ln;
  uint8_t *log = tu_read_file(f->log, &ln);
  assert_non_null(log);
  assert_false(tu_buf_contains_any_encoding(log, ln, key, 32));
  assert_non_null(strstr((char *)log, "keys released"));
  free(log);
}

/* An enclave running other code (here: measured as another binary) is
 * refused during the handshake: in TLS 1.3 the client finishes its side
 * before the server has checked the client's certificate, so the client may
 * see the connection open, but the server closes it without reading a
 * request. */
static void test_wrong_measurement_refused(void **state) {
  struct fx *f = *state;
  struct teex_tee *impostor = open_tee(f->dir, "worker", "/bin/true");
  struct worker_conn w;
  struct teex_err err;
  int rc = connect_worker(f, impostor, &w, &err);
  if (rc == 0) {
    struct teex_buf r;
    teex_buf_init(&r, 4096, 0);
    rc = teex_rpc_sync_call(w.c, "sm.Info", NULL, 0, 5000, &r, &err);
    teex_buf_free(&r);
  }
  assert_int_not_equal(rc, 0);
  worker_free(&w);
  teex_tee_close(impostor);
  /* The SM logged why, and still serves. */
  usleep(100000);
  size_t ln;
  char *log = (char *)tu_read_file(f->log, &ln);
  assert_non_null(log);
  assert_non_null(strstr(log, "measurement"));
  free(log);
  struct teex_tls_ctx *pctx;
  struct teex_rpc_sync *pc = connect_provider(f, &pctx);
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  assert_int_equal(
      teex_rpc_sync_call(pc, "sm.Info", NULL, 0, 5000, &resp, &err), 0);
  teex_buf_free(&resp);
  teex_rpc_sync_close(pc);
  teex_tls_ctx_free(pctx);
}

/* A certificate's evidence ages: clients whose policy has a short max_age
 * refuse an SM whose certificate was made at start, and accept one that
 * renews it (--cert-refresh) — on both endpoints. */
static int try_connect(struct fx *f, struct teex_err *err) {
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  struct teex_tls_ctx *ctx = NULL;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->client_port);
  struct teex_rpc_sync *c = NULL;
  int rc = teex_rpc_sync_connect(addr, ctx, 5000, &c, err);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  return rc;
}

static void test_cert_refresh(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  f->sm_policy.max_age = 4;
  assert_int_equal(try_connect(f, &err), 0);
  /* without renewal: older than max_age, refused */
  sleep(6);
  assert_int_not_equal(try_connect(f, &err), 0);
  /* renewed every second: accepted however long the SM has run */
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  f->cert_refresh = "1";
  start_sm(f);
  sleep(6);
  if (try_connect(f, &err) != 0)
    fail_msg("client endpoint after renewals: %s", err.msg);
  struct worker_conn w;
  if (connect_worker(f, f->worker, &w, &err) != 0)
    fail_msg("enclave endpoint after renewals: %s", err.msg);
  worker_free(&w);
  size_t n;
  char *log = (char *)tu_read_file(f->log, &n);
  assert_non_null(log);
  assert_non_null(strstr(log, "certificate renewed"));
  free(log);
}

/* sm.RegisterEnclave on w's session with evidence fresh for it. */
static int register_enclave(struct fx *f, struct worker_conn *w,
                            struct teex_err *err) {
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, w->spki, 32);
  b.has_secp256k1 = 1;
  memcpy(b.secp256k1_pub, w->secp_pub, 64);
  b.has_nonce = 1;
  assert_int_equal(teex_sm_fresh_nonce(teex_rpc_sync_conn(w->c),
                                       "sm.RegisterEnclave", b.nonce, err),
                   0);
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 4096, 0);
  assert_int_equal(teex_tee_quote_binding(f->worker, &b, &ev, err), 0);
  Teex__Sm__RegisterEnclaveRequest req =
      TEEX__SM__REGISTER_ENCLAVE_REQUEST__INIT;
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  size_t n = teex__sm__register_enclave_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__register_enclave_request__pack(&req, buf);
  int rc =
      teex_rpc_sync_call(w->c, "sm.RegisterEnclave", buf, n, 5000, &resp, err);
  free(buf);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

/* Evidence from the worker TEE bound to w's session for method. */
static void fresh_evidence(struct fx *f, struct worker_conn *w,
                           const char *method, struct teex_buf *ev) {
  struct teex_tee_binding b;
  struct teex_err err;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, w->spki, 32);
  b.has_secp256k1 = 1;
  memcpy(b.secp256k1_pub, w->secp_pub, 64);
  b.has_nonce = 1;
  assert_int_equal(
      teex_sm_fresh_nonce(teex_rpc_sync_conn(w->c), method, b.nonce, &err), 0);
  teex_buf_init(ev, 16384, 0);
  assert_int_equal(teex_tee_quote_binding(f->worker, &b, ev, &err), 0);
}

/* sm.FetchKeys for a service that does not exist: the evidence is checked
 * first, so a trusted enclave gets TEEX_ENOTFOUND, a revoked one not. */
static int fetch_probe(struct fx *f, struct worker_conn *w,
                       struct teex_err *err) {
  uint8_t zero[32] = {0};
  struct teex_buf ev, resp;
  fresh_evidence(f, w, "sm.FetchKeys", &ev);
  teex_buf_init(&resp, 4096, 0);
  Teex__Sm__FetchKeysRequest req = TEEX__SM__FETCH_KEYS_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, zero};
  req.image_hash = (ProtobufCBinaryData){32, zero};
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  size_t n = teex__sm__fetch_keys_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__fetch_keys_request__pack(&req, buf);
  int rc = teex_rpc_sync_call(w->c, "sm.FetchKeys", buf, n, 5000, &resp, err);
  free(buf);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

/* sm.LeaseDataKey with an index past the task's datasets: checked after the
 * evidence (TEEX_EINVAL for a trusted enclave). */
static int lease_probe(struct fx *f, struct worker_conn *w,
                       struct teex_err *err) {
  uint8_t b20[20] = {0}, b32[32] = {0}, b65[65] = {0};
  struct teex_buf ev, resp;
  fresh_evidence(f, w, "sm.LeaseDataKey", &ev);
  teex_buf_init(&resp, 4096, 0);
  Teex__Sm__LeaseDataKeyRequest req = TEEX__SM__LEASE_DATA_KEY_REQUEST__INIT;
  req.chain_id = 31337;
  req.dispatcher = req.worker = req.user = (ProtobufCBinaryData){20, b20};
  req.task_id = req.service_id = req.image_hash = req.price = req.datasets =
      (ProtobufCBinaryData){32, b32};
  req.dispatcher_sig = (ProtobufCBinaryData){65, b65};
  req.index = 5;
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  size_t n = teex__sm__lease_data_key_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__lease_data_key_request__pack(&req, buf);
  int rc =
      teex_rpc_sync_call(w->c, "sm.LeaseDataKey", buf, n, 5000, &resp, err);
  free(buf);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

/* Runs `teex sm ARGS... --data-dir DIR --sm ADDR --sm-policy FILE`; returns
 * the exit status, stdout in *out and stderr in *errout (malloc'd). */
static int run_op(struct fx *f, const char *pol, char *const *args, size_t n,
                  char **out, char **errout) {
  char sm[64];
  snprintf(sm, sizeof sm, "127.0.0.1:%d", f->client_port);
  char *argv[16];
  size_t k = 0;
  argv[k++] = (char *)tu_teex_bin();
  argv[k++] = "sm";
  for (size_t i = 0; i < n; i++)
    argv[k++] = args[i];
  argv[k++] = "--data-dir";
  argv[k++] = f->dir;
  argv[k++] = "--sm";
  argv[k++] = sm;
  argv[k++] = "--sm-policy";
  argv[k++] = (char *)pol;
  argv[k] = NULL;
  return tu_run(argv, NULL, 0, out, errout);
}

/* Checks that out holds the SM's EnclaveRevocation signature for enclave
 * (hex as printed), made by the SM's address in the ready file. */
static void check_revocation_line(struct fx *f, const char *out,
                                  const char *hex, const uint8_t enclave[20]) {
  char want[128];
  snprintf(want, sizeof want, "revocation enclave=%s sm_signature=0x", hex);
  const char *p = strstr(out, want);
  if (p == NULL)
    fail_msg("no revocation for %s in: %s", hex, out);
  char sig_hex[131];
  memcpy(sig_hex, p + strlen(want), 130);
  sig_hex[130] = '\0';
  uint8_t sig[65], digest[32], signer[20], sm[20];
  size_t n = 0;
  assert_int_equal(teex_hex_decode(sig_hex, sig, 65, &n), 0);
  assert_int_equal(n, 65);
  struct teex_domain d;
  memset(&d, 0, sizeof d);
  d.chain_id = 31337;
  assert_int_equal(teex_eth_address_parse(EREG, d.verifying_contract), 0);
  teex_stmt_enclave_revocation_digest(&d, enclave, digest);
  assert_int_equal(teex_stmt_recover(digest, sig, signer), 0);
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->ready, &err), 0);
  assert_int_equal(
      teex_eth_address_parse(teex_config_get(&c, "address", ""), sm), 0);
  teex_config_free(&c);
  assert_memory_equal(signer, sm, 20);
}

static const char *sm_enclave_addr(struct fx *f) {
  static char a[64];
  snprintf(a, sizeof a, "127.0.0.1:%d", f->enclave_port);
  return a;
}

/* The operator's policy for the SM (what `teex sm status` checks) in pol. */
static void write_op_policy(struct fx *f, char pol[4096]) {
  char text[1024], root_hex[65], sm_hex[65];
  snprintf(pol, 4096, "%s/sm-policy.conf", f->dir);
  struct teex_tee *sm_view = open_tee(f->dir, "sm", tu_teex_bin());
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(sm_view)->mr_enclave, 32, sm_hex);
  teex_tee_close(sm_view);
  int tn = snprintf(text, sizeof text,
                    "[policy]\nallow_simulated = true\nroles = sm\n[roots]\n"
                    "net = %s\n[measurements]\nsm = %s\n",
                    root_hex, sm_hex);
  assert_int_equal(tu_write_file(pol, text, (size_t)tn), 0);
}

/* The line of `teex sm status` about hex (cut at its end, in place). */
static char *status_line(char *out, const char *hex) {
  char key[64];
  snprintf(key, sizeof key, "enclave=%s", hex);
  char *l = strstr(out, key);
  if (l == NULL)
    fail_msg("no status line for %s in: %s", hex, out);
  char *eol = strchr(l, '\n');
  if (eol != NULL)
    *eol = '\0';
  return l;
}

/* A new session for the enclave address of old (a new TLS identity whose
 * evidence binds the same secp256k1 key). */
static int reconnect(struct fx *f, const struct worker_conn *old,
                     struct worker_conn *w, struct teex_err *err) {
  memset(w, 0, sizeof *w);
  memcpy(w->secp_pub, old->secp_pub, 64);
  struct teex_ratls_keys keys = {.secp256k1_pub = w->secp_pub};
  assert_int_equal(
      teex_ratls_identity_new(f->worker, &keys, &w->key, &w->cert, err), 0);
  unsigned char *der = NULL;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(w->cert), &der);
  teex_sha256(der, (size_t)n, w->spki);
  OPENSSL_free(der);
  struct teex_tls_config tc = {.cert = w->cert,
                               .key = w->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&w->ctx, &tc, 0, err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->enclave_port);
  return teex_rpc_sync_connect(addr, w->ctx, 5000, &w->c, err);
}

/* Evidence expires: with a 4-second window, a worker that stops
 * re-attesting is refused keys and leases ("attestation expired at"),
 * until it re-attests; one that re-attests every second keeps working. */
static void test_attestation_window(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  f->attest_valid = "4";
  start_sm(f);
  char sm_addr[64], pol[4096];
  snprintf(sm_addr, sizeof sm_addr, "127.0.0.1:%d", f->enclave_port);
  write_op_policy(f, pol);

  struct worker_conn lapsed, renewing;
  assert_int_equal(connect_worker(f, f->worker, &lapsed, &err), 0);
  assert_int_equal(connect_worker(f, f->worker, &renewing, &err), 0);
  assert_int_equal(register_enclave(f, &lapsed, &err), 0);
  assert_int_equal(register_enclave(f, &renewing, &err), 0);
  /* Both pass every check (then find no such service / dataset index). */
  assert_int_equal(fetch_probe(f, &lapsed, &err), TEEX_ENOTFOUND);
  assert_int_equal(lease_probe(f, &lapsed, &err), TEEX_EINVAL);
  assert_int_equal(fetch_probe(f, &renewing, &err), TEEX_ENOTFOUND);

  /* Five seconds: the renewing one re-attests every second. */
  uint64_t until = 0, first_until = 0;
  for (int i = 0; i < 5; i++) {
    sleep(1);
    if (teex_sm_client_attest(f->worker, renewing.cert, renewing.key,
                              renewing.secp_pub, sm_addr, &f->sm_policy, &until,
                              &err) != 0)
      fail_msg("re-attest: %s", err.msg);
    if (first_until == 0)
      first_until = until;
  }
  assert_true(until > first_until); /* each one moved the window */
  /* New sessions, as a worker makes for each fetch (same addresses). */
  struct worker_conn l2, r2;
  assert_int_equal(reconnect(f, &lapsed, &l2, &err), 0);
  assert_int_equal(reconnect(f, &renewing, &r2, &err), 0);
  worker_free(&lapsed);
  worker_free(&renewing);
  lapsed = l2;
  renewing = r2;
  assert_int_equal(fetch_probe(f, &renewing, &err), TEEX_ENOTFOUND);
  assert_int_equal(lease_probe(f, &renewing, &err), TEEX_EINVAL);
  /* The lapsed one is refused, with a clear reason, for keys and leases. */
  assert_int_equal(fetch_probe(f, &lapsed, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "attestation expired at"));
  assert_int_equal(lease_probe(f, &lapsed, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "attestation expired at"));

  /* The operator sees which is which. */
  uint8_t addr[20];
  char hex_l[43], hex_r[43];
  teex_eth_address(lapsed.secp_pub, addr);
  teex_eth_address_hex(addr, hex_l);
  teex_eth_address(renewing.secp_pub, addr);
  teex_eth_address_hex(addr, hex_r);
  char *out = NULL, *errout = NULL;
  char *status[] = {"status"};
  assert_int_equal(run_op(f, pol, status, 1, &out, &errout), 0);
  assert_non_null(strstr(out, "attestation valid 4s"));
  char *copy = strdup(out);
  assert_non_null(strstr(status_line(out, hex_l), "state=expired"));
  assert_non_null(strstr(status_line(copy, hex_r), "state=trusted"));
  free(copy);
  free(out);
  free(errout);

  /* Re-attesting brings the lapsed one back. */
  if (teex_sm_client_attest(f->worker, lapsed.cert, lapsed.key, lapsed.secp_pub,
                            sm_addr, &f->sm_policy, &until, &err) != 0)
    fail_msg("re-attest: %s", err.msg);
  assert_int_equal(fetch_probe(f, &lapsed, &err), TEEX_ENOTFOUND);

  /* A revoked enclave cannot re-attest its way back. */
  char *revoke[] = {"revoke", "--enclave", hex_l};
  assert_int_equal(run_op(f, pol, revoke, 3, &out, &errout), 0);
  free(out);
  free(errout);
  assert_int_equal(teex_sm_client_attest(f->worker, lapsed.cert, lapsed.key,
                                         lapsed.secp_pub, sm_addr,
                                         &f->sm_policy, &until, &err),
                   TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "enclave revoked"));
  worker_free(&lapsed);
  worker_free(&renewing);
}

/* The SM submits revocations to the EnclaveRegistry itself (a real anvil
 * node, `teex chain up`): a registered worker revoked at the SM becomes
 * inactive on chain from the SM's own account and status says
 * chain=confirmed; an address that never registered stays pending with
 * the registry's reason, retried; the daemon stops cleanly with the
 * retries under way (so, in the ASan build, no leak or use after free in
 * the revoker's thread-pool job). */
static void test_chain_revocation(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  char *out = NULL, *errout = NULL, pol[4096], conf[4096], ereg[43], url[128];
  int up = -1;
  for (int i = 0; i < 5 && up != 0; i++) {
    char port[16];
    uint8_t rb[2];
    teex_random(rb, 2);
    snprintf(port, sizeof port, "%d", 20000 + (rb[0] << 8 | rb[1]) % 12000);
    char *argv[] = {(char *)tu_teex_bin(),
                    "chain",
                    "up",
                    "--dir",
                    f->dir,
                    "--port",
                    port,
                    NULL};
    up = tu_run(argv, NULL, 0, &out, &errout);
    free(out);
    free(errout);
  }
  assert_int_equal(up, 0);
  f->chain_up = 1;
  uint8_t sm_addr[20];
  char sm_hex[43];
  struct teex_config c;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->ready, &err), 0);
  assert_int_equal(
      teex_eth_address_parse(teex_config_get(&c, "address", ""), sm_addr), 0);
  teex_config_free(&c);
  teex_eth_address_hex(sm_addr, sm_hex);
  char *deploy[] = {(char *)tu_teex_bin(),
                    "chain",
                    "deploy",
                    "--dir",
                    f->dir,
                    "--sm",
                    sm_hex,
                    NULL};
  if (tu_run(deploy, NULL, 0, &out, &errout) != 0)
    fail_msg("deploy: %s", errout);
  free(out);
  free(errout);
  snprintf(conf, sizeof conf, "%s/chain.conf", f->dir);
  struct teex_chain_addrs ca;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, conf, &err), 0);
  assert_int_equal(teex_chain_addrs_from_config(&c, &ca, &err), 0);
  snprintf(url, sizeof url, "%s", teex_config_get(&c, "rpc_url", ""));
  teex_config_free(&c);
  teex_eth_address_hex(ca.enclave_registry, ereg);

  /* The SM with the chain, for those contracts. */
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  f->ereg = ereg;
  f->chain_rpc = url;
  start_sm(f);
  write_op_policy(f, pol);

  /* Anvil's account 0 (a public dev key) funds the SM and pays for the
   * worker's registration, as `teex up` does. */
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *dev = NULL;
  uint8_t dev_sk[32];
  size_t n;
  assert_int_equal(
      teex_hex_decode(
          "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
          dev_sk, 32, &n),
      0);
  assert_int_equal(teex_eth_rpc_open(url, NULL, &rpc, &err), 0);
  teex_chain_use_errors(rpc);
  assert_int_equal(teex_eth_sender_new(rpc, dev_sk, NULL, &dev, &err), 0);
  struct teex_eth_request tx;
  memset(&tx, 0, sizeof tx);
  tx.has_to = 1;
  memcpy(tx.to, sm_addr, 20);
  teex_u256_from_u64(tx.value, 1000000000000000000ull);
  tx.gas_limit = 21000;
  struct teex_eth_receipt rcpt;
  if (teex_eth_sender_transact(dev, &tx, 60000, &rcpt, &err) != 0)
    fail_msg("fund the SM: %s", err.msg);
  teex_eth_receipt_clear(&rcpt);

  /* A worker registers with the SM and (its operator) on chain. */
  struct worker_conn w;
  assert_int_equal(connect_worker(f, f->worker, &w, &err), 0);
  struct teex_enclave_registration reg;
  if (teex_sm_client_register(f->worker, w.cert, w.key, w.secp_pub,
                              sm_enclave_addr(f), &f->sm_policy, &reg,
                              &err) != 0)
    fail_msg("register with the SM: %s", err.msg);
  if (teex_chain_register_enclave(dev, &ca, reg.enclave, reg.role,
                                  reg.measurement, reg.issued_at, reg.signature,
                                  0, &err) != 0)
    fail_msg("register on chain: %s", err.msg);
  int active = 0;
  assert_int_equal(teex_chain_enclave_active(rpc, &ca, reg.enclave,
                                             TEEX_ENCLAVE_WORKER, &active,
                                             &err),
                   0);
  assert_true(active);
  char hex_w[43], hex_x[43];
  teex_eth_address_hex(reg.enclave, hex_w);
  uint8_t stranger[20];
  memset(stranger, 0x5c, 20);
  teex_eth_address_hex(stranger, hex_x);

  char *revoke_w[] = {"revoke", "--enclave", hex_w};
  char *revoke_x[] = {"revoke", "--enclave", hex_x};
  assert_int_equal(run_op(f, pol, revoke_w, 3, &out, &errout), 0);
  free(out);
  free(errout);
  assert_int_equal(run_op(f, pol, revoke_x, 3, &out, &errout), 0);
  free(out);
  free(errout);
  for (int i = 0; i < 300 && active; i++) {
    usleep(100 * 1000);
    assert_int_equal(teex_chain_enclave_active(rpc, &ca, reg.enclave,
                                               TEEX_ENCLAVE_WORKER, &active,
                                               &err),
                     0);
  }
  assert_false(active);
  /* Status: confirmed for w; pending, with the registry's reason and
   * more than one attempt, for the address that never registered. */
  char *status[] = {"status"};
  int confirmed = 0, retried = 0;
  for (int i = 0; i < 300 && !(confirmed && retried); i++) {
    assert_int_equal(run_op(f, pol, status, 1, &out, &errout), 0);
    char *copy = strdup(out);
    confirmed = strstr(status_line(out, hex_w), "chain=confirmed") != NULL;
    const char *lx = status_line(copy, hex_x);
    retried = strstr(lx, "chain=pending chain_attempts=") != NULL &&
              strstr(lx, "chain_attempts=1 ") == NULL &&
              strstr(lx, "EnclaveNotRegistered") != NULL;
    free(copy);
    free(out);
    free(errout);
    if (!(confirmed && retried))
      usleep(100 * 1000);
  }
  assert_true(confirmed);
  assert_true(retried);
  size_t ln;
  char *log = (char *)tu_read_file(f->log, &ln);
  assert_non_null(strstr(log, "revoked on chain"));
  free(log);
  /* A clean stop while the stranger's revocation is still being retried. */
  assert_int_equal(tu_stop(f->pid, SIGTERM, 10000), 0);
  f->pid = 0;
  worker_free(&w);
  teex_eth_sender_free(dev);
  teex_eth_rpc_close(rpc);
}

static void test_revoke_and_status(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  /* The operator's view of the SM: what `teex sm status` checks. */
  char pol[4096], text[1024], root_hex[65], sm_hex[65], tok[4096];
  snprintf(pol, sizeof pol, "%s/sm-policy.conf", f->dir);
  struct teex_tee *sm_view = open_tee(f->dir, "sm", tu_teex_bin());
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(sm_view)->mr_enclave, 32, sm_hex);
  teex_tee_close(sm_view);
  int tn = snprintf(text, sizeof text,
                    "[policy]\nallow_simulated = true\nroles = sm\n[roots]\n"
                    "net = %s\n[measurements]\nsm = %s\n",
                    root_hex, sm_hex);
  assert_int_equal(tu_write_file(pol, text, (size_t)tn), 0);
  /* The token file is the host user's alone. */
  snprintf(tok, sizeof tok, "%s/sm/operator.token", f->dir);
  struct stat st;
  assert_int_equal(stat(tok, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  /* Two workers of the allowed build register. */
  struct worker_conn a, b;
  assert_int_equal(connect_worker(f, f->worker, &a, &err), 0);
  assert_int_equal(connect_worker(f, f->worker, &b, &err), 0);
  if (register_enclave(f, &a, &err) != 0)
    fail_msg("register a: %s", err.msg);
  assert_int_equal(register_enclave(f, &b, &err), 0);
  uint8_t addr_a[20], addr_b[20];
  teex_eth_address(a.secp_pub, addr_a);
  teex_eth_address(b.secp_pub, addr_b);
  char hex_a[43], hex_b[43], meas[65];
  teex_eth_address_hex(addr_a, hex_a);
  teex_eth_address_hex(addr_b, hex_b);
  teex_hex_encode(teex_tee_self(f->worker)->mr_enclave, 32, meas);

  char *out = NULL, *errout = NULL;
  char *status[] = {"status"};
  assert_int_equal(run_op(f, pol, status, 1, &out, &errout), 0);
  char line[512];
  snprintf(line, sizeof line, "enclave=%s role=worker measurement=%s", hex_a,
           meas);
  assert_non_null(strstr(out, line));
  assert_non_null(strstr(out, "enclaves 2"));
  assert_null(strstr(out, "state=revoked"));
  free(out);
  free(errout);

  /* Someone without the token cannot revoke. */
  char bad[4096];
  snprintf(bad, sizeof bad, "%s/bad.token", f->dir);
  assert_int_equal(tu_write_file(bad,
                                 "00112233445566778899aabbccddeeff"
                                 "00112233445566778899aabbccddeeff\n",
                                 65),
                   0);
  char *revoke_bad[] = {"revoke", "--enclave", hex_a, "--token-file", bad};
  assert_int_not_equal(run_op(f, pol, revoke_bad, 5, &out, &errout), 0);
  assert_non_null(strstr(errout, "not the SM's operator"));
  free(out);
  free(errout);
  assert_int_equal(register_enclave(f, &a, &err), 0);
  assert_int_equal(fetch_probe(f, &a, &err), TEEX_ENOTFOUND);
  assert_int_equal(lease_probe(f, &a, &err), TEEX_EINVAL);

  /* The operator revokes a's enclave: a is refused at once, b is not. */
  char *revoke_a[] = {"revoke", "--enclave", hex_a, "--reason",
                      "host compromised"};
  if (run_op(f, pol, revoke_a, 5, &out, &errout) != 0)
    fail_msg("revoke: %s", errout);
  check_revocation_line(f, out, hex_a, addr_a);
  assert_null(strstr(out, hex_b));
  free(out);
  free(errout);
  assert_int_equal(register_enclave(f, &a, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "enclave revoked"));
  assert_int_equal(fetch_probe(f, &a, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "enclave revoked"));
  assert_int_equal(lease_probe(f, &a, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "enclave revoked"));
  assert_int_equal(register_enclave(f, &b, &err), 0);
  assert_int_equal(fetch_probe(f, &b, &err), TEEX_ENOTFOUND);
  assert_int_equal(lease_probe(f, &b, &err), TEEX_EINVAL);
  assert_int_equal(run_op(f, pol, status, 1, &out, &errout), 0);
  char *la = strstr(out, hex_a);
  assert_non_null(la);
  char *eol = strchr(la, '\n');
  assert_non_null(eol);
  *eol = '\0';
  assert_non_null(strstr(la, "state=revoked"));
  assert_non_null(strstr(la, "reason=\"host compromised\""));
  *eol = '\n';
  char *lb = strstr(out, hex_b);
  assert_non_null(lb);
  eol = strchr(lb, '\n');
  *eol = '\0';
  assert_non_null(strstr(lb, "state=trusted"));
  free(out);
  free(errout);

  /* The operator revokes the build: every worker of it is refused, and it
   * holds across a restart of the SM. */
  char *revoke_m[] = {"revoke", "--measurement", meas, "--reason",
                      "vulnerable build"};
  assert_int_equal(run_op(f, pol, revoke_m, 5, &out, &errout), 0);
  /* Statements for every enclave of the build the SM knows. */
  check_revocation_line(f, out, hex_a, addr_a);
  check_revocation_line(f, out, hex_b, addr_b);
  free(out);
  free(errout);
  assert_int_equal(register_enclave(f, &b, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "measurement revoked"));
  assert_int_equal(fetch_probe(f, &b, &err), TEEX_EPOLICY);
  worker_free(&a);
  worker_free(&b);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  start_sm(f);
  struct worker_conn c;
  assert_int_equal(connect_worker(f, f->worker, &c, &err), 0);
  assert_int_equal(register_enclave(f, &c, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "vulnerable build"));
  worker_free(&c);
  assert_int_equal(run_op(f, pol, status, 1, &out, &errout), 0);
  lb = strstr(out, hex_b);
  assert_non_null(lb);
  assert_non_null(strstr(lb, "reason=\"vulnerable build\""));
  free(out);
  free(errout);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_deploy_then_fetch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_revoke_and_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_measurement_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cert_refresh, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attestation_window, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_revocation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
