/* TEE-DS over the network: a 3-replica group of real `teex ds run`
 * processes on loopback (a fresh sim platform in a temporary directory).
 *
 * 1. Write latency at low load: one SET at a time through the client
 *    library (linearizable, acknowledged after the entry is committed on a
 *    majority and applied on the leader). Baseline in the same run, on the
 *    same kind of connection to the same leader: a teex.Health RPC round
 *    trip (TLS + RPC framing, no consensus, no disk).
 * 2. Failover: SIGKILL of the leader, time until the first write is
 *    acknowledged by a new leader (the client retries through the other
 *    replicas); the killed replica is restarted and caught up before the
 *    next round.
 * Usage: bench_ds_net TEEX_BIN [writes] [kills]   (default 2000 10) */
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_server.h"
#include "teex/log.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include "ds_group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define N 3

static const char *g_bin;
static char g_dir[256];
static struct bench_ds_group g_grp;

static void die(const char *what) {
  fprintf(stderr, "bench_ds_net: %s\n", what);
  bench_ds_group_kill(&g_grp);
  exit(1);
}

static int leader(struct teex_tls_ctx *tls) {
  for (int t = 0; t < 400; t++) {
    for (int i = 0; i < N; i++) {
      struct teex_ds_replica_info info;
      struct teex_err err;
      if (g_grp.pid[i] > 0 &&
          teex_ds_replica_info_get(tls, g_grp.client[i], 1000, &info, &err) ==
              0 &&
          info.leader)
        return i;
    }
    bench_sleep_ms(25);
  }
  die("no leader");
  return -1;
}

