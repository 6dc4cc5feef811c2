/* `teex invoke`: run a task on a service through a worker, checking
 * everything the worker returns (include/teex/client.h).
 *
 * The dispatcher-driven flow (look the listing up on chain, sign the
 * payment authorisation, dispatcher.Submit for an assignment) is not here
 * yet: the assignment is read from a file (--assignment), the seam where
 * dispatcher.Submit's answer will plug in. */
#include "cli/cli.h"

#include "teex/client.h"
#include "teex/ledger.h"
#include "teex/tee_policy.h"
#include "teex/user.h"
#include "teex/wallet.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/executor.h"
#include "teex/ledger.h"
#include "teex/mem.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: teex invoke --assignment FILE --worker ADDR --worker-policy FILE\n"
    "                   --signing-key ADDR --settlement ADDR --input FILE|-\n"
    "                   [--receipt FILE]\n"
    "\n"
    "Runs one task: connects to the assigned worker and verifies its RA-TLS\n"
    "evidence against --worker-policy, checks it holds the service key\n"
    "(--signing-key, the listed key address), sends the input, checks the\n"
    "output's signature and the receipt, and prints the output.\n"
    "\n"
    "  --assignment FILE  the dispatcher-signed assignment (key = value:\n"
    "                     chain_id, dispatcher, worker, user, task_id,\n"
    "                     service_id, image_hash, price, expires_at,\n"
    "                     signature)\n"
    "  --worker ADDR      the worker's user endpoint (host:port)\n"
    "  --worker-policy F  attestation policy the worker must satisfy\n"
    "  --signing-key A    the service's listed signing key address\n"
    "  --settlement A     Settlement contract (receipt EIP-712 domain)\n"
    "  --input FILE|-     the task input\n"
    "  --receipt FILE     write the checked receipt here\n";

static int hex_field(const struct teex_config *c, const char *key, uint8_t *out,
                     size_t want) {
  const char *v = teex_config_get(c, key, NULL);
  size_t n = 0;
  if (v == NULL)
    return teex_cli_fail("assignment: %s missing", key);
  if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))
    v += 2;
  if (strlen(v) != 2 * want || teex_hex_decode(v, out, want, &n) != 0 ||
      n != want)
    return teex_cli_fail("assignment: %s must be %zu bytes of hex", key, want);
  return 0;
}

static int read_assignment(const char *path, struct teex_assignment *a,
                           uint8_t sig[65]) {
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  memset(a, 0, sizeof *a);
  int rc = TEEX_EXIT_FAIL;
  if (teex_config_load(&c, path, &err) != 0) {
    teex_cli_fail("assignment: %s", err.msg);
    goto out;
  }
  if (teex_config_get_u64(&c, "chain_id", 0, &a->chain_id, &err) != 0 ||
      teex_config_get_u64(&c, "expires_at", 0, &a->expires_at, &err) != 0) {
    teex_cli_fail("assignment: %s", err.msg);
    goto out;
  }
  const char *price = teex_config_get(&c, "price", NULL);
  if (price == NULL || teex_amount_parse(price, &a->price) != 0) {
    teex_cli_fail("assignment: price missing or not an amount");
    goto out;
  }
  if (hex_field(&c, "dispatcher", a->dispatcher, 20) ||
      hex_field(&c, "worker", a->worker, 20) ||
      hex_field(&c, "user", a->user, 20) ||
      hex_field(&c, "task_id", a->task_id, 32) ||
      hex_field(&c, "service_id", a->service_id, 32) ||
      hex_field(&c, "image_hash", a->image_hash, 32) ||
      hex_field(&c, "signature", sig, 65))
    goto out;
  rc = 0;
out:
  teex_config_free(&c);
  return rc;
}

