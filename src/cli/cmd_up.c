/* `teex up`, `teex status`, `teex down`: a whole teex network on loopback
 * for development — the local chain (anvil) with the contracts, the local
 * IPFS store, the Service Manager, and (as they are built) dispatchers and
 * workers — each its own process, logs and pid under the network folder,
 * and a network file the CLI reads by default.
 *
 * Layout of the network folder (default $TEEX_HOME, else ~/.teex):
 *   tee/            the sim platform (root and platform keys)
 *   policy/         attestation policies: enclaves.conf (what the SM
 *                   accepts), sm.conf (what clients require of the SM)
 *   run/NAME.pid    pids; run/NAME.ready ready files; run/NAME.cmd the
 *                   command line each daemon was started with, one
 *                   argument per line (what `teex up --restart` reuses)
 *   logs/NAME.log   component logs
 *   network.conf    endpoints and addresses (read by `teex status`)
 */
#include "cli/cli.h"

#include "ds/group.h"
#include "teex/ds_client.h"
#include "teex/ds_server.h"
#include "teex/log.h"
#include "teex/tee_policy.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/mem.h"
#include "teex/sm_client.h"
#include "teex/crypto.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm.h"
#include "teex/tee.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long up waits for a component to be ready. A deadline for a broken
 * component only (a component that exits is noticed at once): generous, as
 * a loaded 2-core machine takes well over 20 s to start some of them. */
#define READY_TIMEOUT_MS 60000

struct net {
  char dir[PATH_MAX];
  char exe[PATH_MAX];
  const char *chain_port;
  const char *settle_interval; /* the dispatcher's, milliseconds */
  const char *settle_receipts; /* NULL: the dispatcher's default */
  const char *restart;         /* --restart NAME, else NULL */
};

static int net_parse(int argc, char **argv, struct net *n, const char *usage) {
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, 'd'},
      {"chain-port", required_argument, NULL, 'p'},
      {"settle-interval", required_argument, NULL, 'i'},
      {"settle-receipts", required_argument, NULL, 'r'},
      {"restart", required_argument, NULL, 'R'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  n->chain_port = "8545";
  n->settle_interval = "5000";
  n->settle_receipts = NULL;
  n->restart = NULL;
  teex_cli_data_dir(n->dir, sizeof n->dir);
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'd':
      snprintf(n->dir, sizeof n->dir, "%s", optarg);
      break;
    case 'p':
      n->chain_port = optarg;
      break;
    case 'i':
      n->settle_interval = optarg;
      break;
    case 'r':
      n->settle_receipts = optarg;
      break;
    case 'R':
      n->restart = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return -1;
    default:
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  uint64_t v;
  if (optind != argc || teex_parse_u64(n->settle_interval, &v) != 0 || v == 0 ||
      (n->settle_receipts != NULL &&
       (teex_parse_u64(n->settle_receipts, &v) != 0 || v == 0 ||
        v > UINT32_MAX))) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  ssize_t len = readlink("/proc/self/exe", n->exe, sizeof n->exe - 1);
  if (len <= 0) {
    teex_cli_fail("cannot find the teex executable");
    return TEEX_EXIT_FAIL;
  }
  n->exe[len] = '\0';
  return 0;
}

/* DIR/SUB/NAME.EXT, e.g. path_of(n, p, size, "run", "sm", "pid"). */
static void path_of(const struct net *n, char *out, size_t size,
                    const char *sub, const char *name, const char *ext) {
  snprintf(out, size, "%s/%s/%s.%s", n->dir, sub, name, ext);
}

static int mkdirs(const struct net *n) {
  const char *subs[] = {"", "/policy", "/run", "/logs"};
  for (size_t i = 0; i < 4; i++) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s%s", n->dir, subs[i]);
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
      return teex_cli_fail("create %s: %s", p, strerror(errno));
  }
  return 0;
}

static int read_pid(const struct net *n, const char *name) {
  char p[PATH_MAX];
  path_of(n, p, sizeof p, "run", name, "pid");
  FILE *f = fopen(p, "r");
  if (f == NULL)
    return 0;
  char line[32] = "";
  if (fgets(line, sizeof line, f) == NULL)
    line[0] = '\0';
  fclose(f);
  line[strcspn(line, "\n")] = '\0';
  uint64_t v;
  if (teex_parse_u64(line, &v) != 0 || v == 0 || v > INT32_MAX)
    return 0;
  return (int)v;
}

/* A process that exists and is not a zombie: a daemon killed after `teex
 * up` exited is no child of ours, and whoever inherited it may not have
 * reaped it yet. */
static int alive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0)
    return 0;
  char p[64], buf[256];
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  FILE *f = fopen(p, "r");
  if (f == NULL)
    return 1; /* no procfs: trust kill() */
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  /* "pid (comm) S ...": the state follows the last ')' */
  const char *close = strrchr(buf, ')');
  return close == NULL || close[1] == '\0' || close[2] != 'Z';
}

#define CMD_MAX_ARGS 64

/* Writes argv to run/NAME.cmd, one argument per line. */
static int save_cmd(const struct net *n, const char *name, char *const argv[]) {
  char p[PATH_MAX];
  path_of(n, p, sizeof p, "run", name, "cmd");
  FILE *f = fopen(p, "w");
  if (f == NULL)
    return teex_cli_fail("write %s: %s", p, strerror(errno));
  int bad = 0;
  for (size_t i = 0; argv[i] != NULL; i++) {
    if (i >= CMD_MAX_ARGS || strchr(argv[i], '\n') != NULL ||
        strlen(argv[i]) >= PATH_MAX)
      bad = 1;
    else
      fprintf(f, "%s\n", argv[i]);
  }
  if (fclose(f) != 0 || bad)
    return teex_cli_fail("write %s: an argument has a newline or is too long",
                         p);
  return 0;
}

/* A command line read back from run/NAME.cmd: at most CMD_MAX_ARGS
 * arguments of less than PATH_MAX bytes each. */
struct cmdline {
  char *argv[CMD_MAX_ARGS + 1];
  size_t argc;
};

static void cmdline_free(struct cmdline *c) {
  for (size_t i = 0; i < c->argc; i++)
    free(c->argv[i]);
  c->argc = 0;
  c->argv[0] = NULL;
}

static int load_cmd(const struct net *n, const char *name, struct cmdline *c) {
  char p[PATH_MAX];
  path_of(n, p, sizeof p, "run", name, "cmd");
  c->argc = 0;
  c->argv[0] = NULL;
  FILE *f = fopen(p, "r");
  if (f == NULL)
    return teex_cli_fail("%s: %s (was it started by this `teex up`?)", p,
                         strerror(errno));
  char *line = malloc(PATH_MAX + 1);
  int rc = line == NULL ? teex_cli_fail("out of memory") : 0;
  while (rc == 0 && fgets(line, PATH_MAX + 1, f) != NULL) {
    size_t len = strcspn(line, "\n");
    if (line[len] != '\n' || c->argc >= CMD_MAX_ARGS) {
      rc = teex_cli_fail("%s: malformed (a line too long or too many)", p);
      break;
    }
    line[len] = '\0';
    if ((c->argv[c->argc] = strdup(line)) == NULL) {
      rc = teex_cli_fail("out of memory");
      break;
    }
    c->argv[++c->argc] = NULL;
  }
  free(line);
  fclose(f);
  if (rc == 0 && c->argc < 2)
    rc = teex_cli_fail("%s: empty", p);
  if (rc != 0)
    cmdline_free(c);
  return rc;
}

