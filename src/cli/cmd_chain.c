/* teex chain up|down|deploy|status: the local development chain (anvil from
 * tools/, with the standard deterministic accounts, its state kept in the
 * network folder) and the teex contracts on any chain. In the network folder
 * DIR (default $TEEX_HOME, else ~/.teex): chain.conf (rpc_url, chain_id and
 * the contract addresses: what `teex up` and the SM read), chain/state.json
 * (anvil's state, restored on the next up), run/anvil.pid, logs/anvil.log. */
#include "cli/cli.h"

#include "teex/chain.h"
#include "teex/statements.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/mem.h"

#include <errno.h>
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

#define DEV_CHAIN_ID 31337
#define DEFAULT_PORT "8545"
#define DEV_MNEMONIC                                                           \
  "test test test test test test test test test test test junk"
/* Account 0 of DEV_MNEMONIC: public knowledge, used only on chain 31337. */
#define DEV_KEY                                                                \
  "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int path_join(char *out, size_t cap, const char *dir, const char *f) {
  return snprintf(out, cap, "%s/%s", dir, f) < (int)cap ? 0 : -1;
}

/* The anvil binary: $TEEX_ANVIL, else tools/node_modules beside the build
 * tree the teex binary lives in, else anvil on PATH. */
static int find_anvil(char *out, size_t cap) {
  const char *env = getenv("TEEX_ANVIL");
  char exe[PATH_MAX];
  ssize_t n;
  if (env && *env) {
    snprintf(out, cap, "%s", env);
    return access(out, X_OK);
  }
  n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    for (int up = 1; up <= 3; up++) {
      char *slash = strrchr(exe, '/');
      if (slash == NULL)
        break;
      *slash = 0;
      if (snprintf(out, cap,
                   "%s/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/"
                   "anvil",
                   exe) < (int)cap &&
          access(out, X_OK) == 0)
        return 0;
    }
  }
  const char *path = getenv("PATH");
  while (path && *path) {
    const char *colon = strchr(path, ':');
    size_t len = colon ? (size_t)(colon - path) : strlen(path);
    if (snprintf(out, cap, "%.*s/anvil", (int)len, path) < (int)cap &&
        access(out, X_OK) == 0)
      return 0;
    path = colon ? colon + 1 : NULL;
  }
  return -1;
}

/* The pid in DIR/chain/anvil.pid when that process is alive and is anvil. */
static pid_t running_pid(const char *dir) {
  char path[PATH_MAX], buf[64], proc[64], cmd[256];
  uint64_t v;
  FILE *f;
  size_t n;
  if (snprintf(path, sizeof path, "%s/run/anvil.pid", dir) >=
          (int)sizeof path ||
      (f = fopen(path, "r")) == NULL)
    return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  if (teex_parse_u64(buf, &v) != 0 || v == 0 || v > INT_MAX)
    return 0;
  /* A recycled pid must not be mistaken for our node. */
  snprintf(proc, sizeof proc, "/proc/%llu/cmdline", (unsigned long long)v);
  if ((f = fopen(proc, "r")) == NULL)
    return 0;
  n = fread(cmd, 1, sizeof cmd - 1, f);
  fclose(f);
  cmd[n] = 0;
  if (strstr(cmd, "anvil") == NULL)
    return 0;
  return (pid_t)v;
}

/* DIR/chain.conf; a missing file is an empty configuration. */
static int load_chain_conf(const char *dir, struct teex_config *c,
                           struct teex_err *err) {
  char path[PATH_MAX];
  teex_config_init(c);
  if (path_join(path, sizeof path, dir, TEEX_CHAIN_CONF) != 0)
    return teex_err_set(err, TEEX_EINVAL, "path too long");
  if (access(path, F_OK) != 0)
    return 0;
  return teex_config_load(c, path, err);
}

