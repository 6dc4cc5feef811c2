/* `teex sm`: the Service Manager daemon. */
#include "cli/cli.h"
#include "cli/ds_group_arg.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/harden.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/sm.h"
#include "teex/sm_server.h"
#include "teex/tee.h"

#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    "                            policy max_age)\n"
    "  --ds-group FILE|ADDRS     keep the state (service and image keys,\n"
    "                            data keys, use counters) in this TEE-DS\n"
    "                            group, encrypted by the SM: a group.conf or\n"
    "                            host:port,... of its replicas. Locally only\n"
    "                            the SM's identity, the TEE-DS group keys it\n"
    "                            provisions, enclave records and revocations.\n"
    "                            Local records are migrated at the first\n"
    "                            start with a group. While the group is down,\n"
    "                            requests that need the state fail (nothing\n"
    "                            falls back to local).\n"
    "  --ds-policy FILE          what the replicas must prove (role ds;\n"
    "                            default: policy.conf beside group.conf)\n"
    "  --ds-namespace NS         the group's namespace for the SM's role\n"
    "                            (group.conf [enclaves]; default sm)\n";

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
    O_DREG,
    O_DSGROUP,
    O_DSPOL,
    O_DSNS
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
      {"ds-group", required_argument, NULL, O_DSGROUP},
      {"ds-policy", required_argument, NULL, O_DSPOL},
      {"ds-namespace", required_argument, NULL, O_DSNS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], state[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  state[0] = '\0';
  const char *policy = NULL, *sreg = NULL, *ereg = NULL, *dreg = NULL;
  const char *ds_group = NULL, *ds_policy = NULL;
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

/* ---- the operator's commands: sm.Revoke and sm.Status ---- */

struct op_opts {
  char data_dir[PATH_MAX];
  char token_file[PATH_MAX];
  const char *sm;
  const char *policy;
};

enum {
  O_OP_DATA = 300,
  O_OP_SM,
  O_OP_POL,
  O_OP_TOKEN,
  O_OP_MEAS,
  O_OP_ENC,
  O_OP_REASON
};

static int op_opt(struct op_opts *o, int c) {
  switch (c) {
  case O_OP_DATA:
    snprintf(o->data_dir, sizeof o->data_dir, "%s", optarg);
    return 1;
  case O_OP_SM:
    o->sm = optarg;
    return 1;
  case O_OP_POL:
    o->policy = optarg;
    return 1;
  case O_OP_TOKEN:
    snprintf(o->token_file, sizeof o->token_file, "%s", optarg);
    return 1;
  default:
    return 0;
  }
}

/* Reads the operator token, connects to the SM's client endpoint (checking
 * its RA-TLS evidence against the policy) and calls method. */
static int op_call(struct op_opts *o, const char *method, ProtobufCMessage *req,
                   ProtobufCBinaryData *tok_field, struct teex_buf *resp,
                   struct teex_err *err) {
  uint8_t tok[32];
  char hex[80];
  if (o->token_file[0] == '\0')
    snprintf(o->token_file, sizeof o->token_file, "%s/sm/%s", o->data_dir,
             TEEX_SM_OPERATOR_TOKEN_FILE);
  FILE *f = fopen(o->token_file, "r");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO,
                        "operator token %s: %s (only the SM's host user "
                        "can read it)",
                        o->token_file, strerror(errno));
  size_t got = fread(hex, 1, sizeof hex - 1, f);
  fclose(f);
  hex[got] = '\0';
  while (got > 0 && (hex[got - 1] == '\n' || hex[got - 1] == '\r'))
    hex[--got] = '\0';
  size_t tl = 0;
  int rc = teex_hex_decode(hex, tok, sizeof tok, &tl);
  teex_wipe(hex, sizeof hex);
  if (rc != 0 || tl != 32)
    return teex_err_set(err, TEEX_EFORMAT,
                        "operator token %s: not 64 hex digits", o->token_file);
  *tok_field = (ProtobufCBinaryData){32, tok};
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if ((rc = teex_tee_policy_load(&pol, o->policy, err)) != 0) {
    teex_wipe(tok, sizeof tok);
    return teex_err_wrap(err, rc, "--sm-policy");
  }
  struct teex_ratls_verifier verifier = {.policy = &pol};
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &verifier};
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *wire = malloc(n ? n : 1);
  if (wire == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto out;
  }
  protobuf_c_message_pack(req, wire);
  if ((rc = teex_tls_ctx_new(&ctx, &tc, 0, err)) != 0 ||
      (rc = teex_rpc_sync_connect(o->sm, ctx, 10000, &c, err)) != 0) {
    teex_err_wrap(err, rc, "connect SM %s", o->sm);
    goto out;
  }
  rc = teex_rpc_sync_call(c, method, wire, n, 10000, resp, err);
