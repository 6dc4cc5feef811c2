/* Datasets through the real parts: a fresh anvil with the four contracts,
 * the real SM daemon (`teex sm run` reading the DatasetRegistry), the data
 * provider's library publishing over RA-TLS (encrypt, IPFS, escrow, list,
 * approve), a dispatcher enclave registered on chain with the SM's
 * statement, and a worker enclave (this process, in the worker role)
 * leasing the key over mutual RA-TLS with fresh evidence. The leased key
 * opens the ciphertext on IPFS into the published plaintext. Every refusal
 * of the issue over the wire: unapproved service, the approved service at
 * another image hash, an expired listing, uses beyond the maximum, a
 * revoked dataset, a worker failing the SM's policy (another platform's
 * root), plus an assignment for another worker and one from an
 * unregistered dispatcher. The plaintext canary is on no disk the test
 * sees: not in IPFS, not in the SM's state, not in its log. */
#include "testutil.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/data.h"
#include "teex/image.h"
#include "teex/ipfs.h"
#include "teex/mem.h"
#include "teex/ratls.h"
#include "teex/sm_client.h"
#include "teex/statements.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char CANARY[] = "CANARY-DATASET-91f3e2";

static const char *anvil_keys[] = {
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
};
enum { DEPLOYER, PROVIDER, NACCT };

/* An enclave of this process in one role: its TEE, keys and RA-TLS
 * identity. */
struct enclave {
  struct teex_tee *tee;
  uint8_t sk[32], pub[64], addr[20];
  EVP_PKEY *key;
  X509 *cert;
};

struct fx {
  char *dir;
  uint8_t root[32];
  pid_t anvil;
  char url[64], conf[4096], ready[4096], log[4096], policy[4096];
  char sm_addr[64], sm_enclave[64]; /* client and enclave endpoints */
  int sm_pid;
  struct teex_eth_rpc *rpc;
  struct teex_eth_sender *snd[NACCT];
  uint8_t sk[NACCT][32], addr[NACCT][20];
  struct teex_chain_addrs ca;
  struct teex_tee_policy sm_policy; /* what clients require of the SM */
  struct enclave disp, worker;
  struct teex_ipfs_backend *ipfs;
  struct teex_data_published pub;
  uint8_t service[32], image[32];
  uint8_t plain[4096];
  size_t plain_len;
};

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

static void start_anvil(struct fx *f) {
  char bin[1024], port_s[16];
  int port = free_port();
  struct teex_err e;
  snprintf(bin, sizeof bin,
           "%s/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
           tu_source_dir());
  if (access(bin, X_OK) != 0)
    fail_msg("anvil missing at %s: run scripts/install-deps.sh", bin);
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", port);
  f->anvil = fork();
  if (f->anvil == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(bin, "anvil", "--host", "127.0.0.1", "--port", port_s, "--accounts",
          "2", (char *)NULL);
    _exit(127);
  }
  struct teex_eth_rpc_opts o = {.timeout_ms = 20000, .retries = -1};
  assert_int_equal(teex_eth_rpc_open(f->url, &o, &f->rpc, &e), 0);
  teex_chain_use_errors(f->rpc);
  for (int i = 0; i < 200; i++) {
    uint64_t id;
    if (teex_eth_chain_id(f->rpc, &id, &e) == 0)
      return;
    usleep(50000);
  }
  fail_msg("anvil did not come up: %s", e.msg);
}

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

static void enclave_open(struct enclave *en, const char *dir,
                         const char *role) {
  struct teex_err err;
  en->tee = open_tee(dir, role, NULL);
  assert_int_equal(teex_secp256k1_keypair(en->sk, en->pub), 0);
  teex_eth_address(en->pub, en->addr);
  struct teex_ratls_keys keys = {.secp256k1_pub = en->pub};
  if (teex_ratls_identity_new(en->tee, &keys, &en->key, &en->cert, &err) != 0)
    fail_msg("identity: %s", err.msg);
}

static void enclave_close(struct enclave *en) {
  EVP_PKEY_free(en->key);
  X509_free(en->cert);
  teex_tee_close(en->tee);
  teex_wipe(en->sk, 32);
}

static void write_policy(struct fx *f) {
  char root[65], w[65], d[65], text[1024];
  teex_hex_encode(f->root, 32, root);
  teex_hex_encode(teex_tee_self(f->worker.tee)->mr_enclave, 32, w);
  teex_hex_encode(teex_tee_self(f->disp.tee)->mr_enclave, 32, d);
  int n = snprintf(text, sizeof text,
                   "[policy]\nallow_simulated = true\nroles = worker, "
                   "dispatcher\n[roots]\nnet = %s\n[measurements]\nworker = "
                   "%s\ndispatcher = %s\n",
                   root, w, d);
  assert_int_equal(tu_write_file(f->policy, text, (size_t)n), 0);
}