/* --rpc, else chain.conf's rpc_url, else the default local node. */
static const char *rpc_url(const struct teex_config *c, const char *flag) {
  return flag ? flag : teex_config_get(c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
}

static int open_rpc(const char *url, struct teex_eth_rpc **rpc,
                    struct teex_err *err) {
  int r = teex_eth_rpc_open(url, NULL, rpc, err);
  if (r == 0)
    teex_chain_use_errors(*rpc);
  return r;
}

/* ---- up ---- */

static int chain_up(int argc, char **argv) {
  static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                       {"port", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *port = DEFAULT_PORT;
  char dir[PATH_MAX], anvil[PATH_MAX], cdir[PATH_MAX], state[PATH_MAX],
      logp[PATH_MAX], pidp[PATH_MAX], conf[PATH_MAX], url[128], sub[PATH_MAX];
  struct teex_err err = {0};
  struct teex_eth_rpc *rpc = NULL;
  uint64_t v, id = 0;
  int c;
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:p:h", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else if (c == 'p')
      port = optarg;
    else {
      printf("usage: teex chain up [--dir DIR] [--port PORT]\n\n"
             "Starts a local development chain (anvil, chain id %d, the "
             "standard\ndeterministic accounts) on 127.0.0.1:PORT (default "
             "%s), its state\nkept in DIR/chain/state.json and restored on "
             "the next up; records\nrpc_url and chain_id in DIR/chain.conf. "
             "DIR: the network folder\n(default $TEEX_HOME, else ~/.teex).\n",
             DEV_CHAIN_ID, DEFAULT_PORT);
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc || teex_parse_u64(port, &v) != 0 || v == 0 || v > 65535)
    return teex_cli_fail("chain up: bad arguments (see --help)");
  if (running_pid(dir) > 0)
    return teex_cli_fail("chain up: a chain is already running for %s", dir);
  if (find_anvil(anvil, sizeof anvil) != 0)
    return teex_cli_fail("chain up: anvil not found (run "
                         "scripts/install-deps.sh or set TEEX_ANVIL)");
  if (path_join(cdir, sizeof cdir, dir, "chain") != 0 ||
      path_join(state, sizeof state, cdir, "state.json") != 0 ||
      path_join(logp, sizeof logp, dir, "logs/anvil.log") != 0 ||
      path_join(pidp, sizeof pidp, dir, "run/anvil.pid") != 0 ||
      path_join(conf, sizeof conf, dir, TEEX_CHAIN_CONF) != 0)
    return teex_cli_fail("chain up: path too long");
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return teex_cli_fail("chain up: %s: %s", dir, strerror(errno));
  static const char *subs[] = {"chain", "run", "logs"};
  for (int i = 0; i < 3; i++)
    if (path_join(sub, sizeof sub, dir, subs[i]) != 0 ||
        (mkdir(sub, 0700) != 0 && errno != EEXIST))
      return teex_cli_fail("chain up: %s: %s", sub, strerror(errno));
  snprintf(url, sizeof url, "http://127.0.0.1:%s", port);

  pid_t pid = fork();
  if (pid < 0)
    return teex_cli_fail("chain up: fork: %s", strerror(errno));
  if (pid == 0) {
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nul = open("/dev/null", O_RDONLY);
    setsid(); /* outlives this command */
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (nul >= 0)
      dup2(nul, 0);
    execl(anvil, "anvil", "--host", "127.0.0.1", "--port", port, "--chain-id",
          "31337", "--mnemonic", DEV_MNEMONIC, "--accounts", "10", "--state",
          state, "--state-interval", "10", (char *)NULL);
    _exit(127);
  }
  int r = teex_eth_rpc_open(url, NULL, &rpc, &err);
  for (int i = 0; r == 0 && i < 200; i++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      teex_eth_rpc_close(rpc);
      return teex_cli_fail("chain up: anvil exited (see %s)", logp);
    }
    if (teex_eth_chain_id(rpc, &id, &err) == 0)
      break;
    sleep_ms(50);
  }
  teex_eth_rpc_close(rpc);
  if (id != DEV_CHAIN_ID) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return teex_cli_fail("chain up: anvil did not answer on %s (see %s)", url,
                         logp);
  }
  FILE *f = fopen(pidp, "w");
  if (f == NULL || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0) {
    kill(pid, SIGTERM);
    return teex_cli_fail("chain up: %s: %s", pidp, strerror(errno));
  }
  /* Addresses of an earlier deployment stay valid: the state came back. */
  struct teex_config old;
  struct teex_chain_addrs prev;
  int have_prev = load_chain_conf(dir, &old, &err) == 0 &&
                  teex_chain_addrs_from_config(&old, &prev, &err) == 0 &&
                  prev.chain_id == DEV_CHAIN_ID;
  teex_config_free(&old);
  if (teex_chain_conf_save(conf, url, DEV_CHAIN_ID, have_prev ? &prev : NULL,
                           &err) != 0) {
    kill(pid, SIGTERM);
    return teex_cli_fail("chain up: %s", teex_err_msg(&err));
  }
  printf("chain up: anvil pid %d on %s (chain id %d), state %s\n", (int)pid,
         url, DEV_CHAIN_ID, state);
  return TEEX_EXIT_OK;
}

