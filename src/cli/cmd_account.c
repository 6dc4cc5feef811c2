/* `teex account`: keystore-file accounts (include/teex/wallet.h). */
#include "cli/cli.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/mem.h"
#include "teex/wallet.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acct_opts {
  char dir[PATH_MAX];
  const char *password_file;
  const char *rpc;
  const char *key_file;
  const char *keystore_file;
  uint64_t scrypt_n;
  int json;
};

static const char common_help[] =
    "  --data-dir DIR        teex data directory (default $TEEX_HOME, else\n"
    "                        ~/.teex); keys live in DIR/keystore\n"
    "  --password-file FILE  the password (else $TEEX_PASSWORD; never an\n"
    "                        argument)\n";

static int parse(int argc, char **argv, struct acct_opts *o, const char *usage,
                 int *first_arg) {
  enum { O_DATA = 256, O_PW, O_RPC, O_KEY, O_KS, O_N, O_JSON };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"password-file", required_argument, NULL, O_PW},
      {"rpc", required_argument, NULL, O_RPC},
      {"private-key-file", required_argument, NULL, O_KEY},
      {"keystore", required_argument, NULL, O_KS},
      {"scrypt-n", required_argument, NULL, O_N},
      {"json", no_argument, NULL, O_JSON},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  char base[PATH_MAX];
  teex_cli_data_dir(base, sizeof base);
  o->rpc = "http://127.0.0.1:8545";
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA:
      snprintf(base, sizeof base, "%s", optarg);
      break;
    case O_PW:
      o->password_file = optarg;
      break;
    case O_RPC:
      o->rpc = optarg;
      break;
    case O_KEY:
      o->key_file = optarg;
      break;
    case O_KS:
      o->keystore_file = optarg;
      break;
    case O_N:
      if (teex_parse_u64(optarg, &o->scrypt_n) != 0 || o->scrypt_n < 2 ||
          (o->scrypt_n & (o->scrypt_n - 1)) != 0) {
        teex_cli_fail("--scrypt-n must be a power of two");
        return TEEX_EXIT_USAGE;
      }
      break;
    case O_JSON:
      o->json = 1;
      break;
    case 'h':
      printf("%s%s", usage, common_help);
      return -1;
    default:
      fprintf(stderr, "%s%s", usage, common_help);
      return TEEX_EXIT_USAGE;
    }
  }
  snprintf(o->dir, sizeof o->dir, "%s/keystore", base);
  *first_arg = optind;
  return 0;
}

static int get_password(const struct acct_opts *o, char pw[256]) {
  struct teex_err err;
  if (teex_wallet_password(o->password_file, pw, 256, &err) != 0) {
    teex_cli_fail("%s", err.msg);
    return -1;
  }
  return 0;
}

static const struct teex_keystore_params *
params_of(const struct acct_opts *o, struct teex_keystore_params *p) {
  if (o->scrypt_n == 0)
    return NULL;
  p->scrypt_n = o->scrypt_n;
  p->scrypt_r = 8;
  p->scrypt_p = 1;
  return p;
}