/* Starts argv detached (own session), output to logs/NAME.log (appended),
 * pid to run/NAME.pid, the command line to run/NAME.cmd. */
static int spawn(const struct net *n, const char *name, char *const argv[]) {
  char log[PATH_MAX], pidf[PATH_MAX];
  path_of(n, log, sizeof log, "logs", name, "log");
  path_of(n, pidf, sizeof pidf, "run", name, "pid");
  int rc = save_cmd(n, name, argv);
  if (rc != 0)
    return rc;
  pid_t pid = fork();
  if (pid < 0)
    return teex_cli_fail("fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (in >= 0)
      dup2(in, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  FILE *f = fopen(pidf, "w");
  if (f == NULL)
    return teex_cli_fail("write %s", pidf);
  fprintf(f, "%d\n", (int)pid);
  fclose(f);
  return 0;
}

/* Runs `teex ARGS...` to completion; its stdout goes to out (first line,
 * trimmed) when out is not NULL, else through. stderr passes through.
 * Returns its exit status, or -1. */
static int run_self(const struct net *n, char *const args[], char *out,
                    size_t out_size) {
  int pipefd[2] = {-1, -1};
  fflush(stdout); /* keep our lines before the child's */
  if (out != NULL && pipe(pipefd) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (out != NULL) {
      dup2(pipefd[1], 1);
      close(pipefd[0]);
      close(pipefd[1]);
    }
    char *argv[32];
    size_t i = 0;
    argv[i++] = (char *)n->exe;
    for (; args[i - 1] != NULL && i < 31; i++)
      argv[i] = args[i - 1];
    argv[i] = NULL;
    execv(n->exe, argv);
    _exit(127);
  }
  if (out != NULL) {
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < out_size &&
           (r = read(pipefd[0], out + len, out_size - 1 - len)) > 0)
      len += (size_t)r;
    out[len] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    char drain[256];
    while (read(pipefd[0], drain, sizeof drain) > 0)
      ;
    close(pipefd[0]);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

static int wait_file(const char *path, int pid, int ms) {
  for (int waited = 0; waited < ms; waited += 20) {
    if (access(path, F_OK) == 0)
      return 0;
    if (!alive(pid))
      return -1;
    /* Reap a child that exited so kill(pid, 0) notices. */
    waitpid(pid, NULL, WNOHANG);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

static int measure(const struct net *n, const char *role, uint8_t out[32]) {
  struct teex_tee_config tc;
  memset(&tc, 0, sizeof tc);
  tc.data_dir = n->dir;
  tc.role = role;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&tc, &tee, &err) != 0)
    return teex_cli_fail("tee (%s): %s", role, err.msg);
  memcpy(out, teex_tee_self(tee)->mr_enclave, 32);
  teex_tee_close(tee);
  return 0;
}

static int write_policies(const struct net *n) {
  uint8_t root[32], mw[32], md[32], ms[32];
  struct teex_err err;
  if (teex_tee_sim_root(n->dir, root, &err) != 0)
    return teex_cli_fail("root: %s", err.msg);
  if (measure(n, "worker", mw) || measure(n, "dispatcher", md) ||
      measure(n, "sm", ms))
    return TEEX_EXIT_FAIL;
  char r[65], w[65], d[65], s[65], p[PATH_MAX];
  teex_hex_encode(root, 32, r);
  teex_hex_encode(mw, 32, w);
  teex_hex_encode(md, 32, d);
  teex_hex_encode(ms, 32, s);
  snprintf(p, sizeof p, "%s/policy/enclaves.conf", n->dir);
  FILE *f = fopen(p, "w");
  if (f == NULL)
    return teex_cli_fail("write %s", p);
  fprintf(f,
          "# What the Service Manager and dispatchers accept from enclaves:\n"
          "# this build of teex, simulated evidence (local network only).\n"
          "[policy]\nallow_simulated = true\nroles = worker, dispatcher\n"
          "[roots]\nnet = %s\n[measurements]\nworker = %s\ndispatcher = %s\n",
          r, w, d);
  fclose(f);
  /* TEE-DS's enclave clients: workers (teex.kv, by SM grant), the SM and
   * the dispatcher (their own state, namespaces sm and dispatcher). */
  snprintf(p, sizeof p, "%s/policy/ds-clients.conf", n->dir);
  f = fopen(p, "w");
  if (f == NULL)
    return teex_cli_fail("write %s", p);
  fprintf(f,
          "# Which enclaves may be TEE-DS clients (group.conf [enclaves]\n"
          "# says which namespace each role reaches).\n"
          "[policy]\nallow_simulated = true\nroles = worker, sm, dispatcher\n"
          "[roots]\nnet = %s\n[measurements]\nworker = %s\nsm = %s\n"
          "dispatcher = %s\n",
          r, w, s, d);
  fclose(f);
  snprintf(p, sizeof p, "%s/policy/sm.conf", n->dir);
  f = fopen(p, "w");
  if (f == NULL)
    return teex_cli_fail("write %s", p);
  fprintf(f,
          "# What clients require of the Service Manager.\n"
          "[policy]\nallow_simulated = true\nroles = sm\n"
          "[roots]\nnet = %s\n[measurements]\nsm = %s\n",
          r, s);
  fclose(f);
  return 0;
}

static int read_ready(const char *path, const char *key, uint64_t *v) {
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  int rc = teex_config_load(&c, path, &err);
  if (rc == 0)
    rc = teex_config_get_u64(&c, key, 0, v, &err);
  teex_config_free(&c);
  return rc;
}

/* The dev chain's account 0 (anvil's standard mnemonic; the key is public):
 * the operator of the local network, who pays for registrations. Only ever
 * used on chain id 31337. */
#define DEV_OPERATOR_KEY                                                       \
  "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ENCLAVE_FUNDING_WEI 10000000000000000000ull /* 10 ether, for gas */

/* Funds addr_hex for gas from the dev operator account (dev chain only; up
 * to ENCLAVE_FUNDING_WEI once: an address that has it already is left). */
static int fund_on_chain(const char *chain_conf, const char *addr_hex) {
  struct teex_err err;
  struct teex_config c;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *s = NULL;
  uint8_t sk[32], to[20];
  teex_u256 bal;
  size_t n;
  memset(sk, 0, sizeof sk);
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, &err);
  uint64_t id = 0;
  if (rc == 0)
    rc = teex_config_get_u64(&c, "chain_id", 31337, &id, &err);
  if (rc == 0 && id != 31337)
    goto done; /* not the dev chain: the operator funds the SM */
  if (rc == 0 && teex_eth_address_parse(addr_hex, to) != 0)
    rc = teex_err_set(&err, TEEX_EINVAL, "not an address: %s", addr_hex);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        &err);
  if (rc == 0)
    rc = teex_eth_get_balance(rpc, to, "latest", bal, &err);
  if (rc == 0) {
    teex_u256 want;
    teex_u256_from_u64(want, ENCLAVE_FUNDING_WEI / 2);
    if (teex_u256_cmp(bal, want) >= 0)
      goto done;
  }
  if (rc == 0 &&
      (teex_hex_decode(DEV_OPERATOR_KEY, sk, 32, &n) != 0 || n != 32))
    rc = teex_err_set(&err, TEEX_EINTERNAL, "dev key");
  if (rc == 0)
    rc = teex_eth_sender_new(rpc, sk, NULL, &s, &err);
  if (rc == 0) {
    struct teex_eth_request req;
    memset(&req, 0, sizeof req);
    req.has_to = 1;
    memcpy(req.to, to, 20);
    teex_u256_from_u64(req.value, ENCLAVE_FUNDING_WEI);
    req.gas_limit = 21000;
    struct teex_eth_receipt r;
    rc = teex_eth_sender_transact(s, &req, 60000, &r, &err);
    if (rc == 0)
      teex_eth_receipt_clear(&r);
  }
done:
  teex_wipe(sk, sizeof sk);
  teex_eth_sender_free(s);
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  if (rc != 0)
    return teex_cli_fail("fund %s on chain: %s", addr_hex, err.msg);
  return 0;
}

/* Submits an SM-signed registration statement to the EnclaveRegistry and
 * funds the enclave's address for gas, from the dev operator account. */
static int register_on_chain(const char *chain_conf, const char *reg_file) {
  struct teex_err err;
  struct teex_config c;
  struct teex_chain_addrs addrs;
  struct teex_enclave_registration reg;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *s = NULL;
  uint8_t sk[32];
  size_t n;
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, &err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, &addrs, &err);
  if (rc == 0 && addrs.chain_id != 31337)
    rc = teex_err_set(&err, TEEX_EPERM,
                      "not the local dev chain: register enclaves yourself");
  if (rc == 0)
    rc = teex_enclave_registration_read(reg_file, &reg, &err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        &err);
  if (rc == 0 &&
      (teex_hex_decode(DEV_OPERATOR_KEY, sk, 32, &n) != 0 || n != 32))
    rc = teex_err_set(&err, TEEX_EINTERNAL, "dev key");
  if (rc == 0)
    rc = teex_eth_sender_new(rpc, sk, NULL, &s, &err);
  teex_chain_use_errors(rpc);
  int active = 0;
  if (rc == 0)
    rc = teex_chain_enclave_active(rpc, &addrs, reg.enclave, reg.role, &active,
                                   &err);
  if (rc == 0 && !active)
    rc = teex_chain_register_enclave(s, &addrs, reg.enclave, reg.role,
                                     reg.measurement, reg.issued_at,
                                     reg.signature, 0, &err);
  if (rc == 0) {
    struct teex_eth_request req;
    memset(&req, 0, sizeof req);
    req.has_to = 1;
    memcpy(req.to, reg.enclave, 20);
    teex_u256_from_u64(req.value, ENCLAVE_FUNDING_WEI);
    req.gas_limit = 21000;
    struct teex_eth_receipt r;
    rc = teex_eth_sender_transact(s, &req, 60000, &r, &err);
    if (rc == 0)
      teex_eth_receipt_clear(&r);
  }
  teex_wipe(sk, sizeof sk);
  teex_eth_sender_free(s);
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  if (rc != 0)
    return teex_cli_fail("register %s on chain: %s", reg_file, err.msg);
  return 0;
}

