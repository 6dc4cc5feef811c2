/* The Service Manager keeping its state in TEE-DS, with real processes: a
 * 3-replica group and `teex sm run --ds-group`. A provider deploys a
 * service; the SM is killed and its state dir replaced by a copy taken
 * before the deploy (only the bootstrap secret left: its identity); the
 * restarted SM still releases the keys to a worker, from TEE-DS. A canary
 * in the registered value is in no replica file (positive controls: the
 * worker gets it back through the SM, and the same search finds it written
 * in clear). The group down: requests fail with a clear error, and succeed
 * again once it is back. An SM that ran without a group migrates its local
 * records at its first start with one, and no longer holds them locally. */
#include "ds/net_fixture.c"

#include "teex/image.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/rpc_sync.h"
#include "teex/sm_server.h"
#include "teex/statements.h"

#include <openssl/x509.h>
#include <sys/stat.h>

#define SREG "0x5151515151515151515151515151515151515151"
#define EREG "0xe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"
#define CANARY_CID "bafkrei-canary-cid-5b2e90d4"

struct fx {
  struct net t;
  char smstate[600], ready[600], log[600], policy[600], group[600];
  int pid;
  int client_port, enclave_port;
  struct teex_tee *worker;
  struct teex_tee_policy sm_policy; /* what clients require of the SM */
  struct teex_ratls_verifier verifier;
  uint8_t sm_addr[20];
  uint8_t image_key[32], id[32], hash[32];
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

static void dump_sm_log(struct fx *f) {
  size_t n;
  char *log = (char *)tu_read_file(f->log, &n);
  fprintf(stderr, "---- sm log ----\n%s\n", log ? log : "");
  free(log);
}

static void start_sm(struct fx *f, int with_ds) {
  unlink(f->ready);
  char *argv[] = {(char *)tu_teex_bin(),
                  "sm",
                  "run",
                  "--data-dir",
                  f->t.dir,
                  "--state",
                  f->smstate,
                  "--listen",
                  "127.0.0.1:0",
                  "--client-listen",
                  "127.0.0.1:0",
                  "--policy",
                  f->policy,
                  "--service-registry",
                  SREG,
                  "--enclave-registry",
                  EREG,
                  "--ready-file",
                  f->ready,
                  "--ds-group",
                  f->group,
                  "--ds-namespace",
                  "smns",
                  NULL};
  if (!with_ds)
    argv[19] = NULL;
  f->pid = tu_spawn(argv, f->log);
  assert_true(f->pid > 0);
  if (tu_wait_file(f->ready, 20000) != 0) {
    dump_sm_log(f);
    fail_msg("sm did not start");
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

static void measure_hex(const char *dir, const char *role, const char *exe,
                        char hex[65]) {
  struct teex_tee *tee = open_tee(dir, role, exe);
  teex_hex_encode(teex_tee_self(tee)->mr_enclave, 32, hex);
  teex_tee_close(tee);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct net *t = &f->t;
  net_prepare(t);
  /* The group's enclave clients: the teex build in role sm (the SM
   * daemon), mapped to namespace smns (net_init_states). */
  char root_hex[65], sm_hex[65], w_hex[65], text[1024], cpol[600];
  teex_hex_encode(t->root, 32, root_hex);
  measure_hex(t->dir, "sm", tu_teex_bin(), sm_hex);
  int n = snprintf(text, sizeof text,
                   "[policy]\nroles = sm\nallow_simulated = true\n[roots]\n"
                   "net = %s\n[measurements]\nsm = %s\n",
                   root_hex, sm_hex);
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", t->dir);
  assert_int_equal(tu_write_file(cpol, text, (size_t)n), 0);
  net_init_states(t, NULL, NULL);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  snprintf(f->group, sizeof f->group, "%s/group.conf", t->state[0]);
  snprintf(f->smstate, sizeof f->smstate, "%s/sm", t->dir);
  snprintf(f->ready, sizeof f->ready, "%s/sm.ready", t->dir);
  snprintf(f->log, sizeof f->log, "%s/sm.log", t->dir);
  snprintf(f->policy, sizeof f->policy, "%s/enclaves.conf", t->dir);
  /* What the SM accepts: this test process as the worker. */
  f->worker = open_tee(t->dir, "worker", NULL);
  teex_hex_encode(teex_tee_self(f->worker)->mr_enclave, 32, w_hex);
  n = snprintf(text, sizeof text,
               "[policy]\nallow_simulated = true\nroles = worker\n[roots]\n"
               "net = %s\n[measurements]\nworker = %s\n",
               root_hex, w_hex);
  assert_int_equal(tu_write_file(f->policy, text, (size_t)n), 0);
  struct teex_tee *sm_view = open_tee(t->dir, "sm", tu_teex_bin());
  teex_tee_policy_init(&f->sm_policy);
  teex_tee_policy_add_root(&f->sm_policy, t->root);
  teex_tee_policy_add_measurement(&f->sm_policy,
                                  teex_tee_self(sm_view)->mr_enclave);
  teex_tee_policy_add_role(&f->sm_policy, "sm");
  f->sm_policy.allow_simulated = 1;
  teex_tee_close(sm_view);
  f->verifier.policy = &f->sm_policy;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->pid > 0)
    tu_stop(f->pid, SIGKILL, 2000);
  teex_tee_close(f->worker);
  net_close(&f->t);
  free(f);
  return 0;
}

/* One call on the client endpoint (provider side). */
static int provider_call(struct fx *f, const char *method, const uint8_t *req,
                         size_t n, struct teex_buf *resp,
                         struct teex_err *err) {
  struct teex_tls_ctx *ctx;
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->client_port);
  struct teex_rpc_sync *c = NULL;
  int rc = teex_rpc_sync_connect(addr, ctx, 5000, &c, err);
  if (rc == 0)
    rc = teex_rpc_sync_call(c, method, req, n, 15000, resp, err);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  return rc;
}

static uint32_t sm_info(struct fx *f) {
  struct teex_buf resp;
  struct teex_err err;
  teex_buf_init(&resp, 1 << 16, 0);
  if (provider_call(f, "sm.Info", NULL, 0, &resp, &err) != 0)
    fail_msg("sm.Info: %s", err.msg);
  Teex__Sm__InfoResponse *info =
      teex__sm__info_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(info);
  memcpy(f->sm_addr, info->address.data, 20);
  uint32_t services = info->services;
  teex__sm__info_response__free_unpacked(info, NULL);
  teex_buf_free(&resp);
  return services;
}

/* Registers version `version` of the service f->id (image key made here). */
static int deploy(struct fx *f, uint32_t version, struct teex_err *err) {
  uint8_t psk[32], ppub[64], paddr[20], sig[65];
  memset(psk, 0x11, 32);
  assert_int_equal(teex_secp256k1_public(psk, ppub), 0);
  teex_eth_address(ppub, paddr);
  teex_random(f->image_key, 32);
  memset(f->id, 0x42, 32);
  char image[64];
  snprintf(image, sizeof image, "an image, version %u", version);
  teex_image_hash((const uint8_t *)image, strlen(image), f->hash);
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  memcpy(r.service_id, f->id, 32);
  r.version = version;
  memcpy(r.provider, paddr, 20);
  memcpy(r.image_hash, f->hash, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", CANARY_CID);
  uint8_t digest[32];
  teex_sm_register_digest(&r, 31337, f->sm_addr, digest);
  assert_int_equal(teex_stmt_sign(psk, digest, sig), 0);
  Teex__Sm__RegisterServiceRequest req =
      TEEX__SM__REGISTER_SERVICE_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, f->id};
  req.version = version;
  req.provider = (ProtobufCBinaryData){20, paddr};
  req.image_hash = (ProtobufCBinaryData){32, f->hash};
  req.image_cid = CANARY_CID;
  req.image_key = (ProtobufCBinaryData){32, f->image_key};
  req.provider_sig = (ProtobufCBinaryData){65, sig};
  uint8_t *ct;
  size_t ct_len;
  assert_int_equal(teex_image_encrypt(f->image_key, (const uint8_t *)image,
                                      strlen(image), &ct, &ct_len, err),
                   0);
  req.image_ciphertext = (ProtobufCBinaryData){ct_len, ct};
  size_t n = teex__sm__register_service_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__register_service_request__pack(&req, buf);
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 16, 0);
  int rc = provider_call(f, "sm.RegisterService", buf, n, &resp, err);
  free(buf);
  free(ct);
  teex_buf_free(&resp);
  return rc;
}