/* ---- down ---- */

static int chain_down(int argc, char **argv) {
  static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  char dir[PATH_MAX], pidp[PATH_MAX];
  int c;
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else {
      printf("usage: teex chain down [--dir DIR]\n\nStops the development "
             "chain started by `teex chain up`; anvil writes\nits state to "
             "DIR/chain/state.json as it exits.\n");
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc)
    return teex_cli_fail("chain down: bad arguments (see --help)");
  pid_t pid = running_pid(dir);
  if (pid <= 0)
    return teex_cli_fail("chain down: no chain running for %s", dir);
  if (kill(pid, SIGTERM) != 0)
    return teex_cli_fail("chain down: kill %d: %s", (int)pid, strerror(errno));
  /* Not our child: wait for the process to disappear (it dumps its state). */
  for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
    sleep_ms(50);
  if (kill(pid, 0) == 0)
    return teex_cli_fail("chain down: anvil %d still running after 10 s",
                         (int)pid);
  if (path_join(pidp, sizeof pidp, dir, "run/anvil.pid") == 0)
    unlink(pidp);
  printf("chain down: stopped anvil %d\n", (int)pid);
  return TEEX_EXIT_OK;
}

/* ---- deploy ---- */

static int read_key(const char *file, uint64_t chain_id, uint8_t sk[32],
                    struct teex_err *err) {
  char buf[160];
  size_t n;
  int r;
  if (file == NULL) {
    if (chain_id != DEV_CHAIN_ID)
      return teex_err_set(err, TEEX_EINVAL,
                          "--key-file is required off the dev chain");
    return teex_hex_decode(DEV_KEY, sk, 32, &n) == 0 && n == 32
               ? 0
               : teex_err_set(err, TEEX_EINTERNAL, "dev key");
  }
  FILE *f = fopen(file, "r");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "%s: %s", file, strerror(errno));
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  buf[strcspn(buf, " \r\n")] = 0;
  r = teex_hex_decode(buf, sk, 32, &n);
  teex_wipe(buf, sizeof buf);
  if (r != 0 || n != 32)
    return teex_err_set(err, TEEX_EINVAL, "%s: not a 32-byte hex key", file);
  return 0;
}

