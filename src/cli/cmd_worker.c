/* `teex worker`: the worker daemon. */
#include "cli/cli.h"

#include "ds/group.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ds_client.h"
#include "teex/eth_rpc.h"
#include "teex/harden.h"
#include "teex/ledger.h"
#include "teex/log.h"
#include "teex/tee.h"
#include "teex/worker.h"

#include <getopt.h>
#include <uv.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char run_usage[] =
    "usage: teex worker run --sm ADDR --sm-policy FILE --dispatcher ADDR\n"
    "                       (--chain-conf FILE | --settlement ADDR)\n"
    "                       (--ipfs-dir DIR | --ipfs-api URL)\n"
    "                       [options]\n"
    "\n"
    "Runs a worker: fetches service images and keys from the Service\n"
    "Manager when first needed (over mutual RA-TLS, with fresh evidence),\n"
    "keeps them sealed, keeps warm sandboxed executors, and runs users'\n"
    "tasks whose assignment a trusted dispatcher signed.\n"
    "\n"
    "  --data-dir DIR             teex data directory with the sim platform\n"
    "                             (default $TEEX_HOME, else ~/.teex)\n"
    "  --state DIR                sealed state (default DATA_DIR/worker)\n"
    "  --listen ADDR              RA-TLS endpoint for users (default\n"
    "                             127.0.0.1:7300)\n"
    "  --sm ADDR                  the SM's enclave endpoint (host:port)\n"
    "  --sm-policy FILE           attestation policy the SM must satisfy\n"
    "  --ipfs-dir DIR             local IPFS blockstore holding the images\n"
    "  --ipfs-api URL             or a Kubo RPC API (http://127.0.0.1:5001)\n"
    "  --dispatcher ADDR          a dispatcher's enclave address whose\n"
    "                             assignments this worker accepts (repeat)\n"
    "  --dispatcher-endpoint ADDR register with this dispatcher, send it\n"
    "                             heartbeats and receipts (host:port,\n"
    "                             mutual RA-TLS)\n"
    "  --dispatcher-policy FILE   attestation policy of that dispatcher\n"
    "  --public-endpoint ADDR     host:port users reach this worker at, told\n"
    "                             to the dispatcher (default 127.0.0.1:PORT)\n"
    "  --chain-id N               chain id (default 31337)\n"
    "  --chain-conf FILE          the network's chain.conf (rpc_url,\n"
    "                             chain_id, contracts): the receipt domain,\n"
    "                             and each service's split read from its\n"
    "                             listing on chain when its image is loaded\n"
    "  --settlement ADDR          without --chain-conf: the Settlement\n"
    "                             contract (receipt domain)\n"
    "  --remuneration WEI         without --chain-conf: the worker's amount\n"
    "                             per task (default 0; the rest of the\n"
    "                             price goes to the provider)\n"
    "  --slots N                  warm executors per image (default 2)\n"
    "  --accept-weaker-sandbox    run executors without Landlock\n"
    "  --registration-file FILE   write the SM-signed EnclaveRegistration\n"
    "  --ready-file FILE          write port, address and measurement once\n"
    "                             serving\n"
    "  --ds-group FILE|ADDRS      teex.kv for services: a TEE-DS replica's\n"
    "                             group.conf (its policy.conf beside it is\n"
    "                             the replicas' policy), or the replicas'\n"
    "                             client addresses, comma-separated\n"
    "  --ds-policy FILE           attestation policy of the replicas (with\n"
    "                             ADDRS; default: policy.conf beside FILE)\n"
    "  --cert-refresh SECONDS     renew the RA-TLS certificate this often\n"
    "                             (default 21600: a quarter of the default\n"
    "                             policy max_age)\n"
    "  --reattest SECONDS|off     re-attest with the SM this often (default\n"
    "                             3600: a quarter of the SM's default\n"
    "                             --attest-valid); off: never, so the SM\n"
    "                             refuses keys once its window has passed\n";

