/* The dispatcher daemon end to end: `teex dispatcher run` started as a user
 * would, with its chain in a local file. This test process plays two
 * workers (sim TEE, mutual RA-TLS) and the users (server-only RA-TLS):
 * registration bound to the attested address, signed assignments pointing at
 * a registered worker, refusals (bad signature, too little escrow, a
 * replayed authorisation, a price that is not the listed one, cumulative too
 * low with the base in the message), a retry with failed_worker that gets
 * another worker and is not charged twice, receipts checked and recorded
 * once, a silent worker dropped, the chain going away and coming back, a
 * restart keeping unsettled receipts, a crash between the chain confirming
 * a batch and its local record (found on chain after the restart, never
 * settled twice), and a settlement whose Merkle proof
 * checks against the batch root, with the content on IPFS. */
#include "testutil.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ipfs.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/settle.h"
#include "teex/statements.h"
#include "teex/tee.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SETTLEMENT "0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
#define PRICE 100
#define REMUNERATION 60

struct worker {
  uint8_t sk[32], pub[64], addr[20];
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
  char endpoint[32];
};

struct user {
  uint8_t sk[32], addr[20];
};

struct fx {
  char *dir;
  char ready[4096], log[4096], policy[4096], chain[4096], state[4096],
      ipfs[4096], conf[4096];
  uint8_t root[32];
  int pid;
  int worker_port, user_port;
  uint8_t dispatcher[20];
  struct teex_domain domain;
  struct teex_tee *tee; /* this process, measured as an allowed worker */
  struct teex_tee_policy d_policy; /* what users and workers require of it */
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *uctx;
  struct teex_rpc_sync *uc;
  struct worker w[3];
  struct user u1, u2, u3;
  uint8_t service[32], image[32], provider[20];
  struct teex_buf resp;
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

/* The test chain; with is_private the service is private and `allowed`
 * (may be NULL) is on its allow-list. */
static void write_chain_access(struct fx *f, unsigned long escrow1,
                               int is_private, const struct user *allowed) {
  char text[2048], s[65], i[65], p[43], u1[43], u2[43], u3[43], al[43];
  teex_hex_encode(f->service, 32, s);
  teex_hex_encode(f->image, 32, i);
  teex_eth_address_hex(f->provider, p);
  teex_eth_address_hex(f->u1.addr, u1);
  teex_eth_address_hex(f->u2.addr, u2);
  teex_eth_address_hex(f->u3.addr, u3);
  int n = snprintf(text, sizeof text,
                   "# test chain\nservice 0x%s 0x%s %d %d %s%s\n"
                   "escrow %s %lu 0\nescrow %s 50 0\nescrow %s 1000 0\n",
                   s, i, PRICE, REMUNERATION, p, is_private ? " private" : "",
                   u1, escrow1, u2, u3);
  if (allowed != NULL) {
    teex_eth_address_hex(allowed->addr, al);
    n += snprintf(text + n, sizeof text - (size_t)n, "allow 0x%s %s\n", s, al);
  }
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.new", f->chain);
  assert_int_equal(tu_write_file(tmp, text, (size_t)n), 0);
  assert_int_equal(rename(tmp, f->chain), 0);
}

static void write_chain(struct fx *f, unsigned long escrow1) {
  write_chain_access(f, escrow1, 0, NULL);
}

static void start(struct fx *f) {
  unlink(f->ready);
  char *argv[40];
  int n = 0;
  char *fixed[] = {(char *)tu_teex_bin(),
                   "dispatcher",
                   "run",
                   "--data-dir",
                   f->dir,
                   "--state",
                   f->state,
                   "--listen",
                   "127.0.0.1:0",
                   "--user-listen",
                   "127.0.0.1:0",
                   "--policy",
                   f->policy,
                   "--ipfs-dir",
                   f->ipfs,
                   "--heartbeat-timeout",
                   "1500",
                   "--settle-receipts",
                   "2",
                   "--settle-interval",
                   "600000",
                   "--ready-file",
                   f->ready};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    argv[n++] = fixed[i];
  if (f->conf[0] != '\0') {
    argv[n++] = "--chain-conf";
    argv[n++] = f->conf;
    argv[n++] = "--worker-recheck";
    argv[n++] = "1";
  } else {
    argv[n++] = "--settlement";
    argv[n++] = SETTLEMENT;
    argv[n++] = "--chain-file";
    argv[n++] = f->chain;
  }
  argv[n] = NULL;
  f->pid = tu_spawn(argv, f->log);
  assert_true(f->pid > 0);
  if (tu_wait_file(f->ready, 10000) != 0) {
    size_t ln;
    char *log = (char *)tu_read_file(f->log, &ln);
    fail_msg("dispatcher did not start: %s", log ? log : "");
  }
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->ready, &err), 0);
  uint64_t v;
  assert_int_equal(teex_config_get_u64(&c, "worker_port", 0, &v, &err), 0);
  f->worker_port = (int)v;
  assert_int_equal(teex_config_get_u64(&c, "user_port", 0, &v, &err), 0);
  f->user_port = (int)v;
  const char *a = teex_config_get(&c, "address", NULL);
  assert_non_null(a);
  assert_int_equal(teex_eth_address_parse(a, f->dispatcher), 0);
  teex_config_free(&c);
  /* the user connection, verifying the dispatcher's evidence */
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&f->uctx, &tc, 0, &err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->user_port);
  if (teex_rpc_sync_connect(addr, f->uctx, 5000, &f->uc, &err) != 0)
    fail_msg("user connect: %s", err.msg);
}

static void stop_conns(struct fx *f);

static void stop(struct fx *f) {
  stop_conns(f);
  assert_int_equal(tu_stop(f->pid, SIGTERM, 5000), 0);
  f->pid = 0;
}

/* Closes the test's connections to the daemon. */
static void stop_conns(struct fx *f) {
  teex_rpc_sync_close(f->uc);
  teex_tls_ctx_free(f->uctx);
  f->uc = NULL;
  f->uctx = NULL;
  for (int i = 0; i < 3; i++) {
    teex_rpc_sync_close(f->w[i].c);
    teex_tls_ctx_free(f->w[i].ctx);
    f->w[i].c = NULL;
    f->w[i].ctx = NULL;
  }
}