static void start_sm(struct fx *f) {
  char sreg[43], ereg[43], dreg[43];
  teex_eth_address_hex(f->ca.service_registry, sreg);
  teex_eth_address_hex(f->ca.enclave_registry, ereg);
  teex_eth_address_hex(f->ca.dataset_registry, dreg);
  char *argv[] = {(char *)tu_teex_bin(),
                  "sm",
                  "run",
                  "--data-dir",
                  f->dir,
                  "--listen",
                  "127.0.0.1:0",
                  "--client-listen",
                  "127.0.0.1:0",
                  "--policy",
                  f->policy,
                  "--service-registry",
                  sreg,
                  "--enclave-registry",
                  ereg,
                  "--dataset-registry",
                  dreg,
                  "--chain-rpc",
                  f->url,
                  "--ready-file",
                  f->ready,
                  NULL};
  f->sm_pid = tu_spawn(argv, f->log);
  assert_true(f->sm_pid > 0);
  if (tu_wait_file(f->ready, 20000) != 0) {
    size_t n;
    char *log = (char *)tu_read_file(f->log, &n);
    fail_msg("sm did not start: %s", log ? log : "");
  }
  struct teex_config c;
  struct teex_err err;
  uint64_t ep, cp;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, f->ready, &err), 0);
  assert_int_equal(teex_config_get_u64(&c, "enclave_port", 0, &ep, &err), 0);
  assert_int_equal(teex_config_get_u64(&c, "client_port", 0, &cp, &err), 0);
  teex_config_free(&c);
  snprintf(f->sm_addr, sizeof f->sm_addr, "127.0.0.1:%llu",
           (unsigned long long)cp);
  snprintf(f->sm_enclave, sizeof f->sm_enclave, "127.0.0.1:%llu",
           (unsigned long long)ep);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err e;
  char *out = NULL, *errout = NULL;
  f->dir = tu_mkdtemp("smdatad");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &e), 0);
  snprintf(f->conf, sizeof f->conf, "%s/chain.conf", f->dir);
  snprintf(f->ready, sizeof f->ready, "%s/sm.ready", f->dir);
  snprintf(f->log, sizeof f->log, "%s/sm.log", f->dir);
  snprintf(f->policy, sizeof f->policy, "%s/enclaves.conf", f->dir);
  enclave_open(&f->disp, f->dir, "dispatcher");
  enclave_open(&f->worker, f->dir, "worker");
  write_policy(f);
  /* What clients require of the SM: the teex binary in the sm role. */
  struct teex_tee *view = open_tee(f->dir, "sm", tu_teex_bin());
  teex_tee_policy_init(&f->sm_policy);
  teex_tee_policy_add_root(&f->sm_policy, f->root);
  teex_tee_policy_add_measurement(&f->sm_policy,
                                  teex_tee_self(view)->mr_enclave);
  teex_tee_policy_add_role(&f->sm_policy, "sm");
  f->sm_policy.allow_simulated = 1;
  teex_tee_close(view);

  /* The chain, with the SM's address fixed in the contracts. */
  start_anvil(f);
  for (int i = 0; i < NACCT; i++) {
    size_t n;
    uint8_t pub[64];
    assert_int_equal(teex_hex_decode(anvil_keys[i], f->sk[i], 32, &n), 0);
    assert_int_equal(teex_secp256k1_public(f->sk[i], pub), 0);
    teex_eth_address(pub, f->addr[i]);
    assert_int_equal(
        teex_eth_sender_new(f->rpc, f->sk[i], NULL, &f->snd[i], &e), 0);
  }
  char *init[] = {(char *)tu_teex_bin(), "sm",   "init",
                  "--data-dir",          f->dir, NULL};
  if (tu_run(init, NULL, 0, &out, &errout) != 0)
    fail_msg("sm init: %s", errout ? errout : "");
  struct teex_chain_deploy_opts o = {.withdrawal_delay = 3600};
  out[strcspn(out, "\r\n")] = 0;
  assert_int_equal(teex_eth_address_parse(out, o.service_manager), 0);
  free(out);
  free(errout);
  if (teex_chain_deploy(f->snd[DEPLOYER], &o, &f->ca, &e) != 0)
    fail_msg("deploy: %s", e.msg);
  assert_int_equal(
      teex_chain_conf_save(f->conf, f->url, f->ca.chain_id, &f->ca, &e), 0);
  start_sm(f);

  /* The dispatcher enclave gets the SM's statement over RA-TLS and its
   * operator submits it. */
  struct teex_enclave_registration reg;
  if (teex_sm_client_register(f->disp.tee, f->disp.cert, f->disp.key,
                              f->disp.pub, f->sm_enclave, &f->sm_policy, &reg,
                              &e) != 0)
    fail_msg("register dispatcher: %s", e.msg);
  if (teex_chain_register_enclave(f->snd[DEPLOYER], &f->ca, reg.enclave,
                                  reg.role, reg.measurement, reg.issued_at,
                                  reg.signature, 0, &e) != 0)
    fail_msg("register on chain: %s", e.msg);

  char store[4200];
  snprintf(store, sizeof store, "%s/ipfs", f->dir);
  assert_int_equal(teex_ipfs_store_open(store, &f->ipfs, &e), 0);
  memset(f->service, 0x5e, 32);
  memset(f->image, 0x1e, 32);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->sm_pid > 0)
    tu_stop(f->sm_pid, SIGTERM, 5000);
  for (int i = 0; i < NACCT; i++)
    teex_eth_sender_free(f->snd[i]);
  if (f->anvil > 0) {
    kill(f->anvil, SIGTERM);
    waitpid(f->anvil, NULL, 0);
  }
  teex_eth_rpc_close(f->rpc);
  teex_ipfs_close(f->ipfs);
  enclave_close(&f->disp);
  enclave_close(&f->worker);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* Publishes a dataset named name holding the canary, with terms t. */
