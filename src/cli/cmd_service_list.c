/* `teex service list`: the app store — the services listed on chain, with
 * their provider, prices and the public description each provider put on
 * IPFS (verified against its CID when read). */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ipfs.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTION_MAX (64 * 1024)

static const char usage[] =
    "usage: teex service list [--all] [--json] [options]\n"
    "\n"
    "The app store: services listed on chain with their provider, version,\n"
    "price per call, worker remuneration, whether they are stateless, and\n"
    "the description fetched from IPFS (checked against its CID); then the\n"
    "datasets listed beside them (teex data). In --json every entry has a\n"
    "\"kind\": \"service\" or \"dataset\".\n"
    "\n"
    "  --all             include retired services and revoked datasets\n"
    "  --json            one JSON array, for scripts\n"
    "  --chain FILE      the network's chain.conf (default "
    "DATA_DIR/chain.conf)\n"
    "  --rpc URL         the JSON-RPC endpoint (default: chain.conf's "
    "rpc_url)\n"
    "  --ipfs-store DIR  local IPFS store (default DATA_DIR/ipfs)\n"
    "  --ipfs-api URL    a Kubo RPC endpoint instead\n"
    "  --data-dir DIR    teex data directory (default $TEEX_HOME, else "
    "~/.teex)\n";

/* The description's fields, or NULLs when it cannot be had. */
struct desc {
  json_t *doc;
  const char *name, *text;
  int stateless;
};

static void fetch_desc(struct teex_ipfs_backend *ipfs, const char *cid_text,
                       struct desc *d) {
  memset(d, 0, sizeof *d);
  d->stateless = -1;
  struct teex_cid cid;
  struct teex_err err;
  struct teex_buf b;
  teex_buf_init(&b, DESCRIPTION_MAX, 0);
  if (ipfs != NULL && teex_cid_parse(cid_text, &cid, &err) == 0 &&
      teex_ipfs_cat_buffer(ipfs, &cid, &b, &err) == 0) {
    json_error_t je;
    d->doc = json_loadb((const char *)b.data, b.len, 0, &je);
    if (d->doc != NULL) {
      d->name = json_string_value(json_object_get(d->doc, "name"));
      d->text = json_string_value(json_object_get(d->doc, "description"));
      json_t *st = json_object_get(d->doc, "stateless");
      d->stateless = json_is_boolean(st) ? json_is_true(st) : -1;
    }
  }
  teex_buf_free(&b);
}

