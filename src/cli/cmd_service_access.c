/* `teex service access`: who may invoke a listed service — private or
 * public, and the allow-list of a private one (include/teex/provider.h). */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/provider.h"
#include "teex/wallet.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int teex_cli_parse_addrs(const char *list, uint8_t (*out)[20], size_t max,
                         size_t *n, const char *opt) {
  char buf[64];
  const char *p = list;
  for (;;) {
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= sizeof buf)
      return teex_cli_fail("%s: not an address list: %s", opt, list);
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (*n == max)
      return teex_cli_fail("%s: more than %zu addresses", opt, max);
    if (teex_eth_address_parse(buf, out[*n]) != 0)
      return teex_cli_fail("%s: not an address: %s", opt, buf);
    (*n)++;
    if (p[len] == '\0')
      return 0;
    p += len + 1;
  }
}

static const char usage[] =
    "usage: teex service access SERVICE --account ADDR\n"
    "                           [--private | --public] [--allow ADDR,...]\n"
    "                           [--deny ADDR,...] [options]\n"
    "\n"
    "Changes who may invoke a listed service (SERVICE: its id, or its listed\n"
    "name), from the provider's account ADDR. A private service runs only\n"
    "for its provider and the addresses on its allow-list: the dispatcher\n"
    "refuses anyone else before reserving anything. --allow and --deny may\n"
    "be repeated; the allow-list is kept while the service is public.\n"
    "\n"
    "  --private             only the provider and allowed addresses\n"
    "  --public              anyone\n"
    "  --allow ADDR,...      add these addresses to the allow-list\n"
    "  --deny ADDR,...       remove them from it\n"
    "  --account ADDR        the provider account (teex account)\n"
    "  --password-file FILE  its password (else $TEEX_PASSWORD)\n"
    "  --chain FILE          the network's chain.conf (default\n"
    "                        DATA_DIR/chain.conf)\n"
    "  --data-dir DIR        teex data directory (default $TEEX_HOME, else\n"
    "                        ~/.teex)\n";

int teex_cmd_service_access(int argc, char **argv) {
  enum { O_PRIV = 256, O_PUB, O_ALLOW, O_DENY, O_ACCT, O_PW, O_CHAIN, O_DATA };
  static const struct option longopts[] = {
      {"private", no_argument, NULL, O_PRIV},
      {"public", no_argument, NULL, O_PUB},
      {"allow", required_argument, NULL, O_ALLOW},
      {"deny", required_argument, NULL, O_DENY},
      {"account", required_argument, NULL, O_ACCT},
      {"password-file", required_argument, NULL, O_PW},
      {"chain", required_argument, NULL, O_CHAIN},
      {"data-dir", required_argument, NULL, O_DATA},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  static uint8_t allow[TEEX_CHAIN_MAX_ACCESS_LIST][20],
      deny[TEEX_CHAIN_MAX_ACCESS_LIST][20];
  size_t nallow = 0, ndeny = 0;
  int visibility = -1;
  const char *account = NULL, *pwfile = NULL, *chain = NULL;
  char base[PATH_MAX];
  teex_cli_data_dir(base, sizeof base);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_PRIV:
    case O_PUB:
      if (visibility >= 0)
        return teex_cli_fail("give --private or --public once");
      visibility = c == O_PRIV;
      break;
    case O_ALLOW:
      if (teex_cli_parse_addrs(optarg, allow, TEEX_CHAIN_MAX_ACCESS_LIST,
                               &nallow, "--allow") != 0)
        return TEEX_EXIT_USAGE;
      break;
    case O_DENY:
      if (teex_cli_parse_addrs(optarg, deny, TEEX_CHAIN_MAX_ACCESS_LIST, &ndeny,
                               "--deny") != 0)
        return TEEX_EXIT_USAGE;
      break;
    case O_ACCT:
      account = optarg;
      break;
    case O_PW:
      pwfile = optarg;
      break;
    case O_CHAIN:
      chain = optarg;
      break;
    case O_DATA:
      snprintf(base, sizeof base, "%s", optarg);
      break;
    case 'h':
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || account == NULL) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (visibility < 0 && nallow == 0 && ndeny == 0)
    return teex_cli_fail("nothing to change: give --private, --public, "
                         "--allow or --deny");
  uint8_t addr[20];
  if (teex_eth_address_parse(account, addr) != 0)
    return teex_cli_fail("--account: not an address: %s", account);
  char chain_conf[PATH_MAX], store[PATH_MAX], keydir[PATH_MAX];
  if (chain == NULL)
    snprintf(chain_conf, sizeof chain_conf, "%s/chain.conf", base);
  else
    snprintf(chain_conf, sizeof chain_conf, "%s", chain);
  snprintf(store, sizeof store, "%s/ipfs", base);
  snprintf(keydir, sizeof keydir, "%s/keystore", base);
  uint8_t id[32];
  int rc = teex_cli_find_service(chain_conf, store, argv[optind], id);
  if (rc != 0)
    return rc;

  struct teex_err err;
  teex_err_clear(&err);
  char pw[256];
  uint8_t *sk = teex_secret_alloc(32);
  rc = sk ? teex_wallet_password(pwfile, pw, sizeof pw, &err)
          : teex_err_set(&err, TEEX_ENOMEM, NULL);
  if (rc == 0)
    rc = teex_wallet_unlock(keydir, addr, pw, sk, &err);
  teex_wipe(pw, sizeof pw);
  if (rc != 0) {
    teex_secret_free(sk);
    return teex_cli_fail("account %s: %s", account, err.msg);
  }
  struct teex_service_access acc = {.visibility = visibility,
                                    .allow = (const uint8_t(*)[20])allow,
                                    .nallow = nallow,
                                    .deny = (const uint8_t(*)[20])deny,
                                    .ndeny = ndeny};
  rc = teex_service_set_access(id, sk, chain_conf, &acc, &err);
  teex_secret_free(sk);
  if (rc != 0)
    return teex_cli_fail("%s", err.msg);
  char hex[65], a[43];
  teex_hex_encode(id, 32, hex);
  printf("service 0x%s\n", hex);
  for (size_t i = 0; i < nallow; i++) {
    teex_eth_address_hex(allow[i], a);
    printf("  allowed %s\n", a);
  }
  for (size_t i = 0; i < ndeny; i++) {
    teex_eth_address_hex(deny[i], a);
    printf("  denied  %s\n", a);
  }
  if (visibility >= 0)
    printf("  now %s\n", visibility ? "private" : "public");
  return TEEX_EXIT_OK;
}