static void worker_connect(struct fx *f, struct worker *w) {
  struct teex_err err;
  if (w->key == NULL) {
    struct teex_ratls_keys keys = {.secp256k1_pub = w->pub};
    assert_int_equal(
        teex_ratls_identity_new(f->tee, &keys, &w->key, &w->cert, &err), 0);
  }
  struct teex_tls_config tc = {.cert = w->cert,
                               .key = w->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  assert_int_equal(teex_tls_ctx_new(&w->ctx, &tc, 0, &err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->worker_port);
  if (teex_rpc_sync_connect(addr, w->ctx, 5000, &w->c, &err) != 0)
    fail_msg("worker connect: %s", err.msg);
}

static int call(struct teex_rpc_sync *c, struct fx *f, const char *method,
                const ProtobufCMessage *m, struct teex_err *err) {
  size_t n = m ? protobuf_c_message_get_packed_size(m) : 0;
  uint8_t *buf = malloc(n ? n : 1);
  if (m)
    protobuf_c_message_pack(m, buf);
  teex_err_clear(err);
  int rc = teex_rpc_sync_call(c, method, buf, n, 5000, &f->resp, err);
  free(buf);
  return rc;
}

static int do_register(struct fx *f, struct worker *w, const uint8_t *addr,
                       struct teex_err *err) {
  Teex__Dispatcher__RegisterRequest r =
      TEEX__DISPATCHER__REGISTER_REQUEST__INIT;
  r.address = (ProtobufCBinaryData){20, (uint8_t *)addr};
  r.capacity = 2;
  r.endpoint = w->endpoint;
  return call(w->c, f, "dispatcher.Register", &r.base, err);
}

static int heartbeat(struct fx *f, struct worker *w, struct teex_err *err) {
  Teex__Dispatcher__HeartbeatRequest r =
      TEEX__DISPATCHER__HEARTBEAT_REQUEST__INIT;
  ProtobufCBinaryData warm = {32, f->image};
  r.n_warm_images = 1;
  r.warm_images = &warm;
  return call(w->c, f, "dispatcher.Heartbeat", &r.base, err);
}

struct task {
  struct teex_payment_auth a;
  uint8_t ids[32 * 4]; /* its datasets, sent with Submit */
  size_t nids;
};

static void make_auth(struct fx *f, const struct user *u, struct task *t,
                      teex_amount price, teex_amount cumulative) {
  memset(t, 0, sizeof *t);
  memcpy(t->a.user, u->addr, 20);
  memcpy(t->a.dispatcher, f->dispatcher, 20);
  teex_random(t->a.task_id, 32);
  memcpy(t->a.service_id, f->service, 32);
  memcpy(t->a.image_hash, f->image, 32);
  teex_keccak256("", 0, t->a.datasets_hash);
  t->a.price = price;
  t->a.cumulative = cumulative;
  uint8_t d[32];
  teex_stmt_payment_auth_digest(&f->domain, &t->a, d);
  assert_int_equal(teex_stmt_sign(u->sk, d, t->a.sig), 0);
}

/* Submits; on success *as is the unpacked response (caller frees). */
static int submit(struct fx *f, const struct task *t, const uint8_t *failed,
                  Teex__Dispatcher__SubmitResponse **as, struct teex_err *err) {
  uint8_t price[32], cum[32];
  teex_amount_word(t->a.price, price);
  teex_amount_word(t->a.cumulative, cum);
  Teex__Dispatcher__Authorization a = TEEX__DISPATCHER__AUTHORIZATION__INIT;
  a.user = (ProtobufCBinaryData){20, (uint8_t *)t->a.user};
  a.dispatcher = (ProtobufCBinaryData){20, (uint8_t *)t->a.dispatcher};
  a.task_id = (ProtobufCBinaryData){32, (uint8_t *)t->a.task_id};
  a.service_id = (ProtobufCBinaryData){32, (uint8_t *)t->a.service_id};
  a.image_hash = (ProtobufCBinaryData){32, (uint8_t *)t->a.image_hash};
  a.datasets_hash = (ProtobufCBinaryData){32, (uint8_t *)t->a.datasets_hash};
  a.price = (ProtobufCBinaryData){32, price};
  a.cumulative = (ProtobufCBinaryData){32, cum};
  a.signature = (ProtobufCBinaryData){65, (uint8_t *)t->a.sig};
  Teex__Dispatcher__SubmitRequest r = TEEX__DISPATCHER__SUBMIT_REQUEST__INIT;
  r.auth = &a;
  if (t->nids > 0)
    r.dataset_ids = (ProtobufCBinaryData){32 * t->nids, (uint8_t *)t->ids};
  if (failed)
    r.failed_worker = (ProtobufCBinaryData){20, (uint8_t *)failed};
  int rc = call(f->uc, f, "dispatcher.Submit", &r.base, err);
  if (rc == 0 && as != NULL) {
    *as = teex__dispatcher__submit_response__unpack(NULL, f->resp.len,
                                                    f->resp.data);
    assert_non_null(*as);
  }
  return rc;
}

/* Checks the assignment's signature and that it names one of our workers;
 * returns that worker's index. */
static int check_assignment(struct fx *f, const struct task *t,
                            const Teex__Dispatcher__SubmitResponse *r) {
  const Teex__Dispatcher__Assignment *m = r->assignment;
  assert_non_null(m);
  assert_int_equal(m->worker.len, 20);
  assert_int_equal(m->signature.len, 65);
  struct teex_assignment a;
  memset(&a, 0, sizeof a);
  a.chain_id = m->chain_id;
  memcpy(a.dispatcher, m->dispatcher.data, 20);
  memcpy(a.worker, m->worker.data, 20);
  memcpy(a.user, m->user.data, 20);
  memcpy(a.task_id, m->task_id.data, 32);
  memcpy(a.service_id, m->service_id.data, 32);
  memcpy(a.image_hash, m->image_hash.data, 32);
  assert_int_equal(teex_amount_from_word(m->price.data, &a.price), 0);
  a.expires_at = m->expires_at;
  if (t->nids > 0) { /* the signed assignment names the datasets */
    assert_int_equal(m->datasets_hash.len, 32);
    memcpy(a.datasets_hash, m->datasets_hash.data, 32);
    assert_memory_equal(a.datasets_hash, t->a.datasets_hash, 32);
  } else {
    assert_int_equal(m->datasets_hash.len, 0);
  }
  assert_true(a.price == t->a.price);
  assert_memory_equal(a.task_id, t->a.task_id, 32);
  assert_memory_equal(a.user, t->a.user, 20);
  assert_int_equal(a.chain_id, 31337);
  assert_true(a.expires_at > (uint64_t)time(NULL));
  uint8_t d[32], who[20];
  teex_stmt_assignment_digest(&a, d);
  assert_int_equal(teex_stmt_recover(d, m->signature.data, who), 0);
  assert_memory_equal(who, f->dispatcher, 20);
  for (int i = 0; i < 3; i++)
    if (memcmp(f->w[i].addr, a.worker, 20) == 0) {
      assert_string_equal(m->endpoint, f->w[i].endpoint);
      return i;
    }
  fail_msg("assignment names an unknown worker");
  return -1;
}

static void make_receipt(struct fx *f, const struct task *t,
                         const struct worker *w, struct teex_receipt *r,
                         uint8_t sig[65], teex_amount worker_amount) {
  memset(r, 0, sizeof *r);
  memcpy(r->task_id, t->a.task_id, 32);
  memcpy(r->service_id, f->service, 32);
  memcpy(r->image_hash, f->image, 32);
  memcpy(r->user, t->a.user, 20);
  memcpy(r->dispatcher, f->dispatcher, 20);
  memcpy(r->worker, w->addr, 20);
  memcpy(r->provider, f->provider, 20);
  teex_random(r->input_commitment, 32);
  teex_random(r->output_commitment, 32);
  teex_amount_word(t->a.price, r->price);
  teex_amount_word(worker_amount, r->worker_amount);
  teex_amount_word(t->a.price - worker_amount, r->provider_amount);
  uint8_t d[32];
  teex_stmt_receipt_digest(&f->domain, r, d);
  assert_int_equal(teex_stmt_sign(w->sk, d, sig), 0);
}

static int send_receipt(struct fx *f, struct worker *w,
                        const struct teex_receipt *r, const uint8_t sig[65],
                        struct teex_err *err) {
  Teex__Dispatcher__Receipt m = TEEX__DISPATCHER__RECEIPT__INIT;
  m.task_id = (ProtobufCBinaryData){32, (uint8_t *)r->task_id};
  m.service_id = (ProtobufCBinaryData){32, (uint8_t *)r->service_id};
  m.image_hash = (ProtobufCBinaryData){32, (uint8_t *)r->image_hash};
  m.user = (ProtobufCBinaryData){20, (uint8_t *)r->user};
  m.dispatcher = (ProtobufCBinaryData){20, (uint8_t *)r->dispatcher};
  m.worker = (ProtobufCBinaryData){20, (uint8_t *)r->worker};
  m.provider = (ProtobufCBinaryData){20, (uint8_t *)r->provider};
  m.input_commitment =
      (ProtobufCBinaryData){32, (uint8_t *)r->input_commitment};
  m.output_commitment =
      (ProtobufCBinaryData){32, (uint8_t *)r->output_commitment};
  m.price = (ProtobufCBinaryData){32, (uint8_t *)r->price};
  m.worker_amount = (ProtobufCBinaryData){32, (uint8_t *)r->worker_amount};
  m.provider_amount = (ProtobufCBinaryData){32, (uint8_t *)r->provider_amount};
  m.signature = (ProtobufCBinaryData){65, (uint8_t *)sig};
  Teex__Dispatcher__DataShare ds[4], *dsp[4];
  assert_true(r->nshares <= 4);
  for (size_t i = 0; i < r->nshares; i++) {
    teex__dispatcher__data_share__init(&ds[i]);
    ds[i].dataset_id =
        (ProtobufCBinaryData){32, (uint8_t *)r->shares[i].dataset_id};
    ds[i].payee = (ProtobufCBinaryData){20, (uint8_t *)r->shares[i].payee};
    ds[i].amount = (ProtobufCBinaryData){32, (uint8_t *)r->shares[i].amount};
    dsp[i] = &ds[i];
  }
  m.n_data_shares = r->nshares;
  m.data_shares = r->nshares ? dsp : NULL;
  return call(w->c, f, "dispatcher.Receipt", &m.base, err);
}

static Teex__Dispatcher__StatusResponse *status(struct fx *f,
                                                const struct task *t) {
  Teex__Dispatcher__StatusRequest r = TEEX__DISPATCHER__STATUS_REQUEST__INIT;
  r.task_id = (ProtobufCBinaryData){32, (uint8_t *)t->a.task_id};
  struct teex_err err;
  if (call(f->uc, f, "dispatcher.Status", &r.base, &err) != 0)
    fail_msg("status: %s", err.msg);
  Teex__Dispatcher__StatusResponse *s =
      teex__dispatcher__status_response__unpack(NULL, f->resp.len,
                                                f->resp.data);
  assert_non_null(s);
  return s;
}

static teex_amount base_of(struct fx *f, const struct user *u) {
  Teex__Dispatcher__BaseRequest r = TEEX__DISPATCHER__BASE_REQUEST__INIT;
  r.user = (ProtobufCBinaryData){20, (uint8_t *)u->addr};
  struct teex_err err;
  if (call(f->uc, f, "dispatcher.Base", &r.base, &err) != 0)
    fail_msg("base: %s", err.msg);
  Teex__Dispatcher__BaseResponse *b =
      teex__dispatcher__base_response__unpack(NULL, f->resp.len, f->resp.data);
  assert_non_null(b);
  teex_amount v;
  assert_int_equal(teex_amount_from_word(b->cumulative_base.data, &v), 0);
  assert_memory_equal(b->dispatcher.data, f->dispatcher, 20);
  teex__dispatcher__base_response__free_unpacked(b, NULL);
  return v;
}

static int log_has(struct fx *f, const char *s) {
  size_t n;
  char *log = (char *)tu_read_file(f->log, &n);
  int found = log != NULL && strstr(log, s) != NULL;
  free(log);
  return found;
}

static struct fx *common_setup(void) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("dspd");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->ready, sizeof f->ready, "%s/d.ready", f->dir);
  snprintf(f->log, sizeof f->log, "%s/d.log", f->dir);
  snprintf(f->policy, sizeof f->policy, "%s/policy.conf", f->dir);
  snprintf(f->chain, sizeof f->chain, "%s/chain.txt", f->dir);
  snprintf(f->state, sizeof f->state, "%s/state", f->dir);
  snprintf(f->ipfs, sizeof f->ipfs, "%s/ipfs", f->dir);
  teex_buf_init(&f->resp, 1 << 20, 0);
  f->tee = open_tee(f->dir, "worker", NULL);
  char root_hex[65], meas_hex[65];
  teex_hex_encode(f->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(f->tee)->mr_enclave, 32, meas_hex);
  char text[1024];
  int n = snprintf(text, sizeof text,
                   "[policy]\nallow_simulated = true\nroles = worker\n"
                   "[roots]\nnet = %s\n[measurements]\nworker = %s\n",
                   root_hex, meas_hex);
  assert_int_equal(tu_write_file(f->policy, text, (size_t)n), 0);
  /* Users and workers pin the dispatcher: the teex binary in its role. */
  struct teex_tee *view = open_tee(f->dir, "dispatcher", tu_teex_bin());
  teex_tee_policy_init(&f->d_policy);
  teex_tee_policy_add_root(&f->d_policy, f->root);
  teex_tee_policy_add_measurement(&f->d_policy,
                                  teex_tee_self(view)->mr_enclave);
  teex_tee_policy_add_role(&f->d_policy, "dispatcher");
  f->d_policy.allow_simulated = 1;
  teex_tee_close(view);
  f->verifier.policy = &f->d_policy;
  f->domain.chain_id = 31337;
  assert_int_equal(
      teex_eth_address_parse(SETTLEMENT, f->domain.verifying_contract), 0);
  uint8_t pub[64];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(teex_secp256k1_keypair(f->w[i].sk, f->w[i].pub), 0);
    teex_eth_address(f->w[i].pub, f->w[i].addr);
    snprintf(f->w[i].endpoint, sizeof f->w[i].endpoint, "127.0.0.1:%d",
             9100 + i);
  }
  struct user *us[] = {&f->u1, &f->u2, &f->u3};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(teex_secp256k1_keypair(us[i]->sk, pub), 0);
    teex_eth_address(pub, us[i]->addr);
  }
  memset(f->service, 0x5e, 32);
  memset(f->image, 0x1a, 32);
  memset(f->provider, 0x9e, 20);
  return f;
}

