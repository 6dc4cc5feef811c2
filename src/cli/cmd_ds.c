/* `teex ds`: TEE-DS replica daemons (init, run) and the client commands
 * (get, set, del, scan, status, client-key) and the Redis proxy
 * (cmd_ds_proxy.c). docs/internals/ds.md. */
#include "cli/cli.h"
#include "cli/ds_conn.h"
#include "cli/cmd_ds_anchor.h"

#include "ds/group.h"
#include "ds/membership.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_server.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/ds_anchor.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_tee(const char *data_dir, int harden, struct teex_tee **tee) {
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.backend = "sim";
  tc.data_dir = data_dir;
  tc.role = "ds";
  tc.harden = harden;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_tee_open(&tc, tee, &err) != 0)
    return teex_cli_fail("tee: %s", err.msg);
  return 0;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *b = malloc(TEEX_CONFIG_FILE_MAX + 1);
  size_t n = b ? fread(b, 1, TEEX_CONFIG_FILE_MAX + 1, f) : 0;
  fclose(f);
  if (b == NULL || n > TEEX_CONFIG_FILE_MAX) {
    free(b);
    return NULL;
  }
  b[n] = '\0';
  *len = n;
  return b;
}

static const char init_usage[] =
    "usage: teex ds init --state DIR --id N --new-group --member ID=PEER,CLIENT"
    "...\n"
    "                    [--client LABEL=SPKI:NS]... [--policy FILE]\n"
    "                    [--enclave ROLE=NS]... [--client-policy FILE]\n"
    "                    [--sm ADDR --sm-policy FILE] [--grant-signer ADDR]\n"
    "                    [--operator LABEL]...\n"
    "       teex ds init --state DIR --id N --group FILE [--policy FILE]\n"
    "                    [--sm ADDR --sm-policy FILE] [--join PEER,CLIENT]\n"
    "\n"
    "Creates a TEE-DS replica's state directory. The group's first replica\n"
    "is made with --new-group (a new group id, and without --sm a group\n"
    "key sealed here);\n"
    "the others with --group (the first one's group.conf) and receive the\n"
    "group key over mutual RA-TLS when they first run — from the Service\n"
    "Manager when --sm is given (each replica), else from the first replica.\n"
    "\n"
    "  --member ID=PEER,CLIENT   a replica: raft id, replica-to-replica\n"
    "                            address, client RPC address (repeat)\n"
    "  --client LABEL=SPKI:NS    a client certificate's key hash (teex ds\n"
    "                            client-key) and the namespace it may use\n"
    "  --enclave ROLE=NS         enclave clients of ROLE (evidence passing\n"
    "                            --client-policy) get namespace NS (repeat)\n"
    "                            NS = *: only namespaces an SM grant opens\n"
    "  --grant-signer ADDR       the SM's Ethereum address, whose signed\n"
    "                            grants open a service's namespace to a\n"
    "                            worker (needed by --enclave ROLE=*)\n"
    "  --client-policy FILE      evidence enclave clients must present\n"
    "                            (joining: taken from beside --group's file)\n"
    "  --sm ADDR                 the SM's enclave endpoint, which provisions\n"
    "                            the group key to attested replicas\n"
    "  --sm-policy FILE          what the SM's evidence must satisfy\n"
    "  --policy FILE             evidence peers must present (default: this\n"
    "                            build in role ds on this platform)\n"
    "  --operator LABEL          the --client LABEL may add and remove\n"
    "                            replicas (teex ds add-replica; repeat)\n"
    "  --join PEER,CLIENT        a new replica for a running group: N is\n"
    "                            not in --group's file yet; run it, then\n"
    "                            teex ds add-replica N PEER CLIENT\n"
    "  --data-dir DIR            teex data directory with the sim platform\n";