static int chain_deploy(int argc, char **argv) {
  static const struct option opts[] = {
      {"dir", required_argument, NULL, 'd'},
      {"sm", required_argument, NULL, 's'},
      {"delay", required_argument, NULL, 'w'},
      {"key-file", required_argument, NULL, 'k'},
      {"rpc", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *sm = NULL, *key_file = NULL, *rpc_flag = NULL, *url;
  char dir[PATH_MAX];
  uint64_t delay = 86400, chain_id = 0;
  char conf[PATH_MAX], hex[43];
  struct teex_chain_deploy_opts o = {0};
  struct teex_chain_addrs a;
  struct teex_config cfg;
  struct teex_err err = {0};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *s = NULL;
  uint8_t sk[32] = {0};
  int c, rc = TEEX_EXIT_FAIL;
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:s:w:k:r:h", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else if (c == 'r')
      rpc_flag = optarg;
    else if (c == 's')
      sm = optarg;
    else if (c == 'k')
      key_file = optarg;
    else if (c == 'w') {
      if (teex_parse_u64(optarg, &delay) != 0)
        return teex_cli_fail("chain deploy: --delay: not a number of seconds");
    } else {
      printf(
          "usage: teex chain deploy --sm ADDRESS [--dir DIR] [--delay "
          "SECONDS]\n                         [--key-file FILE] [--rpc "
          "URL]\n\n"
          "Deploys EnclaveRegistry, ServiceRegistry, Settlement, "
          "DatasetRegistry and\nDsAnchor (compiled into teex) to the chain of "
          "DIR/chain.conf (or --rpc) and "
          "records their\naddresses there. --sm: the Service Manager enclave's "
          "address, "
          "fixed for good.\n--delay: escrow withdrawal delay (default "
          "86400). --key-file: the\ndeployer's hex key (on the dev chain "
          "31337 its account 0 by default).\n");
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc || sm == NULL)
    return teex_cli_fail("chain deploy: --sm ADDRESS is required (see --help)");
  if (teex_eth_address_parse(sm, o.service_manager) != 0)
    return teex_cli_fail("chain deploy: --sm: not an address: %s", sm);
  o.withdrawal_delay = delay;
  if (load_chain_conf(dir, &cfg, &err) != 0) {
    teex_cli_fail("chain deploy: %s", teex_err_msg(&err));
    goto done;
  }
  url = rpc_url(&cfg, rpc_flag);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    teex_cli_fail("chain deploy: %s: %s", dir, strerror(errno));
    goto done;
  }
  if (open_rpc(url, &rpc, &err) != 0 ||
      teex_eth_chain_id(rpc, &chain_id, &err) != 0 ||
      read_key(key_file, chain_id, sk, &err) != 0 ||
      teex_eth_sender_new(rpc, sk, NULL, &s, &err) != 0 ||
      teex_chain_deploy(s, &o, &a, &err) != 0 ||
      path_join(conf, sizeof conf, dir, TEEX_CHAIN_CONF) != 0 ||
      teex_chain_conf_save(conf, url, a.chain_id, &a, &err) != 0) {
    teex_cli_fail("chain deploy: %s", teex_err_msg(&err));
    goto done;
  }
  printf("chain %llu, block %llu\n", (unsigned long long)a.chain_id,
         (unsigned long long)a.deploy_block);
  teex_eth_address_hex(a.enclave_registry, hex);
  printf("EnclaveRegistry  %s\n", hex);
  teex_eth_address_hex(a.service_registry, hex);
  printf("ServiceRegistry  %s\n", hex);
  teex_eth_address_hex(a.settlement, hex);
  printf("Settlement       %s\n", hex);
  teex_eth_address_hex(a.dataset_registry, hex);
  printf("DatasetRegistry  %s\n", hex);
  teex_eth_address_hex(a.ds_anchor, hex);
  printf("DsAnchor         %s\nrecorded in %s\n", hex, conf);
  rc = TEEX_EXIT_OK;
done:
  teex_wipe(sk, sizeof sk);
  teex_eth_sender_free(s);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cfg);
  return rc;
}

/* ---- status ---- */