/* Reads key's string value from a key = value file into out. */
static int read_value(const char *path, const char *key, char *out,
                      size_t size) {
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  int rc = teex_config_load(&c, path, &err);
  const char *v = rc == 0 ? teex_config_get(&c, key, NULL) : NULL;
  if (v != NULL)
    snprintf(out, size, "%s", v);
  teex_config_free(&c);
  return v != NULL ? 0 : -1;
}

/* Waits until the log file contains text (the component says it is done
 * with a step), at most ms. */
static int wait_log(const char *path, const char *text, int ms) {
  for (int waited = 0; waited < ms; waited += 50) {
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      char line[2048];
      int hit = 0;
      while (!hit && fgets(line, sizeof line, f) != NULL)
        hit = strstr(line, text) != NULL;
      fclose(f);
      if (hit)
        return 0;
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

#define UP_WORKERS 2

/* ---- TEE-DS: a 3-replica group (DIR/ds/ds-N), a client identity for the
 * operator (DIR/ds/client, namespace "dev") ---- */

#define UP_DS 3

/* A loopback port free right now for a replica, written into the group's
 * config and bound later: taken from 20000-31999, below the kernel's
 * ephemeral range (32768+), so that no connect() or bind(0) of another
 * process — another daemon of this very network — is handed it meanwhile. */
static int free_port(void) {
  for (int tries = 0; tries < 200; tries++) {
    uint32_t r;
    teex_random(&r, sizeof r);
    int port = 20000 + (int)(r % 12000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok)
      return port;
  }
  return -1;
}

static int ds_wait_leader(const struct net *n, int ms);

/* Creates the group on the first up (ports chosen then stay in its
 * group.conf), starts the replicas and waits until each serves. */
/* The dev chain's account 5 (public key, chain id 31337 only): owns the
 * group's anchors on chain and pays the replicas' anchoring gas. */
#define DEV_DS_ANCHOR_KEY                                                      \
  "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"

static int write_secret_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return -1;
  size_t len = strlen(text);
  int ok = write(fd, text, len) == (ssize_t)len;
  return close(fd) == 0 && ok ? 0 : -1;
}

/* Once per network: the replicas' attested enclave addresses become the
 * group's anchorers on chain (teex ds anchor --enroll). */
static int ds_enroll(const struct net *n, const char *chain,
                     const char *payer) {
  char marker[PATH_MAX], state[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
  snprintf(marker, sizeof marker, "%s/ds/anchor-enrolled", n->dir);
  if (access(marker, F_OK) == 0)
    return 0;
  snprintf(state, sizeof state, "%s/ds/ds-1", n->dir);
  snprintf(cert, sizeof cert, "%s/ds/client/client.pem", n->dir);
  snprintf(key, sizeof key, "%s/ds/client/client.key", n->dir);
  char *args[] = {"ds",          "anchor",     "--enroll",    "--chain-conf",
                  (char *)chain, "--key-file", (char *)payer, "--state",
                  state,         "--cert",     cert,          "--key",
                  key,           NULL};
  char out[1024];
  if (run_self(n, args, out, sizeof out) != 0)
    return teex_cli_fail("enrolling the TEE-DS replicas as anchorers failed");
  if (write_secret_file(marker, out) != 0)
    return teex_cli_fail("write %s: %s", marker, strerror(errno));
  return 0;
}

/* 1 when the group.conf at path maps role to the namespace of that name. */
static int ds_has_namespace(const char *path, const char *role) {
  static struct teex_ds_group g;
  struct teex_err err;
  if (teex_ds_group_load(&g, path, &err) != 0)
    return 0;
  for (size_t i = 0; i < g.n_enclaves; i++)
    if (strcmp(g.enclaves[i].label, role) == 0 &&
        strcmp(g.enclaves[i].ns, role) == 0)
      return 1;
  return 0;
}

static int up_ds(const struct net *n, const char *sm_addr, const char *chain) {
  char dsdir[PATH_MAX], cdir[PATH_MAX], self[PATH_MAX], payer[PATH_MAX],
      ipfs[PATH_MAX];
  snprintf(dsdir, sizeof dsdir, "%s/ds", n->dir);
  snprintf(cdir, sizeof cdir, "%s/ds/client", n->dir);
  snprintf(self, sizeof self, "%s/ds/ds-1/self.conf", n->dir);
  if (mkdir(dsdir, 0700) != 0 && errno != EEXIST)
    return teex_cli_fail("create %s: %s", dsdir, strerror(errno));
  snprintf(payer, sizeof payer, "%s/ds/anchor-payer.key", n->dir);
  snprintf(ipfs, sizeof ipfs, "%s/ipfs", n->dir);
  if (write_secret_file(payer, DEV_DS_ANCHOR_KEY "\n") != 0)
    return teex_cli_fail("write %s: %s", payer, strerror(errno));
  if (access(self, F_OK) != 0) {
    char spki[128] = "";
    char *key[] = {"ds", "client-key", "--out", cdir, NULL};
    if (run_self(n, key, spki, sizeof spki) != 0 || strlen(spki) != 64)
      return teex_cli_fail("ds client-key failed");
    char member[UP_DS][128], client[160], state[UP_DS][PATH_MAX];
    int used[2 * UP_DS] = {0};
    for (int i = 0; i < 2 * UP_DS; i++) {
      int p;
      int tries = 0;
      do {
        p = free_port();
        for (int j = 0; j < i; j++)
          if (used[j] == p)
            p = -1;
      } while (p <= 0 && ++tries < 50);
      if (p <= 0)
        return teex_cli_fail("no free port for TEE-DS");
      used[i] = p;
    }
    for (int i = 0; i < UP_DS; i++) {
      snprintf(member[i], sizeof member[i], "%d=127.0.0.1:%d,127.0.0.1:%d",
               i + 1, used[2 * i], used[2 * i + 1]);
      snprintf(state[i], sizeof state[i], "%s/ds/ds-%d", n->dir, i + 1);
    }
    snprintf(client, sizeof client, "operator=%s:dev", spki);
    /* Workers (evidence as the SM requires it) reach a service's
     * namespace only with the SM's grant (teex.kv); the SM keeps its own
     * state in namespace sm. */
    char cpol[PATH_MAX];
    snprintf(cpol, sizeof cpol, "%s/policy/ds-clients.conf", n->dir);
    char *init1[] = {"ds",
                     "init",
                     "--data-dir",
                     (char *)n->dir,
                     "--state",
                     state[0],
                     "--id",
                     "1",
                     "--new-group",
                     "--member",
                     member[0],
                     "--member",
                     member[1],
                     "--member",
                     member[2],
                     "--client",
                     client,
                     "--operator",
                     "operator",
                     "--enclave",
                     "worker=*",
                     "--enclave",
                     "sm=sm",
                     "--enclave",
                     "dispatcher=dispatcher",
                     "--grant-signer",
                     (char *)sm_addr,
                     "--client-policy",
                     cpol,
                     NULL};
    char out[256];
    if (run_self(n, init1, out, sizeof out) != 0)
      return teex_cli_fail("ds init failed");
    char group[PATH_MAX];
    snprintf(group, sizeof group, "%s/group.conf", state[0]);
    for (int i = 1; i < UP_DS; i++) {
      char id[8];
      snprintf(id, sizeof id, "%d", i + 1);
      char *init[] = {"ds",      "init",   "--data-dir", (char *)n->dir,
                      "--state", state[i], "--id",       id,
                      "--group", group,    NULL};
      if (run_self(n, init, out, sizeof out) != 0)
        return teex_cli_fail("ds init failed");
    }
  }
  char ready[UP_DS][PATH_MAX];
  for (int i = 0; i < UP_DS; i++) {
    char name[16], state[PATH_MAX];
    snprintf(name, sizeof name, "ds-%d", i + 1);
    snprintf(state, sizeof state, "%s/ds/%s", n->dir, name);
    path_of(n, ready[i], sizeof ready[i], "run", name, "ready");
    unlink(ready[i]);
    char *argv[] = {(char *)n->exe, "ds",
                    "run",          "--data-dir",
                    (char *)n->dir, "--state",
                    state,          "--ready-file",
                    ready[i],       "--chain-conf",
                    (char *)chain,  "--anchor-payer",
                    payer,          "--ipfs-store",
                    ipfs,           "--anchor-interval",
                    "5000",         NULL};
    int rc = spawn(n, name, argv);
    if (rc != 0)
      return rc;
  }
  for (int i = 0; i < UP_DS; i++) {
    char name[16];
    snprintf(name, sizeof name, "ds-%d", i + 1);
    if (wait_file(ready[i], read_pid(n, name), READY_TIMEOUT_MS) != 0)
      return teex_cli_fail("%s did not start; see %s/logs/%s.log", name, n->dir,
                           name);
  }
  if (ds_wait_leader(n, READY_TIMEOUT_MS) != 0)
    return teex_cli_fail("the TEE-DS group elected no leader; see "
                         "%s/logs/ds-*.log",
                         n->dir);
  return ds_enroll(n, chain, payer);
}

/* The operator's client context for the group of DIR (policy from ds-1). */
struct ds_view {
  struct teex_ds_group g;
  struct teex_tee_policy pol;
  struct teex_ratls_verifier v;
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *ctx;
};

static int ds_view_open(const struct net *n, struct ds_view *d,
                        struct teex_err *err) {
  memset(d, 0, sizeof(*d));
  char state[PATH_MAX], path[PATH_MAX], kp[PATH_MAX], cp[PATH_MAX];
  snprintf(state, sizeof state, "%s/ds/ds-1", n->dir);
  snprintf(path, sizeof path, "%s/%s", state, TEEX_DS_GROUP_FILE);
  int rc = teex_ds_group_load(&d->g, path, err);
  if (rc != 0)
    return rc;
  teex_tee_policy_init(&d->pol);
  snprintf(path, sizeof path, "%s/%s", state, TEEX_DS_POLICY_FILE);
  if ((rc = teex_tee_policy_load(&d->pol, path, err)) != 0)
    return rc;
  snprintf(kp, sizeof kp, "%s/ds/client/client.key", n->dir);
  snprintf(cp, sizeof cp, "%s/ds/client/client.pem", n->dir);
  FILE *f = fopen(kp, "r");
  if (f) {
    d->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
  }
  if ((f = fopen(cp, "r")) != NULL) {
    d->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
  }
  if (d->key == NULL || d->cert == NULL)
    return teex_err_set(err, TEEX_ENOTFOUND, "no client identity in %s/ds",
                        n->dir);
  d->v.policy = &d->pol;
  struct teex_tls_config tc = {.cert = d->cert,
                               .key = d->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &d->v};
  return teex_tls_ctx_new(&d->ctx, &tc, 0, err);
}

static void ds_view_close(struct ds_view *d) {
  teex_tls_ctx_free(d->ctx);
  EVP_PKEY_free(d->key);
  X509_free(d->cert);
}

/* Waits until a replica reports itself leader. */
static int ds_wait_leader(const struct net *n, int ms) {
  static struct ds_view d;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = ds_view_open(n, &d, &err);
  int found = 0;
  enum teex_log_level lvl = teex_log_get_level();
  teex_log_set_level(TEEX_LOG_ERROR);
  for (int waited = 0; rc == 0 && !found && waited < ms; waited += 50) {
    for (size_t i = 0; i < d.g.n_members && !found; i++) {
      struct teex_ds_replica_info info;
      if (teex_ds_replica_info_get(d.ctx, d.g.members[i].client, 1000, &info,
                                   &err) == 0 &&
          info.leader)
        found = 1;
    }
    if (!found) {
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  teex_log_set_level(lvl);
  ds_view_close(&d);
  return found ? 0 : -1;
}

/* One line per replica for `teex status`; 1 if any is unhealthy. */
static int status_ds(const struct net *n) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/ds/ds-1/%s", n->dir, TEEX_DS_GROUP_FILE);
  if (access(path, F_OK) != 0)
    return 0; /* no group in this network */
  static struct ds_view d;
  struct teex_err err;
  teex_err_clear(&err);
  if (ds_view_open(n, &d, &err) != 0) {
    printf("%-11s UNHEALTHY %s\n", "ds", err.msg);
    ds_view_close(&d);
    return 1;
  }
  int bad = 0;
  teex_log_set_level(TEEX_LOG_ERROR);
  for (size_t i = 0; i < d.g.n_members; i++) {
    const struct teex_ds_member *m = &d.g.members[i];
    char name[32];
    snprintf(name, sizeof name, "ds-%llu", (unsigned long long)m->id);
    int pid = read_pid(n, name);
    struct teex_ds_replica_info info;
    if (!alive(pid)) {
      printf("%-11s DOWN (no process)\n", name);
      bad = 1;
    } else if (teex_ds_replica_info_get(d.ctx, m->client, 5000, &info, &err) !=
               0) {
      printf("%-11s UNHEALTHY pid %d %s: %s\n", name, pid, m->client, err.msg);
      bad = 1;
    } else {
      printf("%-11s %s  pid %d  %s  %s term %llu applied %llu%s\n", name,
             info.failed ? "FAILED" : "ok", pid, m->client,
             info.leader ? "leader" : "follower", (unsigned long long)info.term,
             (unsigned long long)info.last_applied,
             info.voting ? "" : " (catching up)");
      bad |= info.failed != 0;
    }
  }
  ds_view_close(&d);
  return bad;
}

static const char up_usage[] =
    "usage: teex up [--dir DIR] [--chain-port PORT] [--settle-interval MS]\n"
    "               [--settle-receipts N]\n"
    "       teex up [--dir DIR] --restart sm|dispatcher|worker-N|ds-N|chain\n"
    "\n"
    "Starts a teex network on loopback in DIR (default $TEEX_HOME, else\n"
    "~/.teex): the sim TEE platform, the local chain (anvil on PORT,\n"
    "default 8545) with the teex contracts, the Service Manager, a 3-replica\n"
    "TEE-DS group, a dispatcher (settling every MS milliseconds, default\n"
    "5000, or as soon as N receipts wait, default 100) and two workers, each\n"
    "its own process\n"
    "(logs in DIR/logs), and writes DIR/network.conf. `teex status` shows\n"
    "their health; `teex down` stops them. A second `teex up` restores the\n"
    "chain's state.\n"
    "\n"
    "--restart NAME starts one component of a running network again (after\n"
    "a crash, or stopping it first if it still runs) with its first command\n"
    "line, its state directory and the same ports, so its peers find it\n"
    "again; `chain` stops anvil (which writes its state) and starts it on\n"
    "the same port.\n";

/* Stops pid: SIGTERM, then SIGKILL after 5 s. */
static void stop_pid(int pid) {
  if (!alive(pid))
    return;
  kill(pid, SIGTERM);
  for (int waited = 0; waited < 5000 && alive(pid); waited += 20) {
    waitpid(pid, NULL, WNOHANG);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (alive(pid))
    kill(pid, SIGKILL);
}

/* The listening flags of each daemon and the key of its ready file that
 * holds the port it bound (up starts them on port 0). */
static const struct {
  const char *prefix, *flag, *key;
} listen_ports[] = {{"sm", "--listen", "enclave_port"},
                    {"sm", "--client-listen", "client_port"},
                    {"dispatcher", "--listen", "worker_port"},
                    {"dispatcher", "--user-listen", "user_port"},
                    {"worker-", "--listen", "port"}};

static int restart_chain(const struct net *n) {
  char chain[PATH_MAX], url[256] = "";
  snprintf(chain, sizeof chain, "%s/chain.conf", n->dir);
  if (read_value(chain, "rpc_url", url, sizeof url) != 0)
    return teex_cli_fail("restart chain: no rpc_url in %s", chain);
  const char *colon = strrchr(url, ':');
  uint64_t port;
  if (colon == NULL || teex_parse_u64(colon + 1, &port) != 0 || port == 0 ||
      port > 65535)
    return teex_cli_fail("restart chain: %s is not a local chain", url);
  char *chain_down[] = {"chain", "down", "--dir", (char *)n->dir, NULL};
  run_self(n, chain_down, NULL, 0); /* fails when it is already down */
  char *chain_up[] = {
      "chain",           "up", "--dir", (char *)n->dir, "--port",
      (char *)colon + 1, NULL};
  if (run_self(n, chain_up, NULL, 0) != 0)
    return teex_cli_fail("restart chain: anvil did not start; see %s/logs/"
                         "anvil.log",
                         n->dir);
  printf("restarted chain on %s\n", url);
  return TEEX_EXIT_OK;
}

static int restart(const struct net *n, const char *name) {
  if (strcmp(name, "chain") == 0)
    return restart_chain(n);
  int is_worker = strncmp(name, "worker-", 7) == 0;
  int is_ds = strncmp(name, "ds-", 3) == 0;
  uint64_t idx;
  if (strcmp(name, "sm") != 0 && strcmp(name, "dispatcher") != 0 &&
      !(is_worker && teex_parse_u64(name + 7, &idx) == 0 && idx >= 1 &&
        idx <= 64) &&
      !(is_ds && teex_parse_u64(name + 3, &idx) == 0 && idx >= 1 &&
        idx <= UP_DS))
    return teex_cli_fail("restart: unknown component %s (sm, dispatcher, "
                         "worker-N, ds-N or chain)",
                         name);
  struct cmdline c;
  int rc = load_cmd(n, name, &c);
  if (rc != 0)
    return rc;
  char ready[PATH_MAX], logp[PATH_MAX], chain[PATH_MAX];
  path_of(n, ready, sizeof ready, "run", name, "ready");
  path_of(n, logp, sizeof logp, "logs", name, "log");
  snprintf(chain, sizeof chain, "%s/chain.conf", n->dir);
  /* The same ports as before: what the ready file says was bound. */
  for (size_t i = 0; i + 1 < c.argc; i++)
    for (size_t k = 0; k < sizeof listen_ports / sizeof *listen_ports; k++) {
      uint64_t port = 0;
      if (strncmp(name, listen_ports[k].prefix,
                  strlen(listen_ports[k].prefix)) != 0 ||
          strcmp(c.argv[i], listen_ports[k].flag) != 0 ||
          read_ready(ready, listen_ports[k].key, &port) != 0 || port == 0 ||
          port > 65535)
        continue;
      const char *colon = strrchr(c.argv[i + 1], ':');
      int host_len = colon != NULL ? (int)(colon - c.argv[i + 1]) : 0;
      char ep[PATH_MAX];
      snprintf(ep, sizeof ep, "%.*s:%llu", host_len, c.argv[i + 1],
               (unsigned long long)port);
      char *dup = strdup(ep);
      if (dup == NULL) {
        cmdline_free(&c);
        return teex_cli_fail("out of memory");
      }
      free(c.argv[i + 1]);
      c.argv[i + 1] = dup;
    }
  /* Where it writes its SM-signed registration, for the chain. */
  char reg[PATH_MAX] = "";
  for (size_t i = 0; i + 1 < c.argc; i++)
    if (strcmp(c.argv[i], "--registration-out") == 0 ||
        strcmp(c.argv[i], "--registration-file") == 0)
      snprintf(reg, sizeof reg, "%s", c.argv[i + 1]);
  int old = read_pid(n, name);
  if (alive(old)) {
    stop_pid(old);
    printf("stopped %s (pid %d)\n", name, old);
  }
  unlink(ready);
  rc = spawn(n, name, c.argv);
  cmdline_free(&c);
  if (rc != 0)
    return rc;
  int pid = read_pid(n, name);
  if (wait_file(ready, pid, READY_TIMEOUT_MS) != 0)
    return teex_cli_fail("%s did not start again; see %s", name, logp);
  /* Same sealed state, so the same enclave key: normally registered on
   * chain already (then this only tops up its gas money). */
  if (reg[0] != '\0' && (rc = register_on_chain(chain, reg)) != 0)
    return rc;
  printf("restarted %s (pid %d); log %s\n", name, pid, logp);
  return TEEX_EXIT_OK;
}

int teex_cmd_up(int argc, char **argv) {
  struct net n;
  int rc = net_parse(argc, argv, &n, up_usage);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  if (n.restart != NULL)
    return restart(&n, n.restart);
  if ((rc = mkdirs(&n)) != 0)
    return rc;
  if (alive(read_pid(&n, "sm")))
    return teex_cli_fail("a network is already up in %s (teex down first)",
                         n.dir);
  struct teex_err err;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/tee/platform.key", n.dir);
  if (access(p, F_OK) != 0 && teex_tee_sim_init(n.dir, NULL, &err) != 0)
    return teex_cli_fail("tee init: %s", err.msg);
  if ((rc = write_policies(&n)) != 0)
    return rc;

  /* The chain: anvil (its state restored from an earlier up), then the
   * contracts, deployed once with the SM's address fixed in them; the SM
   * then runs signing for those contracts (DIR/chain.conf). */
  char sm_addr[64] = "";
  char *chain_up[] = {
      "chain", "up", "--dir", n.dir, "--port", (char *)n.chain_port, NULL};
  if (run_self(&n, chain_up, NULL, 0) != 0)
    return teex_cli_fail("the chain did not start; see %s/logs/anvil.log",
                         n.dir);
  char *sm_init[] = {"sm", "init", "--data-dir", n.dir, NULL};
  if (run_self(&n, sm_init, sm_addr, sizeof sm_addr) != 0 || sm_addr[0] != '0')
    return teex_cli_fail("sm init failed");
  char state[PATH_MAX], ready[PATH_MAX], policy[PATH_MAX], chain[PATH_MAX];
  snprintf(state, sizeof state, "%s/sm", n.dir);
  path_of(&n, ready, sizeof ready, "run", "sm", "ready");
  snprintf(policy, sizeof policy, "%s/policy/enclaves.conf", n.dir);
  snprintf(chain, sizeof chain, "%s/chain.conf", n.dir);
  unlink(ready);
  struct teex_config cc;
  teex_config_init(&cc);
  if (teex_config_load(&cc, chain, &err) != 0)
    return teex_cli_fail("%s", err.msg);
  if (teex_config_get(&cc, "service_registry", NULL) == NULL) {
    char *deploy[] = {"chain", "deploy", "--dir", n.dir, "--sm", sm_addr, NULL};
    if (run_self(&n, deploy, NULL, 0) != 0)
      return teex_cli_fail("deploying the contracts failed");
    teex_config_free(&cc);
    teex_config_init(&cc);
    if (teex_config_load(&cc, chain, &err) != 0)
      return teex_cli_fail("%s", err.msg);
  }
  const char *chain_id = teex_config_get(&cc, "chain_id", "31337");
  const char *sreg = teex_config_get(&cc, "service_registry", NULL);
  const char *ereg = teex_config_get(&cc, "enclave_registry", NULL);
  if (sreg == NULL || ereg == NULL)
    return teex_cli_fail("%s lacks the contract addresses", chain);
  /* TEE-DS before the SM, which keeps its state there, and before the
   * workers (teex.kv). The group key is made by the first replica here (no
   * --sm), so the group needs no SM to come up. */
  if ((rc = up_ds(&n, sm_addr, chain)) != 0)
    return rc;
  char sm_ds_group[PATH_MAX];
  snprintf(sm_ds_group, sizeof sm_ds_group, "%s/ds/ds-1/group.conf", n.dir);
  char *sm_argv[] = {n.exe,
                     "sm",
                     "run",
                     "--data-dir",
                     n.dir,
                     "--state",
                     state,
                     "--listen",
                     "127.0.0.1:0",
                     "--client-listen",
                     "127.0.0.1:0",
                     "--policy",
                     policy,
                     "--chain-id",
                     (char *)chain_id,
                     "--service-registry",
                     (char *)sreg,
                     "--enclave-registry",
                     (char *)ereg,
                     "--ready-file",
                     ready,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     NULL};
  /* The SM's state in the group, when the group maps the SM's role to a
   * namespace (a network made before that keeps it in the SM's sealed
   * store: said so, not silently). */
  if (ds_has_namespace(sm_ds_group, "sm")) {
    size_t k = sizeof sm_argv / sizeof sm_argv[0] - 7;
    sm_argv[k] = "--ds-group";
    sm_argv[k + 1] = sm_ds_group;
  } else {
    printf("note: %s maps no namespace to the SM: the SM keeps its state "
           "in its sealed local store\n",
           sm_ds_group);
  }
  /* Datasets: the SM reads their listings from the chain at each lease. */
  /* Revocations: the SM submits them to the EnclaveRegistry itself, from
   * its own account (funded below), so it needs the chain too. */
  const char *ds_reg = teex_config_get(&cc, "dataset_registry", NULL);
  const char *crpc = teex_config_get(&cc, "rpc_url", NULL);
  if (crpc != NULL) {
    size_t k = 0;
    while (sm_argv[k] != NULL) /* the first free slot; 4 + NULL remain */
      k++;
    sm_argv[k++] = "--chain-rpc";
    sm_argv[k++] = (char *)crpc;
    if (ds_reg != NULL) {
      sm_argv[k++] = "--dataset-registry";
      sm_argv[k++] = (char *)ds_reg;
    }
  }
  rc = spawn(&n, "sm", sm_argv);
  char rpc_url[256];
  snprintf(rpc_url, sizeof rpc_url, "%s",
           teex_config_get(&cc, "rpc_url", "http://127.0.0.1:8545"));
  char sreg_copy[64];
  snprintf(sreg_copy, sizeof sreg_copy, "%s", sreg);
  teex_config_free(&cc);
  if (rc != 0)
    return rc;
  if (wait_file(ready, read_pid(&n, "sm"), READY_TIMEOUT_MS) != 0)
    return teex_cli_fail(
        "the Service Manager did not start; see %s/logs/sm.log", n.dir);
  if ((rc = fund_on_chain(chain, sm_addr)) != 0)
    return rc;
  uint64_t client_port = 0, enclave_port = 0;
  read_ready(ready, "client_port", &client_port);
  read_ready(ready, "enclave_port", &enclave_port);

  /* The dispatcher: registered by the SM (its fresh evidence), then on
   * chain by the operator, and funded to pay for settlements. */
  char dstate[PATH_MAX], dready[PATH_MAX], dreg[PATH_MAX], ipfs_dir[PATH_MAX],
      sm_enclave[64], sm_policy[PATH_MAX];
  snprintf(dstate, sizeof dstate, "%s/dispatcher", n.dir);
  snprintf(ipfs_dir, sizeof ipfs_dir, "%s/ipfs", n.dir);
  snprintf(sm_enclave, sizeof sm_enclave, "127.0.0.1:%llu",
           (unsigned long long)enclave_port);
  snprintf(sm_policy, sizeof sm_policy, "%s/policy/sm.conf", n.dir);
  path_of(&n, dready, sizeof dready, "run", "dispatcher", "ready");
  path_of(&n, dreg, sizeof dreg, "run", "dispatcher", "registration");
  unlink(dready);
  char *d_argv[] = {n.exe,
                    "dispatcher",
                    "run",
                    "--data-dir",
                    n.dir,
                    "--state",
                    dstate,
                    "--listen",
                    "127.0.0.1:0",
                    "--user-listen",
                    "127.0.0.1:0",
                    "--policy",
                    policy,
                    "--chain-conf",
                    chain,
                    "--ipfs-dir",
                    ipfs_dir,
                    "--sm",
                    sm_enclave,
                    "--sm-policy",
                    sm_policy,
                    "--registration-out",
                    dreg,
                    "--settle-interval",
                    (char *)n.settle_interval,
                    "--ready-file",
                    dready,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL};
  size_t dend = sizeof d_argv / sizeof *d_argv - 5;
  if (n.settle_receipts != NULL) {
    d_argv[dend++] = "--settle-receipts";
    d_argv[dend++] = (char *)n.settle_receipts;
  }
  /* Its state in the group, when the group maps the dispatcher's role to a
   * namespace (a network made before keeps it sealed locally: said so). */
  if (ds_has_namespace(sm_ds_group, "dispatcher")) {
    d_argv[dend++] = "--ds-group";
    d_argv[dend++] = sm_ds_group;
  } else {
    printf("note: %s maps no namespace to the dispatcher: it keeps its "
           "state in its sealed local store\n",
           sm_ds_group);
  }
  if ((rc = spawn(&n, "dispatcher", d_argv)) != 0)
    return rc;
  if (wait_file(dready, read_pid(&n, "dispatcher"), READY_TIMEOUT_MS) != 0)
    return teex_cli_fail(
        "the dispatcher did not start; see %s/logs/dispatcher.log", n.dir);
  if ((rc = register_on_chain(chain, dreg)) != 0)
    return rc;
  uint64_t worker_port = 0, user_port = 0;
  read_ready(dready, "worker_port", &worker_port);
  read_ready(dready, "user_port", &user_port);

  char ds_group[PATH_MAX];
  snprintf(ds_group, sizeof ds_group, "%s/ds/ds-1/group.conf", n.dir);

  /* Workers: registered by the SM and on chain, then with the dispatcher
   * (they retry until the chain knows them). */
  char disp_addr[64] = "", disp_worker_ep[64];
  read_value(dready, "address", disp_addr, sizeof disp_addr);
  snprintf(disp_worker_ep, sizeof disp_worker_ep, "127.0.0.1:%llu",
           (unsigned long long)worker_port);
  char worker_eps[UP_WORKERS][64];
  for (int i = 0; i < UP_WORKERS; i++) {
    char name[32], wstate[PATH_MAX], wready[PATH_MAX], wreg[PATH_MAX],
        wlog[PATH_MAX];
    snprintf(name, sizeof name, "worker-%d", i + 1);
    snprintf(wstate, sizeof wstate, "%s/%s", n.dir, name);
    path_of(&n, wready, sizeof wready, "run", name, "ready");
    path_of(&n, wreg, sizeof wreg, "run", name, "registration");
    path_of(&n, wlog, sizeof wlog, "logs", name, "log");
    unlink(wready);
    char *w_argv[] = {n.exe,          "worker",
                      "run",          "--data-dir",
                      n.dir,          "--state",
                      wstate,         "--listen",
                      "127.0.0.1:0",  "--sm",
                      sm_enclave,     "--sm-policy",
                      sm_policy,      "--dispatcher",
                      disp_addr,      "--dispatcher-endpoint",
                      disp_worker_ep, "--dispatcher-policy",
                      policy,         "--chain-conf",
                      chain,          "--ipfs-dir",
                      ipfs_dir,       "--registration-file",
                      wreg,           "--ready-file",
                      wready,         "--ds-group",
                      ds_group,       NULL};
    if ((rc = spawn(&n, name, w_argv)) != 0)
      return rc;
    if (wait_file(wready, read_pid(&n, name), READY_TIMEOUT_MS) != 0 ||
        access(wreg, F_OK) != 0)
      return teex_cli_fail("%s did not start; see %s", name, wlog);
    if ((rc = register_on_chain(chain, wreg)) != 0)
      return rc;
    uint64_t port = 0;
    read_ready(wready, "port", &port);
    snprintf(worker_eps[i], sizeof worker_eps[i], "127.0.0.1:%llu",
             (unsigned long long)port);
  }
  for (int i = 0; i < UP_WORKERS; i++) {
    char wlog[PATH_MAX], name[32];
    snprintf(name, sizeof name, "worker-%d", i + 1);
    path_of(&n, wlog, sizeof wlog, "logs", name, "log");
    if (wait_log(wlog, "registered with the dispatcher", READY_TIMEOUT_MS) != 0)
      return teex_cli_fail("%s did not register with the dispatcher; see %s",
                           name, wlog);
  }

  snprintf(p, sizeof p, "%s/network.conf", n.dir);
  FILE *f = fopen(p, "w");
  if (f == NULL)
    return teex_cli_fail("write %s", p);
  fprintf(f,
          "# Written by `teex up`: where the local network's components are.\n"
          "[chain]\nrpc = %s\nconfig = %s\n"
          "[sm]\nclient = 127.0.0.1:%llu\nenclave = 127.0.0.1:%llu\n"
          "policy = %s/policy/sm.conf\naddress = %s\n"
          "[dispatcher]\nuser = 127.0.0.1:%llu\nworker = 127.0.0.1:%llu\n"
          "policy = %s/policy/enclaves.conf\naddress = %s\n"
          "[workers]\ncount = %d\npolicy = %s/policy/enclaves.conf\n"
          "[ds]\nstate = %s/ds/ds-1\ncert = %s/ds/client/client.pem\n"
          "key = %s/ds/client/client.key\nnamespace = dev\n",
          rpc_url, chain, (unsigned long long)client_port,
          (unsigned long long)enclave_port, n.dir, sm_addr,
          (unsigned long long)user_port, (unsigned long long)worker_port, n.dir,
          disp_addr, UP_WORKERS, n.dir, n.dir, n.dir, n.dir);
  fclose(f);
  printf("teex network up in %s\n", n.dir);
  printf("  chain       %s  (contracts in %s)\n", rpc_url, chain);
  printf("  registry    %s\n", sreg_copy);
  printf("  sm          %s  client 127.0.0.1:%llu  enclaves 127.0.0.1:%llu\n",
         sm_addr, (unsigned long long)client_port,
         (unsigned long long)enclave_port);
  printf("  dispatcher  users 127.0.0.1:%llu  workers 127.0.0.1:%llu "
         "(registered on chain)\n",
         (unsigned long long)user_port, (unsigned long long)worker_port);
  for (int i = 0; i < UP_WORKERS; i++)
    printf("  worker-%d    users %s (registered on chain and with the "
           "dispatcher)\n",
           i + 1, worker_eps[i]);
  printf("  ds          3 replicas in %s/ds (teex ds status; namespace dev)\n",
         n.dir);
  printf("  policies    %s/policy/\n  logs        %s/logs/\n", n.dir, n.dir);
  return TEEX_EXIT_OK;
}

static const char status_usage[] =
    "usage: teex status [--dir DIR]\n"
    "\n"
    "Shows the health of each component of the network in DIR: process\n"
    "alive, and a teex.Health call over RA-TLS verified against the\n"
    "network's policy.\n";

static int health(const struct net *n, const char *addr, const char *policy,
                  char *out, size_t size) {
  struct teex_tee_policy pol;
  struct teex_err err;
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, policy, &err) != 0) {
    snprintf(out, size, "policy: %s", err.msg);
    return -1;
  }
  struct teex_ratls_verifier v = {.policy = &pol};
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &v};
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  int rc = teex_tls_ctx_new(&ctx, &tc, 0, &err);
  if (rc == 0)
    rc = teex_rpc_sync_connect(addr, ctx, 5000, &c, &err);
  if (rc == 0)
    rc = teex_rpc_sync_call(c, "teex.Health", NULL, 0, 5000, &resp, &err);
  if (rc == 0) {
    Teex__Rpc__HealthResponse *h =
        teex__rpc__health_response__unpack(NULL, resp.len, resp.data);
    if (h != NULL) {
      snprintf(out, size, "%s, up %llus, teex %s", h->status,
               (unsigned long long)(h->uptime_ms / 1000), h->version);
      teex__rpc__health_response__free_unpacked(h, NULL);
    } else {
      snprintf(out, size, "malformed health answer");
      rc = -1;
    }
  } else {
    snprintf(out, size, "%s", err.msg);
  }
  teex_buf_free(&resp);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  (void)n;
  return rc;
}

int teex_cmd_status(int argc, char **argv) {
  struct net n;
  int rc = net_parse(argc, argv, &n, status_usage);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/network.conf", n.dir);
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  if (teex_config_load(&c, p, &err) != 0)
    return teex_cli_fail("no network in %s (teex up): %s", n.dir, err.msg);
  int bad = 0;
  static const struct {
    const char *name, *addr_key, *policy_key;
  } comps[] = {{"sm", "sm.client", "sm.policy"},
               {"dispatcher", "dispatcher.user", "dispatcher.policy"}};
  for (size_t i = 0; i < sizeof comps / sizeof *comps; i++) {
    int pid = read_pid(&n, comps[i].name);
    char msg[TEEX_ERRMSG_SIZE];
    const char *addr = teex_config_get(&c, comps[i].addr_key, "");
    if (!alive(pid)) {
      printf("%-11s DOWN (no process; teex up --restart %s)\n", comps[i].name,
             comps[i].name);
      bad = 1;
    } else if (health(&n, addr, teex_config_get(&c, comps[i].policy_key, ""),
                      msg, sizeof msg) != 0) {
      printf("%-11s UNHEALTHY pid %d %s: %s\n", comps[i].name, pid, addr, msg);
      bad = 1;
    } else {
      printf("%-11s ok  pid %d  %s  %s\n", comps[i].name, pid, addr, msg);
    }
  }
  /* Workers: their user endpoint (the port in their ready file). */
  uint64_t nworkers = 0;
  if (teex_config_get_u64(&c, "workers.count", 0, &nworkers, &err) != 0 ||
      nworkers > 64)
    nworkers = 0;
  for (uint64_t i = 1; i <= nworkers; i++) {
    char name[32], ready[PATH_MAX], addr[64], msg[TEEX_ERRMSG_SIZE];
    snprintf(name, sizeof name, "worker-%llu", (unsigned long long)i);
    path_of(&n, ready, sizeof ready, "run", name, "ready");
    int pid = read_pid(&n, name);
    uint64_t port = 0;
    read_ready(ready, "port", &port);
    snprintf(addr, sizeof addr, "127.0.0.1:%llu", (unsigned long long)port);
    if (!alive(pid)) {
      printf("%-11s DOWN (no process; teex up --restart %s)\n", name, name);
      bad = 1;
    } else if (health(&n, addr, teex_config_get(&c, "workers.policy", ""), msg,
                      sizeof msg) != 0) {
      printf("%-11s UNHEALTHY pid %d %s: %s\n", name, pid, addr, msg);
      bad = 1;
    } else {
      printf("%-11s ok  pid %d  %s  %s\n", name, pid, addr, msg);
    }
  }
  teex_config_free(&c);
  bad |= status_ds(&n);
  char *chain_status[] = {"chain", "status", "--dir", n.dir, NULL};
  char line[512];
  if (run_self(&n, chain_status, line, sizeof line) != 0) {
    printf("chain       DOWN or contracts missing (teex chain status)\n");
    bad = 1;
  } else {
    printf("chain       ok  %s\n", line);
  }
  return bad ? TEEX_EXIT_FAIL : TEEX_EXIT_OK;
}

static const char down_usage[] =
    "usage: teex down [--dir DIR]\n\nStops the network's components.\n";

int teex_cmd_down(int argc, char **argv) {
  struct net n;
  int rc = net_parse(argc, argv, &n, down_usage);
  if (rc != 0)
    return rc < 0 ? TEEX_EXIT_OK : rc;
  static const char *names[] = {"worker-1", "worker-2", "dispatcher", "sm",
                                "ds-1",     "ds-2",     "ds-3"};
  int stopped = 0;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    int pid = read_pid(&n, names[i]);
    if (!alive(pid))
      continue;
    stop_pid(pid);
    char pf[PATH_MAX];
    path_of(&n, pf, sizeof pf, "run", names[i], "pid");
    unlink(pf);
    printf("stopped %s (pid %d)\n", names[i], pid);
    stopped++;
  }
  char *chain_down[] = {"chain", "down", "--dir", n.dir, NULL};
  if (run_self(&n, chain_down, NULL, 0) == 0)
    stopped++;
  if (stopped == 0)
    printf("nothing running in %s\n", n.dir);
  return TEEX_EXIT_OK;
}
