/* `teex data`: a data provider publishes datasets (include/teex/data.h),
 * approves the exact (service, image hash) pairs that may read them and
 * revokes them; anyone lists and shows the listings rebuilt from the
 * DatasetRegistry's events. */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/data.h"
#include "teex/ipfs.h"
#include "teex/mem.h"
#include "teex/tee_policy.h"
#include "teex/wallet.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Options the subcommands share. */
struct data_opts {
  char base[PATH_MAX];
  const char *account, *pwfile, *chain, *rpc;
  int json, all;
};

static void opts_init(struct data_opts *o) {
  memset(o, 0, sizeof *o);
  teex_cli_data_dir(o->base, sizeof o->base);
}

static void chain_conf_path(const struct data_opts *o, char *out, size_t n) {
  if (o->chain != NULL)
    snprintf(out, n, "%s", o->chain);
  else
    snprintf(out, n, "%s/chain.conf", o->base);
}

/* Opens the chain of the network: addresses and an RPC handle. */
static int open_chain(const struct data_opts *o, struct teex_chain_addrs *a,
                      struct teex_eth_rpc **rpc, struct teex_err *err) {
  char conf[PATH_MAX];
  struct teex_config cc;
  chain_conf_path(o, conf, sizeof conf);
  teex_config_init(&cc);
  int rc = teex_config_load(&cc, conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&cc, a, err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        o->rpc ? o->rpc
               : teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC),
        NULL, rpc, err);
  if (rc == 0)
    teex_chain_use_errors(*rpc);
  teex_config_free(&cc);
  return rc;
}

/* Unlocks the --account key into locked memory (*sk, teex_secret_free). */
static int unlock(const struct data_opts *o, uint8_t **sk,
                  struct teex_err *err) {
  char pw[256], keydir[PATH_MAX];
  uint8_t addr[20];
  *sk = NULL;
  if (o->account == NULL)
    return teex_err_set(err, TEEX_EINVAL, "--account is required");
  if (teex_eth_address_parse(o->account, addr) != 0)
    return teex_err_set(err, TEEX_EINVAL, "--account: not an address: %s",
                        o->account);
  snprintf(keydir, sizeof keydir, "%s/keystore", o->base);
  *sk = teex_secret_alloc(32);
  int rc = *sk ? teex_wallet_password(o->pwfile, pw, sizeof pw, err)
               : teex_err_set(err, TEEX_ENOMEM, NULL);
  if (rc == 0)
    rc = teex_wallet_unlock(keydir, addr, pw, *sk, err);
  teex_wipe(pw, sizeof pw);
  if (rc != 0) {
    teex_secret_free(*sk);
    *sk = NULL;
    return teex_err_wrap(err, rc, "account %s", o->account);
  }
  return 0;
}

/* A dataset given by id (64 hex digits, 0x optional) or by name (unique
 * among the listings that are not revoked). */
static int resolve(struct teex_eth_rpc *rpc, const struct teex_chain_addrs *a,
                   const char *s, uint8_t id[32], struct teex_err *err) {
  size_t n = 0;
  const char *h = strncmp(s, "0x", 2) == 0 ? s + 2 : s;
  if (strlen(h) == 64 && teex_hex_decode(h, id, 32, &n) == 0 && n == 32)
    return 0;
  struct teex_chain_dataset *v = NULL;
  int rc = teex_chain_datasets(rpc, a, &v, &n, err), found = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (!v[i].revoked && strcmp(v[i].name, s) == 0) {
      memcpy(id, v[i].dataset_id, 32);
      found++;
    }
  free(v);
  if (rc != 0)
    return rc;
  if (found == 0)
    return teex_err_set(err, TEEX_ENOTFOUND, "no live dataset named %s", s);
  if (found > 1)
    return teex_err_set(err, TEEX_EINVAL,
                        "%d datasets are named %s: give the id", found, s);
  return 0;
}

int teex_cli_find_dataset(const char *chain_conf, const char *s, uint8_t id[32],
                          struct teex_err *err) {
  struct data_opts o;
  opts_init(&o);
  o.chain = chain_conf;
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  int rc = open_chain(&o, &a, &rpc, err);
  if (rc == 0)
    rc = resolve(rpc, &a, s, id, err);
  teex_eth_rpc_close(rpc);
  return rc;
}