static int chain_status(int argc, char **argv) {
  static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"rpc", required_argument, NULL, 'r'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *rpc_flag = NULL;
  char dir[PATH_MAX];
  int json = 0, c, rc = TEEX_EXIT_FAIL, deployed = 0, ok = 0;
  struct teex_config cfg;
  struct teex_err err = {0}, cerr = {0};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_addrs a;
  uint64_t id = 0, block = 0;
  char h1[43] = "", h2[43] = "", h3[43] = "", h4[43] = "none";
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:r:jh", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else if (c == 'r')
      rpc_flag = optarg;
    else if (c == 'j')
      json = 1;
    else {
      printf("usage: teex chain status [--dir DIR] [--rpc URL] [--json]\n\n"
             "Shows the chain of DIR/chain.conf: endpoint, chain id, "
             "block,\nthe local "
             "node's pid, and the contracts (checked on chain).\n");
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc)
    return teex_cli_fail("chain status: bad arguments (see --help)");
  if (load_chain_conf(dir, &cfg, &err) != 0 ||
      open_rpc(rpc_url(&cfg, rpc_flag), &rpc, &err) != 0 ||
      teex_eth_chain_id(rpc, &id, &err) != 0 ||
      teex_eth_block_number(rpc, &block, &err) != 0) {
    teex_cli_fail("chain status: %s", teex_err_msg(&err));
    goto done;
  }
  if (teex_chain_addrs_from_config(&cfg, &a, &cerr) == 0) {
    deployed = 1;
    ok = teex_chain_check(rpc, &a, &cerr) == 0;
    teex_eth_address_hex(a.enclave_registry, h1);
    teex_eth_address_hex(a.service_registry, h2);
    teex_eth_address_hex(a.settlement, h3);
    if (teex_chain_has_datasets(&a))
      teex_eth_address_hex(a.dataset_registry, h4);
  }
  pid_t pid = running_pid(dir);
  if (json) {
    printf("{\"rpc_url\":\"%s\",\"chain_id\":%llu,\"block\":%llu,"
           "\"local_pid\":%d,\"deployed\":%s,\"contracts_ok\":%s",
           teex_eth_rpc_url(rpc), (unsigned long long)id,
           (unsigned long long)block, (int)pid, deployed ? "true" : "false",
           ok ? "true" : "false");
    if (deployed)
      printf(",\"enclave_registry\":\"%s\",\"service_registry\":\"%s\","
             "\"settlement\":\"%s\",\"dataset_registry\":\"%s\"",
             h1, h2, h3, h4);
    printf("}\n");
  } else {
    printf("rpc        %s\nchain id   %llu\nblock      %llu\n",
           teex_eth_rpc_url(rpc), (unsigned long long)id,
           (unsigned long long)block);
    if (pid > 0)
      printf("local node anvil pid %d\n", (int)pid);
    if (deployed)
      printf("EnclaveRegistry  %s\nServiceRegistry  %s\nSettlement       "
             "%s\nDatasetRegistry  %s\ncontracts  %s\n",
             h1, h2, h3, h4, ok ? "ok" : teex_err_msg(&cerr));
    else
      printf("contracts  not deployed (teex chain deploy)\n");
  }
  rc = TEEX_EXIT_OK;
done:
  teex_eth_rpc_close(rpc);
  teex_config_free(&cfg);
  return rc;
}

/* ---- services: the app store from the registry's events ---- */

static int chain_services(int argc, char **argv) {
  static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"rpc", required_argument, NULL, 'r'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *rpc_flag = NULL;
  char dir[PATH_MAX];
  int json = 0, c, rc = TEEX_EXIT_FAIL;
  struct teex_config cfg;
  struct teex_err err = {0};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_addrs a;
  struct teex_chain_service *v = NULL;
  size_t n = 0;
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:r:jh", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else if (c == 'r')
      rpc_flag = optarg;
    else if (c == 'j')
      json = 1;
    else {
      printf("usage: teex chain services [--dir DIR] [--rpc URL] [--json]\n\n"
             "Lists the services of the ServiceRegistry (the app store), "
             "rebuilt\nfrom its events: id, provider, version, price and "
             "remuneration (wei\nper call), visibility, state, metadata "
             "CID.\n");
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc)
    return teex_cli_fail("chain services: bad arguments (see --help)");
  if (load_chain_conf(dir, &cfg, &err) != 0 ||
      teex_chain_addrs_from_config(&cfg, &a, &err) != 0 ||
      open_rpc(rpc_url(&cfg, rpc_flag), &rpc, &err) != 0 ||
      teex_chain_catalogue(rpc, &a, &v, &n, &err) != 0) {
    teex_cli_fail("chain services: %s", teex_err_msg(&err));
    goto done;
  }
  if (json)
    printf("[");
  else if (n == 0)
    printf("no services listed\n");
  else
    printf("%-66s %-42s %4s %12s %12s %-8s %s\n", "SERVICE", "PROVIDER", "VER",
           "PRICE", "WORKER", "STATE", "METADATA");
  for (size_t i = 0; i < n; i++) {
    char id[65], prov[43], price[40], rem[40];
    const char *state = v[i].retired      ? "retired"
                        : v[i].is_private ? "private"
                                          : "public";
    teex_hex_encode(v[i].service_id, 32, id);
    teex_eth_address_hex(v[i].provider, prov);
    teex_amount_format(v[i].price, price);
    teex_amount_format(v[i].remuneration, rem);
    /* The CID came from the chain: print it only if it is plain text. */
    for (char *p = v[i].metadata_cid; *p; p++)
      if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
        *p = '?';
    if (json)
      printf("%s{\"service_id\":\"0x%s\",\"provider\":\"%s\","
             "\"version\":%u,\"price\":\"%s\",\"remuneration\":\"%s\","
             "\"state\":\"%s\",\"metadata_cid\":\"%s\"}",
             i ? "," : "", id, prov, (unsigned)v[i].version, price, rem, state,
             v[i].metadata_cid);
    else
      printf("0x%s %s %4u %12s %12s %-8s %s\n", id, prov,
             (unsigned)v[i].version, price, rem, state, v[i].metadata_cid);
  }
  if (json)
    printf("]\n");
  rc = TEEX_EXIT_OK;
done:
  free(v);
  teex_eth_rpc_close(rpc);
  teex_config_free(&cfg);
  return rc;
}