static int setup(void **state) {
  struct fx *f = common_setup();
  write_chain(f, 1000);
  start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  teex_rpc_sync_close(f->uc);
  teex_tls_ctx_free(f->uctx);
  for (int i = 0; i < 3; i++) {
    teex_rpc_sync_close(f->w[i].c);
    teex_tls_ctx_free(f->w[i].ctx);
    X509_free(f->w[i].cert);
    EVP_PKEY_free(f->w[i].key);
  }
  if (f->pid > 0)
    tu_stop(f->pid, SIGKILL, 1000);
  teex_tee_close(f->tee);
  teex_buf_free(&f->resp);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void test_dispatch_settle_restart(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;

  /* Before any worker: a clear error, nothing reserved. */
  struct task t0;
  make_auth(f, &f->u1, &t0, PRICE, PRICE);
  assert_int_equal(submit(f, &t0, NULL, NULL, &err), TEEX_EAGAIN);

  /* Workers register; the address must be the attested one. */
  for (int i = 0; i < 2; i++)
    worker_connect(f, &f->w[i]);
  assert_int_equal(do_register(f, &f->w[0], f->w[1].addr, &err), TEEX_EATTEST);
  for (int i = 0; i < 2; i++)
    if (do_register(f, &f->w[i], f->w[i].addr, &err) != 0)
      fail_msg("register: %s", err.msg);

  /* A first task: assigned, signed, pointing at a registered worker. */
  assert_true(base_of(f, &f->u1) == 0);
  struct task t1;
  make_auth(f, &f->u1, &t1, PRICE, PRICE);
  if (submit(f, &t1, NULL, &as, &err) != 0)
    fail_msg("submit: %s", err.msg);
  int first = check_assignment(f, &t1, as);
  assert_false(as->retry);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  assert_true(base_of(f, &f->u1) == PRICE);

  /* Refusals. */
  struct task bad = t1;
  teex_random(bad.a.task_id, 32); /* signature no longer covers it */
  bad.a.cumulative = 2 * PRICE;
  assert_int_equal(submit(f, &bad, NULL, NULL, &err), TEEX_EBADSIG);
  struct task poor;
  make_auth(f, &f->u2, &poor, PRICE, PRICE); /* escrow 50 */
  assert_int_equal(submit(f, &poor, NULL, NULL, &err), TEEX_EFUNDS);
  assert_non_null(strstr(err.msg, "deposit 50 wei more"));
  struct task cheap;
  make_auth(f, &f->u1, &cheap, PRICE / 2, PRICE + PRICE / 2);
  assert_int_equal(submit(f, &cheap, NULL, NULL, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "listed price"));
  struct task replay;
  make_auth(f, &f->u1, &replay, PRICE, 2 * PRICE);
  memcpy(replay.a.task_id, t1.a.task_id, 32);
  uint8_t d[32];
  teex_stmt_payment_auth_digest(&f->domain, &replay.a, d);
  assert_int_equal(teex_stmt_sign(f->u1.sk, d, replay.a.sig), 0);
  assert_int_equal(submit(f, &replay, NULL, NULL, &err), TEEX_EREPLAY);
  struct task low;
  make_auth(f, &f->u1, &low, PRICE, PRICE); /* ignores the first task */
  assert_int_equal(submit(f, &low, NULL, NULL, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "cumulative = 100 + price"));

  /* The same authorisation again is a retry; with failed_worker it goes to
   * the other worker, and the base does not grow. */
  assert_int_equal(submit(f, &t1, NULL, &as, &err), 0);
  assert_true(as->retry);
  assert_int_equal(check_assignment(f, &t1, as), first);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  if (submit(f, &t1, f->w[first].addr, &as, &err) != 0)
    fail_msg("retry: %s", err.msg);
  int second = check_assignment(f, &t1, as);
  assert_int_not_equal(second, first);
  assert_true(as->retry);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  assert_true(base_of(f, &f->u1) == PRICE);

  /* Receipts: a wrong split, a forged signature and a stranger are refused;
   * the right one is recorded once. */
  struct teex_receipt r;
  uint8_t sig[65];
  make_receipt(f, &t1, &f->w[second], &r, sig, REMUNERATION - 1);
  assert_int_equal(send_receipt(f, &f->w[second], &r, sig, &err), TEEX_EINVAL);
  make_receipt(f, &t1, &f->w[second], &r, sig, REMUNERATION);
  uint8_t forged[65];
  memcpy(forged, sig, 65);
  forged[10] ^= 1;
  assert_int_equal(send_receipt(f, &f->w[second], &r, forged, &err),
                   TEEX_EBADSIG);
  worker_connect(f, &f->w[2]);
  assert_int_equal(do_register(f, &f->w[2], f->w[2].addr, &err), 0);
  struct teex_receipt r3;
  uint8_t sig3[65];
  make_receipt(f, &t1, &f->w[2], &r3, sig3, REMUNERATION);
  assert_int_equal(send_receipt(f, &f->w[2], &r3, sig3, &err), TEEX_EPERM);
  if (send_receipt(f, &f->w[second], &r, sig, &err) != 0)
    fail_msg("receipt: %s", err.msg);
  Teex__Dispatcher__ReceiptResponse *rr =
      teex__dispatcher__receipt_response__unpack(NULL, f->resp.len,
                                                 f->resp.data);
  assert_true(rr->recorded);
  teex__dispatcher__receipt_response__free_unpacked(rr, NULL);
  assert_int_equal(send_receipt(f, &f->w[second], &r, sig, &err), 0);
  rr = teex__dispatcher__receipt_response__unpack(NULL, f->resp.len,
                                                  f->resp.data);
  assert_false(rr->recorded);
  teex__dispatcher__receipt_response__free_unpacked(rr, NULL);
  /* the first worker (failed) reporting too: the task is charged once */
  struct teex_receipt rf;
  uint8_t sigf[65];
  make_receipt(f, &t1, &f->w[first], &rf, sigf, REMUNERATION);
  assert_int_equal(send_receipt(f, &f->w[first], &rf, sigf, &err),
                   TEEX_EREPLAY);
  assert_true(base_of(f, &f->u1) == PRICE);
  Teex__Dispatcher__StatusResponse *st = status(f, &t1);
  assert_string_equal(st->state, "earned");
  assert_non_null(st->receipt);
  assert_memory_equal(st->worker.data, f->w[second].addr, 20);
  teex__dispatcher__status_response__free_unpacked(st, NULL);

  /* A silent worker is dropped: keep w[second] alive, let the others go. */
  for (int i = 0; i < 10; i++) {
    assert_int_equal(heartbeat(f, &f->w[second], &err), 0);
    usleep(250000);
  }
  assert_int_equal(heartbeat(f, &f->w[first], &err), TEEX_ENOTFOUND);
  assert_int_equal(heartbeat(f, &f->w[2], &err), TEEX_ENOTFOUND);
  assert_int_equal(heartbeat(f, &f->w[second], &err), 0);
  assert_true(log_has(f, "worker dropped"));

  /* The chain going away: a clear error, and the daemon carries on. */
  char moved[4200];
  snprintf(moved, sizeof moved, "%s.away", f->chain);
  assert_int_equal(rename(f->chain, moved), 0);
  struct task t2;
  make_auth(f, &f->u1, &t2, PRICE, 2 * PRICE);
  assert_int_equal(submit(f, &t2, NULL, NULL, &err), TEEX_ECHAIN);
  assert_non_null(strstr(err.msg, "chain file"));
  assert_int_equal(rename(moved, f->chain), 0);
  usleep(100000);
  assert_int_equal(heartbeat(f, &f->w[second], &err), 0);
  assert_true(log_has(f, "cannot read the service listing"));

  /* Restart: the unsettled receipt survives, so does the registration. */
  stop(f);
  start(f);
  st = status(f, &t1);
  assert_string_equal(st->state, "earned");
  assert_non_null(st->receipt);
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  assert_true(base_of(f, &f->u1) == PRICE);
  worker_connect(f, &f->w[second]);
  assert_int_equal(heartbeat(f, &f->w[second], &err), 0);

  /* A second task completes: two receipts wait, the batch settles. */
  if (submit(f, &t2, NULL, &as, &err) != 0)
    fail_msg("submit 2: %s", err.msg);
  assert_int_equal(check_assignment(f, &t2, as), second);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  make_receipt(f, &t2, &f->w[second], &r, sig, REMUNERATION);
  if (send_receipt(f, &f->w[second], &r, sig, &err) != 0)
    fail_msg("receipt 2: %s", err.msg);
  st = status(f, &t1);
  assert_string_equal(st->state, "settled");
  assert_int_equal(st->batch_id.len, 32);
  assert_int_equal(st->root.len, 32);
  assert_non_null(st->receipt);
  /* the proof takes this receipt's leaf to the batch root */
  struct teex_receipt got;
  memset(&got, 0, sizeof got);
  memcpy(got.task_id, st->receipt->task_id.data, 32);
  memcpy(got.service_id, st->receipt->service_id.data, 32);
  memcpy(got.image_hash, st->receipt->image_hash.data, 32);
  memcpy(got.user, st->receipt->user.data, 20);
  memcpy(got.dispatcher, st->receipt->dispatcher.data, 20);
  memcpy(got.worker, st->receipt->worker.data, 20);
  memcpy(got.provider, st->receipt->provider.data, 20);
  memcpy(got.input_commitment, st->receipt->input_commitment.data, 32);
  memcpy(got.output_commitment, st->receipt->output_commitment.data, 32);
  memcpy(got.price, st->receipt->price.data, 32);
  memcpy(got.worker_amount, st->receipt->worker_amount.data, 32);
  memcpy(got.provider_amount, st->receipt->provider_amount.data, 32);
  uint8_t leaf[32], proof[32 * TEEX_SETTLE_MAX_PROOF];
  teex_settle_receipt_leaf(&got, leaf);
  assert_int_equal(st->n_proof, 1);
  for (size_t i = 0; i < st->n_proof; i++)
    memcpy(proof + 32 * i, st->proof[i].data, 32);
  assert_true(
      teex_settle_merkle_verify(leaf, proof, st->n_proof, st->root.data));
  proof[0] ^= 1;
  assert_false(
      teex_settle_merkle_verify(leaf, proof, st->n_proof, st->root.data));
  /* the batch content is on IPFS and carries the root */
  struct teex_ipfs_backend *ipfs;
  assert_int_equal(teex_ipfs_store_open(f->ipfs, &ipfs, &err), 0);
  struct teex_cid cid;
  assert_int_equal(teex_cid_parse(st->cid, &cid, &err), 0);
  struct teex_buf content;
  teex_buf_init(&content, 1 << 20, 0);
  assert_int_equal(teex_ipfs_cat_buffer(ipfs, &cid, &content, &err), 0);
  assert_true(content.len > 32 * 10);
  assert_memory_equal(content.data + 32 * 6, st->root.data, 32);
  /* and an independent auditor (ethers) accepts it: magic, leaves, root,
   * worker and user signatures, splits, credits */
  {
    char file[4200], script[4200], roothex[65], *o = NULL, *eo = NULL;
    snprintf(file, sizeof file, "%s/batch.bin", f->dir);
    snprintf(script, sizeof script, "%s/contracts/js/audit_batch.mjs",
             tu_source_dir());
    assert_int_equal(tu_write_file(file, content.data, content.len), 0);
    char *argv[] = {"/usr/bin/env", "node", script, file, NULL};
    if (tu_run(argv, NULL, 0, &o, &eo) != 0)
      fail_msg("audit: %s", eo ? eo : "");
    teex_hex_encode(st->root.data, 32, roothex);
    assert_non_null(strstr(o, roothex));
    assert_non_null(strstr(o, "\"receipts\":2"));
    free(o);
    free(eo);
  }
  teex_buf_free(&content);
  teex_ipfs_close(ipfs);
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  /* the chain debited the user exactly two prices, once */
  size_t n;
  char *chain = (char *)tu_read_file(f->chain, &n);
  char u1[43], line[128];
  teex_eth_address_hex(f->u1.addr, u1);
  snprintf(line, sizeof line, "escrow %s 800 200", u1);
  assert_non_null(strstr(chain, line));
  assert_non_null(strstr(chain, "batch 0x"));
  free(chain);
  assert_true(log_has(f, "batch settled"));
  /* a settled task's authorisation cannot be used again */
  assert_int_equal(submit(f, &t1, NULL, NULL, &err), TEEX_EPOLICY);
  assert_true(base_of(f, &f->u1) == 2 * PRICE);
}

/* ---- the crash gap: the chain confirmed a batch and the dispatcher died
 * before recording it. Restarted, it finds the batch on chain by its id,
 * records it (the tasks are settled, with proofs) and never settles it
 * again; the lost answer to the last receipt, reported again, is
 * acknowledged. ---- */

/* A private service: the dispatcher asks the chain who may invoke it on
 * every Submit and refuses anyone else before the ledger (nothing
 * reserved, the base unchanged); a change on chain applies to the next
 * Submit. */
static void test_private_service(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;
  worker_connect(f, &f->w[0]);
  if (do_register(f, &f->w[0], f->w[0].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  write_chain_access(f, 1000, 1, &f->u3);

  /* u1 is not on the allow-list: refused, with the reason, nothing
   * reserved. */
  struct task t1;
  make_auth(f, &f->u1, &t1, PRICE, PRICE);
  assert_int_equal(submit(f, &t1, NULL, NULL, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "is private"));
  assert_non_null(strstr(err.msg, "allow-list"));
  assert_true(base_of(f, &f->u1) == 0);
  assert_true(log_has(f, "is private"));

  /* u3 is allowed: assigned and reserved. */
  struct task t3;
  make_auth(f, &f->u3, &t3, PRICE, PRICE);
  if (submit(f, &t3, NULL, &as, &err) != 0)
    fail_msg("allowed user refused: %s", err.msg);
  check_assignment(f, &t3, as);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  assert_true(base_of(f, &f->u3) == PRICE);

  /* Taken off the list: the next task is refused, the base stays. */
  write_chain_access(f, 1000, 1, NULL);
  struct task t3b;
  make_auth(f, &f->u3, &t3b, PRICE, 2 * PRICE);
  assert_int_equal(submit(f, &t3b, NULL, NULL, &err), TEEX_EPERM);
  assert_true(base_of(f, &f->u3) == PRICE);

  /* Public again: u1's very authorisation is now accepted. */
  write_chain_access(f, 1000, 0, NULL);
  if (submit(f, &t1, NULL, &as, &err) != 0)
    fail_msg("public service refused: %s", err.msg);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  assert_true(base_of(f, &f->u1) == PRICE);
}

static void test_crash_after_settle(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;
  stop(f);
  /* the fault point: exit right after settleBatch is confirmed */
  setenv("TEEX_FAULT_EXIT_AFTER_SETTLE", "1", 1);
  start(f);
  unsetenv("TEEX_FAULT_EXIT_AFTER_SETTLE");
  worker_connect(f, &f->w[0]);
  if (do_register(f, &f->w[0], f->w[0].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  struct task t[2];
  struct teex_receipt r[2];
  uint8_t sig[2][65];
  for (int i = 0; i < 2; i++) {
    make_auth(f, &f->u1, &t[i], PRICE, (teex_amount)(i + 1) * PRICE);
    if (submit(f, &t[i], NULL, &as, &err) != 0)
      fail_msg("submit: %s", err.msg);
    assert_int_equal(check_assignment(f, &t[i], as), 0);
    teex__dispatcher__submit_response__free_unpacked(as, NULL);
    make_receipt(f, &t[i], &f->w[0], &r[i], sig[i], REMUNERATION);
    int rc = send_receipt(f, &f->w[0], &r[i], sig[i], &err);
    if (i == 0 && rc != 0)
      fail_msg("receipt: %s", err.msg);
    /* the second completes the batch: the daemon settles and exits, so
     * its answer may never come */
  }
  int code = -1;
  for (int i = 0; i < 500 && code < 0; i++) {
    int ws;
    if (waitpid(f->pid, &ws, WNOHANG) == f->pid)
      code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
    else
      usleep(10000);
  }
  assert_int_equal(code, 70);
  f->pid = 0;
  stop_conns(f);
  size_t n;
  char *chain = (char *)tu_read_file(f->chain, &n);
  char u1[43], line[128];
  teex_eth_address_hex(f->u1.addr, u1);
  snprintf(line, sizeof line, "escrow %s 800 200", u1);
  assert_non_null(strstr(chain, line));
  char *b = strstr(chain, "batch 0x");
  assert_non_null(b);
  free(chain);
  Teex__Dispatcher__StatusResponse *st;

  /* Restarted: the batch is found on chain and recorded. */
  start(f);
  for (int i = 0; i < 100 && !log_has(f, "batch found on chain"); i++)
    usleep(50000);
  assert_true(log_has(f, "batch found on chain after a restart; recorded"));
  for (int i = 0; i < 2; i++) {
    st = status(f, &t[i]);
    assert_string_equal(st->state, "settled");
    assert_int_equal(st->batch_id.len, 32);
    uint8_t leaf[32], proof[32 * TEEX_SETTLE_MAX_PROOF];
    teex_settle_receipt_leaf(&r[i], leaf);
    for (size_t k = 0; k < st->n_proof; k++)
      memcpy(proof + 32 * k, st->proof[k].data, 32);
    assert_true(
        teex_settle_merkle_verify(leaf, proof, st->n_proof, st->root.data));
    teex__dispatcher__status_response__free_unpacked(st, NULL);
  }
  /* settled once: one batch, two prices */
  chain = (char *)tu_read_file(f->chain, &n);
  assert_non_null(strstr(chain, line));
  b = strstr(chain, "batch 0x");
  assert_non_null(b);
  assert_null(strstr(b + 1, "batch 0x"));
  free(chain);
  assert_true(base_of(f, &f->u1) == 2 * PRICE);
  /* the worker reports the last receipt again: acknowledged, not recorded */
  worker_connect(f, &f->w[0]);
  if (do_register(f, &f->w[0], f->w[0].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  if (send_receipt(f, &f->w[0], &r[1], sig[1], &err) != 0)
    fail_msg("receipt again: %s", err.msg);
  Teex__Dispatcher__ReceiptResponse *rr =
      teex__dispatcher__receipt_response__unpack(NULL, f->resp.len,
                                                 f->resp.data);
  assert_non_null(rr);
  assert_false(rr->recorded);
  teex__dispatcher__receipt_response__free_unpacked(rr, NULL);
  /* another worker cannot claim it */
  worker_connect(f, &f->w[1]);
  if (do_register(f, &f->w[1], f->w[1].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  assert_int_equal(send_receipt(f, &f->w[1], &r[1], sig[1], &err),
                   TEEX_ENOTFOUND);
}

/* ---- the fair queue: every slot busy, a Submit waits ---- */

struct waiter {
  struct fx *f;
  struct task t;
  int rc;
  int worker;
  char msg[256];
};

static void *wait_submit(void *arg) {
  struct waiter *w = arg;
  struct fx *f = w->f;
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->verifier};
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  struct teex_err err;
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 20, 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", f->user_port);
  w->rc = teex_tls_ctx_new(&ctx, &tc, 0, &err);
  if (w->rc == 0)
    w->rc = teex_rpc_sync_connect(addr, ctx, 5000, &c, &err);
  if (w->rc == 0) {
    uint8_t price[32], cum[32];
    teex_amount_word(w->t.a.price, price);
    teex_amount_word(w->t.a.cumulative, cum);
    Teex__Dispatcher__Authorization a = TEEX__DISPATCHER__AUTHORIZATION__INIT;
    a.user = (ProtobufCBinaryData){20, w->t.a.user};
    a.dispatcher = (ProtobufCBinaryData){20, w->t.a.dispatcher};
    a.task_id = (ProtobufCBinaryData){32, w->t.a.task_id};
    a.service_id = (ProtobufCBinaryData){32, w->t.a.service_id};
    a.image_hash = (ProtobufCBinaryData){32, w->t.a.image_hash};
    a.datasets_hash = (ProtobufCBinaryData){32, w->t.a.datasets_hash};
    a.price = (ProtobufCBinaryData){32, price};
    a.cumulative = (ProtobufCBinaryData){32, cum};
    a.signature = (ProtobufCBinaryData){65, w->t.a.sig};
    Teex__Dispatcher__SubmitRequest r = TEEX__DISPATCHER__SUBMIT_REQUEST__INIT;
    r.auth = &a;
    r.deadline = w->worker == -2 ? (uint64_t)time(NULL) + 1 : 0;
    uint8_t buf[1024];
    size_t n = teex__dispatcher__submit_request__pack(&r, buf);
    w->rc =
        teex_rpc_sync_call(c, "dispatcher.Submit", buf, n, 10000, &resp, &err);
  }
  w->worker = -1;
  if (w->rc == 0) {
    Teex__Dispatcher__SubmitResponse *as =
        teex__dispatcher__submit_response__unpack(NULL, resp.len, resp.data);
    for (int i = 0; as && as->assignment && i < 3; i++)
      if (as->assignment->worker.len == 20 &&
          memcmp(as->assignment->worker.data, f->w[i].addr, 20) == 0)
        w->worker = i;
    teex__dispatcher__submit_response__free_unpacked(as, NULL);
  } else {
    snprintf(w->msg, sizeof w->msg, "%s", err.msg);
  }
  teex_buf_free(&resp);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  return NULL;
}

static void test_queue(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;
  worker_connect(f, &f->w[0]);
  assert_int_equal(do_register(f, &f->w[0], f->w[0].addr, &err), 0);
  /* capacity 2: two tasks take both slots */
  struct task t[2];
  for (int i = 0; i < 2; i++) {
    make_auth(f, &f->u1, &t[i], PRICE, PRICE * (teex_amount)(i + 1));
    assert_int_equal(submit(f, &t[i], NULL, &as, &err), 0);
    teex__dispatcher__submit_response__free_unpacked(as, NULL);
  }
  /* a third waits in the queue until a receipt frees a slot */
  struct waiter w3 = {.f = f, .worker = 0};
  make_auth(f, &f->u1, &w3.t, PRICE, 3 * PRICE);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, wait_submit, &w3), 0);
  usleep(400000);
  Teex__Dispatcher__StatusResponse *st = status(f, &w3.t);
  assert_string_equal(st->state, "queued");
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  struct teex_receipt r;
  uint8_t sig[65];
  make_receipt(f, &t[0], &f->w[0], &r, sig, REMUNERATION);
  assert_int_equal(send_receipt(f, &f->w[0], &r, sig, &err), 0);
  pthread_join(th, NULL);
  if (w3.rc != 0)
    fail_msg("queued submit: %d %s", w3.rc, w3.msg);
  assert_int_equal(w3.worker, 0);
  /* a fourth with a deadline one second away times out, clearly */
  struct waiter w4 = {.f = f, .worker = -2};
  make_auth(f, &f->u1, &w4.t, PRICE, 4 * PRICE);
  assert_int_equal(pthread_create(&th, NULL, wait_submit, &w4), 0);
  for (int i = 0; i < 12; i++) { /* keep the worker alive meanwhile */
    assert_int_equal(heartbeat(f, &f->w[0], &err), 0);
    usleep(250000);
  }
  pthread_join(th, NULL);
  assert_int_equal(w4.rc, TEEX_ETIMEDOUT);
  assert_non_null(strstr(w4.msg, "deadline"));
}

/* ---- against the real contracts on anvil ---- */

/* Accounts of anvil's default mnemonic. */
static const char *anvil_keys[] = {
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
};
enum { DEPLOYER, USER, PROVIDER, STRANGER, NACCT };

struct anvil {
  pid_t pid;
  char url[64];
  struct teex_eth_rpc *rpc;
  struct teex_eth_sender *snd[NACCT];
  uint8_t sk[NACCT][32], addr[NACCT][20];
  uint8_t sm_sk[32], sm_addr[20];
  struct teex_chain_addrs ca;
};
static struct anvil an;

static int free_port(void) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  socklen_t sl = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static void start_anvil(void) {
  char bin[1024], port_s[16];
  int port = free_port();
  struct teex_err e;
  snprintf(bin, sizeof bin,
           "%s/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
           tu_source_dir());
  if (access(bin, X_OK) != 0)
    fail_msg("anvil missing at %s: run scripts/install-deps.sh", bin);
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(an.url, sizeof an.url, "http://127.0.0.1:%d", port);
  an.pid = fork();
  if (an.pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(bin, "anvil", "--host", "127.0.0.1", "--port", port_s, "--accounts",
          "4", (char *)NULL);
    _exit(127);
  }
  struct teex_eth_rpc_opts o = {.timeout_ms = 20000, .retries = -1};
  assert_int_equal(teex_eth_rpc_open(an.url, &o, &an.rpc, &e), 0);
  teex_chain_use_errors(an.rpc);
  for (int i = 0; i < 200; i++) {
    uint64_t id;
    if (teex_eth_chain_id(an.rpc, &id, &e) == 0)
      return;
    usleep(50000);
  }
  fail_msg("anvil did not come up: %s", e.msg);
}

static int setup_anvil(void **state) {
  struct fx *f = common_setup();
  struct teex_err e;
  uint8_t pub[64], digest[32], sig[65];
  memset(&an, 0, sizeof an);
  start_anvil();
  for (int i = 0; i < NACCT; i++) {
    size_t n;
    assert_int_equal(teex_hex_decode(anvil_keys[i], an.sk[i], 32, &n), 0);
    assert_int_equal(teex_secp256k1_public(an.sk[i], pub), 0);
    teex_eth_address(pub, an.addr[i]);
    if (teex_eth_sender_new(an.rpc, an.sk[i], NULL, &an.snd[i], &e) != 0)
      fail_msg("sender: %s", e.msg);
  }
  assert_int_equal(teex_secp256k1_keypair(an.sm_sk, pub), 0);
  teex_eth_address(pub, an.sm_addr);
  struct teex_chain_deploy_opts o = {.withdrawal_delay = 3600};
  memcpy(o.service_manager, an.sm_addr, 20);
  if (teex_chain_deploy(an.snd[DEPLOYER], &o, &an.ca, &e) != 0)
    fail_msg("deploy: %s", e.msg);
  f->domain.chain_id = an.ca.chain_id;
  memcpy(f->domain.verifying_contract, an.ca.settlement, 20);
  /* the provider lists the service with the SM's statement */
  struct teex_chain_service svc;
  memset(&svc, 0, sizeof svc);
  memcpy(svc.service_id, f->service, 32);
  memcpy(svc.provider, an.addr[PROVIDER], 20);
  memcpy(f->provider, an.addr[PROVIDER], 20);
  svc.version = 1;
  memset(svc.signing_key, 0x5a, 20);
  memset(svc.encryption_key, 0xe5, 32);
  memcpy(svc.image_hash, f->image, 32);
  svc.price = 1000;
  svc.remuneration = 700;
  snprintf(svc.metadata_cid, sizeof svc.metadata_cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  struct teex_service_listing l;
  memset(&l, 0, sizeof l);
  memcpy(l.service_id, svc.service_id, 32);
  memcpy(l.provider, svc.provider, 20);
  l.version = 1;
  memcpy(l.signing_key, svc.signing_key, 20);
  memcpy(l.encryption_key, svc.encryption_key, 32);
  memcpy(l.image_hash, svc.image_hash, 32);
  struct teex_domain d = {.chain_id = an.ca.chain_id};
  memcpy(d.verifying_contract, an.ca.service_registry, 20);
  teex_stmt_service_listing_digest(&d, &l, digest);
  assert_int_equal(teex_stmt_sign(an.sm_sk, digest, sig), 0);
  if (teex_chain_list_service(an.snd[PROVIDER], &an.ca, &svc, sig, 0, &e) != 0)
    fail_msg("list: %s", e.msg);
  snprintf(f->conf, sizeof f->conf, "%s/chain.conf", f->dir);
  assert_int_equal(
      teex_chain_conf_save(f->conf, an.url, an.ca.chain_id, &an.ca, &e), 0);
  start(f);
  /* the dispatcher enclave registered on chain (the SM's statement) and
   * funded for gas by its operator */
  uint8_t meas[32];
  memset(meas, 0x6d, 32);
  uint64_t now = (uint64_t)time(NULL);
  memcpy(d.verifying_contract, an.ca.enclave_registry, 20);
  teex_stmt_enclave_registration_digest(
      &d, f->dispatcher, TEEX_ENCLAVE_DISPATCHER, meas, now, digest);
  assert_int_equal(teex_stmt_sign(an.sm_sk, digest, sig), 0);
  if (teex_chain_register_enclave(an.snd[STRANGER], &an.ca, f->dispatcher,
                                  TEEX_ENCLAVE_DISPATCHER, meas, now, sig, 0,
                                  &e) != 0)
    fail_msg("register dispatcher: %s", e.msg);
  struct teex_eth_request req;
  memset(&req, 0, sizeof req);
  req.has_to = 1;
  memcpy(req.to, f->dispatcher, 20);
  teex_u256_from_u64(req.value, 1000000000000000000ull);
  struct teex_eth_receipt rc;
  memset(&rc, 0, sizeof rc);
  if (teex_eth_sender_transact(an.snd[DEPLOYER], &req, 20000, &rc, &e) != 0)
    fail_msg("fund: %s", e.msg);
  teex_eth_receipt_clear(&rc);
  /* the user is an anvil account and deposits for this dispatcher */
  memcpy(f->u1.sk, an.sk[USER], 32);
  memcpy(f->u1.addr, an.addr[USER], 20);
  if (teex_chain_deposit(an.snd[USER], &an.ca, f->dispatcher, 5000, 0, &e) != 0)
    fail_msg("deposit: %s", e.msg);
  *state = f;
  return 0;
}

static int teardown_anvil(void **state) {
  teardown(state);
  for (int i = 0; i < NACCT; i++)
    teex_eth_sender_free(an.snd[i]);
  if (an.pid > 0) {
    kill(an.pid, SIGTERM);
    waitpid(an.pid, NULL, 0);
  }
  teex_eth_rpc_close(an.rpc);
  return 0;
}

static void test_settle_on_anvil(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;
  worker_connect(f, &f->w[0]);
  /* a worker the enclave registry does not know is refused */
  assert_int_equal(do_register(f, &f->w[0], f->w[0].addr, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "not registered on chain"));
  uint8_t meas[32], digest[32], sig65[65];
  memset(meas, 0x77, 32);
  uint64_t now = (uint64_t)time(NULL);
  struct teex_domain d = {.chain_id = an.ca.chain_id};
  memcpy(d.verifying_contract, an.ca.enclave_registry, 20);
  teex_stmt_enclave_registration_digest(&d, f->w[0].addr, TEEX_ENCLAVE_WORKER,
                                        meas, now, digest);
  assert_int_equal(teex_stmt_sign(an.sm_sk, digest, sig65), 0);
  if (teex_chain_register_enclave(an.snd[STRANGER], &an.ca, f->w[0].addr,
                                  TEEX_ENCLAVE_WORKER, meas, now, sig65, 0,
                                  &err) != 0)
    fail_msg("register worker on chain: %s", err.msg);
  if (do_register(f, &f->w[0], f->w[0].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  assert_true(base_of(f, &f->u1) == 0);
  /* a user with no deposit on chain */
  struct task poor;
  make_auth(f, &f->u2, &poor, 1000, 1000);
  assert_int_equal(submit(f, &poor, NULL, NULL, &err), TEEX_EFUNDS);
  /* a price that is not the listed one */
  struct task cheap;
  make_auth(f, &f->u1, &cheap, 999, 999);
  assert_int_equal(submit(f, &cheap, NULL, NULL, &err), TEEX_EINVAL);
  /* two tasks, two receipts: the batch settles on chain */
  struct task t[2];
  struct teex_receipt r[2];
  uint8_t sig[2][65];
  for (int i = 0; i < 2; i++) {
    make_auth(f, &f->u1, &t[i], 1000, 1000 * (teex_amount)(i + 1));
    if (submit(f, &t[i], NULL, &as, &err) != 0)
      fail_msg("submit: %s", err.msg);
    assert_int_equal(check_assignment(f, &t[i], as), 0);
    assert_int_equal(as->assignment->chain_id, an.ca.chain_id);
    teex__dispatcher__submit_response__free_unpacked(as, NULL);
    make_receipt(f, &t[i], &f->w[0], &r[i], sig[i], 700);
    if (send_receipt(f, &f->w[0], &r[i], sig[i], &err) != 0)
      fail_msg("receipt: %s", err.msg);
  }
  Teex__Dispatcher__StatusResponse *st = status(f, &t[0]);
  if (strcmp(st->state, "settled") != 0) {
    size_t n;
    char *log = (char *)tu_read_file(f->log, &n);
    fail_msg("not settled: %s\n%s", st->state, log ? log : "");
  }
  /* the Settlement contract itself confirms the receipt is in the batch */
  uint8_t proof[32 * TEEX_SETTLE_MAX_PROOF];
  for (size_t i = 0; i < st->n_proof; i++)
    memcpy(proof + 32 * i, st->proof[i].data, 32);
  int included = 0;
  if (teex_chain_verify_receipt(an.rpc, &an.ca, st->batch_id.data, &r[0], proof,
                                st->n_proof, &included, &err) != 0)
    fail_msg("verify: %s", err.msg);
  assert_true(included);
  struct teex_chain_batch_record br;
  assert_int_equal(
      teex_chain_get_batch(an.rpc, &an.ca, st->batch_id.data, &br, &err), 0);
  assert_memory_equal(br.root, st->root.data, 32);
  assert_memory_equal(br.dispatcher, f->dispatcher, 20);
  assert_int_equal(br.task_count, 2);
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  /* the user paid two prices; worker and provider were credited */
  struct teex_chain_escrow es;
  assert_int_equal(teex_chain_get_escrow(an.rpc, &an.ca, f->u1.addr,
                                         f->dispatcher, &es, &err),
                   0);
  assert_true(es.balance == 3000 && es.settled == 2000);
  teex_amount cw = 0, cp = 0;
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, f->w[0].addr, &cw, &err), 0);
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, an.addr[PROVIDER], &cp, &err), 0);
  assert_true(cw == 1400 && cp == 600);
  assert_true(base_of(f, &f->u1) == 2000);

  /* The SM revokes the worker on chain while it runs a task: once the
   * dispatcher reads the registry again (every second here) the receipt
   * is refused, so nothing of that task is settled or charged. */
  struct task late;
  struct teex_receipt lr;
  uint8_t lsig[65];
  make_auth(f, &f->u1, &late, 1000, 3000);
  if (submit(f, &late, NULL, &as, &err) != 0)
    fail_msg("submit: %s", err.msg);
  teex__dispatcher__submit_response__free_unpacked(as, NULL);
  teex_stmt_enclave_revocation_digest(&d, f->w[0].addr, digest);
  assert_int_equal(teex_stmt_sign(an.sm_sk, digest, sig65), 0);
  if (teex_chain_revoke_enclave(an.snd[STRANGER], &an.ca, f->w[0].addr, sig65,
                                0, &err) != 0)
    fail_msg("revoke on chain: %s", err.msg);
  usleep(1200 * 1000);
  make_receipt(f, &late, &f->w[0], &lr, lsig, 700);
  assert_int_equal(send_receipt(f, &f->w[0], &lr, lsig, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "not registered on chain (or revoked)"));
  st = status(f, &late);
  assert_string_not_equal(st->state, "earned");
  assert_string_not_equal(st->state, "settled");
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  /* and it cannot register again */
  assert_int_equal(do_register(f, &f->w[0], f->w[0].addr, &err), TEEX_EPERM);
}

/* Lists a dataset from account `who` (price per use), approving `pairs`. */
static void list_dataset(int who, const char *name, teex_amount price,
                         const struct teex_chain_approval *pairs, size_t n,
                         uint8_t id[32]) {
  struct teex_err e;
  struct teex_chain_dataset d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.ciphertext_cid, sizeof d.ciphertext_cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  memset(d.plaintext_hash, 0x44, 32);
  d.plaintext_size = 6;
  d.price = price;
  if (teex_chain_list_dataset(an.snd[who], &an.ca, &d, 0, &e) != 0)
    fail_msg("list dataset %s: %s", name, e.msg);
  memcpy(id, d.dataset_id, 32);
  if (n > 0 &&
      teex_chain_approve_dataset(an.snd[who], &an.ca, id, pairs, n, 1, 0, &e))
    fail_msg("approve %s: %s", name, e.msg);
}

static void data_auth(struct fx *f, struct task *t, const uint8_t *ids,
                      size_t n, teex_amount price, teex_amount cumulative) {
  make_auth(f, &f->u1, t, price, cumulative);
  memcpy(t->ids, ids, 32 * n);
  t->nids = n;
  teex_stmt_datasets_hash(ids, n, t->a.datasets_hash);
  uint8_t d[32];
  teex_stmt_payment_auth_digest(&f->domain, &t->a, d);
  assert_int_equal(teex_stmt_sign(f->u1.sk, d, t->a.sig), 0);
}

/* Tasks with datasets against real contracts: every refusal before
 * anything is reserved, the signed assignment naming the datasets, the
 * receipt's data shares checked, and settlement crediting each data
 * provider its price per use. */
static void test_datasets_on_anvil(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  Teex__Dispatcher__SubmitResponse *as;
  worker_connect(f, &f->w[0]);
  uint8_t meas[32], digest[32], sig65[65];
  memset(meas, 0x77, 32);
  uint64_t now = (uint64_t)time(NULL);
  struct teex_domain d = {.chain_id = an.ca.chain_id};
  memcpy(d.verifying_contract, an.ca.enclave_registry, 20);
  teex_stmt_enclave_registration_digest(&d, f->w[0].addr, TEEX_ENCLAVE_WORKER,
                                        meas, now, digest);
  assert_int_equal(teex_stmt_sign(an.sm_sk, digest, sig65), 0);
  if (teex_chain_register_enclave(an.snd[STRANGER], &an.ca, f->w[0].addr,
                                  TEEX_ENCLAVE_WORKER, meas, now, sig65, 0,
                                  &err) != 0)
    fail_msg("register worker on chain: %s", err.msg);
  if (do_register(f, &f->w[0], f->w[0].addr, &err) != 0)
    fail_msg("register: %s", err.msg);
  /* two data providers; datasets approved for this exact image, one for
   * nothing, one for another image, one revoked */
  struct teex_chain_approval ok_pair, other_image;
  memcpy(ok_pair.service_id, f->service, 32);
  memcpy(ok_pair.image_hash, f->image, 32);
  other_image = ok_pair;
  other_image.image_hash[0] ^= 1;
  uint8_t ids[2 * 32], none[32], other[32], revoked[32], unknown[32];
  list_dataset(STRANGER, "cohort", 50, &ok_pair, 1, ids);
  list_dataset(DEPLOYER, "reference", 30, &ok_pair, 1, ids + 32);
  list_dataset(STRANGER, "unapproved", 5, NULL, 0, none);
  list_dataset(STRANGER, "other-image", 5, &other_image, 1, other);
  list_dataset(STRANGER, "revoked", 5, &ok_pair, 1, revoked);
  if (teex_chain_revoke_dataset(an.snd[STRANGER], &an.ca, revoked, 0, &err))
    fail_msg("revoke: %s", err.msg);
  memset(unknown, 0x3c, 32);
  struct {
    const uint8_t *id;
    int code;
    const char *msg;
  } refused[] = {{none, TEEX_EPERM, "not approved this service"},
                 {other, TEEX_EPERM, "at this image hash"},
                 {revoked, TEEX_EPOLICY, "revoked"},
                 {unknown, TEEX_ENOTFOUND, "not listed"}};
  struct task t;
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    data_auth(f, &t, refused[i].id, 1, 1005, 1005);
    assert_int_equal(submit(f, &t, NULL, NULL, &err), refused[i].code);
    if (strstr(err.msg, refused[i].msg) == NULL)
      fail_msg("refusal %zu: %s", i, err.msg);
  }
  /* a user who did not pay for the data: the service's price only */
  data_auth(f, &t, ids, 2, 1000, 1000);
  assert_int_equal(submit(f, &t, NULL, NULL, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "differs from the listed price 1080"));
  /* ids that are not what the signed datasetsHash covers */
  data_auth(f, &t, ids, 2, 1080, 1080);
  t.nids = 1;
  assert_int_equal(submit(f, &t, NULL, NULL, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "datasetsHash"));
  /* nothing was reserved by any refusal */
  assert_true(base_of(f, &f->u1) == 0);

  /* two paid tasks with both datasets */
  struct task ts[2];
  struct teex_receipt r[2];
  struct teex_data_share sh[2];
  uint8_t sig[2][65];
  memcpy(sh[0].dataset_id, ids, 32);
  memcpy(sh[0].payee, an.addr[STRANGER], 20);
  teex_amount_word(50, sh[0].amount);
  memcpy(sh[1].dataset_id, ids + 32, 32);
  memcpy(sh[1].payee, an.addr[DEPLOYER], 20);
  teex_amount_word(30, sh[1].amount);
  for (int i = 0; i < 2; i++) {
    data_auth(f, &ts[i], ids, 2, 1080, 1080 * (teex_amount)(i + 1));
    if (submit(f, &ts[i], NULL, &as, &err) != 0)
      fail_msg("submit: %s", err.msg);
    assert_int_equal(check_assignment(f, &ts[i], as), 0);
    teex__dispatcher__submit_response__free_unpacked(as, NULL);
    if (i == 0) {
      /* a receipt that keeps the data providers' part is refused ... */
      struct teex_receipt bad;
      uint8_t bsig[65];
      make_receipt(f, &ts[i], &f->w[0], &bad, bsig, 700);
      assert_int_equal(send_receipt(f, &f->w[0], &bad, bsig, &err),
                       TEEX_EINVAL);
      /* ... and so is one that pays a data provider another amount */
      struct teex_data_share wrong[2];
      memcpy(wrong, sh, sizeof wrong);
      teex_amount_word(60, wrong[0].amount);
      teex_amount_word(20, wrong[1].amount);
      make_receipt(f, &ts[i], &f->w[0], &bad, bsig, 700);
      teex_amount_word(300, bad.provider_amount);
      bad.shares = wrong;
      bad.nshares = 2;
      teex_stmt_receipt_digest(&f->domain, &bad, digest);
      assert_int_equal(teex_stmt_sign(f->w[0].sk, digest, bsig), 0);
      assert_int_equal(send_receipt(f, &f->w[0], &bad, bsig, &err),
                       TEEX_EINVAL);
      assert_non_null(strstr(err.msg, "data shares"));
    }
    make_receipt(f, &ts[i], &f->w[0], &r[i], sig[i], 700);
    teex_amount_word(300, r[i].provider_amount);
    r[i].shares = sh;
    r[i].nshares = 2;
    teex_stmt_receipt_digest(&f->domain, &r[i], digest);
    assert_int_equal(teex_stmt_sign(f->w[0].sk, digest, sig[i]), 0);
    if (send_receipt(f, &f->w[0], &r[i], sig[i], &err) != 0)
      fail_msg("receipt: %s", err.msg);
  }
  Teex__Dispatcher__StatusResponse *st = NULL;
  for (int i = 0; i < 100; i++) {
    st = status(f, &ts[0]);
    if (strcmp(st->state, "settled") == 0)
      break;
    teex__dispatcher__status_response__free_unpacked(st, NULL);
    st = NULL;
    usleep(50000);
  }
  if (st == NULL) {
    size_t n;
    char *log = (char *)tu_read_file(f->log, &n);
    fail_msg("not settled\n%s", log ? log : "");
  }
  /* the settled status gives the receipt with its data shares */
  assert_non_null(st->receipt);
  assert_int_equal(st->receipt->n_data_shares, 2);
  assert_memory_equal(st->receipt->data_shares[1]->payee.data,
                      an.addr[DEPLOYER], 20);
  /* the contract confirms the receipt, data shares included, is in the
   * batch */
  uint8_t proof[32 * TEEX_SETTLE_MAX_PROOF];
  for (size_t i = 0; i < st->n_proof; i++)
    memcpy(proof + 32 * i, st->proof[i].data, 32);
  int included = 0;
  if (teex_chain_verify_receipt(an.rpc, &an.ca, st->batch_id.data, &r[0], proof,
                                st->n_proof, &included, &err) != 0)
    fail_msg("verify: %s", err.msg);
  assert_true(included);
  teex__dispatcher__status_response__free_unpacked(st, NULL);
  /* the user paid two tasks; each data provider got its price per use */
  struct teex_chain_escrow es;
  assert_int_equal(teex_chain_get_escrow(an.rpc, &an.ca, f->u1.addr,
                                         f->dispatcher, &es, &err),
                   0);
  assert_true(es.balance == 5000 - 2160 && es.settled == 2160);
  teex_amount cw = 0, cp = 0, c1 = 0, c2 = 0;
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, f->w[0].addr, &cw, &err), 0);
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, an.addr[PROVIDER], &cp, &err), 0);
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, an.addr[STRANGER], &c1, &err), 0);
  assert_int_equal(
      teex_chain_get_credits(an.rpc, &an.ca, an.addr[DEPLOYER], &c2, &err), 0);
  assert_true(cw == 1400 && cp == 600);
  assert_true(c1 == 2 * 50 && c2 == 2 * 30);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_dispatch_settle_restart, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_private_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_after_settle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_settle_on_anvil, setup_anvil,
                                      teardown_anvil),
      cmocka_unit_test_setup_teardown(test_datasets_on_anvil, setup_anvil,
                                      teardown_anvil),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
