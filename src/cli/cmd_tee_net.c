/* `teex tee serve` and `teex tee connect`: a diagnostic RA-TLS endpoint
 * answering teex.Health and teex.Echo (as `openssl s_server` is for TLS),
 * and its client, which prints the peer's verified identity and the
 * round-trip time. Both use the real transport (include/teex/rpc.h) and the
 * real RA-TLS verification (include/teex/ratls_channel.h). */
#include "cli/cli.h"

#include "teex/crypto.h"
#include "teex/log.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"
#include "teex/version.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  OPT_LISTEN = 1000,
  OPT_DATA_DIR,
  OPT_ROLE,
  OPT_POLICY,
  OPT_MUTUAL,
  OPT_COUNT,
  OPT_TIMEOUT,
};

static void default_data_dir(char *out, size_t n) {
  const char *home = getenv("TEEX_HOME");
  if (home != NULL && home[0] != '\0') {
    snprintf(out, n, "%s", home);
    return;
  }
  const char *h = getenv("HOME");
  snprintf(out, n, "%s/.teex", h ? h : ".");
}

/* The peer policy: the file, or the diagnostic default (the local network
 * root, simulated, debug and any code allowed — what `teex tee verify`
 * uses without --policy). */
static int load_policy(struct teex_tee_policy *p, const char *path,
                       const char *data_dir) {
  struct teex_err err;
  teex_err_clear(&err);
  teex_tee_policy_init(p);
  if (path != NULL) {
    if (teex_tee_policy_load(p, path, &err) != 0)
      return teex_cli_fail("%s", teex_err_msg(&err));
    return 0;
  }
  uint8_t root[32];
  if (teex_tee_sim_root(data_dir, root, &err) != 0)
    return teex_cli_fail("no --policy, and no local root: %s",
                         teex_err_msg(&err));
  teex_tee_policy_add_root(p, root);
  p->allow_simulated = 1;
  p->allow_debug = 1;
  p->allow_any_code = 1;
  p->max_age = 0;
  return 0;
}

