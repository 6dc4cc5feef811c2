/* `teex sm`: the Service Manager daemon. */
#include "cli/cli.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/harden.h"
#include "teex/log.h"
#include "teex/sm.h"
#include "teex/sm_server.h"
#include "teex/tee.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: teex sm run --policy FILE --service-registry ADDR\n"
    "                   --enclave-registry ADDR [options]\n"
    "\n"
    "Runs the Service Manager: keeps image keys and services' secret keys\n"
    "sealed, signs service listings and enclave registrations, and releases\n"
    "keys only to enclaves whose fresh evidence satisfies --policy.\n"
    "\n"
    "  --data-dir DIR            teex data directory with the sim platform\n"
    "                            (default $TEEX_HOME, else ~/.teex)\n"
    "  --state DIR               sealed state (default DATA_DIR/sm)\n"
    "  --listen ADDR             mutual RA-TLS endpoint for enclaves\n"
    "                            (default 127.0.0.1:7100)\n"
    "  --client-listen ADDR      endpoint for providers (default "
    "127.0.0.1:7101)\n"
    "  --policy FILE             attestation policy enclaves must satisfy\n"
    "  --chain-id N              chain id of the EIP-712 domain (default "
    "31337)\n"
    "  --service-registry ADDR   ServiceRegistry contract address\n"
    "  --enclave-registry ADDR   EnclaveRegistry contract address\n"
    "  --chain-rpc URL           the chain's JSON-RPC endpoint (read at each\n"
    "                            data-key lease)\n"
    "  --dataset-registry ADDR   DatasetRegistry contract address (data-key\n"
    "                            leases need it and --chain-rpc)\n"
    "  --ready-file FILE         write ports and address here once serving\n"
    "  --cert-refresh SECONDS    renew the RA-TLS certificate this often\n"
    "                            (default 21600: a quarter of the default\n"
    "                            policy max_age)\n";