static void publish(struct fx *f, const char *name,
                    const struct teex_data_terms *t,
                    struct teex_data_published *p) {
  struct teex_err e;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.csv", f->dir, name);
  f->plain_len = (size_t)snprintf((char *)f->plain, sizeof f->plain,
                                  "id,value\n1,%s\n2,%s\n", CANARY, name);
  assert_int_equal(tu_write_file(path, f->plain, f->plain_len), 0);
  struct teex_data_publish_req req = {.file = path,
                                      .name = name,
                                      .provider_sk = f->sk[PROVIDER],
                                      .sm_addr = f->sm_addr,
                                      .sm_policy = &f->sm_policy,
                                      .ipfs = f->ipfs};
  if (teex_data_publish(&req, p, &e) != 0)
    fail_msg("publish: %s", e.msg);
  if (teex_data_list_on_chain(p, f->sk[PROVIDER], f->conf, t, &e) != 0)
    fail_msg("list: %s", e.msg);
  unlink(path); /* the provider's copy; the canary search covers the rest */
}

/* A task of (service, image) using dataset id, signed by signer_sk as
 * dispatcher disp for worker. */
static void task(struct fx *f, const uint8_t id[32], uint8_t task_byte,
                 const uint8_t *service, const uint8_t *image,
                 const uint8_t worker[20], struct teex_assignment *a,
                 uint8_t sig[65]) {
  uint8_t digest[32];
  memset(a, 0, sizeof *a);
  a->chain_id = f->ca.chain_id;
  memcpy(a->dispatcher, f->disp.addr, 20);
  memcpy(a->worker, worker, 20);
  memset(a->user, 0x05, 20);
  memset(a->task_id, task_byte, 32);
  memcpy(a->service_id, service, 32);
  memcpy(a->image_hash, image, 32);
  a->price = 1000;
  a->expires_at = (uint64_t)time(NULL) + 120;
  teex_stmt_datasets_hash(id, 1, a->datasets_hash);
  teex_stmt_assignment_digest(a, digest);
  assert_int_equal(teex_stmt_sign(f->disp.sk, digest, sig), 0);
}

static int lease_as(struct fx *f, struct enclave *en,
                    const struct teex_assignment *a, const uint8_t sig[65],
                    const uint8_t id[32], struct teex_sm_data_lease *l,
                    struct teex_err *e) {
  return teex_sm_client_lease_data(en->tee, en->cert, en->key, en->pub,
                                   f->sm_enclave, &f->sm_policy, a, sig, id, 1,
                                   0, l, e);
}

static void expect_refused(struct fx *f, struct enclave *en,
                           const struct teex_assignment *a,
                           const uint8_t sig[65], const uint8_t id[32],
                           const char *words) {
  struct teex_err e = {0};
  struct teex_sm_data_lease l;
  int rc = lease_as(f, en, a, sig, id, &l, &e);
  if (rc == 0 || strstr(e.msg, words) == NULL)
    fail_msg("expected a refusal '%s', got %d '%s'", words, rc, e.msg);
}

