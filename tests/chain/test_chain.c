/* The chain bindings (include/teex/chain.h). Without a node: the fixed
 * function, event and error signatures match the ABI compiled into libteex,
 * and the [contracts] section of a network configuration round-trips
 * without disturbing the rest of the file. Against a real anvil node started
 * here on a free loopback port: deploy, list a service (good and bad SM
 * signature), the catalogue from events, register a dispatcher, deposit,
 * settle a batch built with the settle module (receipt leaves, Merkle root,
 * EIP-712 authorisations), the same batch refused twice, a batch from an
 * unregistered key refused, a receipt's inclusion checked on chain, the
 * withdrawal delay, payee credits; datasets: listing, approvals of exact
 * (service, image hash) pairs, refusals to other accounts, revocation,
 * expiry, and the listings and approvals rebuilt from events. */
#include "testutil.h"

#include "chain/chain_internal.h"
#include "teex/chain.h"
#include "teex/contracts.h"
#include "teex/crypto.h"
#include "teex/ds_anchor.h"
#include "teex/mem.h"
#include "teex/statements.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- signatures against the compiled ABI ---- */

/* Canonical type of an ABI JSON parameter ("(address,uint256)[]"). */
static void abi_param_type(json_t *p, char *out, size_t cap) {
  const char *type = json_string_value(json_object_get(p, "type"));
  assert_non_null(type);
  if (strncmp(type, "tuple", 5) == 0) {
    json_t *comps = json_object_get(p, "components");
    size_t i, n = 0;
    json_t *c;
    n += (size_t)snprintf(out + n, cap - n, "(");
    json_array_foreach(comps, i, c) {
      char sub[512];
      abi_param_type(c, sub, sizeof sub);
      n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "," : "", sub);
    }
    snprintf(out + n, cap - n, ")%s", type + 5);
  } else {
    snprintf(out, cap, "%s", type);
  }
}

/* 1 when the embedded ABIs declare `sig` as an item of `kind`. */
static int abi_has(const char *kind, const char *sig) {
  for (size_t k = 0; k < teex_contracts_count(); k++) {
    json_error_t je;
    json_t *abi = json_loads(teex_contract_at(k)->abi_json, 0, &je), *item;
    size_t i;
    int found = 0;
    assert_non_null(abi);
    json_array_foreach(abi, i, item) {
      char buf[2048];
      size_t n, j;
      json_t *in;
      if (strcmp(json_string_value(json_object_get(item, "type")), kind) != 0)
        continue;
      n = (size_t)snprintf(buf, sizeof buf, "%s(",
                           json_string_value(json_object_get(item, "name")));
      json_array_foreach(json_object_get(item, "inputs"), j, in) {
        char t[1024];
        abi_param_type(in, t, sizeof t);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", j ? "," : "", t);
      }
      snprintf(buf + n, sizeof buf - n, ")");
      if (strcmp(buf, sig) == 0)
        found = 1;
    }
    json_decref(abi);
    if (found)
      return 1;
  }
  return 0;
}

static void test_sigs_match_abi(void **state) {
  (void)state;
  size_t n_errors = 0, n_abi_errors = 0;
  assert_int_equal(teex_contracts_count(), 5);
  assert_non_null(teex_contract_find("DsAnchor"));
  assert_non_null(teex_contract_find("DatasetRegistry"));
  assert_non_null(teex_contract_find("Settlement"));
  assert_null(teex_contract_find("Nope"));
  for (const char *const *s = teex_chain__function_sigs(); *s; s++)
    if (!abi_has("function", *s))
      fail_msg("function %s not in the ABI", *s);
  for (const char *const *s = teex_chain__event_sigs(); *s; s++)
    if (!abi_has("event", *s))
      fail_msg("event %s not in the ABI", *s);
  for (const char *const *s = teex_chain_error_sigs(); *s; s++, n_errors++)
    if (!abi_has("error", *s))
      fail_msg("error %s not in the ABI", *s);
  /* And the other way round: every error of every contract is known. */
  for (size_t k = 0; k < teex_contracts_count(); k++) {
    json_t *abi = json_loads(teex_contract_at(k)->abi_json, 0, NULL), *item;
    size_t i;
    json_array_foreach(abi, i, item) {
      if (strcmp(json_string_value(json_object_get(item, "type")), "error"))
        continue;
      const char *name = json_string_value(json_object_get(item, "name"));
      int known = 0;
      n_abi_errors++;
      for (const char *const *s = teex_chain_error_sigs(); *s; s++)
        if (strncmp(*s, name, strlen(name)) == 0 && (*s)[strlen(name)] == '(')
          known = 1;
      if (!known)
        fail_msg("error %s of %s missing from the bindings", name,
                 teex_contract_at(k)->name);
    }
    json_decref(abi);
  }
  assert_true(n_abi_errors >= n_errors);
}

static void test_config_roundtrip(void **state) {
  (void)state;
  char *dir = tu_mkdtemp("chaincfg"), path[512];
  struct teex_chain_addrs a = {0}, b;
  struct teex_config c;
  struct teex_err e = {0};
  snprintf(path, sizeof path, "%s/" TEEX_CHAIN_CONF, dir);
  a.chain_id = 31337;
  a.deploy_block = 7;
  memset(a.enclave_registry, 0x11, 20);
  memset(a.service_registry, 0x22, 20);
  memset(a.settlement, 0x33, 20);
  memset(a.dataset_registry, 0x44, 20);
  memset(a.ds_anchor, 0x55, 20);
  /* First only the endpoint (chain up): addresses are missing, by name. */
  assert_int_equal(
      teex_chain_conf_save(path, "http://127.0.0.1:8545", 31337, NULL, &e), 0);
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, path, &e), 0);
  assert_int_equal(teex_chain_addrs_from_config(&c, &b, &e), TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "enclave_registry"));
  teex_config_free(&c);
  /* Then the deployment. */
  assert_int_equal(
      teex_chain_conf_save(path, "http://127.0.0.1:8545", 31337, &a, &e), 0);
  teex_config_init(&c);
  if (teex_config_load(&c, path, &e) != 0)
    fail_msg("%s", e.msg);
  assert_string_equal(teex_config_get(&c, "rpc_url", ""),
                      "http://127.0.0.1:8545");
  assert_int_equal(teex_chain_addrs_from_config(&c, &b, &e), 0);
  assert_memory_equal(&a, &b, sizeof a);
  teex_config_free(&c);
  /* A bad address is named. */
  const char *bad = "chain_id = 1\nenclave_registry = 0x12\n";
  teex_config_init(&c);
  assert_int_equal(teex_config_parse(&c, bad, strlen(bad), &e), 0);
  assert_int_equal(teex_chain_addrs_from_config(&c, &b, &e), TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "enclave_registry: not an address"));
  teex_config_free(&c);
  /* A URL that would break the file is refused. */
  assert_int_equal(teex_chain_conf_save(path, "http://x\n[evil]", 1, NULL, &e),
                   TEEX_EINVAL);
  tu_rmtree(dir);
  free(dir);
}