static int read_input(const char *path, uint8_t **out, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (f == NULL)
    return teex_cli_fail("input %s: %s", path, strerror(errno));
  size_t cap = 65536, n = 0;
  uint8_t *p = malloc(cap);
  int rc = 0;
  while (p != NULL) {
    if (n == cap) {
      if (cap > TEEX_EXEC_INPUT_MAX) {
        rc = teex_cli_fail("input larger than %u bytes", TEEX_EXEC_INPUT_MAX);
        break;
      }
      uint8_t *q = malloc(cap * 2);
      if (q == NULL)
        break;
      memcpy(q, p, n);
      teex_wipe(p, n);
      free(p);
      p = q;
      cap *= 2;
    }
    size_t got = fread(p + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  if (f != stdin)
    fclose(f);
  if (p == NULL)
    return teex_cli_fail("out of memory");
  if (rc != 0 || n > TEEX_EXEC_INPUT_MAX) {
    teex_wipe(p, n);
    free(p);
    return rc ? rc : teex_cli_fail("input too large");
  }
  *out = p;
  *len = n;
  return 0;
}

static int write_receipt(const char *path, const struct teex_client_result *r) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return teex_cli_fail("receipt %s: %s", path, strerror(errno));
  const struct teex_receipt *c = &r->receipt;
  struct {
    const char *k;
    const uint8_t *v;
    size_t n;
  } fields[] = {{"task_id", c->task_id, 32},
                {"service_id", c->service_id, 32},
                {"image_hash", c->image_hash, 32},
                {"user", c->user, 20},
                {"dispatcher", c->dispatcher, 20},
                {"worker", c->worker, 20},
                {"provider", c->provider, 20},
                {"input_commitment", c->input_commitment, 32},
                {"output_commitment", c->output_commitment, 32},
                {"price", c->price, 32},
                {"worker_amount", c->worker_amount, 32},
                {"provider_amount", c->provider_amount, 32},
                {"signature", r->receipt_sig, 65},
                {"result_signature", r->result_sig, 65}};
  char hex[131];
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    teex_hex_encode(fields[i].v, fields[i].n, hex);
    fprintf(f, "%s = 0x%s\n", fields[i].k, hex);
  }
  return fclose(f) == 0 ? 0 : teex_cli_fail("receipt %s: write", path);
}

static int invoke_with_assignment(int argc, char **argv) {
  enum {
    O_ASSIGN = 256,
    O_WORKER,
    O_POLICY,
    O_SKEY,
    O_SETTLE,
    O_INPUT,
    O_RCPT
  };
  static const struct option longopts[] = {
      {"assignment", required_argument, NULL, O_ASSIGN},
      {"worker", required_argument, NULL, O_WORKER},
      {"worker-policy", required_argument, NULL, O_POLICY},
      {"signing-key", required_argument, NULL, O_SKEY},
      {"settlement", required_argument, NULL, O_SETTLE},
      {"input", required_argument, NULL, O_INPUT},
      {"receipt", required_argument, NULL, O_RCPT},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *assign = NULL, *worker = NULL, *policy = NULL, *skey = NULL,
             *settle = NULL, *input_path = NULL, *rcpt = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_ASSIGN:
      assign = optarg;
      break;
    case O_WORKER:
      worker = optarg;
      break;
    case O_POLICY:
      policy = optarg;
      break;
    case O_SKEY:
      skey = optarg;
      break;
    case O_SETTLE:
      settle = optarg;
      break;
    case O_INPUT:
      input_path = optarg;
      break;
    case O_RCPT:
      rcpt = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (assign == NULL || worker == NULL || policy == NULL || skey == NULL ||
      settle == NULL || input_path == NULL) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_assignment a;
  uint8_t sig[65];
  struct teex_client_expect ex;
  memset(&ex, 0, sizeof ex);
  if (teex_eth_address_parse(skey, ex.signing_key) != 0)
    return teex_cli_fail("--signing-key: not an address: %s", skey);
  if (teex_eth_address_parse(settle, ex.settlement.verifying_contract) != 0)
    return teex_cli_fail("--settlement: not an address: %s", settle);
  if (read_assignment(assign, &a, sig) != 0)
    return TEEX_EXIT_FAIL;
  ex.settlement.chain_id = a.chain_id;
  struct teex_err err;
  teex_err_clear(&err);
  static struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, policy, &err) != 0)
    return teex_cli_fail("--worker-policy: %s", err.msg);
  uint8_t *input = NULL;
  size_t input_len = 0;
  if (read_input(input_path, &input, &input_len) != 0)
    return TEEX_EXIT_FAIL;
  int status = TEEX_EXIT_FAIL;
  struct teex_client_worker *w = NULL;
  struct teex_client_result r;
  memset(&r, 0, sizeof r);
  if (teex_client_connect(worker, &pol, 10000, &w, &err) != 0 ||
      teex_client_hello(w, a.service_id, a.image_hash, ex.signing_key, &err) !=
          0 ||
      teex_client_run(w, &a, sig, &ex, input, input_len, &r, &err) != 0) {
    teex_cli_fail("invoke: %s", teex_err_msg(&err));
    goto out;
  }
  if (fwrite(r.output, 1, r.output_len, stdout) != r.output_len ||
      fflush(stdout) != 0) {
    teex_cli_fail("write output");
    goto out;
  }
  if (rcpt != NULL && write_receipt(rcpt, &r) != 0)
    goto out;
  status = TEEX_EXIT_OK;