int teex_cli_find_datasets(const char *chain_conf, const char *list,
                           uint8_t *ids, size_t max, size_t *n,
                           struct teex_err *err) {
  char buf[64 * 80];
  *n = 0;
  if (strlen(list) >= sizeof buf)
    return teex_err_set(err, TEEX_EINVAL, "dataset list too long");
  snprintf(buf, sizeof buf, "%s", list);
  for (char *p = buf, *next; p != NULL; p = next) {
    next = strchr(p, ',');
    if (next != NULL)
      *next++ = '\0';
    if (*p == '\0')
      return teex_err_set(err, TEEX_EINVAL, "empty dataset name");
    if (*n == max)
      return teex_err_set(err, TEEX_ETOOBIG, "at most %zu datasets", max);
    int rc = teex_cli_find_dataset(chain_conf, p, ids + 32 * *n, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "%s", p);
    (*n)++;
  }
  return 0;
}

/* "+SECONDS" from now, or an absolute unix time. */
static int parse_expiry(const char *s, uint64_t *out) {
  uint64_t v;
  if (s[0] == '+') {
    if (teex_parse_u64(s + 1, &v) != 0 || v == 0)
      return -1;
    *out = (uint64_t)time(NULL) + v;
    return 0;
  }
  return teex_parse_u64(s, out) == 0 && *out > 0 ? 0 : -1;
}

static void hex_id(const uint8_t id[32], char out[67]) {
  out[0] = '0';
  out[1] = 'x';
  teex_hex_encode(id, 32, out + 2);
}

static json_t *dataset_json(const struct teex_chain_dataset *d) {
  char id[67], prov[43], price[40], hash[67];
  hex_id(d->dataset_id, id);
  hex_id(d->plaintext_hash, hash);
  teex_eth_address_hex(d->provider, prov);
  teex_amount_format(d->price, price);
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "dataset_id",
      id, "name", d->name, "provider", prov, "price_wei", price,
      "ciphertext_cid", d->ciphertext_cid, "plaintext_sha256", hash, "size",
      (json_int_t)d->plaintext_size, "expires_at", (json_int_t)d->expires_at,
      "max_uses", (json_int_t)d->max_uses, "max_output_bytes",
      (json_int_t)d->max_output_bytes, "revoked", d->revoked);
}

/* ---- publish ---- */

static const char publish_usage[] =
    "usage: teex data publish FILE --account ADDR --price WEI\n"
    "                         --allow SERVICE@IMAGE_HASH... [options]\n"
    "\n"
    "Encrypts FILE under a fresh data key, stores the ciphertext on IPFS,\n"
    "verifies the Service Manager's evidence and escrows the key with it\n"
    "(signed by ADDR), then lists the dataset on chain with its terms and\n"
    "approves each exact (service, image hash) pair given with --allow (a\n"
    "new version of a service needs a new approval).\n"
    "\n"
    "  --account ADDR        the data provider's account (teex account)\n"
    "  --password-file FILE  its password (else $TEEX_PASSWORD)\n"
    "  --price WEI           paid by the user per task that uses it\n"
    "  --allow S@I           a service (its id, or its name in the app\n"
    "                        store) and the image hash that may read it\n"
    "                        (repeat, or comma-separated; at most 64)\n"
    "  --name NAME           the listing's name (default: FILE's base name)\n"
    "  --expires T           unix time, or +SECONDS from now (default never)\n"
    "  --max-uses N          tasks that may use it (default unlimited)\n"
    "  --max-output BYTES    cap on everything a task using it sends out:\n"
    "                        output, logs and error text together\n"
    "  --sm HOST:PORT        the SM's client endpoint (default: the local\n"
    "                        network's, DATA_DIR/network.conf)\n"
    "  --sm-policy FILE      what the SM must prove (default\n"
    "                        DATA_DIR/policy/sm.conf)\n"
    "  --chain FILE          the network's chain.conf (default "
    "DATA_DIR/chain.conf)\n"
    "  --ipfs-store DIR      local IPFS block store (default DATA_DIR/ipfs)\n"
    "  --ipfs-api URL        a Kubo RPC endpoint instead\n"
    "  --json                print the listing as JSON\n"
    "  --data-dir DIR        teex data directory (default $TEEX_HOME, else\n"
    "                        ~/.teex)\n";

