/* The worker end to end, with real processes started as a user would:
 * `teex sm run`, `teex worker run`, a provider registering the risk-score
 * example (packed, encrypted, put in the local IPFS blockstore), a test
 * dispatcher key signing assignments, and the client library (and `teex
 * invoke`) running tasks through the worker. Refusals (unknown dispatcher,
 * another worker, expired, replayed), a tampered output caught by the
 * client, a service that raises while the worker serves on, a worker binary
 * the SM's policy does not allow, and a confidentiality check of every file
 * and log the daemons wrote. teex.kv: a 3-replica TEE-DS group (`teex ds
 * run`) that opens namespaces to workers only by the SM's grant; a service
 * counting its calls with teex.kv.incr gets 1, 2, 3 across tasks and a
 * second worker, and a stateless service's write raises PermissionError. */
#include "testutil.h"

#include "../ds/net_fixture.c"

#include "teex/client.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/ipfs.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/proto/worker.pb-c.h"
#include "teex/ratls.h"
#include "teex/rpc.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm.h"
#include "teex/tee.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SREG "0x5151515151515151515151515151515151515151"
#define EREG "0xe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"
#define SETTLE "0x5e77000000000000000000000000000000005e77"
#define CHAIN 31337
#define REMUNERATION 300
#define CANARY_IN "cAnArY-iN-7f3a9d1e"

struct fx {
  char *dir;  /* the network's data: SM, worker, IPFS, logs */
  char *user; /* the user's files (outside what is searched) */
  char ready[4096], log[4096], sm_policy_file[4096], enclave_policy[4096];
  char wready[4096], wlog[4096], wreg[4096], ipfs[4096];
  uint8_t root[32];
  int sm_pid, worker_pid;
  int sm_enclave_port, sm_client_port, worker_port;
  struct teex_tee_policy sm_policy;     /* what clients require of the SM */
  struct teex_tee_policy worker_policy; /* what users require of a worker */
  struct teex_ratls_verifier verifier;
  uint8_t disp_sk[32], disp_addr[20];
  uint8_t worker_addr[20];
  uint8_t service_id[32], image_hash[32], signing_key[20], provider[20];
  struct teex_domain settlement;
  char *expected; /* expected output (trimmed) */
  int sanitized;
  uint8_t sm_addr[20];
  struct net ds; /* the TEE-DS group workers reach for teex.kv */
  char ds_group[600];
  /* the teex.kv services: a call counter, and a stateless one */
  uint8_t kv_id[32], kv_hash[32], kv_key[20];
  uint8_t nokv_id[32], nokv_hash[32], nokv_key[20];
};

static struct fx *g;

static void measurement_of(const char *dir, const char *role, const char *exe,
                           uint8_t out[32]) {
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.data_dir = dir;
  c.role = role;
  c.exe_path = exe;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&c, &tee, &err) != 0)
    fail_msg("tee open: %s", err.msg);
  memcpy(out, teex_tee_self(tee)->mr_enclave, 32);
  teex_tee_close(tee);
}

static int read_port(const char *ready, const char *key) {
  struct teex_config c;
  struct teex_err err;
  uint64_t v = 0;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, ready, &err), 0);
  assert_int_equal(teex_config_get_u64(&c, key, 0, &v, &err), 0);
  teex_config_free(&c);
  return (int)v;
}

static void wait_ready(const char *ready, const char *log, const char *what) {
  if (tu_wait_file(ready, 20000) != 0) {
    size_t n;
    char *l = (char *)tu_read_file(log, &n);
    fail_msg("%s did not start: %s", what, l ? l : "");
  }
}

/* --attest-valid for the SM's next start (NULL: its default). */
static const char *g_sm_attest_valid;
/* --reattest for the next worker started (NULL: its default). */
static const char *g_worker_reattest;

static void start_sm(struct fx *f) {
  char state[4096];
  snprintf(state, sizeof state, "%s/sm", f->dir);
  unlink(f->ready);
  /* A restarted SM keeps its enclave port: workers know it by address. */
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", f->sm_enclave_port);
  char *argv[] = {(char *)tu_teex_bin(),
                  "sm",
                  "run",
                  "--data-dir",
                  f->dir,
                  "--state",
                  state,
                  "--listen",
                  listen,
                  "--client-listen",
                  "127.0.0.1:0",
                  "--policy",
                  f->enclave_policy,
                  "--service-registry",
                  SREG,
                  "--enclave-registry",
                  EREG,
                  "--ready-file",
                  f->ready,
                  NULL,
                  NULL,
                  NULL};
  if (g_sm_attest_valid != NULL) {
    argv[sizeof argv / sizeof *argv - 3] = "--attest-valid";
    argv[sizeof argv / sizeof *argv - 2] = (char *)g_sm_attest_valid;
  }
  f->sm_pid = tu_spawn(argv, f->log);
  assert_true(f->sm_pid > 0);
  wait_ready(f->ready, f->log, "sm");
  f->sm_client_port = read_port(f->ready, "client_port");
  f->sm_enclave_port = read_port(f->ready, "enclave_port");
}

/* ---- a stand-in dispatcher: receives dispatcher.Receipt over mutual
 * RA-TLS (this test process acts as an enclave in role "dispatcher") ---- */

struct fake_disp {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thread;
  struct teex_tee *tee;
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tee_policy policy; /* what it requires of workers */
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_server *srv;
  int port;
  pthread_mutex_t mu;
  int receipts;   /* well-formed, signed by the worker's key */
  int refuse;     /* answer every receipt TEEX_EINVAL (a dispatcher that
                     finds it invalid) */
  int refused;    /* receipts answered so */
  int registered; /* dispatcher.Register from the attested worker */
  int heartbeats;
  char endpoint[64];
  uint8_t last[32]; /* last task id */
  struct teex_domain settlement;
  uint8_t worker[20];
};

static struct fake_disp *g_disp;

static int take(const ProtobufCBinaryData *b, uint8_t *dst, size_t len) {
  if (b->len != len)
    return 0;
  memcpy(dst, b->data, len);
  return 1;
}

/* The worker's attested address must be the address it registers. */
static int peer_is(struct teex_rpc_call *call, const uint8_t addr[20]) {
  const struct teex_tee_identity *id =
      teex_ratls_channel_peer(teex_rpc_call_conn(call));
  return id != NULL && id->binding.has_secp256k1 &&
         memcmp(id->binding.eth_address, addr, 20) == 0;
}

static int peer_is_worker(struct fake_disp *d, struct teex_rpc_call *call) {
  return peer_is(call, d->worker);
}