out:
  teex_client_result_free(&r);
  teex_client_close(w);
  teex_wipe(input, input_len);
  free(input);
  return status;
}

static const char net_usage[] =
    "usage: teex invoke SERVICE[@IMAGE] --input FILE|- --account ADDR\n"
    "                   [--data D1,D2,...] [--max-price WEI]\n"
    "                   [--password-file FILE] [--dir DIR]\n"
    "\n"
    "Invokes a listed service on the network in DIR (teex up): looks the\n"
    "service up on chain (SERVICE: its id, or its listed name), signs the\n"
    "payment authorisation with ADDR, gets an assignment from the\n"
    "dispatcher, checks the worker's evidence and its proof of holding the\n"
    "service key, sends the input over that RA-TLS session only, verifies\n"
    "the signed output and receipt, and prints the output. @IMAGE pins the\n"
    "image hash the user accepts. A failed worker is replaced under the\n"
    "same task id (charged once).\n"
    "\n"
    "--data gives the task datasets (by id, or by name when unique), read by\n"
    "the service in this order (teex.data(i), TEEX_getdata(i)); the task\n"
    "costs the service's price plus each dataset's, paid to its provider.\n"
    "--max-price bounds the total.\n"
    "\n"
    "Also: teex invoke --assignment FILE ... (a given assignment; --help\n"
    "with --assignment for its options).\n";