out:
  if (wire != NULL)
    teex_wipe(wire, n);
  free(wire);
  teex_wipe(tok, sizeof tok);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  return rc;
}

#define OP_USAGE_COMMON                                                        \
  "  --sm ADDR             the SM's client endpoint (default "                 \
  "127.0.0.1:7101)\n"                                                          \
  "  --sm-policy FILE      what the SM must prove (its RA-TLS evidence)\n"     \
  "  --data-dir DIR        teex data directory (default $TEEX_HOME, else\n"    \
  "                        ~/.teex)\n"                                         \
  "  --token-file FILE     the operator token the SM wrote at start\n"         \
  "                        (default DATA_DIR/sm/operator.token)\n"

/* Bounds the operator's answers (about 200 bytes an enclave). */
#define STATUS_RESP_MAX (8u << 20)

static const char revoke_usage[] =
    "usage: teex sm revoke (--measurement HEX | --enclave ADDR)\n"
    "                      --sm-policy FILE [--reason TEXT] [options]\n"
    "\n"
    "Revokes one enclave or a whole build (every enclave of the measurement)\n"
    "in the running SM: from now on it releases nothing to it (service keys,\n"
    "data leases, TEE-DS grants and group keys, registrations). Only the\n"
    "SM's operator can: the one who can read its operator token file.\n"
    "\n" OP_USAGE_COMMON
    "  --reason TEXT         why (at most 128 bytes), shown by status\n"
    "\n"
    "Prints, for each revoked address the SM knows, the SM-signed\n"
    "EnclaveRevocation statement (revocation enclave=ADDR sm_signature=HEX)\n"
    "that anyone may submit to the EnclaveRegistry.\n";