/* ---- against anvil ---- */

/* Accounts 0..4 of the "test test ... junk" mnemonic. */
static const char *keys[] = {
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
};
enum { DEPLOYER, DISPATCHER, USER, PROVIDER, STRANGER };

static pid_t anvil_pid;
static char url[64];
static struct teex_eth_rpc *rpc;
static struct teex_eth_sender *snd[5];
static uint8_t sk[5][32], addr[5][20];
static uint8_t sm_sk[32], sm_addr[20];
static struct teex_chain_addrs ca;
static const uint64_t DELAY = 3600;

static int free_port(void) {
  struct sockaddr_in sa = {0};
  socklen_t sl = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void stop_anvil(void) {
  if (anvil_pid > 0) {
    kill(anvil_pid, SIGTERM);
    waitpid(anvil_pid, NULL, 0);
    anvil_pid = 0;
  }
}

static int start_anvil(void) {
  char bin[1024], port_s[16];
  int port = free_port();
  struct teex_err e = {0};
  struct teex_eth_rpc_opts o = {.timeout_ms = 20000, .retries = -1};
  snprintf(bin, sizeof bin,
           "%s/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
           tu_source_dir());
  if (access(bin, X_OK) != 0) {
    fprintf(stderr, "anvil missing at %s: run scripts/install-deps.sh\n", bin);
    return -1;
  }
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  anvil_pid = fork();
  if (anvil_pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(bin, "anvil", "--host", "127.0.0.1", "--port", port_s, "--accounts",
          "5", (char *)NULL);
    _exit(127);
  }
  if (teex_eth_rpc_open(url, &o, &rpc, &e) != 0)
    return -1;
  teex_chain_use_errors(rpc);
  for (int i = 0; i < 200; i++) {
    uint64_t id;
    if (teex_eth_chain_id(rpc, &id, &e) == 0)
      return 0;
    sleep_ms(50);
  }
  fprintf(stderr, "anvil did not come up: %s\n", e.msg);
  return -1;
}

static int setup(void **state) {
  (void)state;
  struct teex_err e = {0};
  uint8_t pub[64];
  teex_crypto_init();
  if (start_anvil() != 0)
    return -1;
  for (int i = 0; i < 5; i++) {
    size_t n;
    if (teex_hex_decode(keys[i], sk[i], 32, &n) != 0 ||
        teex_secp256k1_public(sk[i], pub) != 0)
      return -1;
    teex_eth_address(pub, addr[i]);
    if (teex_eth_sender_new(rpc, sk[i], NULL, &snd[i], &e) != 0) {
      fprintf(stderr, "sender: %s\n", e.msg);
      return -1;
    }
  }
  /* The SM enclave's key: never funded, it only signs statements. */
  if (teex_secp256k1_keypair(sm_sk, pub) != 0)
    return -1;
  teex_eth_address(pub, sm_addr);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < 5; i++)
    teex_eth_sender_free(snd[i]);
  stop_anvil();
  teex_eth_rpc_close(rpc);
  teex_wipe(sm_sk, sizeof sm_sk);
  return 0;
}

static void domain_of(const uint8_t contract[20], struct teex_domain *d) {
  d->chain_id = ca.chain_id;
  memcpy(d->verifying_contract, contract, 20);
}

static void test_deploy(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_chain_deploy_opts o = {.withdrawal_delay = DELAY};
  memcpy(o.service_manager, sm_addr, 20);
  if (teex_chain_deploy(snd[DEPLOYER], &o, &ca, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(ca.chain_id, 31337);
  assert_int_equal(teex_chain_check(rpc, &ca, &e), 0);
  /* A wrong address is caught by the check. */
  struct teex_chain_addrs bad = ca;
  memset(bad.settlement, 0x42, 20);
  assert_int_equal(teex_chain_check(rpc, &bad, &e), TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "no Settlement contract"));
  bad = ca;
  memset(bad.ds_anchor, 0x42, 20);
  assert_int_equal(teex_chain_check(rpc, &bad, &e), TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "no DsAnchor contract"));
}

static struct teex_chain_service svc;

