/* `teex deposit` and `teex withdraw`: a user's escrow for a dispatcher in the
 * Settlement contract (docs/settlement.md §6), signed with a keystore
 * account (include/teex/wallet.h); the chain and contract addresses come
 * from DATA_DIR/chain.conf (teex chain deploy). */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/wallet.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct escrow_opts {
  char base[PATH_MAX];
  const char *password_file;
  const char *rpc;
  const char *from;
  int complete, cancel, status, json;
};

static const char common_help[] =
    "  --from ADDRESS        the paying account (a keystore in DIR/keystore)\n"
    "  --password-file FILE  its password (else $TEEX_PASSWORD)\n"
    "  --data-dir DIR        network folder (default $TEEX_HOME, else "
    "~/.teex)\n"
    "  --rpc URL             JSON-RPC endpoint (default: chain.conf's)\n";

static int parse(int argc, char **argv, struct escrow_opts *o,
                 const char *usage, int *first) {
  enum { O_DATA = 256, O_PW, O_RPC, O_FROM, O_COMPLETE, O_CANCEL, O_STATUS };
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_DATA},
      {"password-file", required_argument, NULL, O_PW},
      {"rpc", required_argument, NULL, O_RPC},
      {"from", required_argument, NULL, O_FROM},
      {"complete", no_argument, NULL, O_COMPLETE},
      {"cancel", no_argument, NULL, O_CANCEL},
      {"status", no_argument, NULL, O_STATUS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  memset(o, 0, sizeof *o);
  teex_cli_data_dir(o->base, sizeof o->base);
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA:
      snprintf(o->base, sizeof o->base, "%s", optarg);
      break;
    case O_PW:
      o->password_file = optarg;
      break;
    case O_RPC:
      o->rpc = optarg;
      break;
    case O_FROM:
      o->from = optarg;
      break;
    case O_COMPLETE:
      o->complete = 1;
      break;
    case O_CANCEL:
      o->cancel = 1;
      break;
    case O_STATUS:
      o->status = 1;
      break;
    case 'h':
      printf("%s%s", usage, common_help);
      return -1;
    default:
      fprintf(stderr, "%s%s", usage, common_help);
      return TEEX_EXIT_USAGE;
    }
  }
  *first = optind;
  return 0;
}

/* Everything a command needs: the chain, the contracts, and (when
 * want_sender) the unlocked account's sender. */
struct session {
  struct teex_config cfg;
  struct teex_eth_rpc *rpc;
  struct teex_eth_sender *sender;
  struct teex_chain_addrs addrs;
  uint8_t from[20];
};

static void session_close(struct session *s) {
  teex_eth_sender_free(s->sender);
  teex_eth_rpc_close(s->rpc);
  teex_config_free(&s->cfg);
}