static void test_publish_and_lease(void **state) {
  struct fx *f = *state;
  struct teex_err e = {0};
  struct teex_chain_approval allow;
  memcpy(allow.service_id, f->service, 32);
  memcpy(allow.image_hash, f->image, 32);
  struct teex_data_terms t = {.price = 250,
                              .max_uses = 2,
                              .max_output_bytes = 4096,
                              .allow = &allow,
                              .n_allow = 1};
  publish(f, "cohort", &t, &f->pub);
  struct teex_chain_dataset d;
  assert_int_equal(
      teex_chain_get_dataset(f->rpc, &f->ca, f->pub.dataset_id, &d, &e), 0);
  assert_string_equal(d.ciphertext_cid, f->pub.cid);
  assert_int_equal(d.plaintext_size, f->plain_len);

  /* A paid task of the approved service at the approved image. */
  struct teex_assignment a;
  uint8_t sig[65];
  struct teex_sm_data_lease l;
  task(f, f->pub.dataset_id, 1, f->service, f->image, f->worker.addr, &a, sig);
  if (lease_as(f, &f->worker, &a, sig, f->pub.dataset_id, &l, &e) != 0)
    fail_msg("lease: %s", e.msg);
  assert_int_equal(l.uses, 1);
  assert_int_equal(l.max_output_bytes, 4096);
  assert_string_equal(l.name, "cohort");
  assert_memory_equal(l.provider, f->addr[PROVIDER], 20);
  assert_true(l.price == 250);
  assert_int_equal(l.expires_at, a.expires_at);
  /* The key opens the ciphertext on IPFS into the published plaintext. */
  struct teex_cid cid;
  struct teex_buf ct;
  uint8_t *pt = NULL;
  size_t pt_len = 0;
  teex_buf_init(&ct, 1 << 20, 0);
  assert_int_equal(teex_cid_parse(l.cid, &cid, &e), 0);
  assert_int_equal(teex_ipfs_cat_buffer(f->ipfs, &cid, &ct, &e), 0);
  assert_int_equal(
      teex_image_decrypt(l.data_key, ct.data, ct.len, &pt, &pt_len, &e), 0);
  assert_int_equal(pt_len, f->plain_len);
  assert_memory_equal(pt, f->plain, pt_len);
  teex_image_bytes_free(pt, pt_len);
  teex_buf_free(&ct);
  teex_wipe(&l, sizeof l);
  /* The worker's whole path in one call (the same task again: not a new
   * use): lease, IPFS, decrypt, check, ready for the executor. */
  struct teex_data_fetched got;
  uint32_t cap = 0;
  if (teex_data_fetch_for_task(f->worker.tee, f->worker.cert, f->worker.key,
                               f->worker.pub, f->sm_enclave, &f->sm_policy,
                               f->ipfs, &a, sig, f->pub.dataset_id, 1, &got,
                               &cap, &e) != 0)
    fail_msg("fetch: %s", e.msg);
  assert_int_equal(got.len, f->plain_len);
  assert_memory_equal(got.data, f->plain, got.len);
  assert_string_equal(got.name, "cohort");
  assert_memory_equal(got.provider, f->addr[PROVIDER], 20);
  assert_true(got.price == 250);
  assert_int_equal(cap, 4096);
  teex_data_fetched_free(&got, 1);
  assert_null(got.data);

  /* Unapproved service; the approved service at another image hash. */
  uint8_t other[32];
  memset(other, 0x77, 32);
  task(f, f->pub.dataset_id, 2, other, f->image, f->worker.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id,
                 "does not approve service");
  task(f, f->pub.dataset_id, 2, f->service, other, f->worker.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id,
                 "does not approve service");
  /* An assignment for another worker; one signed by an unregistered key. */
  task(f, f->pub.dataset_id, 2, f->service, f->image, f->disp.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id, "another worker");
  task(f, f->pub.dataset_id, 2, f->service, f->image, f->worker.addr, &a, sig);
  memset(a.dispatcher, 0x0b, 20);
  uint8_t rogue_sk[32], rogue_pub[64], digest[32];
  assert_int_equal(teex_secp256k1_keypair(rogue_sk, rogue_pub), 0);
  teex_eth_address(rogue_pub, a.dispatcher);
  teex_stmt_assignment_digest(&a, digest);
  assert_int_equal(teex_stmt_sign(rogue_sk, digest, sig), 0);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id, "enclave registry");
  /* A worker failing the SM's policy: the dispatcher's identity asking
   * (role dispatcher), and an enclave of another platform (untrusted root). */
  task(f, f->pub.dataset_id, 2, f->service, f->image, f->disp.addr, &a, sig);
  expect_refused(f, &f->disp, &a, sig, f->pub.dataset_id, "role");
  char *odir = tu_mkdtemp("smdatad-other");
  uint8_t oroot[32];
  assert_int_equal(teex_tee_sim_init(odir, oroot, &e), 0);
  struct enclave foreign;
  enclave_open(&foreign, odir, "worker");
  task(f, f->pub.dataset_id, 2, f->service, f->image, foreign.addr, &a, sig);
  struct teex_sm_data_lease fl;
  assert_int_not_equal(
      lease_as(f, &foreign, &a, sig, f->pub.dataset_id, &fl, &e), 0);
  enclave_close(&foreign);
  tu_rmtree(odir);
  free(odir);

  /* Uses: the same task again is not a new use; a second task is the
   * last (max 2); a third gets nothing. */
  task(f, f->pub.dataset_id, 1, f->service, f->image, f->worker.addr, &a, sig);
  assert_int_equal(lease_as(f, &f->worker, &a, sig, f->pub.dataset_id, &l, &e),
                   0);
  assert_int_equal(l.uses, 1);
  task(f, f->pub.dataset_id, 3, f->service, f->image, f->worker.addr, &a, sig);
  assert_int_equal(lease_as(f, &f->worker, &a, sig, f->pub.dataset_id, &l, &e),
                   0);
  assert_int_equal(l.uses, 2);
  task(f, f->pub.dataset_id, 4, f->service, f->image, f->worker.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id, "no use left");
  /* The fetch says which dataset failed, and keeps nothing. */
  struct teex_data_fetched none;
  uint32_t cap2 = 9;
  assert_int_not_equal(teex_data_fetch_for_task(
                           f->worker.tee, f->worker.cert, f->worker.key,
                           f->worker.pub, f->sm_enclave, &f->sm_policy, f->ipfs,
                           &a, sig, f->pub.dataset_id, 1, &none, &cap2, &e),
                       0);
  assert_non_null(strstr(e.msg, "no use left"));
  assert_null(none.data);
  assert_int_equal(cap2, 0);

  /* Revoked: nothing for anyone, even a task counted before. */
  assert_int_equal(teex_chain_revoke_dataset(f->snd[PROVIDER], &f->ca,
                                             f->pub.dataset_id, 0, &e),
                   0);
  task(f, f->pub.dataset_id, 1, f->service, f->image, f->worker.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, f->pub.dataset_id, "revoked");

  /* Expired: a listing whose expiry passes (by the clocks, not by a
   * timeout: the test waits until the SM's clock is past it). */
  struct teex_data_published p2;
  struct teex_eth_block blk;
  assert_int_equal(teex_eth_get_block(f->rpc, "latest", &blk, &e), 0);
  t.max_uses = 0;
  t.expires_at = blk.timestamp + 2;
  publish(f, "short-lived", &t, &p2);
  while ((uint64_t)time(NULL) < t.expires_at + 1)
    usleep(200000);
  task(f, p2.dataset_id, 5, f->service, f->image, f->worker.addr, &a, sig);
  expect_refused(f, &f->worker, &a, sig, p2.dataset_id, "listing expired");

  /* The same name again with a fresh key: the SM keeps the first. */
  struct teex_data_publish_req again = {.file = f->conf,
                                        .name = "cohort",
                                        .provider_sk = f->sk[PROVIDER],
                                        .sm_addr = f->sm_addr,
                                        .sm_policy = &f->sm_policy,
                                        .ipfs = f->ipfs};
  struct teex_data_published p3;
  assert_int_equal(teex_data_publish(&again, &p3, &e), TEEX_EEXIST);
  assert_non_null(strstr(e.msg, "already escrowed"));

  /* The plaintext is on no disk: IPFS holds ciphertext, the SM's sealed
   * state and its log no canary (positive control: the search finds it in
   * a file written in the clear). */
  char hit[512], ctl[4200], smdir[4200];
  snprintf(smdir, sizeof smdir, "%s/sm", f->dir);
  assert_int_equal(tu_tree_contains(f->dir, CANARY, strlen(CANARY), hit), 0);
  snprintf(ctl, sizeof ctl, "%s/sm/control", f->dir);
  assert_int_equal(tu_write_file(ctl, CANARY, strlen(CANARY)), 0);
  assert_int_equal(tu_tree_contains(smdir, CANARY, strlen(CANARY), hit), 1);
}

int main(void) {
  teex_crypto_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_publish_and_lease, setup, teardown),
  };
  return cmocka_run_group_tests_name("sm data daemon", tests, NULL, NULL);
}
