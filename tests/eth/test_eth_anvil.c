/* The Ethereum client against a real node: anvil (pinned in tools/) started
 * on a free loopback port with the standard deterministic accounts. Chain id
 * and balances, EIP-1559 and legacy transfers with receipts and gas, many
 * transactions in flight with correct nonces, a nonce taken behind the
 * sender's back, a hand-assembled contract that emits a log and reverts
 * with a reason (surfaced from eth_call, gas estimation and a mined failed
 * transaction), logs, code; then hostile endpoints (garbage, oversize,
 * dropped connections) and the node going away. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/eth.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Accounts 0..3 of "test test ... junk". */
static const char *keys[] = {
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
};
static const char *addrs[] = {
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
};

static pid_t anvil_pid;
static char url[64];
static struct teex_eth_rpc *rpc;

static void key(int i, uint8_t sk[32]) {
  size_t n;
  assert_int_equal(teex_hex_decode(keys[i], sk, 32, &n), 0);
}

static void addr(int i, uint8_t a[20]) {
  assert_int_equal(teex_eth_address_parse(addrs[i], a), 0);
}

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

static int setup(void **state) {
  (void)state;
  char bin[1024], port_s[16];
  int port = free_port();
  teex_crypto_init();
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
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(bin, "anvil", "--host", "127.0.0.1", "--port", port_s, "--accounts",
          "4", (char *)NULL);
    _exit(127);
  }
  struct teex_err e = {0};
  struct teex_eth_rpc_opts o = {.timeout_ms = 10000, .retries = -1};
  if (teex_eth_rpc_open(url, &o, &rpc, &e) != 0)
    return -1;
  for (int i = 0; i < 200; i++) {
    uint64_t id;
    if (teex_eth_chain_id(rpc, &id, &e) == 0)
      return 0;
    sleep_ms(50);
  }
  fprintf(stderr, "anvil did not come up: %s\n", e.msg);
  return -1;
}

static void stop_anvil(void) {
  if (anvil_pid > 0) {
    kill(anvil_pid, SIGTERM);
    waitpid(anvil_pid, NULL, 0);
    anvil_pid = 0;
  }
}

static int teardown(void **state) {
  (void)state;
  stop_anvil();
  teex_eth_rpc_close(rpc);
  return 0;
}

static void test_chain_basics(void **state) {
  (void)state;
  struct teex_err e = {0};
  uint64_t id, bn, nonce;
  teex_u256 bal, want, fee;
  uint8_t a[20];
  assert_int_equal(teex_eth_chain_id(rpc, &id, &e), 0);
  assert_int_equal(id, 31337);
  assert_int_equal(teex_eth_block_number(rpc, &bn, &e), 0);
  addr(3, a);
  assert_int_equal(teex_eth_get_balance(rpc, a, NULL, bal, &e), 0);
  assert_int_equal(teex_u256_parse("10000000000000000000000", want), 0);
  assert_int_equal(teex_u256_cmp(bal, want), 0);
  assert_int_equal(teex_eth_get_nonce(rpc, a, "pending", &nonce, &e), 0);
  assert_int_equal(nonce, 0);
  assert_int_equal(teex_eth_base_fee(rpc, fee, &e), 0);
  assert_false(teex_u256_is_zero(fee));
  assert_int_equal(teex_eth_gas_price(rpc, fee, &e), 0);
  assert_int_equal(teex_eth_max_priority_fee(rpc, fee, &e), 0);
  struct teex_eth_block b;
  assert_int_equal(teex_eth_get_block(rpc, "latest", &b, &e), 0);
  assert_true(b.timestamp > 1600000000u);
  assert_true(b.has_base_fee);
  assert_int_equal(teex_eth_get_block(rpc, "0xffffff", &b, &e), TEEX_ENOTFOUND);
}