static int session_open(struct session *s, const struct escrow_opts *o,
                        int want_sender, struct teex_err *err) {
  char path[PATH_MAX + 32], ks[PATH_MAX + 16], pw[256];
  uint8_t sk[32];
  int r;
  memset(s, 0, sizeof *s);
  teex_config_init(&s->cfg);
  if (o->from == NULL)
    return teex_err_set(err, TEEX_EINVAL, "--from ADDRESS is required");
  if (teex_eth_address_parse(o->from, s->from) != 0)
    return teex_err_set(err, TEEX_EINVAL, "--from: not an address: %s",
                        o->from);
  snprintf(path, sizeof path, "%s/" TEEX_CHAIN_CONF, o->base);
  if ((r = teex_config_load(&s->cfg, path, err)) != 0)
    return teex_err_wrap(err, r, "no chain (teex chain up / deploy)");
  if ((r = teex_chain_addrs_from_config(&s->cfg, &s->addrs, err)) != 0)
    return r;
  const char *url =
      o->rpc ? o->rpc
             : teex_config_get(&s->cfg, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
  if ((r = teex_eth_rpc_open(url, NULL, &s->rpc, err)) != 0)
    return r;
  teex_chain_use_errors(s->rpc);
  if ((r = teex_chain_check(s->rpc, &s->addrs, err)) != 0 || !want_sender)
    return r;
  if ((r = teex_wallet_password(o->password_file, pw, sizeof pw, err)) != 0)
    return r;
  snprintf(ks, sizeof ks, "%s/keystore", o->base);
  r = teex_wallet_unlock(ks, s->from, pw, sk, err);
  teex_wipe(pw, sizeof pw);
  if (r == 0)
    r = teex_eth_sender_new(s->rpc, sk, NULL, &s->sender, err);
  teex_wipe(sk, sizeof sk);
  return r;
}

static void print_escrow(const struct teex_chain_escrow *e) {
  char b[40], st[40], p[40];
  teex_amount_format(e->balance, b);
  teex_amount_format(e->settled, st);
  teex_amount_format(e->pending_withdrawal, p);
  printf("escrow     %s wei\nsettled    %s wei (cumulative)\n", b, st);
  if (e->unlock_at) {
    time_t now = time(NULL);
    printf("withdrawal %s wei requested, %s\n", p,
           (uint64_t)now >= e->unlock_at ? "can be completed now"
                                         : "waiting for the delay");
  }
}

static const char deposit_usage[] =
    "usage: teex deposit DISPATCHER AMOUNT_WEI --from ADDRESS [options]\n"
    "\n"
    "Deposits AMOUNT_WEI into your escrow for DISPATCHER (a registered\n"
    "dispatcher enclave address) in the Settlement contract.\n\n";

int teex_cmd_deposit(int argc, char **argv) {
  struct escrow_opts o;
  struct session s;
  struct teex_err err = {0};
  struct teex_chain_escrow e;
  uint8_t disp[20];
  teex_amount amount;
  int first, rc = parse(argc, argv, &o, deposit_usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if (argc - first != 2 || teex_eth_address_parse(argv[first], disp) != 0 ||
      teex_amount_parse(argv[first + 1], &amount) != 0 || amount == 0) {
    fprintf(stderr, "%s%s", deposit_usage, common_help);
    return TEEX_EXIT_USAGE;
  }
  rc = TEEX_EXIT_FAIL;
  if (session_open(&s, &o, 1, &err) != 0 ||
      teex_chain_deposit(s.sender, &s.addrs, disp, amount, 0, &err) != 0 ||
      teex_chain_get_escrow(s.rpc, &s.addrs, s.from, disp, &e, &err) != 0)
    teex_cli_fail("deposit: %s", teex_err_msg(&err));
  else {
    print_escrow(&e);
    rc = TEEX_EXIT_OK;
  }
  session_close(&s);
  return rc;
}

static const char withdraw_usage[] =
    "usage: teex withdraw DISPATCHER AMOUNT_WEI --from ADDRESS [options]\n"
    "       teex withdraw DISPATCHER --complete|--cancel|--status --from "
    "ADDRESS\n"
    "\n"
    "Withdrawing escrow takes two steps: a request starts the contract's\n"
    "delay (so work already done can still be settled), --complete pays out\n"
    "after it what is left of the amount; --cancel drops the request;\n"
    "--status shows the escrow.\n\n";

int teex_cmd_withdraw(int argc, char **argv) {
  struct escrow_opts o;
  struct session s;
  struct teex_err err = {0};
  struct teex_chain_escrow e;
  uint8_t disp[20];
  teex_amount amount = 0;
  int first, rc = parse(argc, argv, &o, withdraw_usage, &first);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  int modes = o.complete + o.cancel + o.status;
  int nargs = argc - first;
  if (modes > 1 || nargs < 1 || nargs != (modes ? 1 : 2) ||
      teex_eth_address_parse(argv[first], disp) != 0 ||
      (!modes &&
       (teex_amount_parse(argv[first + 1], &amount) != 0 || amount == 0))) {
    fprintf(stderr, "%s%s", withdraw_usage, common_help);
    return TEEX_EXIT_USAGE;
  }
  rc = TEEX_EXIT_FAIL;
  int r = session_open(&s, &o, !o.status, &err);
  if (r == 0) {
    if (o.complete)
      r = teex_chain_complete_withdrawal(s.sender, &s.addrs, disp, 0, &err);
    else if (o.cancel)
      r = teex_chain_cancel_withdrawal(s.sender, &s.addrs, disp, 0, &err);
    else if (!o.status)
      r = teex_chain_request_withdrawal(s.sender, &s.addrs, disp, amount, 0,
                                        &err);
  }
  if (r == 0)
    r = teex_chain_get_escrow(s.rpc, &s.addrs, s.from, disp, &e, &err);
  if (r != 0)
    teex_cli_fail("withdraw: %s", teex_err_msg(&err));
  else {
    print_escrow(&e);
    rc = TEEX_EXIT_OK;
  }
  session_close(&s);
  return rc;
}