static void test_list_service(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_service_listing l = {0};
  struct teex_domain d;
  struct teex_chain_service got, *cat = NULL;
  uint8_t digest[32], sig[65], fake_sk[32], fake_pub[64];
  size_t n = 0;
  memset(&svc, 0, sizeof svc);
  teex_keccak256("service/echo", 12, svc.service_id);
  memcpy(svc.provider, addr[PROVIDER], 20);
  svc.version = 1;
  memset(svc.signing_key, 0x5a, 20);
  memset(svc.encryption_key, 0xe5, 32);
  teex_keccak256("image", 5, svc.image_hash);
  svc.price = 1000;
  svc.remuneration = 700;
  snprintf(svc.metadata_cid, sizeof svc.metadata_cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  memcpy(l.service_id, svc.service_id, 32);
  memcpy(l.provider, svc.provider, 20);
  l.version = 1;
  memcpy(l.signing_key, svc.signing_key, 20);
  memcpy(l.encryption_key, svc.encryption_key, 32);
  memcpy(l.image_hash, svc.image_hash, 32);
  domain_of(ca.service_registry, &d);
  teex_stmt_service_listing_digest(&d, &l, digest);

  /* Signed by a key that is not the SM's: refused on chain. */
  assert_int_equal(teex_secp256k1_keypair(fake_sk, fake_pub), 0);
  assert_int_equal(teex_stmt_sign(fake_sk, digest, sig), 0);
  assert_int_equal(
      teex_chain_list_service(snd[PROVIDER], &ca, &svc, sig, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotSignedByServiceManager"));

  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  /* The statement names the provider: another account cannot use it. */
  assert_int_equal(
      teex_chain_list_service(snd[STRANGER], &ca, &svc, sig, 0, &e),
      TEEX_ECHAIN);
  if (teex_chain_list_service(snd[PROVIDER], &ca, &svc, sig, 0, &e) != 0)
    fail_msg("%s", e.msg);

  assert_int_equal(teex_chain_get_service(rpc, &ca, svc.service_id, &got, &e),
                   0);
  assert_memory_equal(&got, &svc, sizeof got);
  uint8_t none[32];
  /* Not 0x01 00 .. 00: anvil quotes revert data as text, and a NUL in that
   * message is refused by the JSON-RPC parser (reported to the eth module). */
  memset(none, 0x01, sizeof none);
  int rc = teex_chain_get_service(rpc, &ca, none, &got, &e);
  if (rc != TEEX_ENOTFOUND)
    fail_msg("get unknown service: %d %s", rc, e.msg);

  /* The app store, from events alone. */
  if (teex_chain_catalogue(rpc, &ca, &cat, &n, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(n, 1);
  assert_memory_equal(&cat[0], &svc, sizeof svc);
  free(cat);

  /* Who may invoke: anyone while public; once private only the provider
   * and allowed callers; only the provider changes it. */
  int may = 0;
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[STRANGER], &may, &e),
      0);
  assert_true(may);
  assert_int_equal(
      teex_chain_set_private(snd[STRANGER], &ca, svc.service_id, 1, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotServiceProvider"));
  assert_int_equal(
      teex_chain_set_private(snd[PROVIDER], &ca, svc.service_id, 1, 0, &e), 0);
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[STRANGER], &may, &e),
      0);
  assert_false(may);
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[PROVIDER], &may, &e),
      0);
  assert_true(may);
  const uint8_t(*callers)[20] = (const uint8_t(*)[20])addr[STRANGER];
  assert_int_equal(teex_chain_set_allowed(snd[PROVIDER], &ca, svc.service_id,
                                          callers, 1, 1, 0, &e),
                   0);
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[STRANGER], &may, &e),
      0);
  assert_true(may);
  assert_int_equal(teex_chain_set_allowed(snd[PROVIDER], &ca, svc.service_id,
                                          callers, 0, 1, 0, &e),
                   TEEX_EINVAL);
  assert_int_equal(teex_chain_set_allowed(snd[PROVIDER], &ca, svc.service_id,
                                          callers, 1, 0, 0, &e),
                   0);
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[STRANGER], &may, &e),
      0);
  assert_false(may);
  assert_int_equal(teex_chain_get_service(rpc, &ca, svc.service_id, &got, &e),
                   0);
  assert_true(got.is_private);
  assert_int_equal(teex_chain_catalogue(rpc, &ca, &cat, &n, &e), 0);
  assert_true(n == 1 && cat[0].is_private);
  free(cat);
  assert_int_equal(
      teex_chain_set_private(snd[PROVIDER], &ca, svc.service_id, 0, 0, &e), 0);
  assert_int_equal(
      teex_chain_can_invoke(rpc, &ca, svc.service_id, addr[STRANGER], &may, &e),
      0);
  assert_true(may);

  /* Retired: the catalogue says so. */
  uint8_t other[32];
  teex_keccak256("service/other", 13, other);
  memcpy(l.service_id, other, 32);
  teex_stmt_service_listing_digest(&d, &l, digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  struct teex_chain_service s2 = svc;
  memcpy(s2.service_id, other, 32);
  assert_int_equal(teex_chain_list_service(snd[PROVIDER], &ca, &s2, sig, 0, &e),
                   0);
  assert_int_equal(teex_chain_retire_service(snd[PROVIDER], &ca, other, 0, &e),
                   0);
  assert_int_equal(teex_chain_catalogue(rpc, &ca, &cat, &n, &e), 0);
  assert_int_equal(n, 2);
  assert_false(cat[0].retired);
  assert_true(cat[1].retired);
  free(cat);

  /* The same app store through the CLI, as a user sees it. */
  char *dir = tu_mkdtemp("chainsvc"), conf[512], *out = NULL, *errout = NULL;
  snprintf(conf, sizeof conf, "%s/" TEEX_CHAIN_CONF, dir);
  assert_int_equal(teex_chain_conf_save(conf, url, ca.chain_id, &ca, &e), 0);
  char *argv[] = {
      (char *)tu_teex_bin(), "chain", "services", "--dir", dir, "--json", NULL};
  int st = tu_run(argv, NULL, 0, &out, &errout);
  if (st != 0)
    fail_msg("teex chain services: %d %s", st, errout ? errout : "");
  assert_non_null(strstr(out, svc.metadata_cid));
  assert_non_null(strstr(out, "\"price\":\"1000\""));
  assert_non_null(strstr(out, "\"state\":\"retired\""));
  assert_non_null(strstr(out, "\"state\":\"public\""));
  free(out);
  free(errout);
  tu_rmtree(dir);
  free(dir);
}