static int sm_run(int argc, char **argv) {
  enum {
    O_DATA = 256,
    O_STATE,
    O_LISTEN,
    O_CLIENT,
    O_POLICY,
    O_CHAIN,
    O_SREG,
    O_EREG,
    O_READY,
    O_CERTREF,
    O_RPC,
    O_DREG
  };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"state", required_argument, NULL, O_STATE},
      {"listen", required_argument, NULL, O_LISTEN},
      {"client-listen", required_argument, NULL, O_CLIENT},
      {"policy", required_argument, NULL, O_POLICY},
      {"chain-id", required_argument, NULL, O_CHAIN},
      {"service-registry", required_argument, NULL, O_SREG},
      {"enclave-registry", required_argument, NULL, O_EREG},
      {"ready-file", required_argument, NULL, O_READY},
      {"cert-refresh", required_argument, NULL, O_CERTREF},
      {"chain-rpc", required_argument, NULL, O_RPC},
      {"dataset-registry", required_argument, NULL, O_DREG},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], state[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  state[0] = '\0';
  const char *policy = NULL, *sreg = NULL, *ereg = NULL, *dreg = NULL;
  struct teex_sm_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.enclave_listen = "127.0.0.1:7100";
  cfg.client_listen = "127.0.0.1:7101";
  uint64_t chain_id = 31337;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case O_STATE:
      snprintf(state, sizeof state, "%s", optarg);
      break;
    case O_LISTEN:
      cfg.enclave_listen = optarg;
      break;
    case O_CLIENT:
      cfg.client_listen = optarg;
      break;
    case O_POLICY:
      policy = optarg;
      break;
    case O_CHAIN:
      if (teex_parse_u64(optarg, &chain_id) != 0 || chain_id == 0)
        return teex_cli_fail("--chain-id must be a positive number");
      break;
    case O_SREG:
      sreg = optarg;
      break;
    case O_EREG:
      ereg = optarg;
      break;
    case O_READY:
      cfg.ready_file = optarg;
      break;
    case O_CERTREF: {
      uint64_t secs;
      if (teex_parse_u64(optarg, &secs) != 0 || secs == 0 ||
          secs > 86400u * 365)
        return teex_cli_fail("--cert-refresh must be 1..31536000 seconds");
      cfg.cert_refresh_s = (unsigned)secs;
      break;
    }
    case O_RPC:
      cfg.chain_rpc = optarg;
      break;
    case O_DREG:
      dreg = optarg;
      break;
    case 'h':
      fputs(run_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(run_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (policy == NULL || sreg == NULL || ereg == NULL) {
    fputs(run_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (state[0] == '\0')
    snprintf(state, sizeof state, "%s/sm", data_dir);
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_eth_address_parse(sreg, cfg.sm.listing.verifying_contract) != 0)
    return teex_cli_fail("--service-registry: not an address: %s", sreg);
  if (teex_eth_address_parse(ereg, cfg.sm.registration.verifying_contract) != 0)
    return teex_cli_fail("--enclave-registry: not an address: %s", ereg);
  if (dreg != NULL && teex_eth_address_parse(dreg, cfg.dataset_registry) != 0)
    return teex_cli_fail("--dataset-registry: not an address: %s", dreg);
  cfg.sm.listing.chain_id = chain_id;
  cfg.sm.registration.chain_id = chain_id;
  cfg.sm.state_dir = state;
  teex_tee_policy_init(&cfg.sm.policy);
  if (teex_tee_policy_load(&cfg.sm.policy, policy, &err) != 0)
    return teex_cli_fail("policy: %s", err.msg);
  /* The enclave process: no core dumps, not traceable, secrets locked. */
  if (teex_harden_process(0, &err) != 0)
    return teex_cli_fail("harden: %s", err.msg);
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.backend = "sim";
  tc.data_dir = data_dir;
  tc.role = "sm";
  if (teex_tee_open(&tc, &cfg.tee, &err) != 0)
    return teex_cli_fail("tee: %s", err.msg);
  int rc = teex_sm_serve(&cfg, &err);
  teex_tee_close(cfg.tee);
  if (rc != 0)
    return teex_cli_fail("sm: %s", err.msg);
  return TEEX_EXIT_OK;
}

static const char init_usage[] =
    "usage: teex sm init [--data-dir DIR] [--state DIR]\n"
    "\n"
    "Creates the Service Manager's sealed state and keys (when absent) and\n"
    "prints its enclave address: the address the contracts are deployed\n"
    "with, before the SM runs with their addresses.\n";

static int sm_init(int argc, char **argv) {
  enum { O_DATA = 256, O_STATE };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"state", required_argument, NULL, O_STATE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], state[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  state[0] = '\0';
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case O_STATE:
      snprintf(state, sizeof state, "%s", optarg);
      break;
    case 'h':
      fputs(init_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(init_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (state[0] == '\0')
    snprintf(state, sizeof state, "%s/sm", data_dir);
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.backend = "sim";
  tc.data_dir = data_dir;
  tc.role = "sm";
  struct teex_tee *tee = NULL;
  if (teex_tee_open(&tc, &tee, &err) != 0)
    return teex_cli_fail("tee: %s", err.msg);
  struct teex_sm_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.state_dir = state;
  teex_tee_policy_init(&cfg.policy);
  struct teex_sm *sm = NULL;
  int rc = teex_sm_open(tee, &cfg, &sm, &err);
  if (rc == 0) {
    uint8_t addr[20];
    char hex[43];
    teex_sm_address(sm, addr);
    teex_eth_address_hex(addr, hex);
    printf("%s\n", hex);
  }
  teex_sm_close(sm);
  teex_tee_close(tee);
  return rc == 0 ? TEEX_EXIT_OK : teex_cli_fail("sm init: %s", err.msg);
}

static const struct teex_cli_cmd sm_commands[] = {
    {"init", sm_init, "create the SM's sealed keys and print its address"},
    {"run", sm_run, "run the Service Manager daemon"},
    {NULL, NULL, NULL},
};

int teex_cmd_sm(int argc, char **argv) {
  return teex_cli_dispatch("teex sm", sm_commands, argc - 1, argv + 1);
}