/* Service names given in --allow, resolved through the app store once the
 * chain is known ("" where the id was given). */
typedef char allow_name[TEEX_DATA_NAME_MAX + 1];

/* Parses --allow: comma-separated SERVICE@IMAGE_HASH, SERVICE an id (64 hex
 * digits) or a service's name in the app store. */
static int add_allow(const char *arg, struct teex_chain_approval *allow,
                     allow_name *names, size_t *n, struct teex_err *err) {
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", arg);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    if (*n == TEEX_DATA_MAX_ALLOW)
      return teex_err_set(err, TEEX_EINVAL, "at most %d --allow pairs",
                          TEEX_DATA_MAX_ALLOW);
    names[*n][0] = 0;
    int rc = teex_data_parse_allow(tok, &allow[*n], err);
    const char *at = strchr(tok, '@');
    if (rc != 0 && at != NULL && at > tok &&
        (size_t)(at - tok) <= TEEX_DATA_NAME_MAX) {
      /* A name: the image hash must still be a hash. */
      char probe[160];
      snprintf(probe, sizeof probe, "%064d%s", 0, at);
      if (teex_data_parse_allow(probe, &allow[*n], err) == 0) {
        memcpy(names[*n], tok, (size_t)(at - tok));
        names[*n][at - tok] = 0;
        rc = 0;
      }
    }
    if (rc != 0)
      return rc;
    (*n)++;
  }
  return 0;
}

/* Resolves the names of --allow through the app store. An exit status. */
static int resolve_names(const struct data_opts *o,
                         struct teex_chain_approval *allow, allow_name *names,
                         size_t n) {
  char conf[PATH_MAX], store[PATH_MAX];
  chain_conf_path(o, conf, sizeof conf);
  snprintf(store, sizeof store, "%s/ipfs", o->base);
  for (size_t i = 0; i < n; i++)
    if (names[i][0] != 0) {
      int rc =
          teex_cli_find_service(conf, store, names[i], allow[i].service_id);
      if (rc != 0)
        return rc;
    }
  return 0;
}