/* Opens the local TEE and makes an RA-TLS identity for role. */
static int make_identity(const char *data_dir, const char *role,
                         struct teex_tee **tee, EVP_PKEY **key, X509 **cert) {
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.backend = "sim";
  cfg.data_dir = data_dir;
  cfg.role = role;
  if (teex_tee_open(&cfg, tee, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  if (teex_ratls_identity_new(*tee, NULL, key, cert, &err) != 0) {
    teex_tee_close(*tee);
    *tee = NULL;
    return teex_cli_fail("RA-TLS identity: %s", teex_err_msg(&err));
  }
  return 0;
}

static void print_hex(const char *label, const uint8_t *p, size_t n) {
  char hex[2 * 64 + 1];
  teex_hex_encode(p, n, hex);
  printf("%-14s %s\n", label, hex);
}

static void print_peer(const struct teex_tee_identity *id) {
  printf("%-14s %s\n", "tee", teex_tee_type_name(id->tee_type));
  printf("%-14s %s\n", "role", id->role);
  print_hex("mr_enclave", id->mr_enclave, 32);
  print_hex("mr_signer", id->mr_signer, 32);
  printf("%-14s %u\n", "product_id", id->product_id);
  printf("%-14s %u\n", "svn", id->svn);
  printf("%-14s %s\n", "debug", id->debug ? "yes" : "no");
  printf("%-14s %" PRIu64 "\n", "issued_at", id->issued_at);
  print_hex("root", id->root, 32);
  if (id->has_binding && id->binding.has_tls)
    print_hex("tls_spki", id->binding.tls_spki_sha256, 32);
}

/* ---- serve ---- */

struct serve_state {
  uv_loop_t *loop;
  struct teex_rpc_server *srv;
  uv_signal_t sigint, sigterm;
  const char *role;
  uint64_t started;
};

static void h_health(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                     void *arg) {
  struct serve_state *st = arg;
  (void)p;
  (void)n;
  Teex__Rpc__HealthResponse h = TEEX__RPC__HEALTH_RESPONSE__INIT;
  h.status = "ok";
  h.role = (char *)st->role;
  h.uptime_ms = uv_now(st->loop) - st->started;
  h.version = (char *)teex_version();
  uint8_t buf[256];
  size_t len = teex__rpc__health_response__get_packed_size(&h);
  if (len > sizeof buf) {
    teex_rpc_call_respond(call, TEEX_EINTERNAL, "health too big", NULL, 0);
    return;
  }
  teex__rpc__health_response__pack(&h, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, len);
}

static void h_echo(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                   void *arg) {
  (void)arg;
  teex_rpc_call_respond(call, 0, NULL, p, n);
}

static void on_signal(uv_signal_t *s, int signum) {
  struct serve_state *st = s->data;
  TEEX_INFO("tee", "stopping", "signal=%d", signum);
  teex_rpc_server_close(st->srv);
  uv_close((uv_handle_t *)&st->sigint, NULL);
  uv_close((uv_handle_t *)&st->sigterm, NULL);
}

int teex_cmd_tee_serve(int argc, char **argv) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"data-dir", required_argument, NULL, OPT_DATA_DIR},
      {"role", required_argument, NULL, OPT_ROLE},
      {"policy", required_argument, NULL, OPT_POLICY},
      {"mutual", no_argument, NULL, OPT_MUTUAL},
      {"help", no_argument, NULL, 'h'},
      {0, 0, 0, 0}};
  char data_dir[PATH_MAX];
  default_data_dir(data_dir, sizeof data_dir);
  const char *listen = NULL, *role = "diag", *policy_path = NULL;
  int mutual = 0, c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      printf(
          "usage: teex tee serve --listen ADDR [--data-dir DIR] [--role ROLE]\n"
          "                      [--mutual [--policy FILE]]\n\n"
          "A diagnostic RA-TLS endpoint (TLS 1.3 only): presents an RA-TLS\n"
          "certificate made by this process's TEE and answers the RPCs\n"
          "teex.Health and teex.Echo (docs/protocol.md). ADDR is IP:PORT or\n"
          "[IPv6]:PORT; port 0 picks a free port. Prints the address it\n"
          "listens on; runs until SIGINT or SIGTERM.\n\n"
          "  --data-dir DIR  teex data directory (default $TEEX_HOME, else "
          "~/.teex)\n"
          "  --role ROLE     role in the evidence (default diag)\n"
          "  --mutual        require clients to present RA-TLS evidence too\n"
          "  --policy FILE   policy for client evidence with --mutual "
          "(default:\n"
          "                  the local root, simulated/debug/any code "
          "allowed)\n");
      return TEEX_EXIT_OK;
    case OPT_LISTEN:
      listen = optarg;
      break;
    case OPT_DATA_DIR:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case OPT_ROLE:
      role = optarg;
      break;
    case OPT_POLICY:
      policy_path = optarg;
      break;
    case OPT_MUTUAL:
      mutual = 1;
      break;
    default:
      return TEEX_EXIT_USAGE;
    }
  }
  if (listen == NULL || optind != argc) {
    fprintf(stderr, "usage: teex tee serve --listen ADDR (see --help)\n");
    return TEEX_EXIT_USAGE;
  }
  struct teex_tee_policy policy;
  if (mutual && load_policy(&policy, policy_path, data_dir) != 0)
    return TEEX_EXIT_FAIL;
  struct teex_tee *tee = NULL;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  if (make_identity(data_dir, role, &tee, &key, &cert) != 0)
    return TEEX_EXIT_FAIL;

  int rc = TEEX_EXIT_FAIL;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_ratls_verifier verifier = {&policy};
  struct teex_tls_config cfg = {.cert = cert,
                                .key = key,
                                .mutual = mutual,
                                .verify_peer =
                                    mutual ? teex_ratls_channel_verify : NULL,
                                .verify_arg = &verifier};
  struct teex_tls_ctx *ctx = NULL;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct serve_state st = {.loop = &loop, .role = role};
  if (teex_tls_ctx_new(&ctx, &cfg, 1, &err) != 0 ||
      teex_rpc_server_new(&loop, ctx, listen, NULL, &st.srv, &err) != 0) {
    teex_cli_fail("serve: %s", teex_err_msg(&err));
    goto out;
  }
  st.started = uv_now(&loop);
  teex_rpc_server_register(st.srv, "teex.Health", h_health, &st);
  teex_rpc_server_register(st.srv, "teex.Echo", h_echo, &st);
  uv_signal_init(&loop, &st.sigint);
  uv_signal_init(&loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, on_signal, SIGINT);
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  const struct teex_tee_identity *self = teex_tee_self(tee);
  char mr[65];
  teex_hex_encode(self->mr_enclave, 32, mr);
  char host[128];
  snprintf(host, sizeof host, "%s", listen);
  char *colon = strrchr(host, ':');
  if (colon)
    *colon = '\0';
  printf("listening on %s:%d (TLS 1.3, RA-TLS %s, role %s, mr_enclave %s)\n",
         host, teex_rpc_server_port(st.srv), mutual ? "mutual" : "server-only",
         role, mr);
  fflush(stdout);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = TEEX_EXIT_OK;