static int worker_run(int argc, char **argv) {
  enum {
    O_DATA = 256,
    O_STATE,
    O_LISTEN,
    O_SM,
    O_SMPOL,
    O_IPFSDIR,
    O_IPFSAPI,
    O_DISP,
    O_DISPEP,
    O_DISPPOL,
    O_PUBLIC,
    O_CHAIN,
    O_SETTLE,
    O_REMUN,
    O_SLOTS,
    O_WEAK,
    O_REG,
    O_READY,
    O_CHAINCONF,
    O_CERTREF,
    O_DSGROUP,
    O_DSPOL,
    O_REATTEST
  };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"state", required_argument, NULL, O_STATE},
      {"listen", required_argument, NULL, O_LISTEN},
      {"sm", required_argument, NULL, O_SM},
      {"sm-policy", required_argument, NULL, O_SMPOL},
      {"ipfs-dir", required_argument, NULL, O_IPFSDIR},
      {"ipfs-api", required_argument, NULL, O_IPFSAPI},
      {"dispatcher", required_argument, NULL, O_DISP},
      {"dispatcher-endpoint", required_argument, NULL, O_DISPEP},
      {"dispatcher-policy", required_argument, NULL, O_DISPPOL},
      {"public-endpoint", required_argument, NULL, O_PUBLIC},
      {"chain-id", required_argument, NULL, O_CHAIN},
      {"settlement", required_argument, NULL, O_SETTLE},
      {"remuneration", required_argument, NULL, O_REMUN},
      {"slots", required_argument, NULL, O_SLOTS},
      {"accept-weaker-sandbox", no_argument, NULL, O_WEAK},
      {"registration-file", required_argument, NULL, O_REG},
      {"ready-file", required_argument, NULL, O_READY},
      {"cert-refresh", required_argument, NULL, O_CERTREF},
      {"reattest", required_argument, NULL, O_REATTEST},
      {"ds-group", required_argument, NULL, O_DSGROUP},
      {"ds-policy", required_argument, NULL, O_DSPOL},
      {"chain-conf", required_argument, NULL, O_CHAINCONF},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], state[PATH_MAX];
  const char *home = getenv("TEEX_HOME");
  if (home != NULL && home[0] != '\0')
    snprintf(data_dir, sizeof data_dir, "%s", home);
  else
    snprintf(data_dir, sizeof data_dir, "%s/.teex",
             getenv("HOME") ? getenv("HOME") : ".");
  state[0] = '\0';
  const char *sm_policy = NULL, *disp_policy = NULL, *settle = NULL,
             *chain_conf = NULL, *ds_group = NULL, *ds_policy = NULL;
  static char rpc_url[TEEX_ETH_RPC_MAX_URL];
  struct teex_worker_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.listen = "127.0.0.1:7300";
  cfg.settlement.chain_id = 31337;
  uint64_t v;
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
      cfg.listen = optarg;
      break;
    case O_SM:
      cfg.sm_addr = optarg;
      break;
    case O_SMPOL:
      sm_policy = optarg;
      break;
    case O_IPFSDIR:
      cfg.ipfs_dir = optarg;
      break;
    case O_IPFSAPI:
      cfg.ipfs_api = optarg;
      break;
    case O_DISP:
      if (cfg.n_dispatchers == TEEX_WORKER_MAX_DISPATCHERS)
        return teex_cli_fail("at most %d --dispatcher",
                             TEEX_WORKER_MAX_DISPATCHERS);
      if (teex_eth_address_parse(optarg, cfg.dispatchers[cfg.n_dispatchers]))
        return teex_cli_fail("--dispatcher: not an address: %s", optarg);
      cfg.n_dispatchers++;
      break;
    case O_DISPEP:
      cfg.dispatcher_endpoint = optarg;
      break;
    case O_DISPPOL:
      disp_policy = optarg;
      break;
    case O_PUBLIC:
      cfg.public_endpoint = optarg;
      break;
    case O_CHAIN:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0)
        return teex_cli_fail("--chain-id must be a positive number");
      cfg.settlement.chain_id = v;
      break;
    case O_SETTLE:
      settle = optarg;
      break;
    case O_REMUN:
      if (teex_amount_parse(optarg, &cfg.remuneration) != 0)
        return teex_cli_fail("--remuneration: not an amount: %s", optarg);
      break;
    case O_SLOTS:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 ||
          v > TEEX_WORKER_MAX_SLOTS)
        return teex_cli_fail("--slots must be 1..%d", TEEX_WORKER_MAX_SLOTS);
      cfg.slots = (unsigned)v;
      break;
    case O_WEAK:
      cfg.accept_weaker_sandbox = 1;
      break;
    case O_REG:
      cfg.registration_file = optarg;
      break;
    case O_READY:
      cfg.ready_file = optarg;
      break;
    case O_DSGROUP:
      ds_group = optarg;
      break;
    case O_DSPOL:
      ds_policy = optarg;
      break;
    case O_CERTREF: {
      uint64_t secs;
      if (teex_parse_u64(optarg, &secs) != 0 || secs == 0 ||
          secs > 86400u * 365)
        return teex_cli_fail("--cert-refresh must be 1..31536000 seconds");
      cfg.cert_refresh_s = (unsigned)secs;
      break;
    }
    case O_CHAINCONF:
      chain_conf = optarg;
      break;
    case O_REATTEST: {
      uint64_t secs;
      if (strcmp(optarg, "off") == 0) {
        cfg.no_reattest = 1;
        break;
      }
      if (teex_parse_u64(optarg, &secs) != 0 || secs == 0 ||
          secs > 86400u * 365)
        return teex_cli_fail("--reattest must be 1..31536000 seconds or off");
      cfg.reattest_s = (unsigned)secs;
      break;
    }
    case 'h':
      fputs(run_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(run_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (cfg.sm_addr == NULL || sm_policy == NULL ||
      (settle == NULL && chain_conf == NULL) || cfg.n_dispatchers == 0 ||
      (cfg.ipfs_dir == NULL) == (cfg.ipfs_api == NULL)) {
    fputs(run_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (state[0] == '\0')
    snprintf(state, sizeof state, "%s/worker", data_dir);
  cfg.state_dir = state;
  if (settle != NULL &&
      teex_eth_address_parse(settle, cfg.settlement.verifying_contract) != 0)
    return teex_cli_fail("--settlement: not an address: %s", settle);
  struct teex_err err;
  teex_err_clear(&err);
  if (chain_conf != NULL) {
    struct teex_config cc;
    teex_config_init(&cc);
    int crc = teex_config_load(&cc, chain_conf, &err);
    if (crc == 0)
      crc = teex_chain_addrs_from_config(&cc, &cfg.chain, &err);
    if (crc == 0 && (size_t)snprintf(rpc_url, sizeof rpc_url, "%s",
                                     teex_config_get(&cc, "rpc_url",
                                                     TEEX_CHAIN_DEFAULT_RPC)) >=
                        sizeof rpc_url)
      crc = teex_err_set(&err, TEEX_EINVAL, "rpc_url too long");
    teex_config_free(&cc);
    if (crc != 0)
      return teex_cli_fail("%s: %s", chain_conf, err.msg);
    if (settle != NULL && memcmp(cfg.settlement.verifying_contract,
                                 cfg.chain.settlement, 20) != 0)
      return teex_cli_fail("--settlement differs from %s", chain_conf);
    cfg.settlement.chain_id = cfg.chain.chain_id;
    memcpy(cfg.settlement.verifying_contract, cfg.chain.settlement, 20);
    cfg.chain_rpc = rpc_url;
  }
  static struct teex_tee_policy smp, dp;
  teex_tee_policy_init(&smp);
  if (teex_tee_policy_load(&smp, sm_policy, &err) != 0)
    return teex_cli_fail("--sm-policy: %s", err.msg);
  cfg.sm_policy = &smp;
  if (disp_policy != NULL) {
    teex_tee_policy_init(&dp);
    if (teex_tee_policy_load(&dp, disp_policy, &err) != 0)
      return teex_cli_fail("--dispatcher-policy: %s", err.msg);
    cfg.dispatcher_policy = &dp;
  }
  if (cfg.dispatcher_endpoint != NULL && cfg.dispatcher_policy == NULL)
    return teex_cli_fail("--dispatcher-endpoint needs --dispatcher-policy");
  /* teex.kv: the TEE-DS group, from a group.conf or a list of addresses. */
  static char ds_addrs[TEEX_DS_CLIENT_MAX_REPLICAS][TEEX_DS_ADDR_MAX + 1];
  static const char *ds_list[TEEX_DS_CLIENT_MAX_REPLICAS];
  static char ds_pol_beside[PATH_MAX];
  static struct teex_tee_policy dsp;
  if (ds_group != NULL) {
    size_t n = 0;
    if (access(ds_group, F_OK) == 0) {
      static struct teex_ds_group g;
      if (teex_ds_group_load(&g, ds_group, &err) != 0)
        return teex_cli_fail("--ds-group: %s", err.msg);
      for (size_t i = 0; i < g.n_members && n < TEEX_DS_CLIENT_MAX_REPLICAS;
           i++)
        snprintf(ds_addrs[n++], sizeof ds_addrs[0], "%s", g.members[i].client);
      if (ds_policy == NULL) {
        const char *slash = strrchr(ds_group, '/');
        int dir_len = slash != NULL ? (int)(slash - ds_group) + 1 : 0;
        snprintf(ds_pol_beside, sizeof ds_pol_beside, "%.*spolicy.conf",
                 dir_len, ds_group);
        ds_policy = ds_pol_beside;
      }
    } else {
      const char *p = ds_group;
      while (*p != '\0') {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > TEEX_DS_ADDR_MAX ||
            n == TEEX_DS_CLIENT_MAX_REPLICAS)
          return teex_cli_fail("--ds-group: want a group.conf or up to %d "
                               "host:port addresses, comma-separated",
                               TEEX_DS_CLIENT_MAX_REPLICAS);
        memcpy(ds_addrs[n], p, len);
        ds_addrs[n++][len] = '\0';
        p += len + (p[len] == ',');
      }
      if (ds_policy == NULL)
        return teex_cli_fail("--ds-group ADDRS needs --ds-policy");
    }
    for (size_t i = 0; i < n; i++)
      ds_list[i] = ds_addrs[i];
    teex_tee_policy_init(&dsp);
    if (teex_tee_policy_load(&dsp, ds_policy, &err) != 0)
      return teex_cli_fail("--ds-policy: %s", err.msg);
    cfg.ds_replicas = ds_list;
    cfg.n_ds_replicas = n;
    cfg.ds_policy = &dsp;
  }
  /* The enclave process: no core dumps, not traceable. */
  if (teex_harden_process(0, &err) != 0)
    return teex_cli_fail("harden: %s", err.msg);
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.backend = "sim";
  tc.data_dir = data_dir;
  tc.role = "worker";
  if (teex_tee_open(&tc, &cfg.tee, &err) != 0)
    return teex_cli_fail("tee: %s", err.msg);
  int rc = teex_worker_serve(&cfg, &err);
  teex_tee_close(cfg.tee);
  /* Join libuv's thread pool, so per-thread state (the AEAD contexts the
   * sealed store used on those threads) is freed and wiped before exit. */
  uv_library_shutdown();
  if (rc != 0)
    return teex_cli_fail("worker: %s", err.msg);
  return TEEX_EXIT_OK;
}

static const struct teex_cli_cmd worker_commands[] = {
    {"run", worker_run, "run the worker daemon"},
    {NULL, NULL, NULL},
};

int teex_cmd_worker(int argc, char **argv) {
  return teex_cli_dispatch("teex worker", worker_commands, argc - 1, argv + 1);
}