static void transfer(int legacy) {
  struct teex_err e = {0};
  struct teex_eth_sender *s = NULL;
  struct teex_eth_sender_opts o = {.legacy = legacy};
  struct teex_eth_request req = {0};
  struct teex_eth_receipt r;
  uint8_t sk[32], to[20];
  teex_u256 before, after, diff, one;
  key(0, sk);
  addr(1, to);
  if (teex_eth_sender_new(rpc, sk, &o, &s, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(teex_eth_get_balance(rpc, to, NULL, before, &e), 0);
  teex_u256 sbefore, safter, spent;
  assert_int_equal(
      teex_eth_get_balance(rpc, teex_eth_sender_address(s), NULL, sbefore, &e),
      0);
  req.has_to = 1;
  memcpy(req.to, to, 20);
  teex_u256_parse("1000000000000000000", one);
  memcpy(req.value, one, 32);
  if (teex_eth_sender_transact(s, &req, 10000, &r, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(r.status, 1);
  assert_int_equal(r.gas_used, 21000);
  assert_false(teex_u256_is_zero(r.effective_gas_price));
  teex_u256 fee, paid;
  teex_eth_receipt_fee(&r, fee);
  assert_int_equal(teex_u256_mul_u64(paid, r.effective_gas_price, 21000), 0);
  assert_int_equal(teex_u256_cmp(fee, paid), 0);
  /* The sender paid exactly the value plus the reported fee. */
  assert_int_equal(
      teex_eth_get_balance(rpc, teex_eth_sender_address(s), NULL, safter, &e),
      0);
  assert_int_equal(teex_u256_sub(spent, sbefore, safter), 0);
  assert_int_equal(teex_u256_add(paid, fee, one), 0);
  assert_int_equal(teex_u256_cmp(spent, paid), 0);
  assert_memory_equal(r.from, teex_eth_sender_address(s), 20);
  assert_int_equal(teex_eth_get_balance(rpc, to, NULL, after, &e), 0);
  assert_int_equal(teex_u256_sub(diff, after, before), 0);
  assert_int_equal(teex_u256_cmp(diff, one), 0);
  teex_eth_receipt_clear(&r);
  teex_eth_sender_free(s);
}

static void test_transfer_1559(void **state) {
  (void)state;
  transfer(0);
}

static void test_transfer_legacy(void **state) {
  (void)state;
  transfer(1);
}

static void test_many_in_flight(void **state) {
  (void)state;
  enum { N = 40 };
  struct teex_err e = {0};
  struct teex_eth_sender *s = NULL;
  struct teex_eth_pending p[N];
  struct teex_eth_request req = {0};
  uint8_t sk[32];
  uint64_t start, final;
  key(2, sk);
  assert_int_equal(teex_eth_sender_new(rpc, sk, NULL, &s, &e), 0);
  start = teex_eth_sender_next_nonce(s);
  req.has_to = 1;
  addr(3, req.to);
  teex_u256_from_u64(req.value, 1000);
  req.gas_limit = 21000;
  for (int i = 0; i < N; i++) {
    if (teex_eth_sender_send(s, &req, &p[i], &e) != 0)
      fail_msg("send %d: %s", i, e.msg);
    assert_int_equal(p[i].nonce, start + (uint64_t)i);
  }
  for (int i = 0; i < N; i++) {
    struct teex_eth_receipt r;
    if (teex_eth_sender_wait(s, &p[i], 10000, &r, &e) != 0)
      fail_msg("wait %d: %s", i, e.msg);
    assert_int_equal(r.status, 1);
    teex_eth_receipt_clear(&r);
    if (i > 0)
      teex_eth_pending_clear(&p[i]);
  }
  /* Re-sending the same bytes after they were mined changes nothing. Done
   * once every transaction is mined, so no other one of ours moves the
   * balance between the two reads. */
  {
    teex_u256 b1, b2;
    uint8_t me[20];
    memcpy(me, teex_eth_sender_address(s), 20);
    assert_int_equal(teex_eth_get_balance(rpc, me, NULL, b1, &e), 0);
    assert_int_equal(teex_eth_sender_rebroadcast(s, &p[0], &e), 0);
    assert_int_equal(teex_eth_get_balance(rpc, me, NULL, b2, &e), 0);
    assert_int_equal(teex_u256_cmp(b1, b2), 0);
    teex_eth_pending_clear(&p[0]);
  }
  assert_int_equal(
      teex_eth_get_nonce(rpc, teex_eth_sender_address(s), "latest", &final, &e),
      0);
  assert_int_equal(final, start + N);
  teex_eth_sender_free(s);
}

static void test_nonce_taken_elsewhere(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_eth_sender *s = NULL;
  struct teex_eth_request req = {0};
  struct teex_eth_receipt r;
  uint8_t sk[32], h[32];
  key(3, sk);
  assert_int_equal(teex_eth_sender_new(rpc, sk, NULL, &s, &e), 0);
  uint64_t n0 = teex_eth_sender_next_nonce(s);
  /* Another wallet uses the same account and nonce n0. */
  struct teex_eth_tx tx = {0};
  struct teex_buf raw;
  tx.type = TEEX_ETH_TX_1559;
  tx.chain_id = 31337;
  tx.nonce = n0;
  tx.gas_limit = 21000;
  teex_u256_from_u64(tx.max_fee, 100000000000ull);
  teex_u256_from_u64(tx.max_priority_fee, 1);
  tx.has_to = 1;
  addr(0, tx.to);
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  assert_int_equal(teex_eth_tx_sign(&tx, sk, &raw, h, &e), 0);
  assert_int_equal(teex_eth_send_raw(rpc, raw.data, raw.len, h, &e), 0);
  /* Sending the same bytes again is harmless. */
  int rc = teex_eth_send_raw(rpc, raw.data, raw.len, h, &e);
  if (rc != 0)
    assert_non_null(strstr(e.msg, "nonce too low")); /* mined already */
  teex_buf_free(&raw);
  /* The sender's counter is now stale; it resynchronises and succeeds. */
  req.has_to = 1;
  addr(0, req.to);
  if (teex_eth_sender_transact(s, &req, 10000, &r, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(r.status, 1);
  assert_int_equal(teex_eth_sender_next_nonce(s), n0 + 2);
  teex_eth_receipt_clear(&r);
  teex_eth_sender_free(s);
}

/* Signs a 1-wei transfer from account i at nonce n into a pending record as
 * the sender would have made it, without sending it. */
static void manual_pending(int i, uint64_t n, struct teex_eth_pending *p) {
  struct teex_eth_tx tx = {0};
  struct teex_buf raw;
  struct teex_err e = {0};
  uint8_t sk[32];
  key(i, sk);
  memset(p, 0, sizeof *p);
  tx.type = TEEX_ETH_TX_1559;
  tx.chain_id = 31337;
  tx.nonce = n;
  tx.gas_limit = 21000;
  teex_u256_from_u64(tx.max_fee, 100000000000ull);
  teex_u256_from_u64(tx.max_priority_fee, 1);
  tx.has_to = 1;
  addr(0, tx.to);
  teex_u256_from_u64(tx.value, 1);
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  assert_int_equal(teex_eth_tx_sign(&tx, sk, &raw, p->hash, &e), 0);
  p->nonce = n;
  p->gas_limit = 21000;
  p->has_to = 1;
  memcpy(p->to, tx.to, 20);
  memcpy(p->value, tx.value, 32);
  p->raw = teex_buf_steal(&raw, &p->raw_len);
}

static void test_gap_and_redelivery(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_eth_sender *s = NULL;
  struct teex_eth_pending ahead, lost, p;
  struct teex_eth_receipt r;
  struct teex_eth_request req = {0};
  uint8_t sk[32];
  key(0, sk);
  assert_int_equal(teex_eth_sender_new(rpc, sk, NULL, &s, &e), 0);
  uint64_t n = teex_eth_sender_next_nonce(s);
  /* A transaction one nonce ahead waits behind a gap: the timeout says
   * so. */
  manual_pending(0, n + 1, &ahead);
  assert_int_equal(teex_eth_sender_rebroadcast(s, &ahead, &e), 0);
  assert_int_equal(teex_eth_sender_wait(s, &ahead, 400, &r, &e),
                   TEEX_ETIMEDOUT);
  assert_non_null(strstr(e.msg, "gap"));
  /* The transaction for nonce n was signed but never reached the node (as
   * after a dropped connection: submitted = 0). Waiting on it delivers the
   * very same bytes, which fills the gap; then the one ahead is mined. */
  manual_pending(0, n, &lost);
  if (teex_eth_sender_wait(s, &lost, 10000, &r, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(r.status, 1);
  assert_memory_equal(r.tx_hash, lost.hash, 32);
  teex_eth_receipt_clear(&r);
  if (teex_eth_sender_wait(s, &ahead, 10000, &r, &e) != 0)
    fail_msg("%s", e.msg);
  teex_eth_receipt_clear(&r);
  /* The sender's counter is behind both: the next send resynchronises. */
  req.has_to = 1;
  addr(1, req.to);
  req.gas_limit = 21000;
  if (teex_eth_sender_send(s, &req, &p, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(p.nonce, n + 2);
  assert_int_equal(teex_eth_sender_wait(s, &p, 10000, &r, &e), 0);
  teex_eth_receipt_clear(&r);
  teex_eth_pending_clear(&p);
  teex_eth_pending_clear(&lost);
  teex_eth_pending_clear(&ahead);
  teex_eth_sender_free(s);
}

/* A contract, assembled by hand: with empty call data it emits
 * LOG1(keccak("Ping()")) and stops; with any call data it reverts with
 * Error("teex: refused"). */
static size_t runtime_code(uint8_t *c) {
  size_t n = 0;
  uint8_t topic[32];
  static const char reason[] = "teex: refused";
  teex_abi_event_topic("Ping()", topic, NULL);
  c[n++] = 0x36; /* CALLDATASIZE */
  c[n++] = 0x60; /* PUSH1 dest */
  c[n++] = 43;
  c[n++] = 0x57; /* JUMPI */
  c[n++] = 0x7f; /* PUSH32 topic */
  memcpy(c + n, topic, 32);
  n += 32;
  c[n++] = 0x60, c[n++] = 0; /* size */
  c[n++] = 0x60, c[n++] = 0; /* offset */
  c[n++] = 0xa1;             /* LOG1 */
  c[n++] = 0x00;             /* STOP */
  assert_int_equal(n, 43);
  c[n++] = 0x5b; /* JUMPDEST */
  c[n++] = 0x7f; /* PUSH32 Error selector */
  memset(c + n, 0, 32);
  c[n] = 0x08, c[n + 1] = 0xc3, c[n + 2] = 0x79, c[n + 3] = 0xa0;
  n += 32;
  c[n++] = 0x60, c[n++] = 0x00, c[n++] = 0x52; /* MSTORE at 0 */
  c[n++] = 0x60, c[n++] = 0x20, c[n++] = 0x60, c[n++] = 0x04, c[n++] = 0x52;
  c[n++] = 0x60, c[n++] = (uint8_t)(sizeof reason - 1);
  c[n++] = 0x60, c[n++] = 0x24, c[n++] = 0x52;
  c[n++] = 0x7f; /* PUSH32 reason */
  memset(c + n, 0, 32);
  memcpy(c + n, reason, sizeof reason - 1);
  n += 32;
  c[n++] = 0x60, c[n++] = 0x44, c[n++] = 0x52;
  c[n++] = 0x60, c[n++] = 0x64, c[n++] = 0x60, c[n++] = 0x00;
  c[n++] = 0xfd; /* REVERT */
  return n;
}

static void test_contract_logs_and_reverts(void **state) {
  (void)state;
  struct teex_err e = {0};
  struct teex_eth_sender *s = NULL;
  struct teex_eth_request req = {0};
  struct teex_eth_receipt r;
  struct teex_eth_pending p;
  uint8_t sk[32], rt[256], init[300], contract[20], topic[32];
  size_t rn = runtime_code(rt), in = 0;
  /* init: CODECOPY(0, 12, rn); RETURN(0, rn) */
  uint8_t hdr[] = {0x60, (uint8_t)rn, 0x60,        12,   0x60, 0x00,
                   0x39, 0x60,        (uint8_t)rn, 0x60, 0x00, 0xf3};
  memcpy(init, hdr, 12);
  memcpy(init + 12, rt, rn);
  in = 12 + rn;
  key(1, sk);
  assert_int_equal(teex_eth_sender_new(rpc, sk, NULL, &s, &e), 0);
  req.data = init;
  req.data_len = in;
  if (teex_eth_sender_transact(s, &req, 10000, &r, &e) != 0)
    fail_msg("deploy: %s", e.msg);
  assert_int_equal(r.status, 1);
  assert_true(r.has_contract);
  assert_true(r.gas_used > 21000);
  memcpy(contract, r.contract_address, 20);
  teex_eth_receipt_clear(&r);

  struct teex_buf code;
  teex_buf_init(&code, 1 << 16, 0);
  assert_int_equal(teex_eth_get_code(rpc, contract, NULL, &code, &e), 0);
  assert_int_equal(code.len, rn);
  assert_memory_equal(code.data, rt, rn);
  teex_buf_free(&code);

  /* Empty call data: a log. */
  memset(&req, 0, sizeof req);
  req.has_to = 1;
  memcpy(req.to, contract, 20);
  if (teex_eth_sender_transact(s, &req, 10000, &r, &e) != 0)
    fail_msg("ping: %s", e.msg);
  assert_int_equal(r.n_logs, 1);
  teex_abi_event_topic("Ping()", topic, NULL);
  assert_memory_equal(r.logs[0].topics[0], topic, 32);
  assert_memory_equal(r.logs[0].address, contract, 20);
  struct teex_abi_value lv;
  assert_int_equal(teex_abi_log_decode("Ping()", 0,
                                       (const uint8_t(*)[32])r.logs[0].topics,
                                       r.logs[0].n_topics, r.logs[0].data,
                                       r.logs[0].data_len, &lv, &e),
                   0);
  teex_abi_value_clear(&lv);
  uint64_t ping_block = r.block_number;
  teex_eth_receipt_clear(&r);
  struct teex_eth_log_filter f = {0};
  struct teex_eth_log *logs = NULL;
  size_t nlogs = 0;
  f.from_block = 0;
  f.to_block = UINT64_MAX;
  f.has_address = 1;
  memcpy(f.address, contract, 20);
  f.topic_mask = 1;
  memcpy(f.topics[0], topic, 32);
  assert_int_equal(teex_eth_get_logs(rpc, &f, &logs, &nlogs, &e), 0);
  assert_int_equal(nlogs, 1);
  assert_int_equal(logs[0].block_number, ping_block);
  teex_eth_logs_free(logs, nlogs);
  /* A filter on a second topic the log lacks finds nothing. */
  f.topic_mask = 3;
  memset(f.topics[1], 0x77, 32);
  assert_int_equal(teex_eth_get_logs(rpc, &f, &logs, &nlogs, &e), 0);
  assert_int_equal(nlogs, 0);
  teex_eth_logs_free(logs, nlogs);

  /* eth_call: the reason comes back. */
  uint8_t cd[4] = {1, 2, 3, 4};
  struct teex_eth_call_req c = {
      teex_eth_sender_address(s), contract, NULL, cd, 4, 0};
  struct teex_buf out;
  teex_buf_init(&out, 1 << 16, 0);
  assert_int_equal(teex_eth_call(rpc, &c, NULL, &out, &e), TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "teex: refused"));
  teex_buf_free(&out);
  /* The same through call-by-signature. */
  struct teex_abi_value args, rv;
  assert_int_equal(teex_abi_tuple(&args, 1), 0);
  teex_abi_uint64(&args.items[0], 7);
  assert_int_equal(teex_eth_call_fn(rpc, NULL, contract, "get(uint256)", &args,
                                    "(uint256)", NULL, &rv, &e),
                   TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "teex: refused"));
  assert_non_null(strstr(e.msg, "get(uint256)"));
  teex_abi_value_clear(&args);

  /* Gas estimation fails with the reason, and consumes no nonce. */
  uint64_t n_before = teex_eth_sender_next_nonce(s);
  req.data = cd;
  req.data_len = 4;
  assert_int_equal(teex_eth_sender_send(s, &req, &p, &e), TEEX_ECHAIN);
  assert_non_null(strstr(e.msg, "teex: refused"));
  assert_int_equal(teex_eth_sender_next_nonce(s), n_before);

  /* With a fixed gas limit it is mined, fails, and the reason is found by
   * replaying it at its block. */
  req.gas_limit = 100000;
  assert_int_equal(teex_eth_sender_send(s, &req, &p, &e), 0);
  assert_int_equal(teex_eth_sender_wait(s, &p, 10000, &r, &e), TEEX_ECHAIN);
  assert_int_equal(r.status, 0);
  assert_true(r.gas_used > 21000);
  assert_non_null(strstr(e.msg, "reverted in block"));
  assert_non_null(strstr(e.msg, "teex: refused"));
  assert_non_null(strstr(e.msg, "gas used"));
  teex_eth_receipt_clear(&r);
  teex_eth_pending_clear(&p);
  teex_eth_sender_free(s);
}

/* ---- hostile endpoints: a one-thread HTTP server with canned answers ---- */

struct fake {
  int fd;
  int port;
  int mode; /* 0 garbage, 1 oversize, 2 drop the first connection */
  int served;
};

static void *fake_main(void *arg) {
  struct fake *f = arg;
  for (;;) {
    int c = accept(f->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char buf[8192];
    ssize_t n = read(c, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    f->served++;
    if (f->mode == 0) {
      const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n"
                      "Connection: close\r\n\r\nnot json!!!";
      (void)!write(c, r, strlen(r));
    } else if (f->mode == 1) {
      char hdr[128], chunk[65536];
      size_t big = 40u << 20;
      snprintf(hdr, sizeof hdr,
               "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big);
      (void)!write(c, hdr, strlen(hdr));
      memset(chunk, ' ', sizeof chunk);
      for (size_t s = 0; s < big; s += sizeof chunk)
        if (write(c, chunk, sizeof chunk) < 0)
          break;
    } else if (f->served > 1) {
      /* Answer with the id the client used. */
      char *idp = strstr(buf, "\"id\":");
      long id = idp ? strtol(idp + 5, NULL, 10) : 0;
      char body[128], resp[256];
      snprintf(body, sizeof body,
               "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":\"0x7a69\"}", id);
      snprintf(resp, sizeof resp,
               "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: "
               "close\r\n\r\n%s",
               strlen(body), body);
      (void)!write(c, resp, strlen(resp));
    }
    close(c);
  }
}

static void fake_start(struct fake *f, pthread_t *th) {
  struct sockaddr_in sa = {0};
  socklen_t sl = sizeof sa;
  f->fd = socket(AF_INET, SOCK_STREAM, 0);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(f->fd, 8), 0);
  getsockname(f->fd, (struct sockaddr *)&sa, &sl);
  f->port = ntohs(sa.sin_port);
  assert_int_equal(pthread_create(th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f, pthread_t th) {
  shutdown(f->fd, SHUT_RDWR);
  close(f->fd);
  pthread_join(th, NULL);
}

static void test_hostile_endpoints(void **state) {
  (void)state;
  struct fake f = {0};
  pthread_t th;
  char u[64];
  struct teex_eth_rpc *r = NULL;
  struct teex_err e = {0};
  uint64_t id;
  json_t *res;
  struct teex_eth_rpc_opts o = {.timeout_ms = 5000};

  f.mode = 0;
  fake_start(&f, &th);
  snprintf(u, sizeof u, "http://127.0.0.1:%d", f.port);
  assert_int_equal(teex_eth_rpc_open(u, &o, &r, &e), 0);
  assert_int_equal(teex_eth_chain_id(r, &id, &e), TEEX_EPROTO);
  assert_non_null(strstr(e.msg, "not JSON"));
  teex_eth_rpc_close(r);
  fake_stop(&f, th);

  memset(&f, 0, sizeof f);
  f.mode = 1;
  fake_start(&f, &th);
  snprintf(u, sizeof u, "http://127.0.0.1:%d", f.port);
  o.max_response = 1 << 20;
  assert_int_equal(teex_eth_rpc_open(u, &o, &r, &e), 0);
  assert_int_equal(teex_eth_chain_id(r, &id, &e), TEEX_ETOOBIG);
  teex_eth_rpc_close(r);
  fake_stop(&f, th);
  o.max_response = 0;

  /* A dropped connection: an idempotent call is retried and succeeds; a
   * call marked non-idempotent is not retried. */
  memset(&f, 0, sizeof f);
  f.mode = 2;
  fake_start(&f, &th);
  snprintf(u, sizeof u, "http://127.0.0.1:%d", f.port);
  assert_int_equal(teex_eth_rpc_open(u, &o, &r, &e), 0);
  if (teex_eth_chain_id(r, &id, &e) != 0)
    fail_msg("%s", e.msg);
  assert_int_equal(id, 31337);
  assert_int_equal(f.served, 2);
  f.served = 0;
  assert_int_equal(teex_eth_rpc_call(r, "eth_chainId", NULL, 0, &res, &e),
                   TEEX_ECONN);
  assert_int_equal(f.served, 1);
  teex_eth_rpc_close(r);
  fake_stop(&f, th);
}

static void test_node_goes_away(void **state) {
  (void)state;
  struct teex_err e = {0};
  uint64_t id;
  stop_anvil();
  int rc = teex_eth_chain_id(rpc, &id, &e);
  assert_int_equal(rc, TEEX_ECONN);
  assert_non_null(strstr(e.msg, url));
  assert_non_null(strstr(e.msg, "eth_chainId"));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chain_basics),
      cmocka_unit_test(test_transfer_1559),
      cmocka_unit_test(test_transfer_legacy),
      cmocka_unit_test(test_many_in_flight),
      cmocka_unit_test(test_nonce_taken_elsewhere),
      cmocka_unit_test(test_gap_and_redelivery),
      cmocka_unit_test(test_contract_logs_and_reverts),
      cmocka_unit_test(test_hostile_endpoints),
      cmocka_unit_test(test_node_goes_away),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
