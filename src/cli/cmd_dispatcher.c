/* `teex dispatcher`: the task dispatcher daemon. */
#include "cli/cli.h"
#include "cli/ds_group_arg.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/dispatcher.h"
#include "teex/harden.h"
#include "teex/ipfs.h"
#include "teex/log.h"
#include "teex/tee.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: teex dispatcher run --policy FILE --chain-conf FILE [options]\n"
    "       teex dispatcher run --policy FILE --settlement ADDR\n"
    "                           --chain-file FILE [options]\n"
    "\n"
    "Runs the dispatcher: workers register and heartbeat over mutual RA-TLS\n"
    "and report receipts; users submit signed payment authorisations and get\n"
    "signed assignments; receipts are settled on chain in batches whose\n"
    "content is stored on IPFS.\n"
    "\n"
    "  --data-dir DIR            teex data directory with the sim platform\n"
    "                            (default $TEEX_HOME, else ~/.teex)\n"
    "  --state DIR               sealed state (default DATA_DIR/dispatcher)\n"
    "  --listen ADDR             mutual RA-TLS endpoint for workers\n"
    "                            (default 127.0.0.1:7200)\n"
    "  --user-listen ADDR        endpoint for users (default 127.0.0.1:7201)\n"
    "  --policy FILE             attestation policy workers must satisfy\n"
    "  --chain-id N              with --chain-file: chain id (default "
    "31337)\n"
    "  --settlement ADDR         Settlement contract address (EIP-712 domain)\n"
    "  --chain-conf FILE         the network's chain.conf (rpc_url, chain_id,\n"
    "                            contract addresses): escrow and listings are\n"
    "                            read from the contracts, batches settled\n"
    "                            from the dispatcher's own enclave account\n"
    "  --chain-file FILE         instead: escrow, listings and batches in a "
    "local\n"
    "                            file (development; see docs/network.md)\n"
    "  --ipfs-dir DIR            local IPFS store for batch content\n"
    "                            (default DATA_DIR/ipfs)\n"
    "  --heartbeat-timeout MS    drop a worker silent this long (default "
    "10000)\n"
    "  --settle-interval MS      settle at least this often (default 60000)\n"
    "  --settle-receipts N       settle once N receipts wait (default 100)\n"
    "  --assignment-ttl S        assignments expire after S seconds (default "
    "300)\n"
    "  --receipt-grace S         a task with no receipt S seconds after its\n"
    "                            assignment expired fails (default 60)\n"
    "  --max-tasks N             tasks held (running and unsettled; default\n"
    "                            100000)\n"
    "  --max-workers N           workers registered (default 10000)\n"
    "  --worker-recheck S        with --chain-conf: read a worker's\n"
    "                            registration again at most every S seconds\n"
    "                            (default 10); once revoked on chain it gets\n"
    "                            no tasks and its receipts are refused\n"
    "  --ready-file FILE         write ports and address here once serving\n"
    "  --cert-refresh SECONDS    renew the RA-TLS certificate this often\n"
    "                            (default 21600: a quarter of the default\n"
    "                            policy max_age)\n"
    "  --sm ADDR                 the SM's enclave endpoint: at start, get "
    "this\n"
    "                            dispatcher's registration signed by the SM\n"
    "  --sm-policy FILE          what the SM must prove (with --sm)\n"
    "  --registration-out FILE   where the signed registration goes\n"
    "  --ds-group FILE|ADDRS     keep the state (tasks, receipts, settled\n"
    "                            amounts, workers, batches in flight) in this\n"
    "                            TEE-DS group, encrypted by the dispatcher: a\n"
    "                            group.conf or host:port,... of its replicas.\n"
    "                            Locally only the dispatcher's identity.\n"
    "                            Local records are migrated at the first\n"
    "                            start with a group. While the group is down,\n"
    "                            requests that change the state fail (nothing\n"
    "                            falls back to local).\n"
    "  --ds-policy FILE          what the replicas must prove (role ds;\n"
    "                            default: policy.conf beside group.conf)\n"
    "  --ds-namespace NS         the group's namespace for the dispatcher's\n"
    "                            role (group.conf [enclaves]; default\n"
    "                            dispatcher)\n";

