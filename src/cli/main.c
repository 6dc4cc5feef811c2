/* teex: the single binary of every teex component and client. Its commands
 * are the table below; each group lives in src/cli/cmd_<group>.c. */
#include "cli/cli.h"

#include "teex/crypto.h"
#include "teex/version.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct teex_cli_cmd commands[] = {
    {"version", teex_cmd_version, "print the teex version"},
    {"tee", teex_cmd_tee, "TEE identity, evidence and RA-TLS certificates"},
    {"deposit", teex_cmd_deposit, "deposit escrow for a dispatcher"},
    {"withdraw", teex_cmd_withdraw, "withdraw escrow (after the delay)"},
    {"chain", teex_cmd_chain, "local dev chain and the teex contracts"},
    {"service", teex_cmd_service, "pack, inspect, encrypt and run services"},
    {"sm", teex_cmd_sm, "the Service Manager daemon"},
    {"data", teex_cmd_data, "publish, approve and revoke datasets"},
    {"ds", teex_cmd_ds, "TEE-DS replicas and client commands"},
    {"dispatcher", teex_cmd_dispatcher, "the task dispatcher daemon"},
    {"up", teex_cmd_up, "start a local teex network"},
    {"status", teex_cmd_status, "health of the local network's components"},
    {"down", teex_cmd_down, "stop the local network"},
    {"account", teex_cmd_account,
     "keystore accounts: new, import, export, list, balance"},
    {"ipfs", teex_cmd_ipfs, "content addressing: add, cat, cid (IPFS)"},
    {"executor", teex_cmd_executor,
     "(internal) a service's sandboxed executor"},
    {"worker", teex_cmd_worker, "the worker daemon"},
    {"invoke", teex_cmd_invoke, "run a task on a service through a worker"},
    {"task", teex_cmd_task, "a task's status, and proof it was settled"},
    {NULL, NULL, NULL},
};

int teex_cmd_version(int argc, char **argv) {
  if (teex_cli_wants_help(argc, argv)) {
    printf("usage: teex version\n\nPrints the teex version.\n");
    return TEEX_EXIT_OK;
  }
  printf("teex %s\n", teex_version());
  return TEEX_EXIT_OK;
}

int main(int argc, char **argv) {
  /* A peer that closes its socket must not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && strcmp(argv[1], "--version") == 0)
    return teex_cmd_version(1, argv);
  /* OpenSSL keeps private keys (TLS keys among them) in a locked,
   * guarded secure heap when one exists. Best effort: without it keys live
   * in the ordinary heap (still wiped on free). */
  (void)CRYPTO_secure_malloc_init(1 << 20, 32);
  if (teex_crypto_init() != 0) {
    fprintf(stderr, "teex: cannot initialise cryptography\n");
    return TEEX_EXIT_FAIL;
  }
  return teex_cli_dispatch("teex", commands, argc - 1, argv + 1);
}