out:
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  teex_tls_ctx_free(ctx);
  X509_free(cert);
  EVP_PKEY_free(key);
  teex_tee_close(tee);
  return rc;
}

/* ---- connect ---- */

struct connect_state {
  uv_loop_t *loop;
  struct teex_rpc_client *cli;
  const char *addr;
  int count, done_calls, failed, finished;
  uint32_t timeout_ms;
  uint64_t t_start, t_ready, t_call;
  double *rtt_us;
  uint8_t payload[64];
};

static uint64_t now_ns(void) {
  return uv_hrtime();
}

static void next_echo(struct connect_state *st);

static void echo_done(void *arg, int code, const char *msg, const uint8_t *p,
                      size_t n) {
  struct connect_state *st = arg;
  double us = (double)(now_ns() - st->t_call) / 1e3;
  if (code != 0) {
    fprintf(stderr, "teex: echo: %s\n", msg);
    st->failed = 1;
    teex_rpc_client_close(st->cli);
    return;
  }
  if (n != sizeof st->payload || memcmp(p, st->payload, n) != 0) {
    fprintf(stderr, "teex: echo: the answer differs from the request\n");
    st->failed = 1;
    teex_rpc_client_close(st->cli);
    return;
  }
  st->rtt_us[st->done_calls++] = us;
  next_echo(st);
}

static void next_echo(struct connect_state *st) {
  if (st->done_calls == st->count) {
    st->finished = 1;
    teex_rpc_client_close(st->cli);
    return;
  }
  struct teex_err err;
  teex_err_clear(&err);
  st->t_call = now_ns();
  if (teex_rpc_client_call(st->cli, "teex.Echo", st->payload,
                           sizeof st->payload, st->timeout_ms, echo_done, NULL,
                           st, &err) != 0) {
    fprintf(stderr, "teex: echo: %s\n", teex_err_msg(&err));
    st->failed = 1;
    teex_rpc_client_close(st->cli);
  }
}

static void health_done(void *arg, int code, const char *msg, const uint8_t *p,
                        size_t n) {
  struct connect_state *st = arg;
  double us = (double)(now_ns() - st->t_call) / 1e3;
  if (code != 0) {
    fprintf(stderr, "teex: health: %s\n", msg);
    st->failed = 1;
    teex_rpc_client_close(st->cli);
    return;
  }
  Teex__Rpc__HealthResponse *h = teex__rpc__health_response__unpack(NULL, n, p);
  if (h == NULL) {
    fprintf(stderr, "teex: health: malformed answer\n");
    st->failed = 1;
    teex_rpc_client_close(st->cli);
    return;
  }
  printf("%-14s %s (role %s, teex %s, up %" PRIu64 " ms, %.0f us)\n", "health",
         h->status, h->role, h->version, h->uptime_ms, us);
  teex__rpc__health_response__free_unpacked(h, NULL);
  next_echo(st);
}