/* A worker (this process, attested) fetches the keys of f->id at f->hash:
 * 0 and the image key and CID, or the SM's error. */
static int fetch(struct fx *f, uint8_t key[32], char cid[200],
                 struct teex_err *err) {
  uint8_t sk[32], secp_pub[64], spki[32];
  EVP_PKEY *k;
  X509 *x;
  teex_secp256k1_keypair(sk, secp_pub);
  struct teex_ratls_keys keys = {.secp256k1_pub = secp_pub};
  assert_int_equal(teex_ratls_identity_new(f->worker, &keys, &k, &x, err), 0);
  unsigned char *der = NULL;
  int dn = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
  teex_sha256(der, (size_t)dn, spki);
  OPENSSL_free(der);
  struct teex_tls_config tc = {.cert = x,
                               .key = k,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  struct teex_tls_ctx *ctx;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->enclave_port);
  struct teex_rpc_sync *c = NULL;
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 1 << 16, TEEX_BUF_SECRET);
  uint8_t *buf = NULL;
  int rc = teex_rpc_sync_connect(addr, ctx, 5000, &c, err);
  if (rc != 0)
    goto out;
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, spki, 32);
  b.has_secp256k1 = 1;
  memcpy(b.secp256k1_pub, secp_pub, 64);
  b.has_nonce = 1;
  assert_int_equal(
      teex_sm_fresh_nonce(teex_rpc_sync_conn(c), "sm.FetchKeys", b.nonce, err),
      0);
  assert_int_equal(teex_tee_quote_binding(f->worker, &b, &ev, err), 0);
  Teex__Sm__FetchKeysRequest fk = TEEX__SM__FETCH_KEYS_REQUEST__INIT;
  fk.service_id = (ProtobufCBinaryData){32, f->id};
  fk.image_hash = (ProtobufCBinaryData){32, f->hash};
  fk.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  size_t n = teex__sm__fetch_keys_request__get_packed_size(&fk);
  buf = malloc(n);
  teex__sm__fetch_keys_request__pack(&fk, buf);
  rc = teex_rpc_sync_call(c, "sm.FetchKeys", buf, n, 15000, &resp, err);
  if (rc == 0) {
    Teex__Sm__FetchKeysResponse *r =
        teex__sm__fetch_keys_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    assert_int_equal(r->image_key.len, 32);
    memcpy(key, r->image_key.data, 32);
    snprintf(cid, 200, "%s", r->image_cid);
    teex__sm__fetch_keys_response__free_unpacked(r, NULL);
  }