static int parse_u32(const char *s, uint32_t *out) {
  uint64_t v;
  if (teex_parse_u64(s, &v) != 0 || v == 0 || v > UINT32_MAX)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

static int dispatcher_run(int argc, char **argv) {
  enum {
    O_DATA = 256,
    O_STATE,
    O_LISTEN,
    O_USER,
    O_POLICY,
    O_CHAIN,
    O_SETTLEMENT,
    O_CHAIN_FILE,
    O_CHAIN_CONF,
    O_IPFS,
    O_HB,
    O_SINT,
    O_SREC,
    O_TTL,
    O_GRACE,
    O_READY,
    O_MAXT,
    O_MAXW,
    O_SM,
    O_SMPOL,
    O_REGOUT,
    O_CERTREF,
    O_RECHECK,
    O_DSGROUP,
    O_DSPOL,
    O_DSNS
  };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"state", required_argument, NULL, O_STATE},
      {"listen", required_argument, NULL, O_LISTEN},
      {"user-listen", required_argument, NULL, O_USER},
      {"policy", required_argument, NULL, O_POLICY},
      {"chain-id", required_argument, NULL, O_CHAIN},
      {"settlement", required_argument, NULL, O_SETTLEMENT},
      {"chain-file", required_argument, NULL, O_CHAIN_FILE},
      {"chain-conf", required_argument, NULL, O_CHAIN_CONF},
      {"ipfs-dir", required_argument, NULL, O_IPFS},
      {"heartbeat-timeout", required_argument, NULL, O_HB},
      {"settle-interval", required_argument, NULL, O_SINT},
      {"settle-receipts", required_argument, NULL, O_SREC},
      {"assignment-ttl", required_argument, NULL, O_TTL},
      {"receipt-grace", required_argument, NULL, O_GRACE},
      {"ready-file", required_argument, NULL, O_READY},
      {"cert-refresh", required_argument, NULL, O_CERTREF},
      {"max-tasks", required_argument, NULL, O_MAXT},
      {"worker-recheck", required_argument, NULL, O_RECHECK},
      {"max-workers", required_argument, NULL, O_MAXW},
      {"sm", required_argument, NULL, O_SM},
      {"sm-policy", required_argument, NULL, O_SMPOL},
      {"registration-out", required_argument, NULL, O_REGOUT},
      {"ds-group", required_argument, NULL, O_DSGROUP},
      {"ds-policy", required_argument, NULL, O_DSPOL},
      {"ds-namespace", required_argument, NULL, O_DSNS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], state[PATH_MAX], ipfs_dir[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  state[0] = ipfs_dir[0] = '\0';
  const char *policy = NULL, *settlement = NULL, *chain_file = NULL,
             *chain_conf = NULL, *sm_policy_file = NULL, *ds_group = NULL,
             *ds_policy = NULL;
  static struct teex_tee_policy sm_policy;
  struct teex_dispatcher_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.worker_listen = "127.0.0.1:7200";
  cfg.user_listen = "127.0.0.1:7201";
  uint64_t chain_id = 31337, u64;
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
      cfg.worker_listen = optarg;
      break;
    case O_USER:
      cfg.user_listen = optarg;
      break;
    case O_POLICY:
      policy = optarg;
      break;
    case O_CHAIN:
      if (teex_parse_u64(optarg, &chain_id) != 0 || chain_id == 0)
        return teex_cli_fail("--chain-id must be a positive number");
      break;
    case O_SETTLEMENT:
      settlement = optarg;
      break;
    case O_CHAIN_FILE:
      chain_file = optarg;
      break;
    case O_CHAIN_CONF:
      chain_conf = optarg;
      break;
    case O_IPFS:
      snprintf(ipfs_dir, sizeof ipfs_dir, "%s", optarg);
      break;
    case O_HB:
      if (teex_parse_u64(optarg, &u64) != 0 || u64 < 100)
        return teex_cli_fail("--heartbeat-timeout must be >= 100 ms");
      cfg.heartbeat_timeout_ms = u64;
      break;
    case O_SINT:
      if (teex_parse_u64(optarg, &u64) != 0 || u64 == 0)
        return teex_cli_fail("--settle-interval must be a positive number");
      cfg.settle_interval_ms = u64;
      break;
    case O_SREC:
      if (parse_u32(optarg, &cfg.settle_receipts) != 0)
        return teex_cli_fail("--settle-receipts must be a positive number");
      break;
    case O_TTL:
      if (parse_u32(optarg, &cfg.assignment_ttl_s) != 0)
        return teex_cli_fail("--assignment-ttl must be a positive number");
      break;
    case O_GRACE:
      if (parse_u32(optarg, &cfg.receipt_grace_s) != 0)
        return teex_cli_fail("--receipt-grace must be a positive number");
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
    case O_SM:
      cfg.sm_addr = optarg;
      break;
    case O_SMPOL:
      sm_policy_file = optarg;
      break;
    case O_REGOUT:
      cfg.registration_file = optarg;
      break;
    case O_MAXT:
      if (parse_u32(optarg, &cfg.max_tasks) != 0 || cfg.max_tasks > 10000000)
        return teex_cli_fail("--max-tasks must be 1..10000000");
      break;
    case O_RECHECK:
      if (parse_u32(optarg, &cfg.worker_recheck_s) != 0 ||
          cfg.worker_recheck_s > 86400)
        return teex_cli_fail("--worker-recheck must be 1..86400 seconds");
      break;
    case O_MAXW:
      if (parse_u32(optarg, &cfg.max_workers) != 0 || cfg.max_workers > 1000000)
        return teex_cli_fail("--max-workers must be 1..1000000");
      break;
    case O_DSGROUP:
      ds_group = optarg;
      break;
    case O_DSPOL:
      ds_policy = optarg;
      break;
    case O_DSNS:
      cfg.ds_ns = optarg;
      break;
    case 'h':
      fputs(run_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(run_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (policy == NULL || optind != argc ||
      (chain_conf == NULL) == (chain_file == NULL) ||
      (chain_file != NULL && settlement == NULL) ||
      (cfg.sm_addr != NULL) != (sm_policy_file != NULL)) {
    fputs(run_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (state[0] == '\0')
    snprintf(state, sizeof state, "%s/dispatcher", data_dir);
  if (ipfs_dir[0] == '\0')
    snprintf(ipfs_dir, sizeof ipfs_dir, "%s/ipfs", data_dir);
  struct teex_err err;
  teex_err_clear(&err);
  static struct teex_cli_ds_group_arg dsg;
  static struct teex_tee_policy dsp;
  if (ds_group != NULL) {
    int rc = teex_cli_ds_group_arg(ds_group, ds_policy, &dsg);
    if (rc != 0)
      return rc;
    teex_tee_policy_init(&dsp);
    if (teex_tee_policy_load(&dsp, dsg.policy, &err) != 0)
      return teex_cli_fail("--ds-policy: %s", err.msg);
    cfg.ds_replicas = dsg.list;
    cfg.n_ds_replicas = dsg.n;
    cfg.ds_policy = &dsp;
  } else if (ds_policy != NULL || cfg.ds_ns != NULL) {
    return teex_cli_fail("--ds-policy and --ds-namespace need --ds-group");
  }
  if (sm_policy_file != NULL) {
    teex_tee_policy_init(&sm_policy);
    if (teex_tee_policy_load(&sm_policy, sm_policy_file, &err) != 0)
      return teex_cli_fail("--sm-policy: %s", err.msg);
    cfg.sm_policy = &sm_policy;
  }
  if (chain_conf != NULL) {
    struct teex_config cc;
    struct teex_chain_addrs addrs;
    teex_config_init(&cc);
    if (teex_config_load(&cc, chain_conf, &err) != 0 ||
        teex_chain_addrs_from_config(&cc, &addrs, &err) != 0) {
      teex_config_free(&cc);
      return teex_cli_fail("%s: %s", chain_conf, err.msg);
    }
    if (settlement != NULL) {
      uint8_t s[20];
      if (teex_eth_address_parse(settlement, s) != 0 ||
          memcmp(s, addrs.settlement, 20) != 0) {
        teex_config_free(&cc);
        return teex_cli_fail("--settlement differs from %s", chain_conf);
      }
    }
    cfg.domain.chain_id = addrs.chain_id;
    memcpy(cfg.domain.verifying_contract, addrs.settlement, 20);
    int rc = teex_dispatcher_chain_eth(
        teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), &addrs,
        &cfg.chain, &err);
    teex_config_free(&cc);
    if (rc != 0)
      return teex_cli_fail("chain: %s", err.msg);
  } else {
    if (teex_eth_address_parse(settlement, cfg.domain.verifying_contract) != 0)
      return teex_cli_fail("--settlement: not an address: %s", settlement);
    cfg.domain.chain_id = chain_id;
    if (teex_dispatcher_chain_file(chain_file, &cfg.domain, &cfg.chain, &err) !=
        0)
      return teex_cli_fail("chain: %s", err.msg);
  }
  cfg.state_dir = state;
  teex_tee_policy_init(&cfg.policy);
  if (teex_tee_policy_load(&cfg.policy, policy, &err) != 0) {
    cfg.chain.ops->close(cfg.chain.arg);
    return teex_cli_fail("policy: %s", err.msg);
  }
  int rc = TEEX_EXIT_FAIL;
  if (teex_ipfs_store_open(ipfs_dir, &cfg.ipfs, &err) != 0) {
    teex_cli_fail("ipfs: %s", err.msg);
    goto out;
  }
  /* The enclave process: no core dumps, not traceable, secrets locked. */
  if (teex_harden_process(0, &err) != 0) {
    teex_cli_fail("harden: %s", err.msg);
    goto out;
  }
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.backend = "sim";
  tc.data_dir = data_dir;
  tc.role = "dispatcher";
  if (teex_tee_open(&tc, &cfg.tee, &err) != 0) {
    teex_cli_fail("tee: %s", err.msg);
    goto out;
  }
  if (teex_dispatcher_serve(&cfg, &err) != 0)
    teex_cli_fail("dispatcher: %s", err.msg);
  else
    rc = TEEX_EXIT_OK;
out:
  teex_tee_close(cfg.tee);
  teex_ipfs_close(cfg.ipfs);
  cfg.chain.ops->close(cfg.chain.arg);
  return rc;
}

static const struct teex_cli_cmd dispatcher_commands[] = {
    {"run", dispatcher_run, "run the dispatcher daemon"},
    {NULL, NULL, NULL},
};

int teex_cmd_dispatcher(int argc, char **argv) {
  return teex_cli_dispatch("teex dispatcher", dispatcher_commands, argc - 1,
                           argv + 1);
}
