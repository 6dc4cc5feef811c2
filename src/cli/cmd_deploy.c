/* `teex service deploy`: a provider deploys a service
 * (include/teex/provider.h). */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/ipfs.h"
#include "teex/mem.h"
#include "teex/provider.h"
#include "teex/tee_policy.h"
#include "teex/wallet.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: teex service deploy DIR --account ADDR --sm HOST:PORT\n"
    "                           --sm-policy FILE [options]\n"
    "\n"
    "Packs the service folder DIR, encrypts the image under a fresh image\n"
    "key, stores the ciphertext on IPFS, verifies the Service Manager's\n"
    "evidence against --sm-policy and hands it the image key with a\n"
    "registration signed by ADDR, then prints the service id and the SM's\n"
    "signed listing (keys and image hash) for the on-chain registry.\n"
    "\n"
    "  --account ADDR        the provider account (teex account)\n"
    "  --password-file FILE  its password (else $TEEX_PASSWORD)\n"
    "  --sm HOST:PORT        the SM's client endpoint\n"
    "  --sm-policy FILE      attestation policy the SM must satisfy\n"
    "  --ipfs-store DIR      local IPFS block store (default DATA_DIR/ipfs)\n"
    "  --ipfs-api URL        a Kubo RPC endpoint instead\n"
    "  --version N           version to register (default 1)\n"
    "  --price WEI           list on chain at this price per call (paid by\n"
    "                        the user); needs --remuneration\n"
    "  --remuneration WEI    what the worker earns per call (the provider\n"
    "                        keeps price - remuneration)\n"
    "  --private             list it private: only ADDR and the addresses\n"
    "                        of --allow may invoke it (teex service access\n"
    "                        changes this later)\n"
    "  --allow ADDR,...      with --private: addresses that may invoke it\n"
    "  --chain FILE          the network's chain.conf (default\n"
    "                        DATA_DIR/chain.conf)\n"
    "  --data D1,D2          datasets every task of the service reads\n"
    "                        first (by id, or name when unique; their\n"
    "                        providers must approve the new image hash;\n"
    "                        each use is paid by the task's user)\n"
    "  --out FILE            write the deployment record (JSON) here\n"
    "  --data-dir DIR        teex data directory (default $TEEX_HOME, else\n"
    "                        ~/.teex)\n";