static void connect_state_cb(struct teex_rpc_client *c, int code,
                             const char *reason, void *arg) {
  struct connect_state *st = arg;
  if (code != 0) {
    if (!st->finished && !st->failed) {
      fprintf(stderr, "teex: connect %s: %s\n", st->addr, reason);
      st->failed = 1;
    }
    return;
  }
  st->t_ready = now_ns();
  const struct teex_tee_identity *id =
      teex_ratls_channel_peer(teex_rpc_client_conn(c));
  printf("connected to %s: TLS 1.3, peer evidence verified\n", st->addr);
  if (id)
    print_peer(id);
  printf("%-14s %.2f ms (TCP + TLS 1.3 + evidence)\n", "handshake",
         (double)(st->t_ready - st->t_start) / 1e6);
  fflush(stdout);
  struct teex_err err;
  teex_err_clear(&err);
  st->t_call = now_ns();
  if (teex_rpc_client_call(c, "teex.Health", NULL, 0, st->timeout_ms,
                           health_done, NULL, st, &err) != 0) {
    fprintf(stderr, "teex: health: %s\n", teex_err_msg(&err));
    st->failed = 1;
    teex_rpc_client_close(c);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int teex_cmd_tee_connect(int argc, char **argv) {
  static const struct option longopts[] = {
      {"policy", required_argument, NULL, OPT_POLICY},
      {"data-dir", required_argument, NULL, OPT_DATA_DIR},
      {"mutual", no_argument, NULL, OPT_MUTUAL},
      {"role", required_argument, NULL, OPT_ROLE},
      {"count", required_argument, NULL, OPT_COUNT},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"help", no_argument, NULL, 'h'},
      {0, 0, 0, 0}};
  char data_dir[PATH_MAX];
  default_data_dir(data_dir, sizeof data_dir);
  const char *policy_path = NULL, *role = "client";
  int mutual = 0, c;
  uint64_t count = 10, timeout = 5000;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      printf(
          "usage: teex tee connect ADDR [--policy FILE] [--data-dir DIR]\n"
          "                        [--mutual [--role ROLE]] [--count N] "
          "[--timeout MS]\n\n"
          "Connects to a teex RA-TLS endpoint (TLS 1.3), verifies its "
          "evidence\n"
          "against the policy during the handshake, prints the peer's "
          "verified\n"
          "identity, calls teex.Health and N teex.Echo round trips (default "
          "10)\n"
          "and prints their round-trip times. Exits 1 with a one-line reason "
          "when\n"
          "the evidence fails the policy or the endpoint fails.\n\n"
          "  --policy FILE   attestation policy (docs/attestation.md); "
          "default:\n"
          "                  the local root, simulated/debug/any code "
          "allowed\n"
          "  --data-dir DIR  teex data directory (default $TEEX_HOME, else "
          "~/.teex)\n"
          "  --mutual        present this process's own RA-TLS certificate\n"
          "  --role ROLE     its role with --mutual (default client)\n"
          "  --timeout MS    deadline of each call (default 5000)\n");
      return TEEX_EXIT_OK;
    case OPT_POLICY:
      policy_path = optarg;
      break;
    case OPT_DATA_DIR:
      snprintf(data_dir, sizeof data_dir, "%s", optarg);
      break;
    case OPT_MUTUAL:
      mutual = 1;
      break;
    case OPT_ROLE:
      role = optarg;
      break;
    case OPT_COUNT:
      if (teex_parse_u64(optarg, &count) != 0 || count > 1000000) {
        teex_cli_fail("--count must be a number up to 1000000");
        return TEEX_EXIT_USAGE;
      }
      break;
    case OPT_TIMEOUT:
      if (teex_parse_u64(optarg, &timeout) != 0 || timeout == 0 ||
          timeout > TEEX_RPC_MAX_TIMEOUT_MS) {
        teex_cli_fail("--timeout must be 1 to %u ms", TEEX_RPC_MAX_TIMEOUT_MS);
        return TEEX_EXIT_USAGE;
      }
      break;
    default:
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "usage: teex tee connect ADDR (see --help)\n");
    return TEEX_EXIT_USAGE;
  }
  const char *addr = argv[optind];
  struct teex_tee_policy policy;
  if (load_policy(&policy, policy_path, data_dir) != 0)
    return TEEX_EXIT_FAIL;
  struct teex_tee *tee = NULL;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  if (mutual && make_identity(data_dir, role, &tee, &key, &cert) != 0)
    return TEEX_EXIT_FAIL;

  int rc = TEEX_EXIT_FAIL;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_ratls_verifier verifier = {&policy};
  struct teex_tls_config cfg = {.cert = cert,
                                .key = key,
                                .mutual = mutual,
                                .verify_peer = teex_ratls_channel_verify,
                                .verify_arg = &verifier};
  struct teex_tls_ctx *ctx = NULL;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct connect_state st = {.loop = &loop,
                             .addr = addr,
                             .count = (int)count,
                             .timeout_ms = (uint32_t)timeout};
  st.rtt_us = calloc(count ? count : 1, sizeof *st.rtt_us);
  memset(st.payload, 0x5a, sizeof st.payload);
  if (st.rtt_us == NULL) {
    teex_cli_fail("out of memory");
    goto out;
  }
  if (teex_tls_ctx_new(&ctx, &cfg, 0, &err) != 0) {
    teex_cli_fail("connect: %s", teex_err_msg(&err));
    goto out;
  }
  st.t_start = now_ns();
  if (teex_rpc_client_connect(&loop, ctx, addr, NULL, connect_state_cb, &st,
                              &st.cli, &err) != 0) {
    teex_cli_fail("%s", teex_err_msg(&err));
    goto out;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (!st.failed && st.finished) {
    if (st.count > 0) {
      qsort(st.rtt_us, (size_t)st.count, sizeof *st.rtt_us, cmp_double);
      printf("%-14s %d echo calls of %zu bytes: min %.0f us, p50 %.0f us, "
             "max %.0f us\n",
             "rtt", st.count, sizeof st.payload, st.rtt_us[0],
             st.rtt_us[st.count / 2], st.rtt_us[st.count - 1]);
    }
    rc = TEEX_EXIT_OK;
  }
out:
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  free(st.rtt_us);
  teex_tls_ctx_free(ctx);
  X509_free(cert);
  EVP_PKEY_free(key);
  teex_tee_close(tee);
  return rc;
}
