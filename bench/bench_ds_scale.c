/* TEE-DS scale-out: two 3-replica groups of real `teex ds run` processes
 * on loopback (one sim platform), a placement directory from `teex ds
 * place init`.
 *
 * 1. Routing overhead: SETs one at a time through the router
 *    (ds_router.h) against SETs through the plain group client to the same
 *    group, alternating in blocks of 100 (the baseline in the same run).
 * 2. Moving a namespace: K keys written one at a time through the plain
 *    client (baseline), then `teex ds move` of the namespace to the other
 *    group while this process keeps writing through a router: the move's
 *    wall time against the baseline, and the longest write the writer saw
 *    (the pause while the namespace is frozen, retries included).
 * Usage: bench_ds_scale TEEX_BIN [writes] [keys]   (default 1000 2000) */
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_router.h"
#include "teex/log.h"
#include "teex/ratls_channel.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include "ds_group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define G 2
#define N 3

static const char *g_bin;
static char g_dir[256];
static struct bench_ds_group g_grp[G];

static void die(const char *what) {
  fprintf(stderr, "bench_ds_scale: %s\n", what);
  for (int g = 0; g < G; g++)
    bench_ds_group_kill(&g_grp[g]);
  exit(1);
}

static struct teex_ds_cmd set_cmd(const char *k, const char *v) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  return c;
}

static int pset(struct teex_ds_sync *s, const char *k, const char *v) {
  struct teex_ds_cmd c = set_cmd(k, v);
  struct teex_ds_result r;
  struct teex_err err;
  int rc = teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err);
  if (rc == 0) {
    rc = r.status;
    teex_ds_result_free(&r);
  }
  return rc;
}