static void on_receipt(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                       void *arg) {
  struct fake_disp *d = arg;
  Teex__Dispatcher__Receipt *m = teex__dispatcher__receipt__unpack(NULL, n, p);
  int ok = m != NULL && m->signature.len == 65;
  if (ok) {
    struct teex_receipt r;
    memset(&r, 0, sizeof r);
    ok = take(&m->task_id, r.task_id, 32) &&
         take(&m->service_id, r.service_id, 32) &&
         take(&m->image_hash, r.image_hash, 32) && take(&m->user, r.user, 20) &&
         take(&m->dispatcher, r.dispatcher, 20) &&
         take(&m->worker, r.worker, 20) && take(&m->provider, r.provider, 20) &&
         take(&m->input_commitment, r.input_commitment, 32) &&
         take(&m->output_commitment, r.output_commitment, 32) &&
         take(&m->price, r.price, 32) &&
         take(&m->worker_amount, r.worker_amount, 32) &&
         take(&m->provider_amount, r.provider_amount, 32);
    uint8_t dg[32], signer[20];
    teex_stmt_receipt_digest(&d->settlement, &r, dg);
    ok = ok && teex_stmt_recover(dg, m->signature.data, signer) == 0 &&
         memcmp(signer, d->worker, 20) == 0;
    ok = ok && peer_is_worker(d, call);
    pthread_mutex_lock(&d->mu);
    ok = ok && d->registered > 0;
    int refuse = ok && d->refuse;
    if (refuse)
      d->refused++;
    pthread_mutex_unlock(&d->mu);
    if (refuse) {
      teex__dispatcher__receipt__free_unpacked(m, NULL);
      teex_rpc_call_respond(call, TEEX_EINVAL,
                            "receipt split does not match the service listing",
                            NULL, 0);
      return;
    }
    if (ok) {
      pthread_mutex_lock(&d->mu);
      d->receipts++;
      memcpy(d->last, r.task_id, 32);
      pthread_mutex_unlock(&d->mu);
    }
  }
  if (m != NULL)
    teex__dispatcher__receipt__free_unpacked(m, NULL);
  Teex__Dispatcher__ReceiptResponse ack =
      TEEX__DISPATCHER__RECEIPT_RESPONSE__INIT;
  uint8_t buf[16];
  size_t len = teex__dispatcher__receipt_response__pack(&ack, buf);
  if (ok)
    teex_rpc_call_respond(call, 0, NULL, buf, len);
  else
    teex_rpc_call_respond(call, TEEX_EBADSIG, "bad receipt", NULL, 0);
}

static void on_register(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                        void *arg) {
  struct fake_disp *d = arg;
  Teex__Dispatcher__RegisterRequest *m =
      teex__dispatcher__register_request__unpack(NULL, n, p);
  pthread_mutex_lock(&d->mu);
  int ok = m != NULL && m->address.len == 20 && m->capacity == 2 &&
           peer_is(call, m->address.data);
  if (ok) {
    d->registered++;
    memcpy(d->worker, m->address.data, 20);
    snprintf(d->endpoint, sizeof d->endpoint, "%s", m->endpoint);
  }
  pthread_mutex_unlock(&d->mu);
  if (m != NULL)
    teex__dispatcher__register_request__free_unpacked(m, NULL);
  Teex__Dispatcher__RegisterResponse r =
      TEEX__DISPATCHER__REGISTER_RESPONSE__INIT;
  r.heartbeat_interval_ms = 200;
  uint8_t buf[64];
  size_t len = teex__dispatcher__register_response__pack(&r, buf);
  if (ok)
    teex_rpc_call_respond(call, 0, NULL, buf, len);
  else
    teex_rpc_call_respond(call, TEEX_EPERM, "bad registration", NULL, 0);
}

static void on_heartbeat(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                         void *arg) {
  struct fake_disp *d = arg;
  (void)p;
  (void)n;
  pthread_mutex_lock(&d->mu);
  d->heartbeats++;
  pthread_mutex_unlock(&d->mu);
  Teex__Dispatcher__HeartbeatResponse r =
      TEEX__DISPATCHER__HEARTBEAT_RESPONSE__INIT;
  uint8_t buf[16];
  size_t len = teex__dispatcher__heartbeat_response__pack(&r, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, len);
}

static void disp_stop(uv_async_t *h) {
  struct fake_disp *d = h->data;
  teex_rpc_server_close(d->srv);
  uv_close((uv_handle_t *)&d->stop, NULL);
}

static void *disp_thread(void *arg) {
  struct fake_disp *d = arg;
  uv_run(&d->loop, UV_RUN_DEFAULT);
  return NULL;
}

static struct fake_disp *fake_disp_start(struct fx *f, const char *policy) {
  struct fake_disp *d = calloc(1, sizeof *d);
  struct teex_err err;
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.data_dir = f->dir;
  c.role = "dispatcher";
  assert_int_equal(teex_tee_open(&c, &d->tee, &err), 0);
  assert_int_equal(
      teex_ratls_identity_new(d->tee, NULL, &d->key, &d->cert, &err), 0);
  d->policy = f->worker_policy;
  d->verifier.policy = &d->policy;
  struct teex_tls_config tc = {.cert = d->cert,
                               .key = d->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &d->verifier};
  assert_int_equal(teex_tls_ctx_new(&d->ctx, &tc, 1, &err), 0);
  assert_int_equal(uv_loop_init(&d->loop), 0);
  assert_int_equal(
      teex_rpc_server_new(&d->loop, d->ctx, "127.0.0.1:0", NULL, &d->srv, &err),
      0);
  teex_rpc_server_register(d->srv, "dispatcher.Receipt", on_receipt, d);
  teex_rpc_server_register(d->srv, "dispatcher.Register", on_register, d);
  teex_rpc_server_register(d->srv, "dispatcher.Heartbeat", on_heartbeat, d);
  d->port = teex_rpc_server_port(d->srv);
  uv_async_init(&d->loop, &d->stop, disp_stop);
  d->stop.data = d;
  pthread_mutex_init(&d->mu, NULL);
  d->settlement = f->settlement;
  /* Workers require this "dispatcher" to be this test binary. */
  char root_hex[65], m_hex[65], text[1024];
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(d->tee)->mr_enclave, 32, m_hex);
  int n = snprintf(text, sizeof text,
                   "[policy]\nallow_simulated = true\nroles = dispatcher\n"
                   "[roots]\nnet = %s\n[measurements]\ndispatcher = %s\n",
                   root_hex, m_hex);
  assert_int_equal(tu_write_file(policy, text, (size_t)n), 0);
  assert_int_equal(pthread_create(&d->thread, NULL, disp_thread, d), 0);
  return d;
}