static int sm_revoke(int argc, char **argv) {
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_OP_DATA},
      {"sm", required_argument, NULL, O_OP_SM},
      {"sm-policy", required_argument, NULL, O_OP_POL},
      {"token-file", required_argument, NULL, O_OP_TOKEN},
      {"measurement", required_argument, NULL, O_OP_MEAS},
      {"enclave", required_argument, NULL, O_OP_ENC},
      {"reason", required_argument, NULL, O_OP_REASON},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct op_opts o;
  memset(&o, 0, sizeof o);
  teex_cli_data_dir(o.data_dir, sizeof o.data_dir);
  o.sm = "127.0.0.1:7101";
  const char *meas = NULL, *enc = NULL, *reason = "";
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (op_opt(&o, c))
      continue;
    switch (c) {
    case O_OP_MEAS:
      meas = optarg;
      break;
    case O_OP_ENC:
      enc = optarg;
      break;
    case O_OP_REASON:
      reason = optarg;
      break;
    case 'h':
      fputs(revoke_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(revoke_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if ((meas == NULL) == (enc == NULL) || o.policy == NULL) {
    fputs(revoke_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (strlen(reason) > TEEX_SM_REASON_MAX)
    return teex_cli_fail("--reason: at most %d bytes", TEEX_SM_REASON_MAX);
  uint8_t value[32];
  Teex__Sm__RevokeRequest req = TEEX__SM__REVOKE_REQUEST__INIT;
  if (enc != NULL) {
    if (teex_eth_address_parse(enc, value) != 0)
      return teex_cli_fail("--enclave: not an address: %s", enc);
    req.kind = TEEX_SM_REVOKE_ENCLAVE;
    req.value = (ProtobufCBinaryData){20, value};
  } else {
    size_t n = 0;
    if (teex_hex_decode(meas, value, 32, &n) != 0 || n != 32)
      return teex_cli_fail("--measurement: not 64 hex digits: %s", meas);
    req.kind = TEEX_SM_REVOKE_MEASUREMENT;
    req.value = (ProtobufCBinaryData){32, value};
  }
  req.reason = (char *)reason;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_buf resp;
  teex_buf_init(&resp, STATUS_RESP_MAX, 0);
  int rc =
      op_call(&o, "sm.Revoke", &req.base, &req.operator_token, &resp, &err);
  if (rc != 0) {
    teex_buf_free(&resp);
    return teex_cli_fail("sm revoke: %s", err.msg);
  }
  Teex__Sm__RevokeResponse *r =
      teex__sm__revoke_response__unpack(NULL, resp.len, resp.data);
  teex_buf_free(&resp);
  if (r == NULL)
    return teex_cli_fail("sm revoke: malformed answer");
  printf("revoked %s %s\n", enc != NULL ? "enclave" : "measurement",
         enc != NULL ? enc : meas);
  /* The SM-signed statements that revoke the addresses on chain. */
  for (size_t i = 0; i < r->n_revocations; i++) {
    const Teex__Sm__Revocation *v = r->revocations[i];
    if (v->enclave.len != 20 || v->signature.len != 65)
      continue;
    char addr[43], sig[131];
    teex_eth_address_hex(v->enclave.data, addr);
    teex_hex_encode(v->signature.data, 65, sig);
    printf("revocation enclave=%s sm_signature=0x%s\n", addr, sig);
  }
  teex__sm__revoke_response__free_unpacked(r, NULL);
  return TEEX_EXIT_OK;
}

static const char status_usage[] =
    "usage: teex sm status --sm-policy FILE [options]\n"
    "\n"
    "Shows the enclaves the running SM has checked: address, role,\n"
    "measurement, first and last fresh attestation, and whether they are\n"
    "trusted or revoked (when, why). Only the SM's operator can.\n"
    "\n" OP_USAGE_COMMON;

static int sm_status(int argc, char **argv) {
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, O_OP_DATA},
      {"sm", required_argument, NULL, O_OP_SM},
      {"sm-policy", required_argument, NULL, O_OP_POL},
      {"token-file", required_argument, NULL, O_OP_TOKEN},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct op_opts o;
  memset(&o, 0, sizeof o);
  teex_cli_data_dir(o.data_dir, sizeof o.data_dir);
  o.sm = "127.0.0.1:7101";
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (op_opt(&o, c))
      continue;
    if (c == 'h') {
      fputs(status_usage, stdout);
      return TEEX_EXIT_OK;
    }
    fputs(status_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (o.policy == NULL) {
    fputs(status_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  Teex__Sm__StatusRequest req = TEEX__SM__STATUS_REQUEST__INIT;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_buf resp;
  teex_buf_init(&resp, STATUS_RESP_MAX, 0);
  int rc =
      op_call(&o, "sm.Status", &req.base, &req.operator_token, &resp, &err);
  if (rc != 0) {
    teex_buf_free(&resp);
    return teex_cli_fail("sm status: %s", err.msg);
  }
  Teex__Sm__StatusResponse *r =
      teex__sm__status_response__unpack(NULL, resp.len, resp.data);
  teex_buf_free(&resp);
  if (r == NULL)
    return teex_cli_fail("sm status: malformed answer");
  uint64_t now = (uint64_t)time(NULL);
  printf("services %u, enclaves %zu\n", r->services, r->n_enclaves);
  for (size_t i = 0; i < r->n_enclaves; i++) {
    const Teex__Sm__EnclaveStatus *e = r->enclaves[i];
    if (e->address.len != 20 || e->measurement.len != 32)
      continue;
    char addr[43], mr[65];
    teex_eth_address_hex(e->address.data, addr);
    teex_hex_encode(e->measurement.data, 32, mr);
    printf("enclave=%s role=%s measurement=%s first_seen=%llu "
           "last_attested=%llu age=%llus ",
           addr, e->role, mr, (unsigned long long)e->first_seen,
           (unsigned long long)e->last_attested,
           (unsigned long long)(now > e->last_attested ? now - e->last_attested
                                                       : 0));
    if (e->revoked)
      printf("state=revoked revoked_at=%llu reason=\"%s\"\n",
             (unsigned long long)e->revoked_at, e->reason);
    else
      printf("state=trusted\n");
  }
  teex__sm__status_response__free_unpacked(r, NULL);
  return TEEX_EXIT_OK;
}

static const struct teex_cli_cmd sm_commands[] = {
    {"init", sm_init, "create the SM's sealed keys and print its address"},
    {"run", sm_run, "run the Service Manager daemon"},
    {"revoke", sm_revoke, "revoke an enclave or a build (operator)"},
    {"status", sm_status, "the enclaves the SM trusts or revoked (operator)"},
    {NULL, NULL, NULL},
};

int teex_cmd_sm(int argc, char **argv) {
  return teex_cli_dispatch("teex sm", sm_commands, argc - 1, argv + 1);
}
