/* `teex ds proxy`: serves one namespace of TEE-DS to local Redis tools
 * (include/teex/ds_proxy.h). A row of the `teex ds` table (cmd_ds.c). */
#include "cli/cli.h"
#include "cli/ds_conn.h"

#include "teex/ds_proxy.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char proxy_usage[] =
    "usage: teex ds proxy [--listen ADDR] [group options] [options]\n"
    "       teex ds proxy --local --ns NS [options]\n"
    "\n"
    "Serves a TEE-DS namespace NS to local Redis tools (redis-cli,\n"
    "redis-benchmark, client libraries) over the Redis protocol (RESP2).\n"
    "A Redis key K is the TEE-DS key NS/K. It listens on loopback only:\n"
    "an address that is (or resolves to) anything else is refused.\n"
    "\n"
    "By default it serves the replica group of the local network (teex up:\n"
    "DATA_DIR/ds, the operator's client certificate and its namespace).\n"
    "Group options, for other deployments:\n"
    "  --state DIR         a replica's state directory (group.conf gives the\n"
    "                      replicas, policy.conf their evidence; default\n"
    "                      DATA_DIR/ds/ds-1)\n"
    "  --replica ADDR      a replica's client address host:port (repeat;\n"
    "                      default: the members of group.conf)\n"
    "  --policy FILE       the evidence replicas must present (default\n"
    "                      STATE/policy.conf)\n"
    "  --cert, --key FILE  the client certificate and key (default\n"
    "                      DATA_DIR/ds/client/client.{pem,key})\n"
    "  --timeout MS        per command, retries included (default 5000)\n"
    "\n"
    "Several groups (docs/operations.md, \"Growing TEE-DS\"): serve NS from\n"
    "whichever group a signed placement directory names, following moves\n"
    "(a newer directory learnt from a group is written back to FILE):\n"
    "  --dir FILE --pub PUB --ns NS --cert C --key K --policy FILE...\n"
    "                      (--policy once per distinct group policy)\n"
    "\n"
    "  --listen ADDR       host:port to listen on (default 127.0.0.1:6379;\n"
    "                      port 0 picks a free one)\n"
    "  --ns NS             namespace (a-z 0-9 _ - ., at most 64 bytes;\n"
    "                      default: the one group.conf grants the\n"
    "                      certificate)\n"
    "  --local             serve from an in-process group of replicas\n"
    "                      (development mode: NOT replicated across\n"
    "                      machines, NOT persisted; the data is gone when\n"
    "                      the proxy stops)\n"
    "  --replicas N        replicas of the in-process group (1-5, default 3)\n"
    "  --follower-reads    read from a follower's state (may be stale)\n"
    "                      instead of linearizable reads\n"
    "  --max-clients N     connections served at once (default 1024)\n"
    "  --ready-file FILE   write the port here once listening\n"
    "\n"
    "Commands, semantics and limits: docs/internals/ds.md, \"Redis protocol\n"
    "at the edge\".\n";

#define PROXY_MAX_POLICIES 8

struct proxy_opts {
  const char *listen, *ns, *ready_file;
  /* several groups: a placement directory (cmd_ds_place.c) */
  const char *dir, *pub;
  const char *policies[PROXY_MAX_POLICIES];
  size_t n_policies;
  void *place_hold;
  int local, read_mode;
  unsigned replicas, max_clients, timeout_ms;
  struct teex_cli_ds_conn k; /* the network group */
};

/* The one place that picks the backend the proxy runs commands through. */
static int make_backend(uv_loop_t *loop, struct proxy_opts *o,
                        struct teex_ds_backend **out, struct teex_err *err) {
  if (o->local)
    return teex_ds_backend_local_new(loop, o->replicas, NULL, NULL, out, err);
  if (o->dir != NULL) {
    /* prints its own reason */
    int rc = teex_cli_ds_place_proxy_backend(
        loop, o->dir, o->pub, o->k.cert, o->k.key, o->policies, o->n_policies,
        o->ns, o->timeout_ms, out, (void **)&o->place_hold);
    return rc == 0 ? 0 : teex_err_set(err, TEEX_ECONFIG, "placement directory");
  }
  struct teex_ds_client_config cc = {.replicas = o->k.addrs,
                                     .n_replicas = o->k.n_addrs,
                                     .tls = o->k.tls,
                                     .ns = o->k.ns,
                                     .timeout_ms = o->timeout_ms};
  return teex_ds_backend_net_new(loop, &cc, out, err);
}

struct proxy_run {
  struct teex_ds_proxy *px;
  struct teex_ds_backend *backend;
  uv_signal_t sigint, sigterm;
};

static void on_signal(uv_signal_t *s, int signum) {
  struct proxy_run *r = s->data;
  (void)signum;
  teex_ds_proxy_close(r->px);
  r->backend->ops->free(r->backend);
  uv_close((uv_handle_t *)&r->sigint, NULL);
  uv_close((uv_handle_t *)&r->sigterm, NULL);
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = (unsigned)v;
  return 0;
}