static void fake_disp_free(struct fake_disp *d) {
  if (d == NULL)
    return;
  uv_async_send(&d->stop);
  pthread_join(d->thread, NULL);
  uv_loop_close(&d->loop);
  teex_tls_ctx_free(d->ctx);
  EVP_PKEY_free(d->key);
  X509_free(d->cert);
  teex_tee_close(d->tee);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

/* Waits (at most 10 s) until the stand-in dispatcher holds task id's
 * receipt; returns how many receipts it holds, or -1. */
static int wait_receipt(const uint8_t id[32]) {
  for (int i = 0; i < 1000; i++) {
    pthread_mutex_lock(&g_disp->mu);
    int n = g_disp->receipts;
    int same = memcmp(g_disp->last, id, 32) == 0;
    pthread_mutex_unlock(&g_disp->mu);
    if (same)
      return n;
    usleep(10000);
  }
  return -1;
}

/* Starts `exe worker run` with its own state, log and ready file. */
static int start_worker(struct fx *f, const char *exe, const char *tag,
                        char ready[4096], char log[4096]) {
  char state[4096], sm[64], disp[43], reg[4096];
  snprintf(state, sizeof state, "%s/%s-state", f->dir, tag);
  snprintf(ready, 4096, "%s/%s.ready", f->dir, tag);
  snprintf(log, 4096, "%s/%s.log", f->dir, tag);
  snprintf(reg, sizeof reg, "%s/%s.registration", f->dir, tag);
  snprintf(sm, sizeof sm, "127.0.0.1:%d", f->sm_enclave_port);
  teex_eth_address_hex(f->disp_addr, disp);
  unlink(ready);
  char *argv[] = {(char *)exe,
                  "worker",
                  "run",
                  "--data-dir",
                  f->dir,
                  "--state",
                  state,
                  "--listen",
                  "127.0.0.1:0",
                  "--sm",
                  sm,
                  "--sm-policy",
                  f->sm_policy_file,
                  "--ipfs-dir",
                  f->ipfs,
                  "--dispatcher",
                  disp,
                  "--settlement",
                  SETTLE,
                  "--remuneration",
                  "300",
                  "--slots",
                  "2",
                  "--registration-file",
                  reg,
                  "--ready-file",
                  ready,
                  "--ds-group",
                  f->ds_group,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
  char ep[64], pol[4096];
  size_t a = 0;
  while (argv[a] != NULL)
    a++;
  if (g_worker_reattest != NULL) {
    argv[a++] = "--reattest";
    argv[a++] = (char *)g_worker_reattest;
  }
  if (g_disp != NULL) {
    snprintf(ep, sizeof ep, "127.0.0.1:%d", g_disp->port);
    snprintf(pol, sizeof pol, "%s/dispatcher.policy", f->dir);
    argv[a++] = "--dispatcher-endpoint";
    argv[a++] = ep;
    argv[a++] = "--dispatcher-policy";
    argv[a++] = pol;
  }
  int pid = tu_spawn(argv, log);
  assert_true(pid > 0);
  wait_ready(ready, log, tag);
  return pid;
}

static void write_policies(struct fx *f) {
  char root_hex[65], w_hex[65], sm_hex[65], text[1024];
  uint8_t wm[32], smm[32];
  teex_hex_encode(f->root, 32, root_hex);
  measurement_of(f->dir, "worker", tu_teex_bin(), wm);
  measurement_of(f->dir, "sm", tu_teex_bin(), smm);
  teex_hex_encode(wm, 32, w_hex);
  teex_hex_encode(smm, 32, sm_hex);
  /* The SM lets in workers running the teex binary under test. */
  int n = snprintf(text, sizeof text,
                   "[policy]\nallow_simulated = true\nroles = worker, "
                   "dispatcher\n[roots]\nnet = %s\n[measurements]\nworker = "
                   "%s\n",
                   root_hex, w_hex);
  assert_int_equal(tu_write_file(f->enclave_policy, text, (size_t)n), 0);
  /* Workers require the SM to be the teex binary in role sm. */
  n = snprintf(text, sizeof text,
               "[policy]\nallow_simulated = true\nroles = sm\n[roots]\nnet = "
               "%s\n[measurements]\nsm = %s\n",
               root_hex, sm_hex);
  assert_int_equal(tu_write_file(f->sm_policy_file, text, (size_t)n), 0);
  teex_tee_policy_init(&f->sm_policy);
  teex_tee_policy_add_root(&f->sm_policy, f->root);
  teex_tee_policy_add_measurement(&f->sm_policy, smm);
  teex_tee_policy_add_role(&f->sm_policy, "sm");
  f->sm_policy.allow_simulated = 1;
  teex_tee_policy_init(&f->worker_policy);
  teex_tee_policy_add_root(&f->worker_policy, f->root);
  teex_tee_policy_add_measurement(&f->worker_policy, wm);
  teex_tee_policy_add_role(&f->worker_policy, "worker");
  f->worker_policy.allow_simulated = 1;
}

/* The provider: pack the example, encrypt it, store the ciphertext in the
 * local IPFS blockstore and register it with the SM. */
static void deploy_dir(struct fx *f, const char *svc_dir) {
  struct teex_err err;
  struct teex_image *img = NULL;
  uint8_t *archive = NULL;
  size_t archive_len = 0;
  if (teex_image_pack(svc_dir, &img, &archive, &archive_len, &err) != 0)
    fail_msg("pack: %s", err.msg);
  memcpy(f->image_hash, img->hash, 32);
  teex_image_free(img);
  uint8_t key[32], *ct = NULL;
  size_t ct_len = 0;
  teex_random(key, 32);
  assert_int_equal(
      teex_image_encrypt(key, archive, archive_len, &ct, &ct_len, &err), 0);
  teex_image_bytes_free(archive, archive_len);
  struct teex_ipfs_backend *ipfs = NULL;
  struct teex_cid cid;
  char cid_s[TEEX_CID_STR_SIZE];
  assert_int_equal(teex_ipfs_store_open(f->ipfs, &ipfs, &err), 0);
  assert_int_equal(teex_ipfs_add_buffer(ipfs, ct, ct_len, &cid, &err), 0);
  teex_ipfs_close(ipfs);
  teex_cid_to_string(&cid, cid_s);

  struct teex_tls_ctx *ctx = NULL;
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, &err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->sm_client_port);
  struct teex_rpc_sync *c = NULL;
  if (teex_rpc_sync_connect(addr, ctx, 5000, &c, &err) != 0)
    fail_msg("provider connect: %s", err.msg);
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 20, 0);
  assert_int_equal(teex_rpc_sync_call(c, "sm.Info", NULL, 0, 5000, &resp, &err),
                   0);
  Teex__Sm__InfoResponse *info =
      teex__sm__info_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(info);
  uint8_t sm_addr[20];
  memcpy(sm_addr, info->address.data, 20);
  memcpy(f->sm_addr, sm_addr, 20);
  teex__sm__info_response__free_unpacked(info, NULL);

  uint8_t psk[32], ppub[64], sig[65];
  teex_secp256k1_keypair(psk, ppub);
  teex_eth_address(ppub, f->provider);
  teex_random(f->service_id, 32);
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  memcpy(r.service_id, f->service_id, 32);
  r.version = 1;
  memcpy(r.provider, f->provider, 20);
  memcpy(r.image_hash, f->image_hash, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", cid_s);
  uint8_t digest[32];
  teex_sm_register_digest(&r, CHAIN, sm_addr, digest);
  assert_int_equal(teex_stmt_sign(psk, digest, sig), 0);
  Teex__Sm__RegisterServiceRequest req =
      TEEX__SM__REGISTER_SERVICE_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, f->service_id};
  req.version = 1;
  req.provider = (ProtobufCBinaryData){20, f->provider};
  req.image_hash = (ProtobufCBinaryData){32, f->image_hash};
  req.image_cid = cid_s;
  req.image_key = (ProtobufCBinaryData){32, key};
  req.image_ciphertext = (ProtobufCBinaryData){ct_len, ct};
  req.provider_sig = (ProtobufCBinaryData){65, sig};
  size_t n = teex__sm__register_service_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__register_service_request__pack(&req, buf);
  if (teex_rpc_sync_call(c, "sm.RegisterService", buf, n, 10000, &resp, &err))
    fail_msg("register: %s", err.msg);
  Teex__Sm__RegisterServiceResponse *reg =
      teex__sm__register_service_response__unpack(NULL, resp.len, resp.data);
  assert_non_null(reg);
  memcpy(f->signing_key, reg->signing_key.data, 20);
  teex__sm__register_service_response__free_unpacked(reg, NULL);
  free(buf);
  teex_image_bytes_free(ct, ct_len);
  teex_buf_free(&resp);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
}

/* A TEE-DS group whose replicas let in workers of the binary under test
 * (on the test's platform) only with grants signed by this SM. */
static void start_ds(struct fx *f) {
  struct net *t = &f->ds;
  net_prepare(t);
  char root_hex[65], w_hex[65], sm_hex[65], cpol[600], text[1024];
  uint8_t wm[32];
  teex_hex_encode(f->root, 32, root_hex);
  measurement_of(f->dir, "worker", tu_teex_bin(), wm);
  teex_hex_encode(wm, 32, w_hex);
  teex_hex_encode(teex_tee_self(t->enclave)->mr_enclave, 32, sm_hex);
  char ds_root[65];
  teex_hex_encode(t->root, 32, ds_root);
  int n = snprintf(text, sizeof text,
                   "[policy]\nroles = sm, worker\nallow_simulated = true\n"
                   "[roots]\nnet = %s\nds = %s\n[measurements]\nsm = %s\n"
                   "worker = %s\n",
                   root_hex, ds_root, sm_hex, w_hex);
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", t->dir);
  assert_int_equal(tu_write_file(cpol, text, (size_t)n), 0);
  static char signer[43];
  teex_eth_address_hex(f->sm_addr, signer);
  t->init_extra[0] = "--enclave";
  t->init_extra[1] = "worker=*";
  t->init_extra[2] = "--grant-signer";
  t->init_extra[3] = signer;
  net_init_states(t, NULL, NULL);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  snprintf(f->ds_group, sizeof f->ds_group, "%s/group.conf", t->state[0]);
}