static int ds_init(int argc, char **argv) {
  enum {
    O_STATE = 256,
    O_ID,
    O_NEW,
    O_MEMBER,
    O_CLIENT,
    O_POLICY,
    O_GROUP,
    O_DATA,
    O_ENCLAVE,
    O_CPOLICY,
    O_SM,
    O_SMPOLICY,
    O_SIGNER,
    O_OPERATOR,
    O_JOIN
  };
  static const struct option longopts[] = {
      {"state", required_argument, NULL, O_STATE},
      {"id", required_argument, NULL, O_ID},
      {"new-group", no_argument, NULL, O_NEW},
      {"member", required_argument, NULL, O_MEMBER},
      {"client", required_argument, NULL, O_CLIENT},
      {"policy", required_argument, NULL, O_POLICY},
      {"group", required_argument, NULL, O_GROUP},
      {"data-dir", required_argument, NULL, O_DATA},
      {"enclave", required_argument, NULL, O_ENCLAVE},
      {"client-policy", required_argument, NULL, O_CPOLICY},
      {"sm", required_argument, NULL, O_SM},
      {"sm-policy", required_argument, NULL, O_SMPOLICY},
      {"grant-signer", required_argument, NULL, O_SIGNER},
      {"operator", required_argument, NULL, O_OPERATOR},
      {"join", required_argument, NULL, O_JOIN},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  const char *state = NULL, *policy = NULL, *group = NULL, *cpolicy = NULL;
  const char *sm = NULL, *smpolicy = NULL;
  uint64_t id = 0;
  int new_group = 0;
  const char *join = NULL;
  static struct teex_ds_group g;
  memset(&g, 0, sizeof g);
  struct teex_err err;
  teex_err_clear(&err);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_STATE:
      state = optarg;
      break;
    case O_ID:
      if (teex_parse_u64(optarg, &id) != 0 || id == 0)
        return teex_cli_fail("--id must be a positive number");
      break;
    case O_NEW:
      new_group = 1;
      break;
    case O_MEMBER:
      if (g.n_members == TEEX_DS_GROUP_MAX_MEMBERS)
        return teex_cli_fail("at most %d members", TEEX_DS_GROUP_MAX_MEMBERS);
      if (teex_ds_member_parse(optarg, &g.members[g.n_members++], &err) != 0)
        return teex_cli_fail("--member: %s", err.msg);
      break;
    case O_CLIENT:
      if (g.n_clients == TEEX_DS_GROUP_MAX_CLIENTS)
        return teex_cli_fail("at most %d clients", TEEX_DS_GROUP_MAX_CLIENTS);
      if (teex_ds_client_parse(optarg, &g.clients[g.n_clients++], &err) != 0)
        return teex_cli_fail("--client: %s", err.msg);
      break;
    case O_POLICY:
      policy = optarg;
      break;
    case O_ENCLAVE:
      if (g.n_enclaves == TEEX_DS_GROUP_MAX_ENCLAVES)
        return teex_cli_fail("at most %d enclave grants",
                             TEEX_DS_GROUP_MAX_ENCLAVES);
      if (teex_ds_enclave_parse(optarg, &g.enclaves[g.n_enclaves++], &err) != 0)
        return teex_cli_fail("--enclave: %s", err.msg);
      break;
    case O_CPOLICY:
      cpolicy = optarg;
      break;
    case O_SM:
      sm = optarg;
      break;
    case O_SMPOLICY:
      smpolicy = optarg;
      break;
    case O_SIGNER:
      if (teex_eth_address_parse(optarg, g.sm_address) != 0)
        return teex_cli_fail("--grant-signer: want an Ethereum address");
      g.has_sm = 1;
      break;
    case O_GROUP:
      group = optarg;
      break;
    case O_OPERATOR: {
      size_t used = strlen(g.operators), add = strlen(optarg);
      if (add == 0 || strchr(optarg, ',') != NULL ||
          used + add + 2 > sizeof g.operators)
        return teex_cli_fail("--operator: a client label");
      snprintf(g.operators + used, sizeof g.operators - used, "%s%s",
               used ? "," : "", optarg);
      break;
    }
    case O_JOIN:
      join = optarg;
      break;
    case O_DATA:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case 'h':
      fputs(init_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(init_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (state == NULL || id == 0 || new_group == (group != NULL) ||
      (new_group && g.n_members == 0) || (group && g.n_members > 0)) {
    fputs(init_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  char *gtext = NULL, *ptext = NULL;
  size_t glen = 0, plen = 0;
  char *made = NULL;
  if (join != NULL && group == NULL)
    return teex_cli_fail("--join needs --group (the running group's "
                         "group.conf)");
  if (group != NULL) {
    if ((gtext = slurp(group, &glen)) == NULL)
      return teex_cli_fail("%s: cannot read", group);
  }
  if (join != NULL) {
    /* The running group's members plus this new one. */
    static struct teex_ds_group jg;
    char spec[512];
    snprintf(spec, sizeof spec, "%llu=%s", (unsigned long long)id, join);
    int jrc = teex_ds_group_parse(&jg, gtext, glen, &err);
    free(gtext);
    gtext = NULL;
    if (jrc != 0)
      return teex_cli_fail("%s: %s", group, err.msg);
    if (teex_ds_group_member(&jg, id) != NULL)
      return teex_cli_fail("--join: id %llu is already a member of the group",
                           (unsigned long long)id);
    if (jg.n_members == TEEX_DS_GROUP_MAX_MEMBERS)
      return teex_cli_fail("--join: the group has %d members already",
                           TEEX_DS_GROUP_MAX_MEMBERS);
    if (teex_ds_member_parse(spec, &jg.members[jg.n_members], &err) != 0)
      return teex_cli_fail("--join: %s", err.msg);
    jg.n_members++;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.group.tmp", state);
    if (teex_ds_group_save(&jg, tmp, &err) != 0)
      return teex_cli_fail("%s", err.msg);
    gtext = slurp(tmp, &glen);
    remove(tmp);
    if (gtext == NULL)
      return teex_cli_fail("group config");
  } else if (group == NULL) {
    teex_random(g.id, sizeof g.id);
    /* Render through the group writer so both paths parse the same text. */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.group.tmp", state);
    if (teex_ds_group_save(&g, tmp, &err) != 0)
      return teex_cli_fail("%s", err.msg);
    made = slurp(tmp, &glen);
    remove(tmp);
    if (made == NULL)
      return teex_cli_fail("group config");
    gtext = made;
  }
  if (policy != NULL && (ptext = slurp(policy, &plen)) == NULL) {
    free(gtext);
    return teex_cli_fail("%s: cannot read", policy);
  }
  /* Enclave clients' policy: given, or beside the group file we join. */
  char cp_beside[PATH_MAX];
  if (cpolicy == NULL && group != NULL) {
    const char *slash = strrchr(group, '/');
    int dir_len = slash != NULL ? (int)(slash - group) + 1 : 0;
    snprintf(cp_beside, sizeof cp_beside, "%.*s%s", dir_len, group,
             TEEX_DS_CLIENT_POLICY_FILE);
    if (access(cp_beside, F_OK) == 0)
      cpolicy = cp_beside;
  }
  if ((sm == NULL) != (smpolicy == NULL)) {
    free(gtext);
    free(ptext);
    return teex_cli_fail("--sm and --sm-policy go together");
  }
  char *smtext = NULL;
  size_t smlen = 0;
  if (smpolicy != NULL && (smtext = slurp(smpolicy, &smlen)) == NULL) {
    free(gtext);
    free(ptext);
    return teex_cli_fail("%s: cannot read", smpolicy);
  }
  char *cptext = NULL;
  size_t cplen = 0;
  if (cpolicy != NULL && (cptext = slurp(cpolicy, &cplen)) == NULL) {
    free(gtext);
    free(ptext);
    return teex_cli_fail("%s: cannot read", cpolicy);
  }
  struct teex_tee *tee = NULL;
  int rc = open_tee(data_dir, 0, &tee);
  if (rc == 0) {
    struct teex_ds_init_config ic = {.tee = tee,
                                     .state_dir = state,
                                     .self_id = id,
                                     .group_text = gtext,
                                     .group_len = glen,
                                     .policy_text = ptext,
                                     .policy_len = plen,
                                     .client_policy_text = cptext,
                                     .client_policy_len = cplen,
                                     .sm_addr = sm,
                                     .sm_policy_text = smtext,
                                     .sm_policy_len = smlen,
                                     .create_key = new_group,
                                     .join = join != NULL};
    if (teex_ds_init(&ic, &err) != 0)
      rc = teex_cli_fail("ds init: %s", err.msg);
    else
      printf("replica %llu initialised in %s\n", (unsigned long long)id, state);
  }
  teex_tee_close(tee);
  free(gtext);
  free(ptext);
  free(cptext);
  free(smtext);
  return rc;
}

static const char run_usage[] =
    "usage: teex ds run --state DIR [--data-dir DIR] [--ready-file FILE]\n"
    "                   [--election-timeout MS] [--key-timeout MS]\n"
    "                   [--no-read-lease] [--chain-conf FILE]\n"
    "                   [--snapshot-threshold N]\n"
    "\n"
    "Runs one TEE-DS replica until SIGTERM: raft over mutual RA-TLS with the\n"
    "group's other replicas, the client RPC on its client address.\n"
    "  --election-timeout MS  raft election timeout (default 150)\n"
    "  --key-timeout MS       how long a new replica waits for the group key\n"
    "                         from the others (default 30000)\n"
    "  --no-read-lease        confirm every linearizable read with a raft\n"
    "                         barrier; by default the leader serves them\n"
    "                         under a lease of half the election timeout,\n"
    "                         which assumes the replicas' clocks run at rates\n"
    "                         within a third of each other\n"
    "  --snapshot-threshold N entries between snapshots (default 1024)\n"
    "  --chain-conf FILE      check freshness against the group's anchor in\n"
    "                         the DsAnchor contract of this chain.conf "
    "(rpc_url,\n"
    "                         ds_anchor): a replica whose log ends below it\n"
    "                         waits for the group to bring it up, and does "
    "not\n"
    "                         start if the chain cannot be read. Without it:\n"
    "                         not anchored (teex ds status says so).\n"
    "  --anchor-payer FILE    with --chain-conf: the leader anchors by itself\n"
    "                         (signed by its enclave key, enrolled with teex\n"
    "                         ds anchor --enroll); FILE is the hex key of the\n"
    "                         account paying the gas\n"
    "  --anchor-every N       anchor after N applied entries (default 64)\n"
    "  --anchor-interval MS   or MS after the last anchor (default 30000);\n"
    "                         and at a clean stop\n"
    "  --ipfs-api URL         store commitment documents in this Kubo node\n"
    "  --ipfs-store DIR       or this local block store (default\n"
    "                         DATA_DIR/ipfs)\n";

static int ds_run(int argc, char **argv) {
  enum {
    O_STATE = 256,
    O_DATA,
    O_READY,
    O_ELECTION,
    O_KEYWAIT,
    O_CHAIN,
    O_PAYER,
    O_EVERY,
    O_INTERVAL,
    O_IPFS_API,
    O_IPFS_STORE,
    O_NO_LEASE,
    O_SNAPSHOT
  };
  static const struct option longopts[] = {
      {"state", required_argument, NULL, O_STATE},
      {"data-dir", required_argument, NULL, O_DATA},
      {"ready-file", required_argument, NULL, O_READY},
      {"election-timeout", required_argument, NULL, O_ELECTION},
      {"key-timeout", required_argument, NULL, O_KEYWAIT},
      {"chain-conf", required_argument, NULL, O_CHAIN},
      {"anchor-payer", required_argument, NULL, O_PAYER},
      {"anchor-every", required_argument, NULL, O_EVERY},
      {"anchor-interval", required_argument, NULL, O_INTERVAL},
      {"ipfs-api", required_argument, NULL, O_IPFS_API},
      {"ipfs-store", required_argument, NULL, O_IPFS_STORE},
      {"no-read-lease", no_argument, NULL, O_NO_LEASE},
      {"snapshot-threshold", required_argument, NULL, O_SNAPSHOT},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  char data_dir[PATH_MAX], anchor_rpc[512], ipfs_dir[PATH_MAX + 8];
  const char *chain_conf = NULL, *payer_file = NULL;
  uint8_t payer[32];
  struct teex_chain_addrs anchor_addrs;
  teex_cli_data_dir(data_dir, sizeof data_dir);
  struct teex_ds_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  uint64_t v;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_STATE:
      cfg.state_dir = optarg;
      break;
    case O_DATA:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case O_READY:
      cfg.ready_file = optarg;
      break;
    case O_ELECTION:
      if (teex_parse_u64(optarg, &v) != 0 || v < 10 || v > 60000)
        return teex_cli_fail("--election-timeout: 10..60000 ms");
      cfg.election_timeout_ms = (uint32_t)v;
      break;
    case O_KEYWAIT:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > 3600000)
        return teex_cli_fail("--key-timeout: 1..3600000 ms");
      cfg.key_timeout_ms = (uint32_t)v;
      break;
    case O_NO_LEASE:
      cfg.no_read_lease = 1;
      break;
    case O_SNAPSHOT:
      if (teex_parse_u64(optarg, &v) != 0 || v < 8 || v > 1000000)
        return teex_cli_fail("--snapshot-threshold: 8..1000000 entries");
      cfg.snapshot_threshold = (uint32_t)v;
      break;
    case O_CHAIN:
      chain_conf = optarg;
      break;
    case O_PAYER:
      payer_file = optarg;
      break;
    case O_EVERY:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > 1000000)
        return teex_cli_fail("--anchor-every: 1..1000000 entries");
      cfg.anchor_every = (uint32_t)v;
      break;
    case O_INTERVAL:
      if (teex_parse_u64(optarg, &v) != 0 || v < 100 || v > 86400000)
        return teex_cli_fail("--anchor-interval: 100..86400000 ms");
      cfg.anchor_interval_ms = (uint32_t)v;
      break;
    case O_IPFS_API:
      cfg.ipfs_api = optarg;
      break;
    case O_IPFS_STORE:
      cfg.ipfs_dir = optarg;
      break;
    case 'h':
      fputs(run_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(run_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (cfg.state_dir == NULL) {
    fputs(run_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_err err;
  teex_err_clear(&err);
  if (chain_conf != NULL) {
    if (teex_cli_ds_chain_conf(chain_conf, anchor_rpc, sizeof anchor_rpc,
                               &anchor_addrs, &err) != 0)
      return teex_cli_fail("ds: %s", err.msg);
    cfg.anchor_rpc = anchor_rpc;
    cfg.anchor_contract = anchor_addrs.ds_anchor;
  }
  if (payer_file != NULL) {
    if (chain_conf == NULL)
      return teex_cli_fail("ds: --anchor-payer needs --chain-conf");
    if (teex_cli_ds_read_key(payer_file, payer, &err) != 0)
      return teex_cli_fail("ds: %s", err.msg);
    cfg.anchor_payer_sk = payer;
  }
  if (cfg.anchor_every == 0)
    cfg.anchor_every = TEEX_DS_ANCHOR_EVERY;
  if (cfg.anchor_interval_ms == 0)
    cfg.anchor_interval_ms = TEEX_DS_ANCHOR_INTERVAL_MS;
  if (cfg.ipfs_dir == NULL) {
    snprintf(ipfs_dir, sizeof ipfs_dir, "%s/ipfs", data_dir);
    cfg.ipfs_dir = ipfs_dir;
  }
  if (open_tee(data_dir, 1, &cfg.tee) != 0) {
    teex_wipe(payer, sizeof payer);
    return TEEX_EXIT_FAIL;
  }
  int rc = teex_ds_serve(&cfg, &err);
  teex_wipe(payer, sizeof payer);
  teex_tee_close(cfg.tee);
  if (rc != 0)
    return teex_cli_fail("ds: %s", err.msg);
  return TEEX_EXIT_OK;
}

static const char key_usage[] =
    "usage: teex ds client-key --out DIR\n"
    "\n"
    "Makes a client key and certificate (DIR/client.key, DIR/client.pem) and\n"
    "prints the hash a group config lists it by (teex ds init --client).\n";

static int ds_client_key(int argc, char **argv) {
  static const struct option longopts[] = {{"out", required_argument, NULL, 1},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *out = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 1) {
      out = optarg;
    } else if (c == 'h') {
      fputs(key_usage, stdout);
      return TEEX_EXIT_OK;
    } else {
      fputs(key_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (out == NULL) {
    fputs(key_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (mkdir(out, 0700) != 0 && errno != EEXIST)
    return teex_cli_fail("mkdir %s: %s", out, strerror(errno));
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  struct teex_err err;
  if (teex_tls_selfsigned_new("teex-ds-client", 3650, &key, &cert, &err) != 0)
    return teex_cli_fail("%s", err.msg);
  char kp[PATH_MAX], cp[PATH_MAX];
  snprintf(kp, sizeof kp, "%s/client.key", out);
  snprintf(cp, sizeof cp, "%s/client.pem", out);
  int rc = TEEX_EXIT_FAIL;
  mode_t old = umask(077);
  FILE *kf = fopen(kp, "w");
  umask(old);
  FILE *cf = fopen(cp, "w");
  if (kf && cf && PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) &&
      PEM_write_X509(cf, cert)) {
    uint8_t spki[32];
    char hex[65];
    teex_tls_cert_spki_sha256(cert, spki);
    teex_hex_encode(spki, 32, hex);
    printf("%s\n", hex);
    rc = TEEX_EXIT_OK;
  }
  if (kf && fclose(kf) != 0)
    rc = TEEX_EXIT_FAIL;
  if (cf && fclose(cf) != 0)
    rc = TEEX_EXIT_FAIL;
  EVP_PKEY_free(key);
  X509_free(cert);
  return rc == TEEX_EXIT_OK ? rc : teex_cli_fail("cannot write %s", out);
}

/* ---- client commands ---- */

struct copts {
  struct teex_cli_ds_conn k;
  uint32_t timeout_ms;
  int follower;
  uint32_t limit;
  int64_t ttl_ms;
  int nx, xx;
};

static const char client_usage[] =
    "usage: teex ds get KEY | set KEY VALUE | del KEY | scan [PREFIX] |\n"
    "       status  [--state DIR] [--cert FILE --key FILE] [--ns NS] "
    "[options]\n"
    "\n"
    "Talks to a TEE-DS group. KEY is the part after \"NS/\".\n"
    "  --state DIR       a replica's state directory (its group.conf gives\n"
    "                    the replicas, its policy.conf their evidence);\n"
    "                    default DATA_DIR/ds/ds-1 (the group of teex up)\n"
    "  --cert, --key     the client certificate and key (teex ds client-key;\n"
    "                    default DATA_DIR/ds/client/client.{pem,key})\n"
    "  --ns NS           the namespace (default: the one the group config\n"
    "                    grants this certificate)\n"
    "  --follower        read from any replica (may be stale)\n"
    "  --ttl MS          set: expire after MS milliseconds\n"
    "  --nx, --xx        set: only if absent / only if present\n"
    "  --limit N         scan: page size (default 100)\n"
    "  --timeout MS      per operation, retries included (default 5000)\n"
    "  --chain-conf FILE status: also the group's latest anchor on chain\n"
    "                    (default for the group of teex up: its chain)\n";

static int copts_parse(struct copts *o, int argc, char **argv) {
  /* Retries through replicas that are down are expected: not worth a
   * warning line each on a command's stderr. */
  teex_log_set_level(TEEX_LOG_ERROR);
  enum {
    O_STATE = 256,
    O_CERT,
    O_KEY,
    O_NS,
    O_TIMEOUT,
    O_FOLLOWER,
    O_LIMIT,
    O_TTL,
    O_NX,
    O_XX
  };
  static const struct option longopts[] = {
      {"state", required_argument, NULL, O_STATE},
      {"cert", required_argument, NULL, O_CERT},
      {"key", required_argument, NULL, O_KEY},
      {"ns", required_argument, NULL, O_NS},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"follower", no_argument, NULL, O_FOLLOWER},
      {"limit", required_argument, NULL, O_LIMIT},
      {"ttl", required_argument, NULL, O_TTL},
      {"nx", no_argument, NULL, O_NX},
      {"xx", no_argument, NULL, O_XX},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  o->timeout_ms = 5000;
  o->limit = 100;
  uint64_t v;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_STATE:
      o->k.state = optarg;
      break;
    case O_CERT:
      o->k.cert = optarg;
      break;
    case O_KEY:
      o->k.key = optarg;
      break;
    case O_NS:
      o->k.ns = optarg;
      break;
    case O_TIMEOUT:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > 3600000)
        return teex_cli_fail("--timeout: 1..3600000 ms");
      o->timeout_ms = (uint32_t)v;
      break;
    case O_FOLLOWER:
      o->follower = 1;
      break;
    case O_LIMIT:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > TEEX_DS_SCAN_MAX)
        return teex_cli_fail("--limit: 1..%d", TEEX_DS_SCAN_MAX);
      o->limit = (uint32_t)v;
      break;
    case O_TTL:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > TEEX_DS_TTL_MAX_MS)
        return teex_cli_fail("--ttl: a positive number of milliseconds");
      o->ttl_ms = (int64_t)v;
      break;
    case O_NX:
      o->nx = 1;
      break;
    case O_XX:
      o->xx = 1;
      break;
    case 'h':
      fputs(client_usage, stdout);
      return -1;
    default:
      fputs(client_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  return teex_cli_ds_conn_open(&o->k);
}

static void copts_free(struct copts *o) {
  teex_cli_ds_conn_free(&o->k);
}

static void print_bytes(const uint8_t *p, size_t n) {
  fwrite(p, 1, n, stdout);
}

static int client_cmd(int argc, char **argv, uint8_t op) {
  static struct copts o;
  memset(&o, 0, sizeof o);
  int rc = copts_parse(&o, argc, argv);
  if (rc != 0) {
    copts_free(&o);
    return rc < 0 ? TEEX_EXIT_OK : rc;
  }
  int nargs = argc - optind;
  char **args = argv + optind;
  int want = op == TEEX_DS_SET ? 2 : op == TEEX_DS_SCAN ? -1 : 1;
  if ((want >= 0 && nargs != want) || (want < 0 && nargs > 1)) {
    copts_free(&o);
    fputs(client_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  char key[TEEX_DS_KEY_MAX + 1], after[TEEX_DS_KEY_MAX + 1];
  int n = snprintf(key, sizeof key, "%s/%s", o.k.ns, nargs > 0 ? args[0] : "");
  if (n < 0 || (size_t)n >= sizeof key) {
    copts_free(&o);
    return teex_cli_fail("key longer than %d bytes", TEEX_DS_KEY_MAX);
  }
  struct teex_ds_cmd cmd = {.op = op, .grant = o.k.ns};
  cmd.key = (const uint8_t *)key;
  cmd.key_len = (size_t)n;
  if (op == TEEX_DS_SET) {
    cmd.val = (const uint8_t *)args[1];
    cmd.val_len = strlen(args[1]);
    cmd.ttl_ms = (uint64_t)o.ttl_ms;
    cmd.flags = (uint8_t)((o.nx ? TEEX_DS_IF_ABSENT : 0) |
                          (o.xx ? TEEX_DS_IF_PRESENT : 0));
  }
  if (op == TEEX_DS_SCAN)
    cmd.limit = o.limit;
  struct teex_ds_client_config cc = {.replicas = o.k.addrs,
                                     .n_replicas = o.k.n_addrs,
                                     .tls = o.k.tls,
                                     .ns = o.k.ns,
                                     .timeout_ms = o.timeout_ms};
  struct teex_ds_sync *s = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  rc = TEEX_EXIT_FAIL;
  if (teex_ds_sync_open(&cc, &s, &err) != 0) {
    teex_cli_fail("%s", err.msg);
    goto out;
  }
  enum teex_ds_read_mode mode =
      o.follower ? TEEX_DS_READ_FOLLOWER : TEEX_DS_READ_LINEARIZABLE;
  for (;;) {
    struct teex_ds_result res;
    if (teex_ds_sync_exec(s, &cmd, mode, &res, &err) != 0) {
      teex_cli_fail("%s", err.msg);
      break;
    }
    if (res.status != 0 &&
        !(op == TEEX_DS_GET && res.status == TEEX_ENOTFOUND)) {
      teex_cli_fail("%s", teex_strerror(res.status));
      teex_ds_result_free(&res);
      break;
    }
    rc = TEEX_EXIT_OK;
    if (op == TEEX_DS_GET) {
      if (res.status == TEEX_ENOTFOUND) {
        fprintf(stderr, "teex: not found\n");
        rc = TEEX_EXIT_FAIL;
      } else {
        print_bytes(res.val, res.val_len);
        putchar('\n');
      }
    } else if (op == TEEX_DS_DEL) {
      printf("%lld\n", (long long)res.num);
    } else if (op == TEEX_DS_SET) {
      printf("OK\n");
    } else if (op == TEEX_DS_SCAN) {
      for (size_t i = 0; i < res.n_items; i++) {
        print_bytes(res.items[i].key, res.items[i].key_len);
        putchar('\t');
        print_bytes(res.items[i].val, res.items[i].val_len);
        putchar('\n');
      }
      if (res.more && res.n_items > 0) {
        size_t k = res.items[res.n_items - 1].key_len;
        memcpy(after, res.items[res.n_items - 1].key, k);
        cmd.after = (const uint8_t *)after;
        cmd.after_len = k;
        teex_ds_result_free(&res);
        continue;
      }
    }
    teex_ds_result_free(&res);
    break;
  }
out:
  teex_ds_sync_close(s);
  copts_free(&o);
  return rc;
}

static int ds_get(int argc, char **argv) {
  return client_cmd(argc, argv, TEEX_DS_GET);
}
static int ds_set(int argc, char **argv) {
  return client_cmd(argc, argv, TEEX_DS_SET);
}
static int ds_del(int argc, char **argv) {
  return client_cmd(argc, argv, TEEX_DS_DEL);
}
static int ds_scan(int argc, char **argv) {
  return client_cmd(argc, argv, TEEX_DS_SCAN);
}

static char *take_opt(int *argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < *argc; i++)
    if (strcmp(argv[i], name) == 0) {
      char *v = argv[i + 1];
      memmove(argv + i, argv + i + 2, sizeof(char *) * (size_t)(*argc - i - 1));
      *argc -= 2;
      return v;
    }
  return NULL;
}

static int ds_status(int argc, char **argv) {
  static struct copts o;
  memset(&o, 0, sizeof o);
  const char *chain_conf = take_opt(&argc, argv, "--chain-conf");
  int own_group = 0; /* --state or --replica: not the group of teex up */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--state") == 0 || strcmp(argv[i], "--replica") == 0)
      own_group = 1;
  int rc = copts_parse(&o, argc, argv);
  if (rc != 0) {
    copts_free(&o);
    return rc < 0 ? TEEX_EXIT_OK : rc;
  }
  struct teex_ds_replica_info info[TEEX_DS_GROUP_MAX_MEMBERS];
  int ok[TEEX_DS_GROUP_MAX_MEMBERS];
  char why[TEEX_DS_GROUP_MAX_MEMBERS][160];
  uint64_t leader_last = 0;
  int healthy = 0;
  for (size_t i = 0; i < o.k.group.n_members; i++) {
    struct teex_err err;
    teex_err_clear(&err);
    ok[i] = teex_ds_replica_info_get(o.k.tls, o.k.addrs[i], o.timeout_ms,
                                     &info[i], &err) == 0;
    snprintf(why[i], sizeof why[i], "%s", err.msg);
    if (ok[i] && info[i].leader)
      leader_last = info[i].last_index;
  }
  printf("%-4s %-22s %-8s %-6s %-10s %-10s %-8s %s\n", "id", "address", "role",
         "term", "last", "applied", "lag", "health");
  for (size_t i = 0; i < o.k.group.n_members; i++) {
    if (!ok[i]) {
      printf("%-4llu %-22s %-8s %-6s %-10s %-10s %-8s down (%s)\n",
             (unsigned long long)o.k.group.members[i].id, o.k.addrs[i], "-",
             "-", "-", "-", "-", why[i]);
      continue;
    }
    const struct teex_ds_replica_info *r = &info[i];
    long long lag =
        leader_last ? (long long)leader_last - (long long)r->last_applied : -1;
    const char *health = r->failed ? "failed"
                         : strncmp(r->freshness, "rolled back", 11) == 0
                             ? "rolled-back"
                         : !r->voting ? "catching-up"
                                      : "ok";
    if (!r->failed)
      healthy++;
    printf("%-4llu %-22s %-8s %-6llu %-10llu %-10llu %-8lld %s%s%s\n",
           (unsigned long long)r->id, o.k.addrs[i],
           r->leader ? "leader" : "follower", (unsigned long long)r->term,
           (unsigned long long)r->last_index,
           (unsigned long long)r->last_applied, lag, health,
           r->failed ? ": " : "", r->failed ? r->failure : "");
  }
  for (size_t i = 0; i < o.k.group.n_members; i++)
    if (ok[i] && info[i].freshness[0])
      printf("replica %llu freshness: %s\n", (unsigned long long)info[i].id,
             info[i].freshness);
  for (size_t i = 0; i < o.k.group.n_members; i++)
    if (ok[i] && info[i].leader)
      printf("leader %llu linearizable reads: %llu under the lease, %llu "
             "confirmed by %llu barriers; %llu AppendEntries coalesced\n",
             (unsigned long long)info[i].id,
             (unsigned long long)info[i].lease_reads,
             (unsigned long long)info[i].reads,
             (unsigned long long)info[i].read_barriers,
             (unsigned long long)info[i].coalesced);
  /* The group of teex up: its network's chain. */
  char net_chain[PATH_MAX + 16];
  if (chain_conf == NULL && !own_group) {
    char data_dir[PATH_MAX];
    teex_cli_data_dir(data_dir, sizeof data_dir);
    snprintf(net_chain, sizeof net_chain, "%s/chain.conf", data_dir);
    if (access(net_chain, R_OK) == 0)
      chain_conf = net_chain;
  }
  if (chain_conf != NULL) {
    struct teex_err err;
    teex_err_clear(&err);
    if (teex_cli_ds_anchor_show(chain_conf, o.k.group.id, &err) != 0)
      printf("chain anchor: unknown (%s)\n", err.msg);
  }
  copts_free(&o);
  return healthy > 0 ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
}

static const char anchor_usage[] =
    "usage: teex ds anchor --chain-conf FILE --key-file FILE [--doc FILE]\n"
    "                      [--enroll]\n"
    "                      [--state DIR] [--cert FILE --key FILE]\n"
    "\n"
    "Commits the group's current log head (the leader's applied index, term\n"
    "and applied hash chain) to the DsAnchor contract of FILE (chain.conf:\n"
    "rpc_url, ds_anchor), signed with --key-file (hex secp256k1 key, which\n"
    "also pays the gas; the group's first anchor makes it the group's owner\n"
    "and anchorer). Replicas run with --chain-conf then refuse to serve a\n"
    "state below it. --doc: also write the commitment document (whose\n"
    "keccak256 and CID are on chain) there.\n"
    "--enroll: instead, make the replicas' enclave addresses (read from the\n"
    "RA-TLS evidence of each, verified against the group's policy) the\n"
    "group's anchorers, owned by --key-file; replicas run with --chain-conf\n"
    "and --anchor-payer then anchor by themselves.\n";

/* The anchorers are the replicas' enclave addresses, each read from the
 * secp256k1 key bound in the RA-TLS evidence that the group's policy just
 * verified on a connection to that replica (role ds) — never from what a
 * replica or its host says about itself. */
static int ds_enroll(struct copts *o, const char *chain_conf,
                     const char *key_file, struct teex_err *err) {
  uint8_t list[TEEX_DS_ANCHOR_MAX_ANCHORERS][20];
  size_t n = 0;
  for (size_t i = 0; i < o->k.group.n_members; i++) {
    struct teex_rpc_sync *c = NULL;
    int rc =
        teex_rpc_sync_connect(o->k.addrs[i], o->k.tls, o->timeout_ms, &c, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "replica %s", o->k.addrs[i]);
    const struct teex_tee_identity *id =
        teex_ratls_channel_peer(teex_rpc_sync_conn(c));
    if (id == NULL || strcmp(id->role, "ds") != 0 || !id->has_binding ||
        !id->binding.has_secp256k1)
      rc = teex_err_set(err, TEEX_EATTEST,
                        "replica %s: its evidence binds no anchoring key",
                        o->k.addrs[i]);
    else if (n == TEEX_DS_ANCHOR_MAX_ANCHORERS)
      rc = teex_err_set(err, TEEX_ETOOBIG, "more than %d replicas",
                        TEEX_DS_ANCHOR_MAX_ANCHORERS);
    else
      memcpy(list[n++], id->binding.eth_address, 20);
    teex_rpc_sync_close(c);
    if (rc != 0)
      return rc;
  }
  int rc = teex_cli_ds_anchor_enroll(chain_conf, key_file, o->k.group.id,
                                     (const uint8_t(*)[20])list, n, err);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    char hex[41];
    teex_hex_encode(list[i], 20, hex);
    printf("anchorer 0x%s (replica %s)\n", hex, o->k.addrs[i]);
  }
  return 0;
}

static int ds_anchor(int argc, char **argv) {
  static struct copts o;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(anchor_usage, stdout);
      return TEEX_EXIT_OK;
    }
  const char *chain_conf = take_opt(&argc, argv, "--chain-conf");
  const char *key_file = take_opt(&argc, argv, "--key-file");
  const char *doc = take_opt(&argc, argv, "--doc");
  int enroll = 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--enroll") == 0) {
      memmove(argv + i, argv + i + 1, sizeof(char *) * (size_t)(argc - i));
      argc--;
      enroll = 1;
      break;
    }
  if (chain_conf == NULL || key_file == NULL) {
    fputs(anchor_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  memset(&o, 0, sizeof o);
  int rc = copts_parse(&o, argc, argv);
  if (rc != 0) {
    copts_free(&o);
    return rc < 0 ? TEEX_EXIT_OK : rc;
  }
  struct teex_ds_replica_info info;
  struct teex_err err;
  int found = 0;
  teex_err_clear(&err);
  if (enroll) {
    rc = ds_enroll(&o, chain_conf, key_file, &err);
    copts_free(&o);
    if (rc != 0)
      return teex_cli_fail("ds anchor --enroll: %s", err.msg);
    return TEEX_EXIT_OK;
  }
  for (size_t i = 0; i < o.k.group.n_members && !found; i++)
    found = teex_ds_replica_info_get(o.k.tls, o.k.addrs[i], o.timeout_ms, &info,
                                     &err) == 0 &&
            info.leader && !info.failed;
  if (!found) {
    copts_free(&o);
    return teex_cli_fail("ds anchor: no leader answered (%s)", err.msg);
  }
  rc = teex_cli_ds_anchor_submit(chain_conf, key_file, o.k.group.id,
                                 info.last_applied, info.term,
                                 info.applied_chain, doc, &err);
  copts_free(&o);
  if (rc != 0)
    return teex_cli_fail("ds anchor: %s", err.msg);
  return TEEX_EXIT_OK;
}

/* ---- membership ---- */

static const char member_usage[] =
    "usage: teex ds add-replica [--state DIR] [--cert FILE --key FILE]\n"
    "                           [--wait MS] ID PEER CLIENT\n"
    "       teex ds remove-replica [--state DIR] [--cert FILE --key FILE] ID\n"
    "       teex ds members [--state DIR] [--cert FILE --key FILE]\n"
    "       teex ds rotate-key [--state DIR] [--cert FILE --key FILE]\n"
    "\n"
    "Changes the membership of a running TEE-DS group through its leader\n"
    "(the certificate must be one of the group's operators). add-replica\n"
    "waits for the new replica (teex ds init --join, then teex ds run) to\n"
    "show up with evidence the group's policy accepts, adds it as a spare,\n"
    "lets it catch up and makes it a voter. remove-replica removes a\n"
    "replica (the leader first hands leadership over); stop its process\n"
    "afterwards. Every replica rewrites [members] of its group.conf.\n"
    "rotate-key makes a new group key epoch on the leader: entries and\n"
    "snapshots written from then on are sealed under it, and only the\n"
    "current members receive it (do it after removing a replica or\n"
    "revoking a replica's build; what a removed replica already held\n"
    "stays readable to it).\n"
    "  --wait MS   add: how long to wait for the replica (default 60000)\n";

static void print_members(const struct teex_ds_member_list *l) {
  for (size_t i = 0; i < l->n; i++)
    printf("%llu %s %s %s\n", (unsigned long long)l->m[i].id, l->m[i].peer,
           l->m[i].client,
           l->role[i] == TEEX_DS_ROLE_VOTER     ? "voter"
           : l->role[i] == TEEX_DS_ROLE_STANDBY ? "standby"
                                                : "spare");
}

static int member_cmd(int argc, char **argv, uint32_t op) {
  static struct copts o;
  memset(&o, 0, sizeof o);
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(member_usage, stdout);
      return TEEX_EXIT_OK;
    }
  const char *wait = take_opt(&argc, argv, "--wait");
  uint64_t wait_ms = TEEX_DS_MEMBER_DEFAULT_WAIT_MS;
  if (wait != NULL && (teex_parse_u64(wait, &wait_ms) != 0 || wait_ms == 0 ||
                       wait_ms > 3600000))
    return teex_cli_fail("--wait: 1..3600000 ms");
  int rc = copts_parse(&o, argc, argv);
  if (rc != 0) {
    copts_free(&o);
    return rc < 0 ? TEEX_EXIT_OK : rc;
  }
  int nargs = argc - optind;
  char **args = argv + optind;
  int want = op == TEEX_DS_MEMBER_ADD ? 3 : op == TEEX_DS_MEMBER_REMOVE ? 1 : 0;
  struct teex_ds_member_req r;
  memset(&r, 0, sizeof r);
  r.op = op;
  if (nargs != want ||
      (want > 0 && (teex_parse_u64(args[0], &r.id) != 0 || r.id == 0))) {
    copts_free(&o);
    fputs(member_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  if (op == TEEX_DS_MEMBER_ADD) {
    if (!teex_ds_member_addr_ok(args[1]) || !teex_ds_member_addr_ok(args[2])) {
      copts_free(&o);
      return teex_cli_fail("PEER and CLIENT: HOST:PORT addresses");
    }
    snprintf(r.peer, sizeof r.peer, "%s", args[1]);
    snprintf(r.client, sizeof r.client, "%s", args[2]);
    r.wait_ms = (uint32_t)wait_ms;
  }
  uint32_t timeout = op == TEEX_DS_MEMBER_ADD      ? (uint32_t)wait_ms + 40000
                     : op == TEEX_DS_MEMBER_REMOVE ? o.timeout_ms + 10000
                                                   : o.timeout_ms;
  struct teex_ds_member_list l;
  struct teex_err err;
  teex_err_clear(&err);
  rc = teex_ds_member_call(o.k.tls, o.k.addrs, o.k.group.n_members, &r, timeout,
                           &l, &err);
  copts_free(&o);
  if (rc != 0)
    return teex_cli_fail("ds %s: %s",
                         op == TEEX_DS_MEMBER_ADD      ? "add-replica"
                         : op == TEEX_DS_MEMBER_REMOVE ? "remove-replica"
                         : op == TEEX_DS_MEMBER_ROTATE ? "rotate-key"
                                                       : "members",
                         err.msg);
  if (op == TEEX_DS_MEMBER_ADD)
    printf("replica %llu added\n", (unsigned long long)r.id);
  else if (op == TEEX_DS_MEMBER_REMOVE)
    printf("replica %llu removed (stop its process)\n",
           (unsigned long long)r.id);
  else if (op == TEEX_DS_MEMBER_ROTATE)
    printf("group key rotated (the members below receive the new epoch)\n");
  print_members(&l);
  return TEEX_EXIT_OK;
}

static int ds_add_replica(int argc, char **argv) {
  return member_cmd(argc, argv, TEEX_DS_MEMBER_ADD);
}
static int ds_remove_replica(int argc, char **argv) {
  return member_cmd(argc, argv, TEEX_DS_MEMBER_REMOVE);
}
static int ds_rotate_key(int argc, char **argv) {
  return member_cmd(argc, argv, TEEX_DS_MEMBER_ROTATE);
}
static int ds_members(int argc, char **argv) {
  return member_cmd(argc, argv, TEEX_DS_MEMBER_LIST);
}

static const struct teex_cli_cmd ds_commands[] = {
    {"init", ds_init, "create a replica's state directory"},
    {"run", ds_run, "run one replica of a TEE-DS group"},
    {"client-key", ds_client_key, "make a client key and certificate"},
    {"get", ds_get, "read a key"},
    {"set", ds_set, "write a key"},
    {"del", ds_del, "delete a key"},
    {"scan", ds_scan, "list keys under a prefix"},
    {"status", ds_status, "leader, term, lag and health of each replica"},
    {"anchor", ds_anchor, "commit the group's log head to the chain"},
    {"add-replica", ds_add_replica, "add a replica to a running group"},
    {"remove-replica", ds_remove_replica,
     "remove a replica from a running group"},
    {"members", ds_members, "the group's raft configuration"},
    {"rotate-key", ds_rotate_key,
     "new group key epoch, handed to the current members only"},
    {"place", teex_cmd_ds_place,
     "groups and namespace placement (several groups)"},
    {"move", teex_cmd_ds_move, "move a namespace to another group online"},
    {"proxy", teex_cmd_ds_proxy,
     "serve a namespace to local Redis tools (RESP)"},
    {NULL, NULL, NULL},
};

int teex_cmd_ds(int argc, char **argv) {
  return teex_cli_dispatch("teex ds", ds_commands, argc - 1, argv + 1);
}