static int invoke_on_network(int argc, char **argv) {
  static const struct option longopts[] = {
      {"input", required_argument, NULL, 'i'},
      {"account", required_argument, NULL, 'a'},
      {"max-price", required_argument, NULL, 'm'},
      {"data", required_argument, NULL, 'D'},
      {"password-file", required_argument, NULL, 'p'},
      {"dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *input_path = NULL, *account = NULL, *max_price = NULL,
             *pwfile = NULL, *data = NULL;
  char dir[PATH_MAX];
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i':
      input_path = optarg;
      break;
    case 'a':
      account = optarg;
      break;
    case 'm':
      max_price = optarg;
      break;
    case 'p':
      pwfile = optarg;
      break;
    case 'D':
      data = optarg;
      break;
    case 'd':
      snprintf(dir, sizeof dir, "%s", optarg);
      break;
    case 'h':
      fputs(net_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(net_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || input_path == NULL || account == NULL) {
    fputs(net_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_err err;
  teex_err_clear(&err);
  char netconf[PATH_MAX], chain_conf[PATH_MAX], store[PATH_MAX];
  snprintf(netconf, sizeof netconf, "%s/network.conf", dir);
  snprintf(chain_conf, sizeof chain_conf, "%s/chain.conf", dir);
  snprintf(store, sizeof store, "%s/ipfs", dir);
  struct teex_config nc;
  teex_config_init(&nc);
  if (teex_config_load(&nc, netconf, &err) != 0)
    return teex_cli_fail("no network in %s (teex up): %s", dir, err.msg);
  struct teex_invoke_request req;
  memset(&req, 0, sizeof req);
  char target[256];
  snprintf(target, sizeof target, "%s", argv[optind]);
  char *at = strchr(target, '@');
  if (at != NULL) {
    *at = '\0';
    size_t n = 0;
    if (teex_hex_decode(at + 1, req.image_hash, 32, &n) != 0 || n != 32) {
      teex_config_free(&nc);
      return teex_cli_fail("@IMAGE must be the 64-hex-digit image hash");
    }
    req.pin_image = 1;
  }
  int rc = teex_cli_find_service(chain_conf, store, target, req.service_id);
  if (rc != 0) {
    teex_config_free(&nc);
    return rc;
  }
  if (max_price != NULL && teex_amount_parse(max_price, &req.max_price) != 0) {
    teex_config_free(&nc);
    return teex_cli_fail("--max-price must be a number of wei");
  }
  /* The service's own datasets (assigned at deploy) first, then the
   * task's: the order the service reads them in. */
  static uint8_t ids[32 * TEEX_CLIENT_MAX_DATASETS];
  size_t nsvc = 0, ntask = 0;
  if (teex_cli_service_datasets(chain_conf, store, req.service_id, ids,
                                TEEX_CLIENT_MAX_DATASETS, &nsvc, &err) != 0) {
    teex_config_free(&nc);
    return teex_cli_fail("the service's datasets: %s", err.msg);
  }
  if (data != NULL && teex_cli_find_datasets(chain_conf, data, ids + 32 * nsvc,
                                             TEEX_CLIENT_MAX_DATASETS - nsvc,
                                             &ntask, &err) != 0) {
    teex_config_free(&nc);
    return teex_cli_fail("--data: %s", err.msg);
  }
  req.n_datasets = nsvc + ntask;
  req.dataset_ids = req.n_datasets ? ids : NULL;
  static struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, teex_config_get(&nc, "dispatcher.policy", ""),
                           &err) != 0) {
    teex_config_free(&nc);
    return teex_cli_fail("policy: %s", err.msg);
  }
  char disp[128];
  snprintf(disp, sizeof disp, "%s",
           teex_config_get(&nc, "dispatcher.user", ""));
  teex_config_free(&nc);
  uint8_t addr[20];
  if (teex_eth_address_parse(account, addr) != 0)
    return teex_cli_fail("--account: not an address: %s", account);
  uint8_t *input = NULL;
  size_t input_len = 0;
  if (read_input(input_path, &input, &input_len) != 0)
    return TEEX_EXIT_FAIL;
  char pw[256], keydir[PATH_MAX];
  snprintf(keydir, sizeof keydir, "%s/keystore", dir);
  uint8_t *sk = teex_secret_alloc(32);
  rc = sk ? teex_wallet_password(pwfile, pw, sizeof pw, &err)
          : teex_err_set(&err, TEEX_ENOMEM, NULL);
  if (rc == 0)
    rc = teex_wallet_unlock(keydir, addr, pw, sk, &err);
  teex_wipe(pw, sizeof pw);
  int status = TEEX_EXIT_FAIL;
  struct teex_invoke_result res;
  memset(&res, 0, sizeof res);
  if (rc != 0) {
    teex_cli_fail("account %s: %s", account, err.msg);
    goto out;
  }
  req.dispatcher = disp;
  req.enclave_policy = &pol;
  req.chain_conf = chain_conf;
  req.user_sk = sk;
  req.input = input;
  req.input_len = input_len;
  if (teex_invoke(&req, &res, &err) != 0) {
    teex_cli_fail("invoke: %s", err.msg);
    goto out;
  }
  if (fwrite(res.output, 1, res.output_len, stdout) != res.output_len ||
      fflush(stdout) != 0) {
    teex_cli_fail("write output");
    goto out;
  }
  char task[65], worker[43], price[40], cum[40], dp[40];
  teex_hex_encode(res.task_id, 32, task);
  teex_eth_address_hex(res.worker, worker);
  teex_amount_format(res.price, price);
  teex_amount_format(res.cumulative, cum);
  teex_amount_format(res.data_price, dp);
  fprintf(stderr,
          "\ntask 0x%s ran on worker %s (attempt %u, %.2f ms in the "
          "sandbox); authorised %s wei (%s wei for %zu dataset(s); cumulative "
          "%s); output signed by the service key and receipt verified\n",
          task, worker, res.attempts, (double)res.duration_us / 1000.0, price,
          dp, req.n_datasets, cum);
  status = TEEX_EXIT_OK;
out:
  free(res.output);
  teex_secret_free(sk);
  if (input != NULL) {
    teex_wipe(input, input_len);
    free(input);
  }
  return status;
}

int teex_cmd_invoke(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--assignment") == 0 ||
        strncmp(argv[i], "--assignment=", 13) == 0)
      return invoke_with_assignment(argc, argv);
  return invoke_on_network(argc, argv);
}