out:
  free(buf);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  X509_free(x);
  EVP_PKEY_free(k);
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

static void copy_dir(const char *from, const char *to) {
  char *argv[] = {"/bin/cp", "-a", (char *)from, (char *)to, NULL};
  assert_int_equal(tu_run(argv, NULL, 0, NULL, NULL), 0);
}

static void test_state_in_ds(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t key[32];
  char cid[200], boot[700];
  /* First start: only the bootstrap set exists (the SM's identity). */
  start_sm(f, 1);
  assert_int_equal(sm_info(f), 0);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  snprintf(boot, sizeof boot, "%s/sm-bootstrap", f->t.dir);
  copy_dir(f->smstate, boot);
  start_sm(f, 1);
  assert_int_equal(sm_info(f), 0);
  if (deploy(f, 1, &err) != 0) {
    dump_sm_log(f);
    fail_msg("deploy: %s", err.msg);
  }
  uint8_t deployed[32];
  memcpy(deployed, f->image_key, 32);
  assert_int_equal(fetch(f, key, cid, &err), 0);
  assert_memory_equal(key, deployed, 32);

  /* Kill the SM, wipe its state but the bootstrap secret, restart. */
  tu_stop(f->pid, SIGKILL, 5000);
  f->pid = 0;
  tu_rmtree(f->smstate);
  char *mv[] = {"/bin/mv", boot, f->smstate, NULL};
  assert_int_equal(tu_run(mv, NULL, 0, NULL, NULL), 0);
  start_sm(f, 1);
  assert_int_equal(sm_info(f), 1); /* counted from TEE-DS */
  memset(key, 0, 32);
  if (fetch(f, key, cid, &err) != 0) {
    dump_sm_log(f);
    fail_msg("fetch after the wipe: %s", err.msg);
  }
  assert_memory_equal(key, deployed, 32);
  /* Positive control of the path: the canary went through the SM into
   * TEE-DS and came back. */
  assert_string_equal(cid, CANARY_CID);
  /* The same request again is a retry, answered as before. */
  memcpy(f->image_key, deployed, 32);

  /* The group down: a clear error, nothing lost; back: served again. */
  for (int i = 0; i < NET_N; i++)
    net_stop(&f->t, i, SIGKILL);
  int rc = fetch(f, key, cid, &err);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(err.msg, "unreachable"));
  uint8_t v1_hash[32];
  memcpy(v1_hash, f->hash, 32);
  rc = deploy(f, 2, &err);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(err.msg, "unreachable"));
  memcpy(f->hash, v1_hash, 32); /* fetch version 1 again */
  net_start_all(&f->t);
  net_leader(&f->t);
  for (int i = 0; i < 40 && (rc = fetch(f, key, cid, &err)) != 0; i++)
    net_sleep_ms(250);
  assert_int_equal(rc, 0);
  assert_memory_equal(key, deployed, 32);
  /* Version 2 was refused while the group was down: its first attempt now
   * is in sequence. */
  if (deploy(f, 2, &err) != 0)
    fail_msg("deploy v2: %s", err.msg);
  assert_int_equal(sm_info(f), 1);

  /* No canary, no image key in any replica's files ... */
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  f->pid = 0;
  for (int i = 0; i < NET_N; i++)
    net_stop(&f->t, i, SIGTERM);
  for (int i = 0; i < NET_N; i++) {
    char hit[512];
    assert_int_equal(tu_tree_contains(f->t.state[i], "canary-cid", 10, hit), 0);
    assert_int_equal(tu_tree_contains(f->t.state[i], deployed, 32, hit), 0);
  }
  /* ... while the same search finds it written in clear. */
  char ctl[700];
  snprintf(ctl, sizeof ctl, "%s/control", f->t.state[0]);
  assert_int_equal(tu_write_file(ctl, CANARY_CID, strlen(CANARY_CID)), 0);
  assert_int_equal(tu_tree_contains(f->t.state[0], "canary-cid", 10, NULL), 1);
}

static void test_migration(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t key[32], deployed[32];
  char cid[200];
  /* Without a group: the state is local. */
  start_sm(f, 0);
  sm_info(f);
  if (deploy(f, 1, &err) != 0)
    fail_msg("deploy: %s", err.msg);
  memcpy(deployed, f->image_key, 32);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  /* With one: migrated at start, served from TEE-DS. */
  start_sm(f, 1);
  assert_int_equal(sm_info(f), 1);
  assert_int_equal(fetch(f, key, cid, &err), 0);
  assert_memory_equal(key, deployed, 32);
  size_t ln;
  char *log = (char *)tu_read_file(f->log, &ln);
  assert_non_null(strstr(log, "state migrated to TEE-DS"));
  free(log);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  /* The local copies are gone: without the group the SM knows nothing. */
  start_sm(f, 0);
  assert_int_equal(sm_info(f), 0);
  assert_int_equal(fetch(f, key, cid, &err), TEEX_ENOTFOUND);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  /* And with it again, everything is there (a second start migrates
   * nothing). */
  start_sm(f, 1);
  assert_int_equal(sm_info(f), 1);
  assert_int_equal(fetch(f, key, cid, &err), 0);
  assert_memory_equal(key, deployed, 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_state_in_ds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