static int data_publish(int argc, char **argv) {
  enum {
    O_ACCT = 256,
    O_PW,
    O_PRICE,
    O_ALLOW,
    O_NAME,
    O_EXP,
    O_USES,
    O_OUTMAX,
    O_SM,
    O_POL,
    O_CHAIN,
    O_STORE,
    O_API,
    O_JSON,
    O_DATA
  };
  static const struct option longopts[] = {
      {"account", required_argument, NULL, O_ACCT},
      {"password-file", required_argument, NULL, O_PW},
      {"price", required_argument, NULL, O_PRICE},
      {"allow", required_argument, NULL, O_ALLOW},
      {"name", required_argument, NULL, O_NAME},
      {"expires", required_argument, NULL, O_EXP},
      {"max-uses", required_argument, NULL, O_USES},
      {"max-output", required_argument, NULL, O_OUTMAX},
      {"sm", required_argument, NULL, O_SM},
      {"sm-policy", required_argument, NULL, O_POL},
      {"chain", required_argument, NULL, O_CHAIN},
      {"ipfs-store", required_argument, NULL, O_STORE},
      {"ipfs-api", required_argument, NULL, O_API},
      {"json", no_argument, NULL, O_JSON},
      {"data-dir", required_argument, NULL, O_DATA},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct data_opts o;
  struct teex_err err;
  struct teex_chain_approval allow[TEEX_DATA_MAX_ALLOW];
  allow_name names[TEEX_DATA_MAX_ALLOW];
  struct teex_data_terms terms;
  const char *price = NULL, *name = NULL, *sm = NULL, *policy = NULL,
             *store = NULL, *api = NULL;
  uint64_t u;
  size_t n_allow = 0;
  int c;
  opts_init(&o);
  memset(&terms, 0, sizeof terms);
  teex_err_clear(&err);
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_ACCT:
      o.account = optarg;
      break;
    case O_PW:
      o.pwfile = optarg;
      break;
    case O_PRICE:
      price = optarg;
      break;
    case O_ALLOW:
      if (add_allow(optarg, allow, names, &n_allow, &err) != 0)
        return teex_cli_fail("data publish: %s", err.msg);
      break;
    case O_NAME:
      name = optarg;
      break;
    case O_EXP:
      if (parse_expiry(optarg, &terms.expires_at) != 0)
        return teex_cli_fail("--expires: a unix time or +SECONDS");
      break;
    case O_USES:
      if (teex_parse_u64(optarg, &u) != 0 || u == 0 || u > UINT32_MAX)
        return teex_cli_fail("--max-uses: a positive number");
      terms.max_uses = (uint32_t)u;
      break;
    case O_OUTMAX:
      if (teex_parse_u64(optarg, &terms.max_output_bytes) != 0 ||
          terms.max_output_bytes == 0)
        return teex_cli_fail("--max-output: a positive number of bytes");
      break;
    case O_SM:
      sm = optarg;
      break;
    case O_POL:
      policy = optarg;
      break;
    case O_CHAIN:
      o.chain = optarg;
      break;
    case O_STORE:
      store = optarg;
      break;
    case O_API:
      api = optarg;
      break;
    case O_JSON:
      o.json = 1;
      break;
    case O_DATA:
      snprintf(o.base, sizeof o.base, "%s", optarg);
      break;
    case 'h':
      fputs(publish_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(publish_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || o.account == NULL || price == NULL ||
      n_allow == 0) {
    fputs(publish_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (teex_amount_parse(price, &terms.price) != 0)
    return teex_cli_fail("--price: an amount of wei");
  const char *file = argv[optind];
  if (name == NULL) {
    name = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
  }
  int st = resolve_names(&o, allow, names, n_allow);
  if (st != 0)
    return st;
  terms.allow = allow;
  terms.n_allow = n_allow;

  /* The local network's SM endpoint and policy unless given. */
  char sm_buf[256] = "", pol_buf[PATH_MAX];
  if (sm == NULL) {
    char net[PATH_MAX];
    struct teex_config nc;
    snprintf(net, sizeof net, "%s/network.conf", o.base);
    teex_config_init(&nc);
    if (teex_config_load(&nc, net, &err) == 0)
      snprintf(sm_buf, sizeof sm_buf, "%s",
               teex_config_get(&nc, "sm.client", ""));
    teex_config_free(&nc);
    if (sm_buf[0] == '\0')
      return teex_cli_fail("data publish: --sm is required (no local network "
                           "in %s)",
                           o.base);
    sm = sm_buf;
  }
  if (policy == NULL) {
    snprintf(pol_buf, sizeof pol_buf, "%s/policy/sm.conf", o.base);
    policy = pol_buf;
  }
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, policy, &err) != 0)
    return teex_cli_fail("--sm-policy: %s", err.msg);

  struct teex_ipfs_backend *ipfs = NULL;
  char store_dir[PATH_MAX];
  if (api != NULL) {
    if (teex_ipfs_kubo_open(api, &ipfs, &err) != 0)
      return teex_cli_fail("ipfs %s: %s", api, err.msg);
  } else {
    if (store == NULL) {
      snprintf(store_dir, sizeof store_dir, "%s/ipfs", o.base);
      store = store_dir;
    }
    if (teex_ipfs_store_open(store, &ipfs, &err) != 0)
      return teex_cli_fail("ipfs store %s: %s", store, err.msg);
  }
  uint8_t *sk = NULL;
  int rc = unlock(&o, &sk, &err);
  struct teex_data_published p;
  memset(&p, 0, sizeof p);
  if (rc == 0) {
    struct teex_data_publish_req req = {.file = file,
                                        .name = name,
                                        .provider_sk = sk,
                                        .sm_addr = sm,
                                        .sm_policy = &pol,
                                        .ipfs = ipfs};
    rc = teex_data_publish(&req, &p, &err);
  }
  if (rc == 0) {
    char conf[PATH_MAX];
    chain_conf_path(&o, conf, sizeof conf);
    rc = teex_data_list_on_chain(&p, sk, conf, &terms, &err);
  }
  teex_secret_free(sk);
  teex_ipfs_close(ipfs);
  if (rc != 0)
    return teex_cli_fail("data publish: %s", err.msg);
  char id[67], hash[67];
  hex_id(p.dataset_id, id);
  hex_id(p.plaintext_hash, hash);
  if (o.json) {
    printf("{\"dataset_id\":\"%s\",\"name\":\"%s\",\"ciphertext_cid\":\"%s\","
           "\"plaintext_sha256\":\"%s\",\"size\":%llu}\n",
           id, p.name, p.cid, hash, (unsigned long long)p.plaintext_size);
  } else {
    printf("published %s\n  dataset id   %s\n  ciphertext   %s (IPFS)\n  "
           "plaintext    %llu bytes, sha256 %s\n  price        %s wei per "
           "use\n  approved     %zu service image(s)\n",
           p.name, id, p.cid, (unsigned long long)p.plaintext_size, hash, price,
           n_allow);
  }
  return TEEX_EXIT_OK;
}

/* ---- list / show ---- */

static int parse_common(int argc, char **argv, struct data_opts *o,
                        const char *usage, int *allow_flag,
                        struct teex_chain_approval *allow, allow_name *names,
                        size_t *n_allow) {
  enum {
    O_ACCT = 256,
    O_PW,
    O_CHAIN,
    O_RPC,
    O_JSON,
    O_ALL,
    O_DATA,
    O_ALLOW,
    O_REMOVE
  };
  static const struct option longopts[] = {
      {"account", required_argument, NULL, O_ACCT},
      {"password-file", required_argument, NULL, O_PW},
      {"chain", required_argument, NULL, O_CHAIN},
      {"rpc", required_argument, NULL, O_RPC},
      {"json", no_argument, NULL, O_JSON},
      {"all", no_argument, NULL, O_ALL},
      {"data-dir", required_argument, NULL, O_DATA},
      {"allow", required_argument, NULL, O_ALLOW},
      {"remove", no_argument, NULL, O_REMOVE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct teex_err err;
  int c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_ACCT:
      o->account = optarg;
      break;
    case O_PW:
      o->pwfile = optarg;
      break;
    case O_CHAIN:
      o->chain = optarg;
      break;
    case O_RPC:
      o->rpc = optarg;
      break;
    case O_JSON:
      o->json = 1;
      break;
    case O_ALL:
      o->all = 1;
      break;
    case O_DATA:
      snprintf(o->base, sizeof o->base, "%s", optarg);
      break;
    case O_ALLOW:
      if (allow == NULL)
        goto bad;
      if (add_allow(optarg, allow, names, n_allow, &err) != 0) {
        teex_cli_fail("%s", err.msg);
        return TEEX_EXIT_FAIL;
      }
      break;
    case O_REMOVE:
      if (allow_flag == NULL)
        goto bad;
      *allow_flag = 0;
      break;
    case 'h':
      fputs(usage, stdout);
      return -1;
    default:
      goto bad;
    }
  }
  return TEEX_EXIT_OK;
bad:
  fputs(usage, stderr);
  return TEEX_EXIT_USAGE;
}

static const char list_usage[] =
    "usage: teex data list [--all] [--json] [--chain FILE] [--rpc URL]\n"
    "\n"
    "The datasets listed on chain (rebuilt from the DatasetRegistry's\n"
    "events): name, provider, price per use, size and terms. --all includes\n"
    "revoked ones.\n";

static int data_list(int argc, char **argv) {
  struct data_opts o;
  struct teex_err err;
  opts_init(&o);
  int rc = parse_common(argc, argv, &o, list_usage, NULL, NULL, NULL, NULL);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if (optind != argc) {
    fputs(list_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_dataset *v = NULL;
  size_t n = 0;
  rc = open_chain(&o, &a, &rpc, &err);
  if (rc == 0)
    rc = teex_chain_datasets(rpc, &a, &v, &n, &err);
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_cli_fail("data list: %s", err.msg);
  json_t *arr = o.json ? json_array() : NULL;
  size_t shown = 0;
  if (!o.json)
    printf("%-24s %-20s %-12s %-9s %-42s %s\n", "NAME", "PRICE (wei)", "SIZE",
           "MAX USES", "PROVIDER", "DATASET ID");
  for (size_t i = 0; i < n; i++) {
    const struct teex_chain_dataset *d = &v[i];
    if (d->revoked && !o.all)
      continue;
    if (o.json) {
      json_array_append_new(arr, dataset_json(d));
    } else {
      char id[67], prov[43], price[40], uses[16];
      hex_id(d->dataset_id, id);
      teex_eth_address_hex(d->provider, prov);
      teex_amount_format(d->price, price);
      if (d->max_uses)
        snprintf(uses, sizeof uses, "%u", d->max_uses);
      else
        snprintf(uses, sizeof uses, "-");
      printf("%-24s %-20s %-12llu %-9s %-42s %s%s\n", d->name, price,
             (unsigned long long)d->plaintext_size, uses, prov, id,
             d->revoked ? " [revoked]" : "");
    }
    shown++;
  }
  if (o.json) {
    char *text = json_dumps(arr, JSON_COMPACT);
    printf("%s\n", text ? text : "[]");
    free(text);
    json_decref(arr);
  } else if (shown == 0) {
    printf("(no datasets listed)\n");
  }
  free(v);
  return TEEX_EXIT_OK;
}

static const char show_usage[] =
    "usage: teex data show DATASET [--json] [--chain FILE] [--rpc URL]\n"
    "\n"
    "One dataset (by id, or by name when unique): its listing, terms and the\n"
    "(service, image hash) pairs approved now.\n";

static int data_show(int argc, char **argv) {
  struct data_opts o;
  struct teex_err err;
  opts_init(&o);
  int rc = parse_common(argc, argv, &o, show_usage, NULL, NULL, NULL, NULL);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if (optind + 1 != argc) {
    fputs(show_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_dataset d;
  struct teex_chain_approval *ap = NULL;
  size_t n = 0;
  uint8_t id[32];
  rc = open_chain(&o, &a, &rpc, &err);
  if (rc == 0)
    rc = resolve(rpc, &a, argv[optind], id, &err);
  if (rc == 0)
    rc = teex_chain_get_dataset(rpc, &a, id, &d, &err);
  if (rc == 0)
    rc = teex_chain_dataset_approvals(rpc, &a, id, &ap, &n, &err);
  /* What settlement has credited the provider so far (all its datasets
   * and anything else it is paid for), not yet withdrawn. */
  teex_amount credits = 0;
  if (rc == 0)
    rc = teex_chain_get_credits(rpc, &a, d.provider, &credits, &err);
  /* Uses and earnings of this dataset: the settled batches' receipts. */
  struct teex_data_earnings earn;
  memset(&earn, 0, sizeof earn);
  char store[PATH_MAX];
  snprintf(store, sizeof store, "%s/ipfs", o.base);
  struct teex_ipfs_backend *ipfs = NULL;
  if (rc == 0 && (rc = teex_ipfs_store_open(store, &ipfs, &err)) == 0)
    rc = teex_data_earnings(rpc, &a, ipfs, id, &earn, &err);
  teex_ipfs_close(ipfs);
  teex_eth_rpc_close(rpc);
  if (rc != 0) {
    free(ap);
    return teex_cli_fail("data show: %s", err.msg);
  }
  char cr[40], earned[40];
  teex_amount_format(credits, cr);
  teex_amount_format(earn.earned, earned);
  if (o.json) {
    json_t *j = dataset_json(&d), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      char s[67], im[67];
      hex_id(ap[i].service_id, s);
      hex_id(ap[i].image_hash, im);
      json_array_append_new(
          arr, json_pack("{s:s, s:s}", "service_id", s, "image_hash", im));
    }
    json_object_set_new(j, "approvals", arr);
    json_object_set_new(j, "provider_credits_wei", json_string(cr));
    json_object_set_new(j, "uses", json_integer(earn.uses));
    json_object_set_new(j, "earned_wei", json_string(earned));
    json_object_set_new(j, "batches_unreadable", json_integer(earn.unreadable));
    char *text = json_dumps(j, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(j);
  } else {
    char hid[67], prov[43], price[40], hash[67];
    hex_id(d.dataset_id, hid);
    hex_id(d.plaintext_hash, hash);
    teex_eth_address_hex(d.provider, prov);
    teex_amount_format(d.price, price);
    printf("dataset      %s\nid           %s\nprovider     %s\nstate        "
           "%s\nprice        %s wei per use\nsize         %llu bytes\nsha256 "
           "      %s\nciphertext   %s (IPFS)\n",
           d.name, hid, prov, d.revoked ? "revoked" : "listed", price,
           (unsigned long long)d.plaintext_size, hash, d.ciphertext_cid);
    if (d.expires_at)
      printf("expires      %llu (unix)\n", (unsigned long long)d.expires_at);
    else
      printf("expires      never\n");
    if (d.max_uses)
      printf("max uses     %u\n", d.max_uses);
    else
      printf("max uses     unlimited\n");
    if (d.max_output_bytes)
      printf("max output   %llu bytes per task\n",
             (unsigned long long)d.max_output_bytes);
    else
      printf("max output   no cap\n");
    printf("used         %u settled task(s), earning %s wei (%u batch(es) "
           "on chain",
           earn.uses, earned, earn.batches);
    if (earn.unreadable)
      printf(", %u not readable from IPFS or not matching their root",
             earn.unreadable);
    printf(")\n");
    printf("credited     %s wei to the provider on chain (settled, not "
           "withdrawn; all its datasets)\n",
           cr);
    printf("approved     %zu service image(s)\n", n);
    for (size_t i = 0; i < n; i++) {
      char s[67], im[67];
      hex_id(ap[i].service_id, s);
      hex_id(ap[i].image_hash, im);
      printf("  %s@%s\n", s, im);
    }
  }
  free(ap);
  return TEEX_EXIT_OK;
}

/* ---- approve / revoke ---- */

static const char approve_usage[] =
    "usage: teex data approve DATASET --allow SERVICE@IMAGE_HASH...\n"
    "                         --account ADDR [--remove] [options]\n"
    "\n"
    "Approves (or with --remove withdraws approval of) exact (service, image\n"
    "hash) pairs for a dataset of ADDR's. A service's new version has a new\n"
    "image hash and needs its own approval.\n";

static const char revoke_usage[] =
    "usage: teex data revoke DATASET --account ADDR [options]\n"
    "\n"
    "Revokes a dataset of ADDR's for good: the Service Manager releases its\n"
    "key to no task from now on.\n";

static int provider_tx(int argc, char **argv, int is_revoke) {
  struct data_opts o;
  struct teex_err err;
  struct teex_chain_approval allow[TEEX_DATA_MAX_ALLOW];
  allow_name names[TEEX_DATA_MAX_ALLOW];
  size_t n_allow = 0;
  int add = 1;
  const char *usage = is_revoke ? revoke_usage : approve_usage;
  opts_init(&o);
  teex_err_clear(&err);
  int rc = parse_common(argc, argv, &o, usage, is_revoke ? NULL : &add,
                        is_revoke ? NULL : allow, names, &n_allow);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if (optind + 1 != argc || o.account == NULL || (!is_revoke && n_allow == 0)) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if ((rc = resolve_names(&o, allow, names, n_allow)) != 0)
    return rc;
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *s = NULL;
  uint8_t id[32], *sk = NULL;
  rc = open_chain(&o, &a, &rpc, &err);
  if (rc == 0)
    rc = resolve(rpc, &a, argv[optind], id, &err);
  if (rc == 0)
    rc = unlock(&o, &sk, &err);
  if (rc == 0)
    rc = teex_eth_sender_new(rpc, sk, NULL, &s, &err);
  if (rc == 0)
    rc = is_revoke ? teex_chain_revoke_dataset(s, &a, id, 0, &err)
                   : teex_chain_approve_dataset(s, &a, id, allow, n_allow, add,
                                                0, &err);
  teex_eth_sender_free(s);
  teex_secret_free(sk);
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_cli_fail("data %s: %s", is_revoke ? "revoke" : "approve",
                         err.msg);
  char hid[67];
  hex_id(id, hid);
  if (is_revoke)
    printf("revoked %s\n", hid);
  else
    printf("%s %zu pair(s) for %s\n", add ? "approved" : "removed", n_allow,
           hid);
  return TEEX_EXIT_OK;
}

static int data_approve(int argc, char **argv) {
  return provider_tx(argc, argv, 0);
}

static int data_revoke(int argc, char **argv) {
  return provider_tx(argc, argv, 1);
}

int teex_cmd_data(int argc, char **argv) {
  static const struct teex_cli_cmd table[] = {
      {"publish", data_publish,
       "encrypt, store, escrow the key with the SM, list on chain"},
      {"list", data_list, "the datasets listed on chain"},
      {"show", data_show, "one dataset: listing, terms, approvals"},
      {"approve", data_approve, "approve (or remove) service images"},
      {"revoke", data_revoke, "revoke a dataset for good"},
      {NULL, NULL, NULL}};
  return teex_cli_dispatch("teex data", table, argc - 1, argv + 1);
}