int teex_cmd_ds_proxy(int argc, char **argv) {
  enum {
    O_LISTEN = 256,
    O_NS,
    O_LOCAL,
    O_REPL,
    O_FOLLOW,
    O_MAXC,
    O_READY,
    O_STATE,
    O_REPLICA,
    O_POLICY,
    O_CERT,
    O_KEY,
    O_TIMEOUT,
    O_DIR,
    O_PUB
  };
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, O_LISTEN},
      {"ns", required_argument, NULL, O_NS},
      {"local", no_argument, NULL, O_LOCAL},
      {"replicas", required_argument, NULL, O_REPL},
      {"follower-reads", no_argument, NULL, O_FOLLOW},
      {"max-clients", required_argument, NULL, O_MAXC},
      {"ready-file", required_argument, NULL, O_READY},
      {"state", required_argument, NULL, O_STATE},
      {"replica", required_argument, NULL, O_REPLICA},
      {"policy", required_argument, NULL, O_POLICY},
      {"cert", required_argument, NULL, O_CERT},
      {"key", required_argument, NULL, O_KEY},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"dir", required_argument, NULL, O_DIR},
      {"pub", required_argument, NULL, O_PUB},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  static struct proxy_opts o;
  memset(&o, 0, sizeof o);
  o = (struct proxy_opts){.listen = "127.0.0.1:6379",
                          .replicas = 3,
                          .read_mode = TEEX_DS_PROXY_READ_LINEARIZABLE};
  optind = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case O_LISTEN:
      o.listen = optarg;
      break;
    case O_NS:
      o.ns = optarg;
      break;
    case O_LOCAL:
      o.local = 1;
      break;
    case O_REPL:
      if (parse_uint(optarg, 1, 5, &o.replicas) != 0)
        return teex_cli_fail("--replicas: want 1 to 5");
      break;
    case O_FOLLOW:
      o.read_mode = TEEX_DS_PROXY_READ_FOLLOWER;
      break;
    case O_MAXC:
      if (parse_uint(optarg, 1, 65536, &o.max_clients) != 0)
        return teex_cli_fail("--max-clients: want 1 to 65536");
      break;
    case O_READY:
      o.ready_file = optarg;
      break;
    case O_STATE:
      o.k.state = optarg;
      break;
    case O_REPLICA:
      if (o.k.n_addrs == TEEX_DS_CLIENT_MAX_REPLICAS)
        return teex_cli_fail("--replica: at most %d",
                             TEEX_DS_CLIENT_MAX_REPLICAS);
      o.k.addrs[o.k.n_addrs++] = optarg;
      break;
    case O_POLICY:
      o.k.policy = optarg;
      if (o.n_policies == PROXY_MAX_POLICIES)
        return teex_cli_fail("--policy: at most %d", PROXY_MAX_POLICIES);
      o.policies[o.n_policies++] = optarg;
      break;
    case O_DIR:
      o.dir = optarg;
      break;
    case O_PUB:
      o.pub = optarg;
      break;
    case O_CERT:
      o.k.cert = optarg;
      break;
    case O_KEY:
      o.k.key = optarg;
      break;
    case O_TIMEOUT:
      if (parse_uint(optarg, 1, 3600000, &o.timeout_ms) != 0)
        return teex_cli_fail("--timeout: 1..3600000 ms");
      break;
    case 'h':
      fputs(proxy_usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(proxy_usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc || (o.local && o.ns == NULL)) {
    fputs(proxy_usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  /* Refuse a non-loopback address before anything starts. */
  struct sockaddr_storage ss;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_ds_proxy_check_listen(o.listen, NULL, NULL, &ss, &err) != 0)
    return teex_cli_fail("ds proxy: %s", err.msg);
  if (o.dir != NULL &&
      (o.local || o.ns == NULL || o.k.cert == NULL || o.k.key == NULL))
    return teex_cli_fail("ds proxy --dir: give --ns, --cert and --key (and "
                         "not --local)");
  if (!o.local && o.dir == NULL) {
    o.k.ns = o.ns;
    if (teex_cli_ds_conn_open(&o.k) != 0) {
      teex_cli_ds_conn_free(&o.k);
      fprintf(stderr, "teex: ds proxy: no TEE-DS group to serve: start the "
                      "local network (teex up), name a group (--state, "
                      "--replica, --policy), or use --local for the "
                      "in-process development group\n");
      return TEEX_EXIT_FAIL;
    }
    o.ns = o.k.ns;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct proxy_run r;
  memset(&r, 0, sizeof r);
  if (make_backend(&loop, &o, &r.backend, &err) != 0) {
    uv_loop_close(&loop);
    teex_cli_ds_conn_free(&o.k);
    return teex_cli_fail("ds proxy: %s", err.msg);
  }
  struct teex_ds_proxy_config cfg = {.listen = o.listen,
                                     .ns = o.ns,
                                     .read_mode = o.read_mode,
                                     .max_clients = o.max_clients,
                                     .backend = r.backend};
  if (teex_ds_proxy_start(&loop, &cfg, &r.px, &err) != 0) {
    r.backend->ops->free(r.backend);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    teex_cli_ds_conn_free(&o.k);
    teex_cli_ds_place_proxy_release(o.place_hold);
    return teex_cli_fail("%s", err.msg);
  }
  int port = teex_ds_proxy_port(r.px);
  fprintf(stderr,
          "teex ds proxy: namespace '%s' on %s (port %d)%s; Ctrl-C stops\n",
          o.ns, o.listen, port,
          o.local ? ", in-process group (not replicated, not persisted)"
                  : ", replica group over RA-TLS");
  if (o.ready_file != NULL) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", o.ready_file);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fprintf(f, "%d\n", port) > 0;
    if (f != NULL && fclose(f) != 0)
      ok = 0;
    if (!ok || rename(tmp, o.ready_file) != 0)
      fprintf(stderr, "teex: cannot write %s\n", o.ready_file);
  }
  uv_signal_init(&loop, &r.sigint);
  uv_signal_init(&loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  teex_cli_ds_conn_free(&o.k);
  teex_cli_ds_place_proxy_release(o.place_hold);
  return TEEX_EXIT_OK;
}
