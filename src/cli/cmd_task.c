/* `teex task status|verify ID`: a task's state at the dispatcher and, once
 * settled, the proof that its receipt is in a batch settled on chain. */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/settle.h"
#include "teex/tee_policy.h"
#include "teex/user.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

struct task_opts {
  char dir[PATH_MAX];
  uint8_t task_id[32];
};

static int parse(int argc, char **argv, struct task_opts *o,
                 const char *usage) {
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  teex_cli_data_dir(o->dir, sizeof o->dir);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'd') {
      snprintf(o->dir, sizeof o->dir, "%s", optarg);
    } else if (c == 'h') {
      fputs(usage, stdout);
      return -1;
    } else {
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  size_t n = 0;
  if (optind + 1 != argc ||
      teex_hex_decode(argv[optind], o->task_id, 32, &n) != 0 || n != 32) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  return 0;
}

static int fetch(const struct task_opts *o, struct teex_user_status *st) {
  char netconf[PATH_MAX + 16];
  snprintf(netconf, sizeof netconf, "%s/network.conf", o->dir);
  struct teex_config nc;
  struct teex_err err;
  teex_config_init(&nc);
  if (teex_config_load(&nc, netconf, &err) != 0)
    return teex_cli_fail("no network in %s (teex up): %s", o->dir, err.msg);
  static struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  struct teex_user_dispatcher *d = NULL;
  int rc = teex_tee_policy_load(
      &pol, teex_config_get(&nc, "dispatcher.policy", ""), &err);
  if (rc == 0)
    rc = teex_user_dispatcher_connect(
        teex_config_get(&nc, "dispatcher.user", ""), &pol, &d, &err);
  if (rc == 0)
    rc = teex_user_status(d, o->task_id, st, &err);
  teex_user_dispatcher_close(d);
  teex_config_free(&nc);
  return rc == 0 ? 0 : teex_cli_fail("task: %s", err.msg);
}

static int task_status(int argc, char **argv) {
  static const char usage[] =
      "usage: teex task status TASK_ID [--dir DIR]\n\n"
      "The task's state at the dispatcher (queued, assigned, earned,\n"
      "settled, failed), its worker, and once settled its batch.\n";
  struct task_opts o;
  int rc = parse(argc, argv, &o, usage);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  struct teex_user_status st;
  if ((rc = fetch(&o, &st)) != 0)
    return rc;
  char w[43];
  teex_eth_address_hex(st.worker, w);
  printf("state   %s\nworker  %s\n", st.state, w);
  if (st.settled) {
    char b[65], r[65];
    teex_hex_encode(st.batch_id, 32, b);
    teex_hex_encode(st.root, 32, r);
    printf("batch   0x%s\nroot    0x%s\ncontent %s (IPFS)\n", b, r, st.cid);
  }
  return TEEX_EXIT_OK;
}

static int task_verify(int argc, char **argv) {
  static const char usage[] =
      "usage: teex task verify TASK_ID [--dir DIR]\n\n"
      "Proves the task's receipt is in a batch settled on chain: checks the\n"
      "worker's signature, the Merkle proof against the batch root, that the\n"
      "chain recorded that root, and asks the Settlement contract itself.\n";
  struct task_opts o;
  int rc = parse(argc, argv, &o, usage);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  struct teex_user_status st;
  if ((rc = fetch(&o, &st)) != 0)
    return rc;
  if (!st.has_receipt)
    return teex_cli_fail("no receipt yet (state %s)", st.state);
  if (!st.settled)
    return teex_cli_fail("not settled yet (state %s)", st.state);
  uint8_t leaf[32];
  teex_settle_receipt_leaf(&st.receipt, leaf);
  if (!teex_settle_merkle_verify(leaf, st.proof, st.nproof, st.root))
    return teex_cli_fail("the Merkle proof does not lead to the batch root");
  char chain[PATH_MAX + 16];
  snprintf(chain, sizeof chain, "%s/chain.conf", o.dir);
  struct teex_config cc;
  struct teex_chain_addrs addrs;
  struct teex_err err;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_batch_record rec;
  int included = 0;
  teex_config_init(&cc);
  rc = teex_config_load(&cc, chain, &err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&cc, &addrs, &err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        &err);
  if (rc == 0)
    rc = teex_chain_get_batch(rpc, &addrs, st.batch_id, &rec, &err);
  if (rc == 0 && memcmp(rec.root, st.root, 32) != 0)
    rc = teex_err_set(&err, TEEX_EAUTH,
                      "the chain records another root for this batch");
  if (rc == 0)
    rc = teex_chain_verify_receipt(rpc, &addrs, st.batch_id, &st.receipt,
                                   st.proof, st.nproof, &included, &err);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cc);
  if (rc != 0)
    return teex_cli_fail("verify: %s", err.msg);
  if (!included)
    return teex_cli_fail("the Settlement contract says the receipt is not in "
                         "the batch");
  char b[65];
  teex_hex_encode(st.batch_id, 32, b);
  printf("verified: the receipt is in batch 0x%s settled on chain (Merkle "
         "proof of %zu hashes, checked locally and by the Settlement "
         "contract)\n",
         b, st.nproof);
  return TEEX_EXIT_OK;
}

static const struct teex_cli_cmd task_commands[] = {
    {"status", task_status, "a task's state at the dispatcher"},
    {"verify", task_verify, "prove a task's receipt was settled on chain"},
    {NULL, NULL, NULL},
};

int teex_cmd_task(int argc, char **argv) {
  return teex_cli_dispatch("teex task", task_commands, argc - 1, argv + 1);
}