static int set(struct teex_ds_sync *s, const char *k, const char *v) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  struct teex_ds_result r;
  struct teex_err err;
  int rc = teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err);
  if (rc == 0) {
    rc = r.status;
    teex_ds_result_free(&r);
  }
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_ds_net TEEX_BIN [writes] [kills]\n");
    return 2;
  }
  g_bin = argv[1];
  int writes = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2000;
  int kills = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 10;
  if (writes < 10 || kills < 0)
    die("bad arguments");
  signal(SIGPIPE, SIG_IGN);
  teex_log_set_level(TEEX_LOG_ERROR); /* expected reconnects are noise */
  snprintf(g_dir, sizeof g_dir, "%s/bench_ds_net.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(g_dir) == NULL)
    die("mkdtemp");
  struct teex_err err;
  uint8_t root[32];
  if (teex_tee_sim_init(g_dir, root, &err) != 0)
    die(err.msg);
  int ports[2 * N];
  if (bench_free_ports(ports, 2 * N) != 0)
    die("bind");
  bench_ds_group_setup(&g_grp, g_bin, g_dir, "r", ports);
  EVP_PKEY *key;
  X509 *cert;
  if (teex_tls_selfsigned_new("bench", 1, &key, &cert, &err) != 0)
    die(err.msg);
  uint8_t spki[32];
  char hex[65], client[128];
  teex_tls_cert_spki_sha256(cert, spki);
  teex_hex_encode(spki, 32, hex);
  snprintf(client, sizeof client, "app=%s:app", hex);
  const char *extra[] = {"--client", client, NULL};
  if (bench_ds_group_init(&g_grp, extra) != 0)
    die("ds init");
  struct teex_tee_policy pol;
  char pp[400];
  snprintf(pp, sizeof pp, "%s/policy.conf", g_grp.state[0]);
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, pp, &err) != 0)
    die(err.msg);
  struct teex_ratls_verifier ver = {&pol};
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &ver};
  struct teex_tls_ctx *tls;
  if (teex_tls_ctx_new(&tls, &tc, 0, &err) != 0)
    die(err.msg);
  if (bench_ds_group_up(&g_grp) != 0)
    die("a replica did not start (see its log in the temporary directory)");
  int l = leader(tls);
  struct teex_ds_client_config cc = {.replicas = g_grp.addrs,
                                     .n_replicas = N,
                                     .tls = tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *s;
  if (teex_ds_sync_open(&cc, &s, &err) != 0)
    die(err.msg);
  for (int i = 0; i < 50; i++) /* warm up: connections, leader found */
    if (set(s, "app/warm", "1") != 0)
      bench_sleep_ms(50);
  l = leader(tls);

  /* 1. write latency vs health RTT, alternating in blocks of 100. */
  struct teex_rpc_sync *h;
  if (teex_rpc_sync_connect(g_grp.client[l], tls, 5000, &h, &err) != 0)
    die(err.msg);
  double *wl = calloc((size_t)writes, sizeof(double));
  double *hl = calloc((size_t)writes, sizeof(double));
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  char k[64], v[128];
  memset(v, 'v', 100);
  v[100] = '\0';
  for (int i = 0; i < writes; i++) {
    snprintf(k, sizeof k, "app/bench-%06d", i % 1000);
    double t0 = bench_now_s();
    if (set(s, k, v) != 0)
      die("write failed");
    wl[i] = bench_now_s() - t0;
    t0 = bench_now_s();
    if (teex_rpc_sync_call(h, "teex.Health", NULL, 0, 5000, &resp, &err) != 0)
      die(err.msg);
    hl[i] = bench_now_s() - t0;
  }
  teex_rpc_sync_close(h);
  teex_buf_free(&resp);
  qsort(wl, (size_t)writes, sizeof(double), bench_cmp_double);
  qsort(hl, (size_t)writes, sizeof(double), bench_cmp_double);
  printf("write latency (%d SETs of 100 bytes, one at a time): p50 %.3f ms  "
         "p99 %.3f ms  max %.3f ms\n",
         writes, bench_pct(wl, writes, 0.5) * 1e3,
         bench_pct(wl, writes, 0.99) * 1e3, wl[writes - 1] * 1e3);
  printf("baseline teex.Health RTT to the leader:            p50 %.3f ms  "
         "p99 %.3f ms\n",
         bench_pct(hl, writes, 0.5) * 1e3, bench_pct(hl, writes, 0.99) * 1e3);
  free(wl);
  free(hl);

  /* 2. failover over `kills` leader kills. */
  double *fo = calloc((size_t)(kills ? kills : 1), sizeof(double));
  for (int r = 0; r < kills; r++) {
    l = leader(tls);
    double t0 = bench_now_s();
    kill(g_grp.pid[l], SIGKILL);
    waitpid(g_grp.pid[l], NULL, 0);
    g_grp.pid[l] = 0;
    snprintf(k, sizeof k, "app/failover-%d", r);
    int rc;
    while ((rc = set(s, k, "1")) != 0)
      if (bench_now_s() - t0 > 30)
        die("no new leader within 30 s");
    fo[r] = bench_now_s() - t0;
    if (bench_ds_group_start(&g_grp, l) != 0 ||
        bench_ds_group_wait_ready(&g_grp, l) != 0)
      die("a replica did not restart (see its log)");
    /* Let it catch up so every round starts from a full group. */
    for (int t = 0; t < 400; t++) {
      struct teex_ds_replica_info a, b;
      int nl = leader(tls);
      if (teex_ds_replica_info_get(tls, g_grp.client[nl], 1000, &a, &err) ==
              0 &&
          teex_ds_replica_info_get(tls, g_grp.client[l], 1000, &b, &err) == 0 &&
          b.last_applied >= a.last_applied && b.voting)
        break;
      bench_sleep_ms(25);
    }
    bench_sleep_ms(300); /* connections re-established both ways */
  }
  if (kills > 0) {
    qsort(fo, (size_t)kills, sizeof(double), bench_cmp_double);
    printf("failover (SIGKILL of the leader -> first acknowledged write), %d "
           "kills: p50 %.0f ms  max %.0f ms\n",
           kills, bench_pct(fo, kills, 0.5) * 1e3, fo[kills - 1] * 1e3);
  }
  free(fo);
  teex_ds_sync_close(s);
  bench_ds_group_stop(&g_grp);
  teex_tls_ctx_free(tls);
  EVP_PKEY_free(key);
  X509_free(cert);
  char *rm[] = {"/bin/rm", "-rf", g_dir, NULL};
  bench_run(rm);
  return 0;
}