static int rset(struct teex_ds_router_sync *s, const char *k, const char *v) {
  struct teex_ds_cmd c = set_cmd(k, v);
  struct teex_ds_result r;
  struct teex_err err;
  int rc = teex_ds_router_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err);
  if (rc == 0) {
    rc = r.status;
    teex_ds_result_free(&r);
  }
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_ds_scale TEEX_BIN [writes] [keys]\n");
    return 2;
  }
  g_bin = argv[1];
  int writes = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1000;
  int keys = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 2000;
  if (writes < 200 || keys < 10 || keys > 100000)
    die("bad arguments (writes >= 200, keys 10..100000)");
  signal(SIGPIPE, SIG_IGN);
  teex_log_set_level(TEEX_LOG_ERROR);
  snprintf(g_dir, sizeof g_dir, "%s/bench_ds_scale.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(g_dir) == NULL)
    die("mkdtemp");
  struct teex_err err;
  uint8_t root[32];
  if (teex_tee_sim_init(g_dir, root, &err) != 0)
    die(err.msg);
  int ports[2 * G * N];
  if (bench_free_ports(ports, 2 * G * N) != 0)
    die("bind");
  for (int g = 0; g < G; g++) {
    char tag[16];
    snprintf(tag, sizeof tag, "g%dr", g + 1);
    bench_ds_group_setup(&g_grp[g], g_bin, g_dir, tag, ports + 2 * N * g);
  }
  EVP_PKEY *key;
  X509 *cert;
  if (teex_tls_selfsigned_new("bench", 1, &key, &cert, &err) != 0)
    die(err.msg);
  uint8_t spki[32];
  char hex[65], client[128];
  teex_tls_cert_spki_sha256(cert, spki);
  teex_hex_encode(spki, 32, hex);
  snprintf(client, sizeof client, "app=%s:app", hex);
  char certp[300], keyp[300];
  snprintf(certp, sizeof certp, "%s/op.pem", g_dir);
  snprintf(keyp, sizeof keyp, "%s/op.key", g_dir);
  FILE *f = fopen(keyp, "w");
  if (f == NULL || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
    die("write key");
  fclose(f);
  f = fopen(certp, "w");
  if (f == NULL || PEM_write_X509(f, cert) != 1)
    die("write cert");
  fclose(f);
  const char *extra[] = {"--client", client, NULL};
  for (int g = 0; g < G; g++)
    if (bench_ds_group_init(&g_grp[g], extra) != 0)
      die("ds init");
  for (int g = 0; g < G; g++)
    if (bench_ds_group_up(&g_grp[g]) != 0)
      die("a replica did not start (see its log)");

  /* the directory: app on group 1 */
  char pk_dir[300], skp[320], pubp[320], dirp[300], g1[400], g2[400], pol[400];
  snprintf(pk_dir, sizeof pk_dir, "%s/pk", g_dir);
  snprintf(skp, sizeof skp, "%s/placement.key", pk_dir);
  snprintf(pubp, sizeof pubp, "%s/placement.pub", pk_dir);
  snprintf(dirp, sizeof dirp, "%s/directory", g_dir);
  snprintf(g1, sizeof g1, "1=%s", g_grp[0].state[0]);
  snprintf(g2, sizeof g2, "2=%s", g_grp[1].state[0]);
  snprintf(pol, sizeof pol, "%s/policy.conf", g_grp[0].state[0]);
  char *kg[] = {(char *)g_bin, "ds", "place", "keygen", "--out", pk_dir, NULL};
  char *in[] = {(char *)g_bin, "ds",    "place",   "init",    "--place-key",
                skp,           "--out", dirp,      "--group", g1,
                "--group",     g2,      "--place", "app=1",   NULL};
  if (bench_run(kg) != 0 || bench_run(in) != 0)
    die("teex ds place");

  struct teex_tee_policy tp;
  teex_tee_policy_init(&tp);
  if (teex_tee_policy_load(&tp, pol, &err) != 0)
    die(err.msg);
  struct teex_ratls_verifier ver = {&tp};
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &ver};
  struct teex_tls_ctx *tls;
  if (teex_tls_ctx_new(&tls, &tc, 0, &err) != 0)
    die(err.msg);
  struct teex_ds_client_config cc = {.replicas = g_grp[0].addrs,
                                     .n_replicas = N,
                                     .tls = tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *plain;
  if (teex_ds_sync_open(&cc, &plain, &err) != 0)
    die(err.msg);
  size_t n;
  uint8_t *text = NULL, pk[32];
  FILE *df = fopen(dirp, "rb");
  text = malloc(TEEX_DS_DIR_MAX);
  n = df ? fread(text, 1, TEEX_DS_DIR_MAX, df) : 0;
  if (df)
    fclose(df);
  f = fopen(pubp, "r");
  char pubhex[80] = {0};
  if (f == NULL || fgets(pubhex, sizeof pubhex, f) == NULL)
    die("read placement.pub");
  fclose(f);
  pubhex[64] = 0;
  size_t pkn;
  if (teex_hex_decode(pubhex, pk, 32, &pkn) != 0 || pkn != 32)
    die("placement.pub");
  struct teex_ds_router_tls rt = {.tls = tls};
  {
    FILE *pf = fopen(pol, "rb");
    uint8_t buf[1 << 16];
    size_t pn = pf ? fread(buf, 1, sizeof buf, pf) : 0;
    if (pf)
      fclose(pf);
    teex_sha256(buf, pn, rt.policy);
  }
  struct teex_ds_router_config rc = {.dir = text,
                                     .dir_len = n,
                                     .placement_pk = pk,
                                     .tls = &rt,
                                     .n_tls = 1,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_router_sync *router;
  if (teex_ds_router_sync_open(&rc, &router, &err) != 0)
    die(err.msg);
  for (int i = 0; i < 100; i++) /* warm up both paths */
    if (pset(plain, "app/warm", "1") != 0 || rset(router, "app/warm", "1"))
      bench_sleep_ms(50);

  /* 1. routing overhead */
  double *lp = calloc((size_t)writes, sizeof(double));
  double *lr = calloc((size_t)writes, sizeof(double));
  int np = 0, nr = 0;
  char k[64], v[128];
  memset(v, 'x', 100);
  v[100] = 0;
  for (int b = 0; b < writes / 100; b++)
    for (int i = 0; i < 100; i++) {
      snprintf(k, sizeof k, "app/o%d", b * 100 + i);
      double t0 = bench_now_s();
      int e = (b % 2 == 0) ? pset(plain, k, v) : rset(router, k, v);
      double dt = (bench_now_s() - t0) * 1e3;
      if (e != 0)
        die("write failed");
      if (b % 2 == 0)
        lp[np++] = dt;
      else
        lr[nr++] = dt;
    }
  qsort(lp, (size_t)np, sizeof(double), bench_cmp_double);
  qsort(lr, (size_t)nr, sizeof(double), bench_cmp_double);
  printf("routing: SET p50/p99 through the router %.3f/%.3f ms, plain group "
         "client %.3f/%.3f ms (%d each), ratio p50 %.2f\n",
         bench_pct(lr, nr, 0.5), bench_pct(lr, nr, 0.99),
         bench_pct(lp, np, 0.5), bench_pct(lp, np, 0.99), nr,
         bench_pct(lr, nr, 0.5) / bench_pct(lp, np, 0.5));

  /* 2. move: baseline = writing the keys one at a time */
  double t0 = bench_now_s();
  for (int i = 0; i < keys; i++) {
    snprintf(k, sizeof k, "app/m%d", i);
    if (pset(plain, k, v) != 0)
      die("write failed");
  }
  double t_write = bench_now_s() - t0;
  int total = keys + writes + 1;
  char *mv[] = {(char *)g_bin, "ds",        "move",  "app",         "--to",
                "2",           "--dir",     dirp,    "--place-key", skp,
                "--cert",      certp,       "--key", keyp,          "--policy",
                pol,           "--timeout", "30000", NULL};
  char mlog[320];
  snprintf(mlog, sizeof mlog, "%s/move.log", g_dir);
  t0 = bench_now_s();
  pid_t mover = bench_spawn(mv, mlog);
  if (mover < 0)
    die("spawn move");
  double worst = 0, t_move = 0;
  int during = 0, st = -1;
  for (;;) {
    snprintf(k, sizeof k, "app/d%d", during);
    double w0 = bench_now_s();
    int e = rset(router, k, v);
    double dt = (bench_now_s() - w0) * 1e3;
    if (e != 0)
      die("a write during the move failed");
    if (dt > worst)
      worst = dt;
    during++;
    int s;
    if (waitpid(mover, &s, WNOHANG) == mover) {
      t_move = bench_now_s() - t0;
      st = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
      break;
    }
  }
  if (st != 0)
    die("teex ds move failed (see move.log)");
  FILE *ml = fopen(mlog, "r");
  char line[256];
  while (ml != NULL && fgets(line, sizeof line, ml) != NULL) {
    printf("  teex ds move: %s", line);
    if (strncmp(line, "2/4 ", 4) == 0)
      total = (int)strtol(line + 4, NULL, 10); /* keys the move copied */
  }
  if (ml != NULL)
    fclose(ml);
  printf("move: the namespace (%d keys) moved in %.2f s; writing %d "
         "keys one at a time took %.2f s (move/write ratio per key %.2f); %d "
         "writes during the move, the longest %.0f ms; the writer followed "
         "%llu move(s)\n",
         total, t_move, keys, t_write, (t_move / total) / (t_write / keys),
         during, worst,
         (unsigned long long)teex_ds_router_moves(
             teex_ds_router_sync_router(router)));
  teex_ds_router_sync_close(router);
  teex_ds_sync_close(plain);
  teex_tls_ctx_free(tls);
  free(text);
  free(lp);
  free(lr);
  for (int g = 0; g < G; g++)
    bench_ds_group_stop(&g_grp[g]);
  char *rm[] = {"/bin/rm", "-rf", g_dir, NULL};
  bench_run(rm);
  EVP_PKEY_free(key);
  X509_free(cert);
  return 0;
}