static int acct_new(int argc, char **argv) {
  static const char usage[] =
      "usage: teex account new [--scrypt-n N] [options]\n\n"
      "Creates a new secp256k1 key in a keystore file and prints its\n"
      "address. --scrypt-n lowers the key-derivation cost (default geth's\n"
      "standard 262144; lower is weaker, for tests).\n";
  struct acct_opts o;
  int first, rc = parse(argc, argv, &o, usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  char pw[256];
  if (get_password(&o, pw) != 0)
    return TEEX_EXIT_FAIL;
  struct teex_keystore_params p;
  uint8_t addr[20];
  struct teex_err err;
  rc = teex_wallet_create(o.dir, pw, params_of(&o, &p), addr, &err);
  teex_wipe(pw, sizeof pw);
  if (rc != 0)
    return teex_cli_fail("account new: %s", err.msg);
  char hex[43];
  teex_eth_address_hex(addr, hex);
  printf("%s\n", hex);
  return TEEX_EXIT_OK;
}

static int acct_import(int argc, char **argv) {
  static const char usage[] =
      "usage: teex account import (--private-key-file FILE | --keystore FILE)\n"
      "                           [options]\n\n"
      "Imports a key: a file holding the private key in hex, or a v3\n"
      "keystore JSON file (geth, ethers, wallets) opened with the password.\n";
  struct acct_opts o;
  int first, rc = parse(argc, argv, &o, usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if ((o.key_file == NULL) == (o.keystore_file == NULL)) {
    fprintf(stderr, "%s", usage);
    return TEEX_EXIT_USAGE;
  }
  char pw[256];
  if (get_password(&o, pw) != 0)
    return TEEX_EXIT_FAIL;
  struct teex_err err;
  uint8_t addr[20];
  const char *path = o.key_file ? o.key_file : o.keystore_file;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    teex_wipe(pw, sizeof pw);
    return teex_cli_fail("open %s", path);
  }
  char *text = malloc(TEEX_KEYSTORE_MAX_JSON + 1);
  size_t n = text ? fread(text, 1, TEEX_KEYSTORE_MAX_JSON, f) : 0;
  fclose(f);
  if (text == NULL) {
    teex_wipe(pw, sizeof pw);
    return teex_cli_fail("out of memory");
  }
  text[n] = '\0';
  if (o.key_file != NULL) {
    text[strcspn(text, "\r\n \t")] = '\0';
    uint8_t *sk = teex_secret_alloc(32);
    size_t got = 0;
    if (sk == NULL || teex_hex_decode(text, sk, 32, &got) != 0 || got != 32)
      rc = teex_err_set(&err, TEEX_EINVAL,
                        "the key file must hold 64 hex digits");
    else
      rc = teex_wallet_import_key(o.dir, sk, pw, NULL, addr, &err);
    teex_secret_free(sk);
  } else {
    rc = teex_wallet_import_json(o.dir, text, pw, addr, &err);
  }
  teex_wipe(text, n);
  free(text);
  teex_wipe(pw, sizeof pw);
  if (rc != 0)
    return teex_cli_fail("account import: %s", err.msg);
  char hex[43];
  teex_eth_address_hex(addr, hex);
  printf("%s\n", hex);
  return TEEX_EXIT_OK;
}

static int acct_list(int argc, char **argv) {
  static const char usage[] =
      "usage: teex account list [--json] [options]\n\nLists the accounts.\n";
  struct acct_opts o;
  int first, rc = parse(argc, argv, &o, usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  static uint8_t addrs[TEEX_WALLET_MAX_ACCOUNTS][20];
  struct teex_err err;
  int n = teex_wallet_list(o.dir, addrs, TEEX_WALLET_MAX_ACCOUNTS, &err);
  if (n < 0)
    return teex_cli_fail("account list: %s", err.msg);
  if (o.json)
    printf("[");
  for (int i = 0; i < n; i++) {
    char hex[43];
    teex_eth_address_hex(addrs[i], hex);
    if (o.json)
      printf("%s\"%s\"", i ? "," : "", hex);
    else
      printf("%s\n", hex);
  }
  if (o.json)
    printf("]\n");
  return TEEX_EXIT_OK;
}

static int addr_arg(int argc, char **argv, int first, uint8_t addr[20]) {
  if (first >= argc) {
    teex_cli_fail("give an account address");
    return -1;
  }
  if (teex_eth_address_parse(argv[first], addr) != 0) {
    teex_cli_fail("not an address: %s", argv[first]);
    return -1;
  }
  return 0;
}

static int acct_export(int argc, char **argv) {
  static const char usage[] =
      "usage: teex account export ADDRESS [options]\n\n"
      "Prints the account's keystore JSON (encrypted: safe to move to geth,\n"
      "ethers or a wallet).\n";
  struct acct_opts o;
  int first, rc = parse(argc, argv, &o, usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  uint8_t addr[20];
  if (addr_arg(argc, argv, first, addr) != 0)
    return TEEX_EXIT_USAGE;
  char *json;
  struct teex_err err;
  if (teex_wallet_read(o.dir, addr, &json, &err) != 0)
    return teex_cli_fail("account export: %s", err.msg);
  printf("%s\n", json);
  free(json);
  return TEEX_EXIT_OK;
}

static int acct_balance(int argc, char **argv) {
  static const char usage[] =
      "usage: teex account balance ADDRESS [--rpc URL] [--json]\n\n"
      "Prints the account's balance in wei from the chain (default RPC\n"
      "http://127.0.0.1:8545).\n";
  struct acct_opts o;
  int first, rc = parse(argc, argv, &o, usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  uint8_t addr[20];
  if (addr_arg(argc, argv, first, addr) != 0)
    return TEEX_EXIT_USAGE;
  struct teex_err err;
  struct teex_eth_rpc *rpc = NULL;
  if (teex_eth_rpc_open(o.rpc, NULL, &rpc, &err) != 0)
    return teex_cli_fail("rpc %s: %s", o.rpc, err.msg);
  teex_u256 bal;
  rc = teex_eth_get_balance(rpc, addr, "latest", bal, &err);
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_cli_fail("balance: %s", err.msg);
  char dec[80];
  teex_u256_format_dec(bal, dec);
  char hex[43];
  teex_eth_address_hex(addr, hex);
  if (o.json)
    printf("{\"address\":\"%s\",\"wei\":\"%s\"}\n", hex, dec);
  else
    printf("%s  %s wei\n", hex, dec);
  return TEEX_EXIT_OK;
}

static const struct teex_cli_cmd account_commands[] = {
    {"new", acct_new, "create a key in a keystore file"},
    {"import", acct_import, "import a private key or a v3 keystore file"},
    {"export", acct_export, "print an account's keystore JSON"},
    {"list", acct_list, "list the accounts"},
    {"balance", acct_balance, "an account's balance on the chain"},
    {NULL, NULL, NULL},
};

int teex_cmd_account(int argc, char **argv) {
  return teex_cli_dispatch("teex account", account_commands, argc - 1,
                           argv + 1);
}