/* Writes a one-file service that counts its calls in teex.kv into dir. */
static void kv_service(const char *dir, int stateless) {
  char path[4096];
  assert_int_equal(mkdir(dir, 0700), 0);
  snprintf(path, sizeof path, "%s/teex.toml", dir);
  char toml[512];
  int n = snprintf(toml, sizeof toml,
                   "[service]\nname = \"kv-counter\"\nversion = \"1.0.0\"\n"
                   "entry = \"main.py\"\nstyle = \"function\"\n"
                   "python = \"3.11\"\nstateless = %s\n",
                   stateless ? "true" : "false");
  assert_int_equal(tu_write_file(path, toml, (size_t)n), 0);
  static const char py[] = "import teex\n"
                           "def main(inp):\n"
                           "    try:\n"
                           "        return str(teex.kv.incr('calls'))\n"
                           "    except Exception as e:\n"
                           "        return type(e).__name__ + ': ' + str(e)\n";
  snprintf(path, sizeof path, "%s/main.py", dir);
  assert_int_equal(tu_write_file(path, py, sizeof py - 1), 0);
}

/* Deploys the two teex.kv services, keeping the main service current. */
static void deploy_kv(struct fx *f) {
  uint8_t id[32], hash[32], key[20], provider[20];
  memcpy(provider, f->provider, 20);
  memcpy(id, f->service_id, 32);
  memcpy(hash, f->image_hash, 32);
  memcpy(key, f->signing_key, 20);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/kv-counter", f->user);
  kv_service(dir, 0);
  deploy_dir(f, dir);
  memcpy(f->kv_id, f->service_id, 32);
  memcpy(f->kv_hash, f->image_hash, 32);
  memcpy(f->kv_key, f->signing_key, 20);
  snprintf(dir, sizeof dir, "%s/kv-stateless", f->user);
  kv_service(dir, 1);
  deploy_dir(f, dir);
  memcpy(f->nokv_id, f->service_id, 32);
  memcpy(f->nokv_hash, f->image_hash, 32);
  memcpy(f->nokv_key, f->signing_key, 20);
  memcpy(f->service_id, id, 32);
  memcpy(f->image_hash, hash, 32);
  memcpy(f->signing_key, key, 20);
  memcpy(f->provider, provider, 20);
}

static void deploy(struct fx *f) {
  char svc_dir[4096];
  snprintf(svc_dir, sizeof svc_dir, "%s/examples/services/risk-score/service",
           tu_source_dir());
  deploy_dir(f, svc_dir);
}

static char *trimmed(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    s[--n] = '\0';
  return s;
}

/* The example's input with a canary as the first applicant's id (it comes
 * back in the output), and the expected output likewise. */
static char *input_with_canary(void) {
  char path[4096];
  size_t n;
  snprintf(path, sizeof path, "%s/examples/services/risk-score/input.json",
           tu_source_dir());
  char *in = (char *)tu_read_file(path, &n);
  assert_non_null(in);
  char *at = strstr(in, "a-001");
  assert_non_null(at);
  size_t pre = (size_t)(at - in);
  char *out = malloc(n + sizeof CANARY_IN);
  memcpy(out, in, pre);
  memcpy(out + pre, CANARY_IN, strlen(CANARY_IN));
  memcpy(out + pre + strlen(CANARY_IN), at + 5, n - pre - 5 + 1);
  free(in);
  return out;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->sanitized =
      getenv("TEEX_SANITIZE") && strcmp(getenv("TEEX_SANITIZE"), "1") == 0;
  f->dir = tu_mkdtemp("workerd");
  f->user = tu_mkdtemp("workeru");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->ready, sizeof f->ready, "%s/sm.ready", f->dir);
  snprintf(f->log, sizeof f->log, "%s/sm.log", f->dir);
  snprintf(f->enclave_policy, sizeof f->enclave_policy, "%s/enclaves.policy",
           f->dir);
  snprintf(f->sm_policy_file, sizeof f->sm_policy_file, "%s/sm.policy", f->dir);
  snprintf(f->ipfs, sizeof f->ipfs, "%s/ipfs", f->dir);
  snprintf(f->wreg, sizeof f->wreg, "%s/w1.registration", f->dir);
  write_policies(f);
  f->verifier.policy = &f->sm_policy;
  uint8_t pub[64];
  teex_secp256k1_keypair(f->disp_sk, pub);
  teex_eth_address(pub, f->disp_addr);
  f->settlement.chain_id = CHAIN;
  assert_int_equal(
      teex_eth_address_parse(SETTLE, f->settlement.verifying_contract), 0);
  start_sm(f);
  deploy(f);
  deploy_kv(f);
  start_ds(f);
  char dpol[4096];
  snprintf(dpol, sizeof dpol, "%s/dispatcher.policy", f->dir);
  g_disp = fake_disp_start(f, dpol);
  f->worker_pid = start_worker(f, tu_teex_bin(), "w1", f->wready, f->wlog);
  f->worker_port = read_port(f->wready, "port");
  struct teex_config c;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->wready, &err), 0);
  assert_int_equal(teex_eth_address_parse(teex_config_get(&c, "address", ""),
                                          f->worker_addr),
                   0);
  teex_config_free(&c);
  char path[4096];
  size_t n;
  snprintf(path, sizeof path,
           "%s/examples/services/risk-score/expected_output.json",
           tu_source_dir());
  f->expected = (char *)tu_read_file(path, &n);
  assert_non_null(f->expected);
  /* The expected output carries the canary where the input does. */
  char *at = strstr(f->expected, "a-001");
  assert_non_null(at);
  char *e = malloc(n + sizeof CANARY_IN);
  size_t pre = (size_t)(at - f->expected);
  memcpy(e, f->expected, pre);
  memcpy(e + pre, CANARY_IN, strlen(CANARY_IN));
  memcpy(e + pre + strlen(CANARY_IN), at + 5, n - pre - 5 + 1);
  free(f->expected);
  f->expected = trimmed(e);
  g = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->worker_pid > 0)
    tu_stop(f->worker_pid, SIGKILL, 1000);
  if (f->sm_pid > 0)
    tu_stop(f->sm_pid, SIGKILL, 1000);
  fake_disp_free(g_disp);
  g_disp = NULL;
  net_close(&f->ds);
  tu_rmtree(f->dir);
  tu_rmtree(f->user);
  free(f->dir);
  free(f->user);
  free(f->expected);
  free(f);
  return 0;
}

static void assignment(struct fx *f, struct teex_assignment *a, uint8_t sig[65],
                       const uint8_t *signer_sk) {
  memset(a, 0, sizeof *a);
  a->chain_id = CHAIN;
  memcpy(a->dispatcher, f->disp_addr, 20);
  memcpy(a->worker, f->worker_addr, 20);
  memset(a->user, 0xab, 20);
  teex_random(a->task_id, 32);
  memcpy(a->service_id, f->service_id, 32);
  memcpy(a->image_hash, f->image_hash, 32);
  a->price = 1000;
  a->expires_at = (uint64_t)time(NULL) + 600;
  uint8_t d[32];
  teex_stmt_assignment_digest(a, d);
  assert_int_equal(teex_stmt_sign(signer_sk ? signer_sk : f->disp_sk, d, sig),
                   0);
}