int teex_cmd_service_deploy(int argc, char **argv) {
  enum {
    O_ACCT = 256,
    O_PW,
    O_SM,
    O_POL,
    O_STORE,
    O_API,
    O_VER,
    O_OUT,
    O_DATA,
    O_PRICE,
    O_REM,
    O_CHAIN,
    O_PRIVATE,
    O_ALLOW,
    O_DSETS
  };
  static const struct option longopts[] = {
      {"account", required_argument, NULL, O_ACCT},
      {"password-file", required_argument, NULL, O_PW},
      {"sm", required_argument, NULL, O_SM},
      {"sm-policy", required_argument, NULL, O_POL},
      {"ipfs-store", required_argument, NULL, O_STORE},
      {"ipfs-api", required_argument, NULL, O_API},
      {"version", required_argument, NULL, O_VER},
      {"out", required_argument, NULL, O_OUT},
      {"data-dir", required_argument, NULL, O_DATA},
      {"price", required_argument, NULL, O_PRICE},
      {"remuneration", required_argument, NULL, O_REM},
      {"chain", required_argument, NULL, O_CHAIN},
      {"private", no_argument, NULL, O_PRIVATE},
      {"allow", required_argument, NULL, O_ALLOW},
      {"data", required_argument, NULL, O_DSETS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *account = NULL, *pwfile = NULL, *sm = NULL, *policy = NULL,
             *store = NULL, *api = NULL, *outfile = NULL, *price = NULL,
             *remuneration = NULL, *chain = NULL, *dsets = NULL;
  uint64_t version = 1;
  int is_private = 0;
  static uint8_t allow[TEEX_CHAIN_MAX_ACCESS_LIST][20];
  size_t nallow = 0;
  char base[PATH_MAX];
  teex_cli_data_dir(base, sizeof base);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_ACCT:
      account = optarg;
      break;
    case O_PW:
      pwfile = optarg;
      break;
    case O_SM:
      sm = optarg;
      break;
    case O_POL:
      policy = optarg;
      break;
    case O_STORE:
      store = optarg;
      break;
    case O_API:
      api = optarg;
      break;
    case O_VER:
      if (teex_parse_u64(optarg, &version) != 0 || version == 0 ||
          version > UINT32_MAX)
        return teex_cli_fail("--version must be a positive number");
      break;
    case O_OUT:
      outfile = optarg;
      break;
    case O_DATA:
      snprintf(base, sizeof base, "%s", optarg);
      break;
    case O_PRICE:
      price = optarg;
      break;
    case O_REM:
      remuneration = optarg;
      break;
    case O_CHAIN:
      chain = optarg;
      break;
    case O_PRIVATE:
      is_private = 1;
      break;
    case O_ALLOW:
      if (teex_cli_parse_addrs(optarg, allow, TEEX_CHAIN_MAX_ACCESS_LIST,
                               &nallow, "--allow") != 0)
        return TEEX_EXIT_USAGE;
      break;
    case O_DSETS:
      dsets = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || account == NULL || sm == NULL || policy == NULL ||
      (price == NULL) != (remuneration == NULL)) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if ((is_private || nallow > 0) && price == NULL)
    return teex_cli_fail("--private and --allow apply to the listing: give "
                         "--price and --remuneration");
  if (nallow > 0 && !is_private)
    return teex_cli_fail("--allow needs --private (a public service runs for "
                         "anyone)");
  struct teex_err err;
  teex_err_clear(&err);
  uint8_t addr[20];
  if (teex_eth_address_parse(account, addr) != 0)
    return teex_cli_fail("--account: not an address: %s", account);
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, policy, &err) != 0)
    return teex_cli_fail("--sm-policy: %s", err.msg);

  static uint8_t ids[32 * 16];
  size_t nids = 0;
  if (dsets != NULL) {
    char cc[PATH_MAX];
    if (chain == NULL)
      snprintf(cc, sizeof cc, "%s/chain.conf", base);
    else
      snprintf(cc, sizeof cc, "%s", chain);
    if (teex_cli_find_datasets(cc, dsets, ids, 16, &nids, &err) != 0)
      return teex_cli_fail("--data: %s", err.msg);
  }
  struct teex_ipfs_backend *ipfs = NULL;
  char store_dir[PATH_MAX];
  if (api != NULL) {
    if (teex_ipfs_kubo_open(api, &ipfs, &err) != 0)
      return teex_cli_fail("ipfs %s: %s", api, err.msg);
  } else {
    if (store == NULL) {
      snprintf(store_dir, sizeof store_dir, "%s/ipfs", base);
      store = store_dir;
    }
    if (teex_ipfs_store_open(store, &ipfs, &err) != 0)
      return teex_cli_fail("ipfs store %s: %s", store, err.msg);
  }

  char pw[256], keydir[PATH_MAX];
  snprintf(keydir, sizeof keydir, "%s/keystore", base);
  uint8_t *sk = teex_secret_alloc(32);
  int rc = sk ? teex_wallet_password(pwfile, pw, sizeof pw, &err)
              : teex_err_set(&err, TEEX_ENOMEM, NULL);
  if (rc == 0)
    rc = teex_wallet_unlock(keydir, addr, pw, sk, &err);
  teex_wipe(pw, sizeof pw);
  if (rc != 0) {
    teex_secret_free(sk);
    teex_ipfs_close(ipfs);
    return teex_cli_fail("account %s: %s", account, err.msg);
  }
  struct teex_deploy_request req = {.service_dir = argv[optind],
                                    .provider_sk = sk,
                                    .sm_addr = sm,
                                    .sm_policy = &pol,
                                    .ipfs = ipfs,
                                    .version = (uint32_t)version,
                                    .dataset_ids = nids ? ids : NULL,
                                    .n_datasets = nids};
  struct teex_deployed d;
  rc = teex_service_deploy(&req, &d, &err);
  if (rc == 0 && price != NULL) {
    char chain_conf[PATH_MAX];
    if (chain == NULL)
      snprintf(chain_conf, sizeof chain_conf, "%s/chain.conf", base);
    else
      snprintf(chain_conf, sizeof chain_conf, "%s", chain);
    struct teex_service_access acc = {.visibility = -1,
                                      .allow = (const uint8_t(*)[20])allow,
                                      .nallow = nallow};
    /* The allow-list before the service turns private (a listed service
     * can take it first), so an allowed caller is never refused between
     * the two; version 1 must be listed before it has one. */
    if (nallow > 0 && d.version > 1)
      rc = teex_service_set_access(d.service_id, sk, chain_conf, &acc, &err);
    if (rc == 0)
      rc = teex_service_list_on_chain(&d, sk, chain_conf, price, remuneration,
                                      is_private, &err);
    if (rc == 0 && nallow > 0 && d.version == 1)
      rc = teex_service_set_access(d.service_id, sk, chain_conf, &acc, &err);
  }
  teex_secret_free(sk);
  teex_ipfs_close(ipfs);
  if (rc != 0)
    return teex_cli_fail("deploy: %s", err.msg);
  if (outfile != NULL && teex_deployed_write_json(&d, outfile, &err) != 0)
    return teex_cli_fail("%s", err.msg);
  char id[65], img[65], sk_addr[43];
  teex_hex_encode(d.service_id, 32, id);
  teex_hex_encode(d.image_hash, 32, img);
  teex_eth_address_hex(d.signing_key, sk_addr);
  printf("deployed %s version %u\n  service id   0x%s\n  image hash   "
         "0x%s\n  image (IPFS) %s\n  description  %s\n  service key  %s\n",
         d.name, d.version, id, img, d.image_cid, d.metadata_cid, sk_addr);
  if (price != NULL)
    printf("  listed on chain at %s wei per call (worker %s)%s\n", price,
           remuneration, is_private ? ", private" : "");
  for (size_t i = 0; i < nallow; i++) {
    char a[43];
    teex_eth_address_hex(allow[i], a);
    printf("  allowed      %s\n", a);
  }
  return TEEX_EXIT_OK;
}