static void test_enclave_and_deposit(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_domain d;
  struct teex_chain_escrow es;
  uint8_t digest[32], sig[65], meas[32];
  int active = 0;
  uint64_t now = (uint64_t)time(NULL);
  memset(meas, 0x6d, 32);
  domain_of(ca.enclave_registry, &d);
  teex_stmt_enclave_registration_digest(
      &d, addr[DISPATCHER], TEEX_ENCLAVE_DISPATCHER, meas, now, digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  /* Deposits go only to registered dispatchers. */
  assert_int_equal(
      teex_chain_deposit(snd[USER], &ca, addr[DISPATCHER], 5000, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotRegisteredDispatcher"));
  if (teex_chain_register_enclave(snd[STRANGER], &ca, addr[DISPATCHER],
                                  TEEX_ENCLAVE_DISPATCHER, meas, now, sig, 0,
                                  &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(teex_chain_enclave_active(rpc, &ca, addr[DISPATCHER],
                                             TEEX_ENCLAVE_DISPATCHER, &active,
                                             &e),
                   0);
  assert_true(active);
  assert_int_equal(teex_chain_enclave_active(rpc, &ca, addr[DISPATCHER],
                                             TEEX_ENCLAVE_WORKER, &active, &e),
                   0);
  assert_false(active);
  if (teex_chain_deposit(snd[USER], &ca, addr[DISPATCHER], 5000, 0, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(
      teex_chain_get_escrow(rpc, &ca, addr[USER], addr[DISPATCHER], &es, &e),
      0);
  assert_true(es.balance == 5000);
  assert_true(es.settled == 0);
}

/* Three tasks of USER: receipts, tree, the latest authorisation. */
static struct teex_receipt rcpt[3];
static uint8_t leaves[3 * 32], root[32], batch_id[32];

static void build_batch(struct teex_payment_auth *auth,
                        struct teex_chain_credit credits[2]) {
  struct teex_domain d;
  uint8_t digest[32];
  teex_amount cum = 0;
  domain_of(ca.settlement, &d);
  for (int i = 0; i < 3; i++) {
    struct teex_receipt *r = &rcpt[i];
    memset(r, 0, sizeof *r);
    teex_random(r->task_id, 32);
    memcpy(r->service_id, svc.service_id, 32);
    memcpy(r->image_hash, svc.image_hash, 32);
    memcpy(r->user, addr[USER], 20);
    memcpy(r->dispatcher, addr[DISPATCHER], 20);
    memcpy(r->worker, addr[STRANGER], 20);
    memcpy(r->provider, addr[PROVIDER], 20);
    teex_random(r->input_commitment, 32);
    teex_random(r->output_commitment, 32);
    teex_amount_word(svc.price, r->price);
    teex_amount_word(svc.remuneration, r->worker_amount);
    teex_amount_word(svc.price - svc.remuneration, r->provider_amount);
    teex_settle_receipt_leaf(r, leaves + 32 * i);
    cum += svc.price;
  }
  assert_int_equal(teex_settle_merkle_root(leaves, 3, root), 0);
  memset(auth, 0, sizeof *auth);
  memcpy(auth->user, addr[USER], 20);
  memcpy(auth->dispatcher, addr[DISPATCHER], 20);
  memcpy(auth->task_id, rcpt[2].task_id, 32);
  memcpy(auth->service_id, svc.service_id, 32);
  memcpy(auth->image_hash, svc.image_hash, 32);
  teex_keccak256("", 0, auth->datasets_hash);
  auth->price = svc.price;
  auth->cumulative = cum;
  teex_stmt_payment_auth_digest(&d, auth, digest);
  assert_int_equal(teex_stmt_sign(sk[USER], digest, auth->sig), 0);
  memcpy(credits[0].payee, addr[STRANGER], 20);
  credits[0].amount = 3 * svc.remuneration;
  memcpy(credits[1].payee, addr[PROVIDER], 20);
  credits[1].amount = 3 * (svc.price - svc.remuneration);
}

static void test_settle(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_payment_auth auth;
  struct teex_chain_credit credits[2];
  struct teex_chain_batch b = {0};
  struct teex_chain_batch_record rec;
  struct teex_chain_escrow es;
  teex_amount cr = 0;
  uint64_t gas = 0;
  build_batch(&auth, credits);
  teex_keccak256("batch/1", 7, batch_id);
  memcpy(b.batch_id, batch_id, 32);
  memcpy(b.root, root, 32);
  b.task_count = 3;
  b.cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
  b.auths = &auth;
  b.n_auths = 1;
  b.credits = credits;
  b.n_credits = 2;

  /* Sent by a key that is not a registered dispatcher. */
  assert_int_equal(teex_chain_settle_batch(snd[STRANGER], &ca, &b, 0, NULL, &e),
                   TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotRegisteredDispatcher"));
  /* Credits that do not match the debits. */
  credits[1].amount += 1;
  assert_int_equal(
      teex_chain_settle_batch(snd[DISPATCHER], &ca, &b, 0, NULL, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "DebitsCreditsMismatch"));
  credits[1].amount -= 1;

  if (teex_chain_settle_batch(snd[DISPATCHER], &ca, &b, 0, &gas, &e) != 0)
    fail_msg("%s", e.msg);
  assert_true(gas > 21000);
  assert_int_equal(teex_chain_get_batch(rpc, &ca, batch_id, &rec, &e), 0);
  assert_memory_equal(rec.root, root, 32);
  assert_memory_equal(rec.dispatcher, addr[DISPATCHER], 20);
  assert_int_equal(rec.task_count, 3);
  assert_int_equal(
      teex_chain_get_escrow(rpc, &ca, addr[USER], addr[DISPATCHER], &es, &e),
      0);
  assert_true(es.balance == 5000 - 3000);
  assert_true(es.settled == 3000);
  assert_int_equal(teex_chain_get_credits(rpc, &ca, addr[PROVIDER], &cr, &e),
                   0);
  assert_true(cr == 900);

  /* The batch content for IPFS, audited by an independent implementation
   * (contracts/js/audit_batch.mjs on ethers): magic, leaves, root, worker
   * and user signatures, splits and credits. */
  {
    struct teex_domain d;
    uint8_t sigs[3][65], digest[32];
    struct teex_chain_batch_content bc = {0};
    struct teex_buf out;
    char *dir = tu_mkdtemp("batchcontent"), file[512], script[512];
    char *o = NULL, *eo = NULL, roothex[65];
    domain_of(ca.settlement, &d);
    for (int i = 0; i < 3; i++) {
      teex_stmt_receipt_digest(&d, &rcpt[i], digest);
      assert_int_equal(teex_stmt_sign(sk[STRANGER], digest, sigs[i]), 0);
    }
    bc.chain_id = ca.chain_id;
    memcpy(bc.settlement, ca.settlement, 20);
    memcpy(bc.dispatcher, addr[DISPATCHER], 20);
    bc.batch = &b;
    bc.receipts = rcpt;
    bc.receipt_sigs = (const uint8_t(*)[65])sigs;
    bc.n_receipts = 2;
    teex_buf_init(&out, TEEX_CHAIN_BATCH_CONTENT_MAX, 0);
    assert_int_equal(teex_chain_batch_content_encode(&bc, &out, &e),
                     TEEX_EINVAL); /* 2 receipts for 3 tasks */
    bc.n_receipts = 3;
    if (teex_chain_batch_content_encode(&bc, &out, &e) != 0)
      fail_msg("%s", e.msg);
    snprintf(file, sizeof file, "%s/batch.bin", dir);
    snprintf(script, sizeof script, "%s/contracts/js/audit_batch.mjs",
             tu_source_dir());
    assert_int_equal(tu_write_file(file, out.data, out.len), 0);
    char *argv[] = {"/usr/bin/env", "node", script, file, NULL};
    int st = tu_run(argv, NULL, 0, &o, &eo);
    if (st != 0)
      fail_msg("audit: %s", eo ? eo : "");
    teex_hex_encode(root, 32, roothex);
    assert_non_null(strstr(o, roothex));
    assert_non_null(strstr(o, "\"receipts\":3"));
    free(o);
    free(eo);
    /* One wei more in the last credit: the audit must refuse it. */
    out.data[out.len - 1] ^= 1;
    assert_int_equal(tu_write_file(file, out.data, out.len), 0);
    st = tu_run(argv, NULL, 0, &o, &eo);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(eo, "credit"));
    free(o);
    free(eo);
    teex_buf_free(&out);
    tu_rmtree(dir);
    free(dir);
  }

  /* The same batch again. */
  assert_int_equal(
      teex_chain_settle_batch(snd[DISPATCHER], &ca, &b, 0, NULL, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "BatchAlreadySettled"));
  /* The same authorisation in a new batch charges nothing. */
  teex_keccak256("batch/2", 7, b.batch_id);
  b.n_credits = 0;
  assert_int_equal(
      teex_chain_settle_batch(snd[DISPATCHER], &ca, &b, 0, NULL, &e), 0);
  assert_int_equal(
      teex_chain_get_escrow(rpc, &ca, addr[USER], addr[DISPATCHER], &es, &e),
      0);
  assert_true(es.balance == 2000);
}

static void test_verify_receipt(void **state) {
  (void)state;
  struct teex_err e = {0};
  uint8_t proof[TEEX_SETTLE_MAX_PROOF * 32];
  size_t np = 0;
  int inc = 0;
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(teex_settle_merkle_proof(leaves, 3, i, proof, &np), 0);
    if (teex_chain_verify_receipt(rpc, &ca, batch_id, &rcpt[i], proof, np, &inc,
                                  &e) != 0)
      fail_msg("%s", e.msg);
    assert_true(inc);
  }
  /* A receipt altered after the fact is not in the batch. */
  struct teex_receipt bad = rcpt[2];
  bad.output_commitment[0] ^= 1;
  assert_int_equal(
      teex_chain_verify_receipt(rpc, &ca, batch_id, &bad, proof, np, &inc, &e),
      0);
  assert_false(inc);
  uint8_t unknown[32] = {9};
  assert_int_equal(teex_chain_verify_receipt(rpc, &ca, unknown, &rcpt[2], proof,
                                             np, &inc, &e),
                   0);
  assert_false(inc);
}

static void evm_forward(uint64_t seconds) {
  struct teex_err e = {0};
  json_t *res = NULL;
  if (teex_eth_rpc_call(rpc, "evm_increaseTime",
                        json_pack("[I]", (json_int_t)seconds), 0, &res,
                        &e) != 0)
    fail_msg("evm_increaseTime: %s", e.msg);
  json_decref(res);
  res = NULL;
  assert_int_equal(teex_eth_rpc_call(rpc, "evm_mine", NULL, 0, &res, &e), 0);
  json_decref(res);
}

static void test_withdrawals(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_chain_escrow es;
  teex_amount cr = 0;
  uint8_t to[20];
  teex_u256 bal;
  assert_int_equal(teex_chain_request_withdrawal(snd[USER], &ca,
                                                 addr[DISPATCHER], 1500, 0, &e),
                   0);
  /* Refused before the delay, and nothing moves. (The reason is checked
   * when the client can read it: anvil quotes this error's data as text
   * with NUL characters, which the JSON-RPC parser currently refuses.) */
  int rc =
      teex_chain_complete_withdrawal(snd[USER], &ca, addr[DISPATCHER], 0, &e);
  assert_int_not_equal(rc, 0);
  if (rc == TEEX_ECHAIN)
    assert_non_null(strstr(e.msg, "WithdrawalLocked"));
  assert_int_equal(
      teex_chain_get_escrow(rpc, &ca, addr[USER], addr[DISPATCHER], &es, &e),
      0);
  assert_true(es.balance == 2000);
  assert_true(es.pending_withdrawal == 1500);
  evm_forward(DELAY + 10);
  if (teex_chain_complete_withdrawal(snd[USER], &ca, addr[DISPATCHER], 0, &e))
    fail_msg("%s", e.msg);
  assert_int_equal(
      teex_chain_get_escrow(rpc, &ca, addr[USER], addr[DISPATCHER], &es, &e),
      0);
  assert_true(es.balance == 500);
  assert_int_equal(es.unlock_at, 0);

  /* The worker pulls its credits to a fresh address. */
  memset(to, 0x77, 20);
  assert_int_equal(teex_chain_get_credits(rpc, &ca, addr[STRANGER], &cr, &e),
                   0);
  assert_true(cr == 2100);
  rc = teex_chain_withdraw_credits(snd[STRANGER], &ca, to, cr + 1, 0, &e);
  assert_int_not_equal(rc, 0);
  if (rc == TEEX_ECHAIN) /* see above */
    assert_non_null(strstr(e.msg, "InsufficientCredits"));
  assert_int_equal(teex_chain_get_credits(rpc, &ca, addr[STRANGER], &cr, &e),
                   0);
  assert_true(cr == 2100);
  assert_int_equal(
      teex_chain_withdraw_credits(snd[STRANGER], &ca, to, cr, 0, &e), 0);
  assert_int_equal(teex_eth_get_balance(rpc, to, NULL, bal, &e), 0);
  teex_u256 want;
  teex_amount_word(2100, want);
  assert_memory_equal(bal, want, 32);
}

/* A refusal: the call failed, and when the node's answer could be decoded
 * (see test_withdrawals), it names the contract's error. */
static void expect_refused(int rc, const struct teex_err *e, const char *name) {
  if (rc == 0)
    fail_msg("expected %s, the call succeeded", name);
  if (rc == TEEX_ECHAIN && strstr(e->msg, name) == NULL)
    fail_msg("expected %s, got %s", name, e->msg);
}

static void test_datasets(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_chain_dataset d, got, *all = NULL;
  struct teex_chain_approval pairs[2], *ap = NULL;
  uint8_t img2[32], want_id[32];
  size_t n = 0;
  int usable = -1;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "%s", "cohort-2026");
  snprintf(d.ciphertext_cid, sizeof d.ciphertext_cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  teex_keccak256("plaintext", 9, d.plaintext_hash);
  d.plaintext_size = 1 << 20;
  d.price = 250;
  d.max_uses = 3;
  d.max_output_bytes = 4096;

  /* Bad fields are refused before anything is sent. */
  struct teex_chain_dataset bad = d;
  bad.name[0] = 0;
  assert_int_equal(teex_chain_list_dataset(snd[USER], &ca, &bad, 0, &e),
                   TEEX_EINVAL);
  /* A network without the registry says so. */
  struct teex_chain_addrs old = ca;
  memset(old.dataset_registry, 0, 20);
  assert_int_equal(teex_chain_list_dataset(snd[USER], &old, &d, 0, &e),
                   TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "DatasetRegistry"));

  if (teex_chain_list_dataset(snd[USER], &ca, &d, 0, &e) != 0)
    fail_msg("%s", e.msg);
  /* The id the contract derived is the one C computes. */
  teex_dataset_id(addr[USER], "cohort-2026", want_id);
  assert_memory_equal(d.dataset_id, want_id, 32);
  assert_memory_equal(d.provider, addr[USER], 20);
  if (teex_chain_get_dataset(rpc, &ca, d.dataset_id, &got, &e) != 0)
    fail_msg("%s", e.msg);
  assert_memory_equal(&got, &d, sizeof got);
  expect_refused(teex_chain_list_dataset(snd[USER], &ca, &d, 0, &e), &e,
                 "DatasetAlreadyListed");
  uint8_t none[32];
  memset(none, 0x01, sizeof none);
  assert_int_equal(teex_chain_get_dataset(rpc, &ca, none, &got, &e),
                   TEEX_ENOTFOUND);
  /* Ids with zero bytes too (existence is asked without a revert). */
  memset(none, 0, sizeof none);
  none[0] = 0x01;
  assert_int_equal(teex_chain_get_dataset(rpc, &ca, none, &got, &e),
                   TEEX_ENOTFOUND);

  /* Approvals: exact pairs, by the provider only. */
  teex_keccak256("image v2", 8, img2);
  memcpy(pairs[0].service_id, svc.service_id, 32);
  memcpy(pairs[0].image_hash, svc.image_hash, 32);
  memcpy(pairs[1].service_id, svc.service_id, 32);
  memcpy(pairs[1].image_hash, img2, 32);
  expect_refused(teex_chain_approve_dataset(snd[STRANGER], &ca, d.dataset_id,
                                            pairs, 1, 1, 0, &e),
                 &e, "NotDatasetProvider");
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d.dataset_id,
                                             svc.service_id, svc.image_hash,
                                             &usable, &e),
                   0);
  assert_int_equal(usable, 0);
  if (teex_chain_approve_dataset(snd[USER], &ca, d.dataset_id, pairs, 2, 1, 0,
                                 &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d.dataset_id,
                                             svc.service_id, svc.image_hash,
                                             &usable, &e),
                   0);
  assert_int_equal(usable, 1);
  /* The approved service at an image the provider never approved. */
  uint8_t img3[32];
  teex_keccak256("image v3", 8, img3);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d.dataset_id,
                                             svc.service_id, img3, &usable, &e),
                   0);
  assert_int_equal(usable, 0);
  /* Remove v2: the approvals from events list only v1. */
  assert_int_equal(teex_chain_approve_dataset(snd[USER], &ca, d.dataset_id,
                                              &pairs[1], 1, 0, 0, &e),
                   0);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d.dataset_id,
                                             svc.service_id, img2, &usable, &e),
                   0);
  assert_int_equal(usable, 0);
  if (teex_chain_dataset_approvals(rpc, &ca, d.dataset_id, &ap, &n, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(n, 1);
  assert_memory_equal(&ap[0], &pairs[0], sizeof pairs[0]);
  free(ap);

  /* An expiring dataset of another provider, then time passes. */
  struct teex_chain_dataset d2 = d;
  snprintf(d2.name, sizeof d2.name, "%s", "short-lived");
  struct teex_eth_block blk;
  assert_int_equal(teex_eth_get_block(rpc, "latest", &blk, &e), 0);
  d2.expires_at = blk.timestamp + 600;
  d2.max_uses = 0;
  if (teex_chain_list_dataset(snd[PROVIDER], &ca, &d2, 0, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(teex_chain_approve_dataset(snd[PROVIDER], &ca, d2.dataset_id,
                                              pairs, 1, 1, 0, &e),
                   0);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d2.dataset_id,
                                             svc.service_id, svc.image_hash,
                                             &usable, &e),
                   0);
  assert_int_equal(usable, 1);
  evm_forward(601);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d2.dataset_id,
                                             svc.service_id, svc.image_hash,
                                             &usable, &e),
                   0);
  assert_int_equal(usable, 0);

  /* Expired, but the approval itself stands. */
  int approved = 0;
  assert_int_equal(teex_chain_dataset_approved(rpc, &ca, d2.dataset_id,
                                               svc.service_id, svc.image_hash,
                                               &approved, &e),
                   0);
  assert_int_equal(approved, 1);
  assert_int_equal(teex_chain_dataset_approved(rpc, &ca, d2.dataset_id,
                                               svc.service_id, img3, &approved,
                                               &e),
                   0);
  assert_int_equal(approved, 0);

  /* Revocation: only by the provider, final, and no key is usable. */
  expect_refused(
      teex_chain_revoke_dataset(snd[STRANGER], &ca, d.dataset_id, 0, &e), &e,
      "NotDatasetProvider");
  assert_int_equal(
      teex_chain_revoke_dataset(snd[USER], &ca, d.dataset_id, 0, &e), 0);
  assert_int_equal(teex_chain_dataset_usable(rpc, &ca, d.dataset_id,
                                             svc.service_id, svc.image_hash,
                                             &usable, &e),
                   0);
  assert_int_equal(usable, 0);
  expect_refused(teex_chain_approve_dataset(snd[USER], &ca, d.dataset_id, pairs,
                                            1, 1, 0, &e),
                 &e, "DatasetIsRevoked");

  /* The listings from events alone. */
  if (teex_chain_datasets(rpc, &ca, &all, &n, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(n, 2);
  assert_memory_equal(all[0].dataset_id, d.dataset_id, 32);
  assert_true(all[0].revoked);
  assert_string_equal(all[0].ciphertext_cid, d.ciphertext_cid);
  assert_true(all[0].price == 250);
  assert_int_equal(all[0].max_uses, 3);
  assert_int_equal(all[0].max_output_bytes, 4096);
  assert_memory_equal(all[1].provider, addr[PROVIDER], 20);
  assert_false(all[1].revoked);
  assert_int_equal(all[1].expires_at, d2.expires_at);
  free(all);
}

/* The latest() record as a node returns it (the fuzz seed, written from the
 * ABI by hand): decoded field by field; cut short or with a CID holding a
 * NUL, refused. */
static void test_ds_anchor_decode(void **state) {
  (void)state;
  char path[1024];
  size_t n;
  struct teex_ds_anchor a;
  struct teex_err e = {0};
  uint8_t signer[20];
  snprintf(path, sizeof path, "%s/fuzz/corpus/fuzz_ds_anchor/record",
           tu_source_dir());
  uint8_t *rec = tu_read_file(path, &n);
  assert_non_null(rec);
  memset(&a, 0, sizeof a);
  if (teex_chain__ds_anchor_decode(rec, n, &a, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(a.index, 42);
  assert_int_equal(a.term, 3);
  assert_int_equal(a.time_ms, 1765000000000ull);
  assert_int_equal(a.anchored_at, 1765000000ull);
  assert_int_equal(a.applied_chain[0], 0x11);
  assert_int_equal(a.state_digest[31], 0x22);
  assert_int_equal(a.commitment_hash[5], 0x33);
  memset(signer, 0x44, 20);
  assert_memory_equal(a.signer, signer, 20);
  assert_string_equal(
      a.cid, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  assert_int_not_equal(teex_chain__ds_anchor_decode(rec, n - 40, &a, &e), 0);
  rec[n - 40] = 0; /* a NUL inside the CID */
  assert_int_equal(teex_chain__ds_anchor_decode(rec, n, &a, &e), TEEX_EFORMAT);
  free(rec);
}

/* DsAnchor from C: a group of three replica keys, an anchor signed by one
 * of them (the digest is the one the contract recovers), only higher
 * indexes, only listed signers. */
static void test_ds_anchor(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_domain d;
  struct teex_ds_anchor c, got;
  uint8_t rsk[3][32], raddr[3][20], pub[64], digest[32], sig[65], gid[32];
  uint8_t ds_gid[16], other_sk[32];
  memset(ds_gid, 0xd5, sizeof ds_gid);
  teex_ds_anchor_group_id(ds_gid, gid);
  assert_memory_equal(gid, ds_gid, 16);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(teex_secp256k1_keypair(rsk[i], pub), 0);
    teex_eth_address(pub, raddr[i]);
  }
  assert_int_equal(teex_secp256k1_keypair(other_sk, pub), 0);
  assert_true(teex_chain_has_ds_anchor(&ca));
  /* Before the group exists: nothing anchored. */
  if (teex_chain_ds_anchor_latest(rpc, &ca, gid, &got, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(got.index, 0);
  if (teex_chain_ds_anchor_create_group(
          snd[PROVIDER], &ca, gid, (const uint8_t(*)[20])raddr, 3, 0, &e) != 0)
    fail_msg("%s", e.msg);
  /* Only once. */
  assert_int_equal(teex_chain_ds_anchor_create_group(snd[STRANGER], &ca, gid,
                                                     NULL, 0, 0, &e),
                   TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "GroupExists"));

  memset(&c, 0, sizeof c);
  memcpy(c.group_id, gid, 32);
  c.index = 42;
  c.term = 3;
  c.time_ms = (uint64_t)time(NULL) * 1000;
  teex_keccak256("chain@42", 8, c.applied_chain);
  teex_keccak256("digest@42", 9, c.state_digest);
  teex_keccak256("document", 8, c.commitment_hash);
  snprintf(c.cid, sizeof c.cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  domain_of(ca.ds_anchor, &d);
  teex_ds_anchor_digest(&d, &c, digest);
  /* Signed by a key the owner did not list: refused. */
  assert_int_equal(teex_stmt_sign(other_sk, digest, sig), 0);
  assert_int_equal(
      teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotAnAnchorer"));
  /* Signed by replica 2, submitted by anyone: recorded. */
  assert_int_equal(teex_stmt_sign(rsk[1], digest, sig), 0);
  if (teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e) != 0)
    fail_msg("%s", e.msg);
  if (teex_chain_ds_anchor_latest(rpc, &ca, gid, &got, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(got.index, 42);
  assert_int_equal(got.term, 3);
  assert_int_equal(got.time_ms, c.time_ms);
  assert_memory_equal(got.applied_chain, c.applied_chain, 32);
  assert_memory_equal(got.state_digest, c.state_digest, 32);
  assert_memory_equal(got.commitment_hash, c.commitment_hash, 32);
  assert_string_equal(got.cid, c.cid);
  assert_memory_equal(got.signer, raddr[1], 20);
  assert_true(got.anchored_at > 0);
  /* The same index again (a restored group re-anchoring): refused. */
  assert_int_equal(
      teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "IndexNotIncreasing"));
  /* A changed field breaks the signature. */
  c.index = 43;
  assert_int_equal(
      teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotAnAnchorer"));
  /* A bad CID never leaves. */
  c.cid[0] = 0;
  assert_int_equal(
      teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e),
      TEEX_EINVAL);
  /* The owner removes replica 2: its next anchor is refused. */
  if (teex_chain_ds_anchor_set(snd[PROVIDER], &ca, gid, raddr[1], 0, 0, &e) !=
      0)
    fail_msg("%s", e.msg);
  snprintf(c.cid, sizeof c.cid, "%s", "bafkreianchor43");
  teex_ds_anchor_digest(&d, &c, digest);
  assert_int_equal(teex_stmt_sign(rsk[1], digest, sig), 0);
  assert_int_equal(
      teex_chain_ds_anchor_submit(snd[STRANGER], &ca, &c, sig, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotAnAnchorer"));
  /* Only the owner changes anchorers. */
  assert_int_equal(
      teex_chain_ds_anchor_set(snd[STRANGER], &ca, gid, raddr[1], 1, 0, &e),
      TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "NotGroupOwner"));

  /* A network without the contract says so. */
  struct teex_chain_addrs old = ca;
  memset(old.ds_anchor, 0, 20);
  assert_int_equal(teex_chain_ds_anchor_latest(rpc, &old, gid, &got, &e),
                   TEEX_ECONFIG);
  assert_non_null(strstr(e.msg, "no DsAnchor"));
  teex_wipe(rsk, sizeof rsk);
  teex_wipe(other_sk, sizeof other_sk);
}

/* A revocation signed by the SM (the statement `teex sm revoke` prints):
 * the address is inactive at once and for good; a dispatcher's escrow
 * refuses new deposits; a signature by anyone else is refused. */
static void test_enclave_revocation(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_domain d;
  uint8_t digest[32], sig[65], meas[32], wsk[32], dsk[32], pub[64], w[20],
      dp[20];
  int active = 1;
  uint64_t now = (uint64_t)time(NULL);
  memset(meas, 0x77, 32);
  domain_of(ca.enclave_registry, &d);
  assert_int_equal(teex_secp256k1_keypair(wsk, pub), 0);
  teex_eth_address(pub, w);
  assert_int_equal(teex_secp256k1_keypair(dsk, pub), 0);
  teex_eth_address(pub, dp);
  teex_stmt_enclave_registration_digest(&d, w, TEEX_ENCLAVE_WORKER, meas, now,
                                        digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  assert_int_equal(teex_chain_register_enclave(snd[STRANGER], &ca, w,
                                               TEEX_ENCLAVE_WORKER, meas, now,
                                               sig, 0, &e),
                   0);
  teex_stmt_enclave_registration_digest(&d, dp, TEEX_ENCLAVE_DISPATCHER, meas,
                                        now, digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  assert_int_equal(teex_chain_register_enclave(snd[STRANGER], &ca, dp,
                                               TEEX_ENCLAVE_DISPATCHER, meas,
                                               now, sig, 0, &e),
                   0);
  assert_int_equal(teex_chain_deposit(snd[USER], &ca, dp, 100, 0, &e), 0);

  /* Signed by someone other than the SM: refused, still active. */
  teex_stmt_enclave_revocation_digest(&d, w, digest);
  assert_int_equal(teex_stmt_sign(sk[STRANGER], digest, sig), 0);
  assert_int_not_equal(
      teex_chain_revoke_enclave(snd[STRANGER], &ca, w, sig, 0, &e), 0);
  assert_int_equal(
      teex_chain_enclave_active(rpc, &ca, w, TEEX_ENCLAVE_WORKER, &active, &e),
      0);
  assert_true(active);

  /* The SM's statement, submitted by anyone. */
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  if (teex_chain_revoke_enclave(snd[STRANGER], &ca, w, sig, 0, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(
      teex_chain_enclave_active(rpc, &ca, w, TEEX_ENCLAVE_WORKER, &active, &e),
      0);
  assert_false(active);
  /* For good: registering the address again is refused. */
  teex_stmt_enclave_registration_digest(&d, w, TEEX_ENCLAVE_WORKER, meas,
                                        now + 1, digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  expect_refused(teex_chain_register_enclave(snd[STRANGER], &ca, w,
                                             TEEX_ENCLAVE_WORKER, meas, now + 1,
                                             sig, 0, &e),
                 &e, "EnclaveWasRevoked");

  /* A revoked dispatcher takes no new deposits. */
  teex_stmt_enclave_revocation_digest(&d, dp, digest);
  assert_int_equal(teex_stmt_sign(sm_sk, digest, sig), 0);
  assert_int_equal(
      teex_chain_revoke_enclave(snd[STRANGER], &ca, dp, sig, 0, &e), 0);
  expect_refused(teex_chain_deposit(snd[USER], &ca, dp, 100, 0, &e), &e,
                 "NotRegisteredDispatcher");
  teex_wipe(wsk, 32);
  teex_wipe(dsk, 32);
}

int main(void) {
  const struct CMUnitTest offline[] = {
      cmocka_unit_test(test_sigs_match_abi),
      cmocka_unit_test(test_config_roundtrip),
      cmocka_unit_test(test_ds_anchor_decode),
  };
  const struct CMUnitTest chain[] = {
      cmocka_unit_test(test_deploy),
      cmocka_unit_test(test_list_service),
      cmocka_unit_test(test_enclave_and_deposit),
      cmocka_unit_test(test_settle),
      cmocka_unit_test(test_verify_receipt),
      cmocka_unit_test(test_withdrawals),
      cmocka_unit_test(test_datasets),
      cmocka_unit_test(test_ds_anchor),
      cmocka_unit_test(test_enclave_revocation),
  };
  int rc = cmocka_run_group_tests_name("chain offline", offline, NULL, NULL);
  rc |= cmocka_run_group_tests_name("chain on anvil", chain, setup, teardown);
  return rc;
}