static void resign(struct fx *f, const struct teex_assignment *a,
                   uint8_t sig[65]) {
  uint8_t d[32];
  teex_stmt_assignment_digest(a, d);
  assert_int_equal(teex_stmt_sign(f->disp_sk, d, sig), 0);
}

static struct teex_client_worker *connect_w(struct fx *f, int port) {
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  struct teex_client_worker *c = NULL;
  struct teex_err err;
  if (teex_client_connect(addr, &f->worker_policy, 5000, &c, &err) != 0)
    fail_msg("connect worker: %s", err.msg);
  return c;
}

static void expect(struct fx *f, struct teex_client_expect *ex) {
  memset(ex, 0, sizeof ex[0]);
  memcpy(ex->signing_key, f->signing_key, 20);
  ex->settlement = f->settlement;
}

static void test_invoke(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip(); /* the sandboxed executor does not run under ASan */
  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  uint8_t addr[20];
  teex_client_worker_address(c, addr);
  assert_memory_equal(addr, f->worker_addr, 20);
  /* The worker proves it holds the listed service key on this session
   * (its first Hello loads the service: keys from the SM, image from IPFS). */
  if (teex_client_hello(c, f->service_id, f->image_hash, f->signing_key,
                        &err) != 0)
    fail_msg("hello: %s", err.msg);
  /* A proof checked against another key is refused. */
  uint8_t other[20];
  memset(other, 0x11, 20);
  assert_int_equal(
      teex_client_hello(c, f->service_id, f->image_hash, other, &err),
      TEEX_EBADSIG);

  struct teex_assignment a;
  uint8_t sig[65];
  assignment(f, &a, sig, NULL);
  struct teex_client_expect ex;
  expect(f, &ex);
  char *input = input_with_canary();
  struct teex_client_result r;
  if (teex_client_run(c, &a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("run: %s", err.msg);
  char *out = strndup((char *)r.output, r.output_len);
  assert_string_equal(trimmed(out), f->expected);
  free(out);
  /* The receipt: split from the worker's remuneration, the provider from
   * the SM, signed by the attested worker key (checked by the library;
   * checked here again by hand). */
  teex_amount wa = 0, pa = 0;
  assert_int_equal(teex_amount_from_word(r.receipt.worker_amount, &wa), 0);
  assert_int_equal(teex_amount_from_word(r.receipt.provider_amount, &pa), 0);
  assert_true(wa == REMUNERATION);
  assert_true(pa == 1000 - REMUNERATION);
  assert_memory_equal(r.receipt.provider, f->provider, 20);
  uint8_t d[32], signer[20];
  teex_stmt_receipt_digest(&f->settlement, &r.receipt, d);
  assert_int_equal(teex_stmt_recover(d, r.receipt_sig, signer), 0);
  assert_memory_equal(signer, f->worker_addr, 20);

  /* The worker reported the receipt to its dispatcher (mutual RA-TLS),
   * signed by its enclave key (checked by the stand-in). */
  assert_true(wait_receipt(a.task_id) >= 1);
  /* It registered there (its attested address, its capacity and the
   * endpoint users reach it at) and sends heartbeats. */
  char want_ep[64];
  snprintf(want_ep, sizeof want_ep, "127.0.0.1:%d", f->worker_port);
  int hb = 0;
  for (int i = 0; i < 500 && hb < 2; i++) {
    pthread_mutex_lock(&g_disp->mu);
    hb = g_disp->heartbeats;
    pthread_mutex_unlock(&g_disp->mu);
    usleep(10000);
  }
  assert_true(hb >= 2);
  pthread_mutex_lock(&g_disp->mu);
  assert_true(g_disp->registered >= 1);
  assert_string_equal(g_disp->endpoint, want_ep);
  pthread_mutex_unlock(&g_disp->mu);

  /* A tampered output (or receipt) is caught by the client's checks. */
  struct teex_client_result t = r;
  t.output = malloc(r.output_len);
  memcpy(t.output, r.output, r.output_len);
  t.output[10] ^= 1;
  assert_int_equal(teex_client_check_result(&a, f->worker_addr, &ex,
                                            (uint8_t *)input, strlen(input), &t,
                                            &err),
                   TEEX_EBADSIG);
  t.output[10] ^= 1;
  assert_int_equal(teex_client_check_result(&a, f->worker_addr, &ex,
                                            (uint8_t *)input, strlen(input), &t,
                                            &err),
                   0);
  t.receipt.worker_amount[31] ^= 1;
  t.receipt.provider_amount[31] ^= 1; /* keeps the sum, changes the split */
  assert_int_not_equal(teex_client_check_result(&a, f->worker_addr, &ex,
                                                (uint8_t *)input, strlen(input),
                                                &t, &err),
                       0);
  free(t.output);

  /* The same assignment again is a replay. */
  struct teex_client_result r2;
  assert_int_equal(teex_client_run(c, &a, sig, &ex, (uint8_t *)input,
                                   strlen(input), &r2, &err),
                   TEEX_EREPLAY);
  teex_client_result_free(&r);
  free(input);

  /* The registration statement the operator submits on chain. */
  size_t n;
  char *reg = (char *)tu_read_file(f->wreg, &n);
  assert_non_null(reg);
  char hex[43];
  teex_eth_address_hex(f->worker_addr, hex);
  assert_non_null(strstr(reg, hex));
  assert_non_null(strstr(reg, "signature = 0x"));
  free(reg);
  teex_client_close(c);
}

/* A restarted worker keeps its enclave key, the sealed service (it serves
 * with the SM down) and its task ids (a replay is still refused). */
static void test_restart(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  struct teex_client_expect ex;
  expect(f, &ex);
  struct teex_assignment a;
  uint8_t sig[65];
  assignment(f, &a, sig, NULL);
  char *input = input_with_canary();
  struct teex_client_result r;
  if (teex_client_run(c, &a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("run: %s", err.msg);
  teex_client_result_free(&r);
  teex_client_close(c);
  assert_int_equal(tu_stop(f->worker_pid, SIGTERM, 10000), 0);
  assert_int_equal(tu_stop(f->sm_pid, SIGTERM, 10000), 0);
  f->sm_pid = 0;
  f->worker_pid = start_worker(f, tu_teex_bin(), "w1", f->wready, f->wlog);
  f->worker_port = read_port(f->wready, "port");
  c = connect_w(f, f->worker_port);
  uint8_t addr[20];
  teex_client_worker_address(c, addr);
  assert_memory_equal(addr, f->worker_addr, 20);
  if (teex_client_hello(c, f->service_id, f->image_hash, f->signing_key,
                        &err) != 0)
    fail_msg("hello with the SM down: %s", err.msg);
  assert_int_equal(teex_client_run(c, &a, sig, &ex, (uint8_t *)input,
                                   strlen(input), &r, &err),
                   TEEX_EREPLAY);
  assignment(f, &a, sig, NULL);
  if (teex_client_run(c, &a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("run after restart: %s", err.msg);
  assert_true(wait_receipt(a.task_id) >= 1);
  teex_client_result_free(&r);
  teex_client_close(c);
  free(input);
  start_sm(f); /* for the tests that follow */
}

static int refused_count(void) {
  pthread_mutex_lock(&g_disp->mu);
  int n = g_disp->refused;
  pthread_mutex_unlock(&g_disp->mu);
  return n;
}

static void run_one(struct fx *f, struct teex_client_worker *c,
                    struct teex_assignment *a) {
  struct teex_client_expect ex;
  expect(f, &ex);
  uint8_t sig[65];
  assignment(f, a, sig, NULL);
  char *input = input_with_canary();
  struct teex_client_result r;
  struct teex_err err;
  if (teex_client_run(c, a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("run: %s", err.msg);
  teex_client_result_free(&r);
  free(input);
}

/* A receipt the dispatcher refuses as invalid is set aside, not re-sent
 * with every later report or after a restart (it would get the same answer
 * forever); a valid one after it is reported as usual. */
static void test_receipt_refused(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  struct teex_assignment a;
  int before = refused_count();
  pthread_mutex_lock(&g_disp->mu);
  g_disp->refuse = 1;
  pthread_mutex_unlock(&g_disp->mu);
  run_one(f, c, &a);
  for (int i = 0; i < 1000 && refused_count() == before; i++)
    usleep(10000);
  assert_int_equal(refused_count(), before + 1);
  /* A second task's report does not carry the first one again. */
  run_one(f, c, &a);
  for (int i = 0; i < 1000 && refused_count() == before + 1; i++)
    usleep(10000);
  usleep(300000); /* room for a re-send of the first, if there were one */
  assert_int_equal(refused_count(), before + 2);
  pthread_mutex_lock(&g_disp->mu);
  g_disp->refuse = 0;
  pthread_mutex_unlock(&g_disp->mu);
  teex_client_close(c);
  /* Nor does a restart bring them back. */
  assert_int_equal(tu_stop(f->worker_pid, SIGTERM, 10000), 0);
  f->worker_pid = start_worker(f, tu_teex_bin(), "w1", f->wready, f->wlog);
  f->worker_port = read_port(f->wready, "port");
  c = connect_w(f, f->worker_port);
  run_one(f, c, &a);
  assert_true(wait_receipt(a.task_id) >= 1);
  assert_int_equal(refused_count(), before + 2);
  teex_client_close(c);
}

/* Refusals come before any work: no executor is involved. */
static void test_refusals(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  struct teex_client_expect ex;
  expect(f, &ex);
  struct teex_assignment a;
  uint8_t sig[65];
  struct teex_client_result r;
  const uint8_t in[] = "{}";

  /* Signed by a key that is not one of the worker's dispatchers. */
  uint8_t rogue[32], pub[64];
  teex_secp256k1_keypair(rogue, pub);
  assignment(f, &a, sig, rogue);
  teex_eth_address(pub, a.dispatcher);
  uint8_t d[32];
  teex_stmt_assignment_digest(&a, d);
  assert_int_equal(teex_stmt_sign(rogue, d, sig), 0);
  assert_int_equal(teex_client_run(c, &a, sig, &ex, in, 2, &r, &err),
                   TEEX_EBADSIG);
  assert_non_null(strstr(err.msg, "not a dispatcher of this worker"));
  /* Claiming the trusted dispatcher without its signature. */
  memcpy(a.dispatcher, f->disp_addr, 20);
  assert_int_equal(teex_client_run(c, &a, sig, &ex, in, 2, &r, &err),
                   TEEX_EBADSIG);

  /* An unknown service: the SM has no keys for it; the worker says so and
   * serves on. */
  uint8_t unknown[32];
  teex_random(unknown, 32);
  assert_int_equal(
      teex_client_hello(c, unknown, f->image_hash, f->signing_key, &err),
      TEEX_ENOTFOUND);

  /* Expired. */
  assignment(f, &a, sig, NULL);
  a.expires_at = (uint64_t)time(NULL) - 5;
  resign(f, &a, sig);
  assert_int_equal(teex_client_run(c, &a, sig, &ex, in, 2, &r, &err),
                   TEEX_EEXPIRED);

  /* For another worker: the client refuses to send it its input... */
  assignment(f, &a, sig, NULL);
  memset(a.worker, 0x77, 20);
  resign(f, &a, sig);
  assert_int_equal(teex_client_run(c, &a, sig, &ex, in, 2, &r, &err),
                   TEEX_EPERM);
  teex_client_close(c);
  /* ...and the worker refuses it too (a raw request, as a hostile client
   * would send). */
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  struct teex_ratls_verifier wv = {.policy = &f->worker_policy};
  tc.verify_arg = &wv;
  struct teex_tls_ctx *ctx;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, &err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->worker_port);
  struct teex_rpc_sync *rc = NULL;
  assert_int_equal(teex_rpc_sync_connect(addr, ctx, 5000, &rc, &err), 0);
  Teex__Worker__RunRequest req = TEEX__WORKER__RUN_REQUEST__INIT;
  uint8_t price[32], salt[32] = {0};
  teex_amount_word(a.price, price);
  req.chain_id = a.chain_id;
  req.dispatcher = (ProtobufCBinaryData){20, a.dispatcher};
  req.worker = (ProtobufCBinaryData){20, a.worker};
  req.user = (ProtobufCBinaryData){20, a.user};
  req.task_id = (ProtobufCBinaryData){32, a.task_id};
  req.service_id = (ProtobufCBinaryData){32, a.service_id};
  req.image_hash = (ProtobufCBinaryData){32, a.image_hash};
  req.price = (ProtobufCBinaryData){32, price};
  req.expires_at = a.expires_at;
  req.dispatcher_sig = (ProtobufCBinaryData){65, sig};
  req.input = (ProtobufCBinaryData){2, (uint8_t *)in};
  req.input_salt = (ProtobufCBinaryData){32, salt};
  uint8_t buf[1024];
  size_t n = teex__worker__run_request__pack(&req, buf);
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 20, 0);
  assert_int_equal(
      teex_rpc_sync_call(rc, "worker.Run", buf, n, 5000, &resp, &err),
      TEEX_EPERM);
  assert_non_null(strstr(err.msg, "assignment is for worker"));
  /* A malformed request is a clear error; the connection serves on. */
  assert_int_equal(teex_rpc_sync_call(rc, "worker.Run",
                                      (const uint8_t *)"\xff\xff", 2, 5000,
                                      &resp, &err),
                   TEEX_EFORMAT);
  assert_int_equal(
      teex_rpc_sync_call(rc, "teex.Health", NULL, 0, 5000, &resp, &err), 0);
  teex_buf_free(&resp);
  teex_rpc_sync_close(rc);
  teex_tls_ctx_free(ctx);
}

/* One task of service (id, hash, key) on the worker at port with address
 * addr; its output as a string (caller frees). */
static char *kv_task(struct fx *f, int port, const uint8_t addr[20],
                     const uint8_t id[32], const uint8_t hash[32],
                     const uint8_t key[20]) {
  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, port);
  struct teex_assignment a;
  uint8_t sig[65];
  assignment(f, &a, sig, NULL);
  memcpy(a.worker, addr, 20);
  memcpy(a.service_id, id, 32);
  memcpy(a.image_hash, hash, 32);
  resign(f, &a, sig);
  struct teex_client_expect ex;
  expect(f, &ex);
  memcpy(ex.signing_key, key, 20);
  struct teex_client_result r;
  if (teex_client_run(c, &a, sig, &ex, (const uint8_t *)"x", 1, &r, &err) != 0)
    fail_msg("run: %s", err.msg);
  char *out = strndup((char *)r.output, r.output_len);
  teex_client_result_free(&r);
  teex_client_close(c);
  return out;
}

/* teex.kv through the worker: the counter's state lives in TEE-DS, in the
 * service's own namespace, so it counts across tasks and across workers;
 * the stateless service's write is refused in the sandbox. */
static void test_kv(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  const char *want[] = {"1", "2", "3"};
  for (int i = 0; i < 3; i++) {
    char *out = kv_task(f, f->worker_port, f->worker_addr, f->kv_id, f->kv_hash,
                        f->kv_key);
    assert_string_equal(out, want[i]);
    free(out);
  }
  /* A second worker (its own enclave key, its own SM grant) goes on. */
  char ready[4096], log[4096];
  int pid = start_worker(f, tu_teex_bin(), "w2", ready, log);
  struct teex_config c;
  struct teex_err err;
  uint8_t w2[20];
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, ready, &err), 0);
  assert_int_equal(
      teex_eth_address_parse(teex_config_get(&c, "address", ""), w2), 0);
  teex_config_free(&c);
  assert_memory_not_equal(w2, f->worker_addr, 20);
  char *out =
      kv_task(f, read_port(ready, "port"), w2, f->kv_id, f->kv_hash, f->kv_key);
  assert_string_equal(out, "4");
  free(out);
  /* Restarted, it unseals the image it holds (no keys from the SM, so no
   * grant either) and asks the SM for a grant at the first teex.kv call. */
  assert_int_equal(tu_stop(pid, SIGTERM, 10000), 0);
  pid = start_worker(f, tu_teex_bin(), "w2", ready, log);
  out =
      kv_task(f, read_port(ready, "port"), w2, f->kv_id, f->kv_hash, f->kv_key);
  assert_string_equal(out, "5");
  free(out);
  assert_int_equal(tu_stop(pid, SIGTERM, 10000), 0);
  /* Stateless: the write never leaves the sandbox. */
  out = kv_task(f, f->worker_port, f->worker_addr, f->nokv_id, f->nokv_hash,
                f->nokv_key);
  assert_string_equal(out, "PermissionError: teex.kv: a stateless service "
                           "cannot write to teex.kv");
  free(out);
}

static void test_service_error(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  struct teex_client_expect ex;
  expect(f, &ex);
  struct teex_assignment a;
  uint8_t sig[65];
  struct teex_client_result r;
  /* Not JSON: the service raises; the user gets the error. */
  assignment(f, &a, sig, NULL);
  const char *bad = "this is not json";
  int rc = teex_client_run(c, &a, sig, &ex, (const uint8_t *)bad, strlen(bad),
                           &r, &err);
  assert_int_equal(rc, TEEX_EREMOTE);
  assert_non_null(strstr(err.msg, "error"));
  /* The worker serves on. */
  assignment(f, &a, sig, NULL);
  char *input = input_with_canary();
  if (teex_client_run(c, &a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("run after a failed task: %s", err.msg);
  teex_client_result_free(&r);
  free(input);
  teex_client_close(c);
}

/* A service that runs past its deadline or crashes its sandbox: the user
 * gets the error, and the worker serves on (the same executor slot, and
 * the other service). */
static void test_timeout_and_crash(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  char dir[4096], path[4096];
  snprintf(dir, sizeof dir, "%s/faulty", f->user);
  assert_int_equal(mkdir(dir, 0700), 0);
  static const char manifest[] =
      "[service]\nname = \"faulty\"\nversion = \"1.0.0\"\nentry = "
      "\"main.py\"\nstyle = \"function\"\npython = \"3.11\"\n"
      "[limits]\ncpu_ms = 5000\nwall_ms = 600\n";
  static const char code[] = "import os\n"
                             "def main(input):\n"
                             "    if input == b'loop':\n"
                             "        while True:\n"
                             "            pass\n"
                             "    if input == b'crash':\n"
                             "        os.abort()\n"
                             "    return b'fine'\n";
  snprintf(path, sizeof path, "%s/teex.toml", dir);
  assert_int_equal(tu_write_file(path, manifest, strlen(manifest)), 0);
  snprintf(path, sizeof path, "%s/main.py", dir);
  assert_int_equal(tu_write_file(path, code, strlen(code)), 0);
  uint8_t sid[32], ih[32], sk[20], prov[20];
  memcpy(sid, f->service_id, 32);
  memcpy(ih, f->image_hash, 32);
  memcpy(sk, f->signing_key, 20);
  memcpy(prov, f->provider, 20);
  deploy_dir(f, dir);

  struct teex_err err;
  struct teex_client_worker *c = connect_w(f, f->worker_port);
  struct teex_client_expect ex;
  expect(f, &ex);
  struct teex_assignment a;
  uint8_t sig[65];
  struct teex_client_result r;
  assignment(f, &a, sig, NULL);
  assert_int_equal(
      teex_client_run(c, &a, sig, &ex, (const uint8_t *)"loop", 4, &r, &err),
      TEEX_ETIMEDOUT);
  assignment(f, &a, sig, NULL);
  int rc =
      teex_client_run(c, &a, sig, &ex, (const uint8_t *)"crash", 5, &r, &err);
  assert_int_equal(rc, TEEX_EREMOTE);
  assert_non_null(strstr(err.msg, "crashed"));
  assignment(f, &a, sig, NULL);
  if (teex_client_run(c, &a, sig, &ex, (const uint8_t *)"ok", 2, &r, &err))
    fail_msg("after a timeout and a crash: %s", err.msg);
  assert_int_equal(r.output_len, 4);
  assert_memory_equal(r.output, "fine", 4);
  teex_client_result_free(&r);

  memcpy(f->service_id, sid, 32);
  memcpy(f->image_hash, ih, 32);
  memcpy(f->signing_key, sk, 20);
  memcpy(f->provider, prov, 20);
  expect(f, &ex);
  assignment(f, &a, sig, NULL);
  char *input = input_with_canary();
  if (teex_client_run(c, &a, sig, &ex, (uint8_t *)input, strlen(input), &r,
                      &err) != 0)
    fail_msg("the other service: %s", err.msg);
  teex_client_result_free(&r);
  free(input);
  teex_client_close(c);
}

static void test_cli_invoke(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  struct teex_assignment a;
  uint8_t sig[65];
  assignment(f, &a, sig, NULL);
  char path[4096], inpath[4096], pol[4096], rcpt[4096], text[2048];
  char d[43], w[43], u[43], tid[65], sid[65], ih[65], sh[131], addr[64];
  teex_eth_address_hex(a.dispatcher, d);
  teex_eth_address_hex(a.worker, w);
  teex_eth_address_hex(a.user, u);
  teex_hex_encode(a.task_id, 32, tid);
  teex_hex_encode(a.service_id, 32, sid);
  teex_hex_encode(a.image_hash, 32, ih);
  teex_hex_encode(sig, 65, sh);
  int n = snprintf(text, sizeof text,
                   "chain_id = %d\ndispatcher = %s\nworker = %s\nuser = %s\n"
                   "task_id = 0x%s\nservice_id = 0x%s\nimage_hash = 0x%s\n"
                   "price = 1000\nexpires_at = %llu\nsignature = 0x%s\n",
                   CHAIN, d, w, u, tid, sid, ih,
                   (unsigned long long)a.expires_at, sh);
  snprintf(path, sizeof path, "%s/assignment", f->user);
  assert_int_equal(tu_write_file(path, text, (size_t)n), 0);
  snprintf(inpath, sizeof inpath, "%s/input.json", f->user);
  char *input = input_with_canary();
  assert_int_equal(tu_write_file(inpath, input, strlen(input)), 0);
  free(input);
  /* The worker policy file the user trusts. */
  char root_hex[65], wm_hex[65];
  uint8_t wm[32];
  measurement_of(f->dir, "worker", tu_teex_bin(), wm);
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(wm, 32, wm_hex);
  snprintf(pol, sizeof pol, "%s/worker.policy", f->user);
  n = snprintf(text, sizeof text,
               "[policy]\nallow_simulated = true\nroles = worker\n[roots]\n"
               "net = %s\n[measurements]\nworker = %s\n",
               root_hex, wm_hex);
  assert_int_equal(tu_write_file(pol, text, (size_t)n), 0);
  snprintf(rcpt, sizeof rcpt, "%s/receipt", f->user);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->worker_port);
  char skey[43];
  teex_eth_address_hex(f->signing_key, skey);
  char *argv[] = {(char *)tu_teex_bin(),
                  "invoke",
                  "--assignment",
                  path,
                  "--worker",
                  addr,
                  "--worker-policy",
                  pol,
                  "--signing-key",
                  skey,
                  "--settlement",
                  SETTLE,
                  "--input",
                  inpath,
                  "--receipt",
                  rcpt,
                  NULL};
  char *out = NULL, *errs = NULL;
  int st = tu_run(argv, NULL, 0, &out, &errs);
  if (st != 0)
    fail_msg("teex invoke: %d %s", st, errs);
  assert_string_equal(trimmed(out), f->expected);
  free(out);
  free(errs);
  size_t len;
  char *r = (char *)tu_read_file(rcpt, &len);
  assert_non_null(r);
  assert_non_null(strstr(r, tid));
  free(r);
  /* The same assignment again: refused, with a clear message. */
  st = tu_run(argv, NULL, 0, &out, &errs);
  assert_int_equal(st, 1);
  assert_non_null(strstr(errs, "replayed"));
  free(out);
  free(errs);
}

/* A worker built from other code (the teex binary with bytes appended):
 * the SM's policy does not allow its measurement, so it gets no keys, says
 * why in its log, and the user gets an error. */
static void test_wrong_measurement(void **state) {
  struct fx *f = *state;
  char copy[4096], ready[4096], log[4096];
  snprintf(copy, sizeof copy, "%s/teex-modified", f->user);
  size_t n;
  uint8_t *bin = tu_read_file(tu_teex_bin(), &n);
  assert_non_null(bin);
  FILE *fp = fopen(copy, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(bin, 1, n, fp), n);
  fputs("appended: other code\n", fp);
  fclose(fp);
  free(bin);
  chmod(copy, 0755);
  int pid = start_worker(f, copy, "wbad", ready, log);
  int port = read_port(ready, "port");
  /* A user who would trust that measurement (to reach the key fetch). */
  uint8_t m[32];
  measurement_of(f->dir, "worker", copy, m);
  struct teex_tee_policy p = f->worker_policy;
  teex_tee_policy_add_measurement(&p, m);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  struct teex_client_worker *c = NULL;
  struct teex_err err;
  if (teex_client_connect(addr, &p, 5000, &c, &err) != 0)
    fail_msg("connect: %s", err.msg);
  int rc =
      teex_client_hello(c, f->service_id, f->image_hash, f->signing_key, &err);
  assert_int_not_equal(rc, 0);
  if (strstr(err.msg, "refuses this worker's evidence") == NULL)
    fail_msg("unclear error: %s", err.msg);
  teex_client_close(c);
  /* The users' usual policy refuses that worker outright. */
  assert_int_not_equal(
      teex_client_connect(addr, &f->worker_policy, 5000, &c, &err), 0);
  int st = tu_stop(pid, SIGTERM, 5000); /* a clean stop (no leak either) */
  char *l = (char *)tu_read_file(log, &n);
  assert_non_null(l);
  if (st != 0) {
    fprintf(stderr, "%s\n", l);
    fail_msg("worker exit status %d (its log above)", st);
  }
  char mh[65];
  teex_hex_encode(m, 32, mh);
  assert_non_null(strstr(l, "registration with the SM failed"));
  assert_non_null(strstr(l, "service unavailable: no keys or image"));
  assert_non_null(strstr(l, mh));
  free(l);
}

/* Evidence expires: under an SM whose attestation window is 4 s, a worker
 * started with --reattest off is refused its keys once the window since
 * its registration has passed (its log says why), while one re-attesting
 * every second loads the same service and proves its key. */
static void test_reattest(void **state) {
  struct fx *f = *state;
  if (f->sanitized)
    skip();
  struct teex_err err;
  assert_int_equal(tu_stop(f->sm_pid, SIGTERM, 5000), 0);
  g_sm_attest_valid = "4";
  start_sm(f);
  char rd_off[4096], log_off[4096], rd_on[4096], log_on[4096];
  g_worker_reattest = "off";
  int off = start_worker(f, tu_teex_bin(), "woff", rd_off, log_off);
  g_worker_reattest = "1";
  int on = start_worker(f, tu_teex_bin(), "won", rd_on, log_on);
  g_worker_reattest = NULL;
  sleep(6); /* past the window of woff's registration */
  struct teex_client_worker *c_on = connect_w(f, read_port(rd_on, "port"));
  if (teex_client_hello(c_on, f->service_id, f->image_hash, f->signing_key,
                        &err) != 0)
    fail_msg("re-attesting worker refused: %s", err.msg);
  teex_client_close(c_on);
  struct teex_client_worker *c_off = connect_w(f, read_port(rd_off, "port"));
  assert_int_not_equal(teex_client_hello(c_off, f->service_id, f->image_hash,
                                         f->signing_key, &err),
                       0);
  teex_client_close(c_off);
  assert_int_equal(tu_stop(off, SIGTERM, 5000), 0);
  assert_int_equal(tu_stop(on, SIGTERM, 5000), 0);
  size_t n;
  char *l = (char *)tu_read_file(log_off, &n);
  assert_non_null(l);
  if (strstr(l, "attestation expired at") == NULL)
    fail_msg("no clear reason in the worker's log: %s", l);
  assert_null(strstr(l, "re-attested with the SM"));
  free(l);
  l = (char *)tu_read_file(log_on, &n);
  assert_non_null(l);
  assert_non_null(strstr(l, "re-attested with the SM"));
  assert_null(strstr(l, "attestation expired"));
  free(l);
  /* The SM as the other tests had it. */
  assert_int_equal(tu_stop(f->sm_pid, SIGTERM, 5000), 0);
  g_sm_attest_valid = NULL;
  start_sm(f);
}

/* Run last: after every task above, the canary that was in the inputs and
 * outputs is in no file of the network's data directories nor in any log
 * (plain, hex, base64); a canary written in the clear is found. */
static void test_confidentiality(void **state) {
  struct fx *f = *state;
  /* Stop the worker cleanly so everything it buffers is on disk (and, in
   * the sanitizer build, so its leak check runs). */
  int st = tu_stop(f->worker_pid, SIGTERM, 10000);
  f->worker_pid = 0;
  if (st != 0) {
    size_t ln;
    char *l = (char *)tu_read_file(f->wlog, &ln);
    fprintf(stderr, "%s\n", l);
    fail_msg("worker exit status %d (its log above)", st);
  }
  if (f->sanitized)
    skip();
  char hit[512] = "";
  int found = tu_tree_contains(f->dir, CANARY_IN, strlen(CANARY_IN), hit);
  if (found != 0)
    fail_msg("canary found in %s", hit);
  /* The output's own fields are not in the clear either. */
  assert_int_equal(tu_tree_contains(f->dir, "credit nearly maxed out", 23, hit),
                   0);
  /* The worker's log shows it did run tasks. */
  size_t n;
  char *l = (char *)tu_read_file(f->wlog, &n);
  assert_non_null(strstr(l, "task done"));
  free(l);
  /* Positive control. */
  char p[4096];
  snprintf(p, sizeof p, "%s/w1-state/control", f->dir);
  assert_int_equal(tu_write_file(p, "x " CANARY_IN " y", strlen(CANARY_IN) + 4),
                   0);
  assert_int_equal(tu_tree_contains(f->dir, CANARY_IN, strlen(CANARY_IN), hit),
                   1);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invoke),
      cmocka_unit_test(test_restart),
      cmocka_unit_test(test_receipt_refused),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_kv),
      cmocka_unit_test(test_service_error),
      cmocka_unit_test(test_timeout_and_crash),
      cmocka_unit_test(test_cli_invoke),
      cmocka_unit_test(test_wrong_measurement),
      cmocka_unit_test(test_reattest),
      cmocka_unit_test(test_confidentiality),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
