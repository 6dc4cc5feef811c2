/* Benchmark: signed Ethereum transactions per second.
 *
 *   bench_eth_tx [N] [--anvil PATH]
 *
 * 1. baseline: raw secp256k1 signatures of a 32-byte digest (what every
 *    transaction needs at least);
 * 2. build + sign: an EIP-1559 ERC-20-style transfer (RLP, Keccak, sign,
 *    raw encoding, hash) and the same as legacy; the ratio against 1 shows
 *    what the encoding costs on top of the signature;
 * 3. with --anvil: starts that anvil binary on a free loopback port and
 *    submits N transactions through the sender (nonce management,
 *    eth_sendRawTransaction over one keep-alive connection), then waits for
 *    the last receipt: transactions submitted per second end to end. */
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/eth_tx.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 10

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int free_port(void) {
  struct sockaddr_in sa = {0};
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

static int bench_anvil(const char *bin, const uint8_t sk[32], long n) {
  char port_s[16], url[64];
  int port = free_port(), rc = 1;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *s = NULL;
  struct teex_err e = {0};
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    int dn = open("/dev/null", O_WRONLY);
    dup2(dn, 1);
    dup2(dn, 2);
    execl(bin, "anvil", "--host", "127.0.0.1", "--port", port_s, (char *)NULL);
    _exit(127);
  }
  if (teex_eth_rpc_open(url, NULL, &rpc, &e) != 0)
    goto done;
  for (int i = 0; i < 200; i++) {
    uint64_t id;
    struct timespec ts = {0, 50000000};
    if (teex_eth_chain_id(rpc, &id, &e) == 0)
      break;
    nanosleep(&ts, NULL);
  }
  if (teex_eth_sender_new(rpc, sk, NULL, &s, &e) != 0)
    goto done;
  struct teex_eth_request req = {0};
  struct teex_eth_pending p = {0};
  struct teex_eth_receipt r;
  req.has_to = 1;
  memset(req.to, 0x11, 20);
  teex_u256_from_u64(req.value, 1);
  req.gas_limit = 21000;
  double t0 = now();
  for (long i = 0; i < n; i++) {
    teex_eth_pending_clear(&p);
    if (teex_eth_sender_send(s, &req, &p, &e) != 0)
      goto done;
  }
  double t1 = now();
  if (teex_eth_sender_wait(s, &p, 60000, &r, &e) != 0)
    goto done;
  double t2 = now();
  teex_eth_receipt_clear(&r);
  teex_eth_pending_clear(&p);
  printf("submit to anvil (sign+send, keep-alive):  %8.0f tx/s  (%ld txs, "
         "last receipt after %.3f s more)\n",
         (double)n / (t1 - t0), n, t2 - t1);
  rc = 0;
done:
  if (rc) {
    uint64_t latest = 0, pending = 0;
    struct teex_err e2 = {0};
    if (s) {
      teex_eth_get_nonce(rpc, teex_eth_sender_address(s), "latest", &latest,
                         &e2);
      teex_eth_get_nonce(rpc, teex_eth_sender_address(s), "pending", &pending,
                         &e2);
    }
    fprintf(stderr,
            "anvil bench: %s (account nonce latest %llu pending %llu)\n",
            teex_err_msg(&e), (unsigned long long)latest,
            (unsigned long long)pending);
  }
  teex_eth_sender_free(s);
  teex_eth_rpc_close(rpc);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  return rc;
}

int main(int argc, char **argv) {
  long n = 5000;
  const char *anvil = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--anvil") == 0 && i + 1 < argc)
      anvil = argv[++i];
    else
      n = strtol(argv[i], NULL, 10); /* lint:allow (bench argument) */
  }
  if (n <= 0)
    n = 5000;
  teex_crypto_init();
  uint8_t sk[32], digest[32], sig[65], h[32],
      data[68] = {0xa9, 0x05, 0x9c, 0xbb};
  size_t kl;
  teex_hex_decode(
      "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80", sk,
      32, &kl);
  memset(data + 16, 0x22, 20);
  data[67] = 100;

  struct teex_eth_tx tx = {0};
  struct teex_buf raw;
  struct teex_err e = {0};
  tx.chain_id = 31337;
  tx.gas_limit = 60000;
  teex_u256_from_u64(tx.max_fee, 2000000000);
  teex_u256_from_u64(tx.max_priority_fee, 1000000000);
  teex_u256_from_u64(tx.gas_price, 2000000000);
  tx.has_to = 1;
  memset(tx.to, 0x33, 20);
  tx.data = data;
  tx.data_len = sizeof data;
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  /* The machine is shared: interleave short rounds of the three loops and
   * keep each one's best round, so load hits them alike. */
  double raw_rate = 0, rates[2] = {0, 0};
  long per = n / ROUNDS > 0 ? n / ROUNDS : 1;
  for (int round = 0; round < ROUNDS; round++) {
    double t0 = now(), r;
    for (long i = 0; i < per; i++) {
      memcpy(digest, &i, sizeof i);
      teex_secp256k1_sign(sk, digest, sig);
    }
    r = (double)per / (now() - t0);
    raw_rate = r > raw_rate ? r : raw_rate;
    for (int kind = 0; kind < 2; kind++) {
      tx.type = kind ? TEEX_ETH_TX_LEGACY : TEEX_ETH_TX_1559;
      t0 = now();
      for (long i = 0; i < per; i++) {
        tx.nonce = (uint64_t)i;
        teex_buf_reset(&raw);
        if (teex_eth_tx_sign(&tx, sk, &raw, h, &e) != 0) {
          fprintf(stderr, "%s\n", e.msg);
          return 1;
        }
      }
      r = (double)per / (now() - t0);
      rates[kind] = r > rates[kind] ? r : rates[kind];
    }
  }
  teex_buf_free(&raw);
  printf("raw secp256k1 sign (baseline):            %8.0f sig/s\n", raw_rate);
  printf("build+sign EIP-1559 transfer (68 B data): %8.0f tx/s   ratio %.2f\n",
         rates[0], rates[0] / raw_rate);
  printf("build+sign legacy EIP-155 transfer:       %8.0f tx/s   ratio %.2f\n",
         rates[1], rates[1] / raw_rate);
  if (anvil)
    return bench_anvil(anvil, sk, n > 1000 ? 1000 : n);
  return 0;
}