int teex_cmd_service_list(int argc, char **argv) {
  static const struct option longopts[] = {
      {"all", no_argument, NULL, 'a'},
      {"json", no_argument, NULL, 'j'},
      {"chain", required_argument, NULL, 'c'},
      {"rpc", required_argument, NULL, 'r'},
      {"ipfs-store", required_argument, NULL, 's'},
      {"ipfs-api", required_argument, NULL, 'i'},
      {"data-dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int all = 0, as_json = 0;
  const char *chain = NULL, *rpc_url = NULL, *store = NULL, *api = NULL;
  char base[PATH_MAX];
  teex_cli_data_dir(base, sizeof base);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'a':
      all = 1;
      break;
    case 'j':
      as_json = 1;
      break;
    case 'c':
      chain = optarg;
      break;
    case 'r':
      rpc_url = optarg;
      break;
    case 's':
      store = optarg;
      break;
    case 'i':
      api = optarg;
      break;
    case 'd':
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
  char chain_conf[PATH_MAX], store_dir[PATH_MAX];
  if (chain == NULL)
    snprintf(chain_conf, sizeof chain_conf, "%s/chain.conf", base);
  else
    snprintf(chain_conf, sizeof chain_conf, "%s", chain);
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_config cc;
  struct teex_chain_addrs addrs;
  teex_config_init(&cc);
  if (teex_config_load(&cc, chain_conf, &err) != 0 ||
      teex_chain_addrs_from_config(&cc, &addrs, &err) != 0) {
    teex_config_free(&cc);
    return teex_cli_fail("service list: %s", err.msg);
  }
  if (rpc_url == NULL)
    rpc_url = teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_service *svcs = NULL;
  struct teex_chain_dataset *dsets = NULL;
  size_t n = 0, nd = 0;
  int rc = teex_eth_rpc_open(rpc_url, NULL, &rpc, &err);
  if (rc == 0)
    rc = teex_chain_catalogue(rpc, &addrs, &svcs, &n, &err);
  /* Datasets beside services (a network deployed before datasets has
   * none). */
  if (rc == 0 && teex_chain_has_datasets(&addrs))
    rc = teex_chain_datasets(rpc, &addrs, &dsets, &nd, &err);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cc);
  if (rc != 0) {
    free(svcs);
    return teex_cli_fail("service list: %s", err.msg);
  }

  struct teex_ipfs_backend *ipfs = NULL;
  if (api != NULL) {
    if (teex_ipfs_kubo_open(api, &ipfs, &err) != 0)
      fprintf(stderr, "teex: descriptions unavailable: %s\n", err.msg);
  } else {
    if (store == NULL) {
      snprintf(store_dir, sizeof store_dir, "%s/ipfs", base);
      store = store_dir;
    }
    if (teex_ipfs_store_open(store, &ipfs, &err) != 0)
      fprintf(stderr, "teex: descriptions unavailable: %s\n", err.msg);
  }

  json_t *arr = as_json ? json_array() : NULL;
  if (!as_json)
    printf("%-24s %-4s %-20s %-20s %-9s %-42s %s\n", "NAME", "VER",
           "PRICE (wei)", "WORKER (wei)", "STATELESS", "PROVIDER",
           "DESCRIPTION");
  size_t shown = 0;
  for (size_t i = 0; i < n; i++) {
    const struct teex_chain_service *s = &svcs[i];
    if (s->retired && !all)
      continue;
    struct desc d;
    fetch_desc(ipfs, s->metadata_cid, &d);
    char id[67], prov[43], price[40], rem[40], img[67];
    id[0] = img[0] = '0';
    id[1] = img[1] = 'x';
    teex_hex_encode(s->service_id, 32, id + 2);
    teex_hex_encode(s->image_hash, 32, img + 2);
    teex_eth_address_hex(s->provider, prov);
    teex_amount_format(s->price, price);
    teex_amount_format(s->remuneration, rem);
    const char *st = d.stateless < 0 ? "?" : d.stateless ? "yes" : "no";
    if (as_json) {
      json_array_append_new(
          arr, json_pack("{s:s, s:s, s:s, s:s?, s:i, s:s, s:s, s:s, s:s?, s:b, "
                         "s:b, s:s, s:s}",
                         "kind", "service", "service_id", id, "image_hash", img,
                         "name", d.name, "version", (int)s->version,
                         "price_wei", price, "remuneration_wei", rem,
                         "provider", prov, "description", d.text, "private",
                         s->is_private, "retired", s->retired, "stateless", st,
                         "metadata_cid", s->metadata_cid));
    } else {
      char name[25];
      snprintf(name, sizeof name, "%s", d.name ? d.name : id);
      printf("%-24s %-4u %-20s %-20s %-9s %-42s %s%s%s\n", name, s->version,
             price, rem, st, prov, d.text ? d.text : "(no description)",
             s->is_private ? " [private]" : "", s->retired ? " [retired]" : "");
    }
    json_decref(d.doc);
    shown++;
  }
  if (!as_json && shown == 0)
    printf("(no services listed)\n");
  size_t shown_ds = 0;
  for (size_t i = 0; i < nd; i++) {
    const struct teex_chain_dataset *d = &dsets[i];
    if (d->revoked && !all)
      continue;
    char id[67], prov[43], price[40];
    id[0] = '0';
    id[1] = 'x';
    teex_hex_encode(d->dataset_id, 32, id + 2);
    teex_eth_address_hex(d->provider, prov);
    teex_amount_format(d->price, price);
    if (as_json) {
      json_array_append_new(
          arr,
          json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b}",
                    "kind", "dataset", "dataset_id", id, "name", d->name,
                    "price_wei", price, "provider", prov, "size",
                    (json_int_t)d->plaintext_size, "expires_at",
                    (json_int_t)d->expires_at, "max_uses",
                    (json_int_t)d->max_uses, "max_output_bytes",
                    (json_int_t)d->max_output_bytes, "revoked", d->revoked));
    } else {
      if (shown_ds == 0)
        printf("\n%-24s %-20s %-12s %-42s %s\n", "DATASET", "PRICE/USE (wei)",
               "SIZE", "PROVIDER", "TERMS");
      printf("%-24s %-20s %-12llu %-42s", d->name, price,
             (unsigned long long)d->plaintext_size, prov);
      if (d->max_uses)
        printf(" max %u uses", d->max_uses);
      if (d->expires_at)
        printf(" until %llu", (unsigned long long)d->expires_at);
      if (d->max_output_bytes)
        printf(" output <= %llu B", (unsigned long long)d->max_output_bytes);
      printf("%s\n", d->revoked ? " [revoked]" : "");
    }
    shown_ds++;
  }
  if (as_json) {
    char *text = json_dumps(arr, JSON_COMPACT);
    printf("%s\n", text ? text : "[]");
    free(text);
    json_decref(arr);
  }
  teex_ipfs_close(ipfs);
  free(svcs);
  free(dsets);
  return TEEX_EXIT_OK;
}