/* teex chain enclave ADDR: the EnclaveRegistry's word on one enclave. */
static int chain_enclave(int argc, char **argv) {
  static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                       {"rpc", required_argument, NULL, 'r'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *rpc_flag = NULL;
  char dir[PATH_MAX];
  int c, rc = TEEX_EXIT_FAIL;
  struct teex_config cfg;
  struct teex_err err = {0};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_addrs a;
  uint8_t enclave[20];
  teex_cli_data_dir(dir, sizeof dir);
  optind = 0;
  while ((c = getopt_long(argc, argv, "d:r:h", opts, NULL)) != -1) {
    if (c == 'd')
      snprintf(dir, sizeof dir, "%s", optarg);
    else if (c == 'r')
      rpc_flag = optarg;
    else {
      printf("usage: teex chain enclave ADDR [--dir DIR] [--rpc URL]\n\n"
             "Shows whether the EnclaveRegistry holds ADDR as an active "
             "worker\nor dispatcher (registered and not revoked).\n");
      return c == 'h' ? TEEX_EXIT_OK : TEEX_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || teex_eth_address_parse(argv[optind], enclave) != 0)
    return teex_cli_fail("chain enclave: give one enclave address");
  int worker = 0, dispatcher = 0;
  if (load_chain_conf(dir, &cfg, &err) != 0 ||
      teex_chain_addrs_from_config(&cfg, &a, &err) != 0 ||
      open_rpc(rpc_url(&cfg, rpc_flag), &rpc, &err) != 0 ||
      teex_chain_enclave_active(rpc, &a, enclave, TEEX_ENCLAVE_WORKER, &worker,
                                &err) != 0 ||
      teex_chain_enclave_active(rpc, &a, enclave, TEEX_ENCLAVE_DISPATCHER,
                                &dispatcher, &err) != 0) {
    teex_cli_fail("chain enclave: %s", teex_err_msg(&err));
  } else {
    char hex[43];
    teex_eth_address_hex(enclave, hex);
    printf("enclave=%s worker=%s dispatcher=%s\n", hex,
           worker ? "active" : "inactive", dispatcher ? "active" : "inactive");
    rc = TEEX_EXIT_OK;
  }
  teex_eth_rpc_close(rpc);
  teex_config_free(&cfg);
  return rc;
}

static const struct teex_cli_cmd chain_cmds[] = {
    {"up", chain_up, "start the local development chain (anvil)"},
    {"down", chain_down, "stop the local development chain"},
    {"deploy", chain_deploy, "deploy the teex contracts, record addresses"},
    {"status", chain_status, "show the chain and the contracts"},
    {"services", chain_services, "list the services on chain (the app store)"},
    {"enclave", chain_enclave,
     "an enclave's registration: active worker or dispatcher"},
    {NULL, NULL, NULL},
};

int teex_cmd_chain(int argc, char **argv) {
  return teex_cli_dispatch("teex chain", chain_cmds, argc - 1, argv + 1);
}