int teex_cli_find_service(const char *chain_conf, const char *ipfs_store,
                          const char *name_or_id, uint8_t id[32]) {
  size_t n = 0;
  if (teex_hex_decode(name_or_id, id, 32, &n) == 0 && n == 32)
    return 0;
  struct teex_err err;
  struct teex_config cc;
  struct teex_chain_addrs addrs;
  teex_config_init(&cc);
  if (teex_config_load(&cc, chain_conf, &err) != 0 ||
      teex_chain_addrs_from_config(&cc, &addrs, &err) != 0) {
    teex_config_free(&cc);
    return teex_cli_fail("%s", err.msg);
  }
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_service *svcs = NULL;
  int rc =
      teex_eth_rpc_open(teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC),
                        NULL, &rpc, &err);
  if (rc == 0)
    rc = teex_chain_catalogue(rpc, &addrs, &svcs, &n, &err);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cc);
  if (rc != 0)
    return teex_cli_fail("service lookup: %s", err.msg);
  struct teex_ipfs_backend *ipfs = NULL;
  if (teex_ipfs_store_open(ipfs_store, &ipfs, &err) != 0)
    ipfs = NULL;
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (svcs[i].retired)
      continue;
    struct desc d;
    fetch_desc(ipfs, svcs[i].metadata_cid, &d);
    if (d.name != NULL && strcmp(d.name, name_or_id) == 0) {
      found++;
      memcpy(id, svcs[i].service_id, 32);
    }
    json_decref(d.doc);
  }
  teex_ipfs_close(ipfs);
  free(svcs);
  if (found == 0)
    return teex_cli_fail("no listed service is named '%s' (teex service list)",
                         name_or_id);
  if (found > 1)
    return teex_cli_fail("several services are named '%s': give its id",
                         name_or_id);
  return 0;
}

int teex_cli_service_datasets(const char *chain_conf, const char *ipfs_store,
                              const uint8_t service_id[32], uint8_t *ids,
                              size_t max, size_t *n, struct teex_err *err) {
  struct teex_config cc;
  struct teex_chain_addrs addrs;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_service svc;
  *n = 0;
  teex_config_init(&cc);
  int rc = teex_config_load(&cc, chain_conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&cc, &addrs, err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&cc, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        err);
  if (rc == 0)
    rc = teex_chain_get_service(rpc, &addrs, service_id, &svc, err);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cc);
  if (rc == TEEX_ENOTFOUND)
    return 0; /* teex_invoke says so with its own message */
  if (rc != 0)
    return rc;
  struct teex_ipfs_backend *ipfs = NULL;
  if ((rc = teex_ipfs_store_open(ipfs_store, &ipfs, err)) != 0)
    return rc;
  struct desc d;
  fetch_desc(ipfs, svc.metadata_cid, &d);
  teex_ipfs_close(ipfs);
  if (d.doc == NULL)
    return 0; /* no description here: as for names, nothing to add */
  json_t *arr = json_object_get(d.doc, "datasets");
  if (arr != NULL && (!json_is_array(arr) || json_array_size(arr) > max))
    rc = teex_err_set(err, TEEX_EFORMAT,
                      "the description's datasets: at most %zu ids", max);
  for (size_t i = 0; rc == 0 && arr != NULL && i < json_array_size(arr); i++) {
    const char *s = json_string_value(json_array_get(arr, i));
    size_t got = 0;
    if (s != NULL && strncmp(s, "0x", 2) == 0)
      s += 2;
    if (s == NULL || strlen(s) != 64 ||
        teex_hex_decode(s, ids + 32 * i, 32, &got) != 0 || got != 32)
      rc = teex_err_set(err, TEEX_EFORMAT,
                        "the description's datasets: not a dataset id");
    else
      (*n)++;
  }
  json_decref(d.doc);
  if (rc != 0)
    *n = 0;
  return rc;
}
