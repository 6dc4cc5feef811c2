/* The statestore (include/teex/statestore.h): what keeping the SM's state
 * in TEE-DS costs per operation. A 3-replica group of real `teex ds run`
 * processes on loopback (fresh sim platform in a temporary directory); this
 * process is an enclave in role sm (namespace smns), as the SM is.
 *
 * Baseline in the same run: one plain TEE-DS SET through the same client
 * (a replicated write: commit on a majority, apply on the leader).
 * Measured, one at a time, alternating in blocks with the baseline:
 *  - statestore put: a record sealed by the caller, committed with one
 *    TEEX_DS_TXN (no conditions);
 *  - a lease's transaction: read a counter and a lease record (two
 *    linearizable reads), then commit both with their conditions (one
 *    TEEX_DS_TXN) — what sm.LeaseDataKey does;
 *  - the same transaction on the sealed local store (an fsync'd LMDB
 *    commit), for comparison.
 * Usage: bench_statestore TEEX_BIN [ops]   (default 500) */
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/log.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/statestore.h"
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define N 3
#define BLOCK 50

static const char *g_bin;
static char g_dir[256];
static struct bench_ds_group g_grp;

static void die(const char *what) {
  fprintf(stderr, "bench_statestore: %s\n", what);
  bench_ds_group_kill(&g_grp);
  exit(1);
}

static double p50(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return v[n / 2];
}

static int raw_set(struct teex_ds_sync *s, int i) {
  char k[64], v[16];
  snprintf(k, sizeof k, "smns/raw/%d", i);
  snprintf(v, sizeof v, "%08d", i);
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "smns"};
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

struct lease {
  int task;
};

/* sm.LeaseDataKey's shape: a counter and a per-task record. */
static int lease_fn(struct teex_statestore_txn *txn, void *arg,
                    struct teex_err *err) {
  struct lease *l = arg;
  char lk[64];
  snprintf(lk, sizeof lk, "dslease/bench/%d", l->task);
  struct teex_buf v;
  teex_buf_init(&v, 64, 0);
  uint32_t n = 0;
  int rc = teex_statestore_txn_get(txn, "dsuse/bench", &v, err);
  if (rc == 0 && v.len == 4)
    memcpy(&n, v.data, 4);
  else if (rc != TEEX_ENOTFOUND)
    goto out;
  rc = teex_statestore_txn_get(txn, lk, &v, err);
  if (rc == TEEX_ENOTFOUND) {
    uint8_t exp[8] = {0};
    n++;
    rc = teex_statestore_txn_put(txn, "dsuse/bench", &n, 4, err);
    if (rc == 0)
      rc = teex_statestore_txn_put(txn, lk, exp, 8, err);
  }
out:
  teex_buf_free(&v);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_statestore TEEX_BIN [ops]\n");
    return 2;
  }
  g_bin = argv[1];
  int ops = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 500;
  if (ops < BLOCK)
    die("bad arguments");
  ops -= ops % BLOCK;
  signal(SIGPIPE, SIG_IGN);
  teex_log_set_level(TEEX_LOG_ERROR);
  snprintf(g_dir, sizeof g_dir, "%s/bench_statestore.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(g_dir) == NULL)
    die("mkdtemp");
  struct teex_err err;
  uint8_t root[32];
  if (teex_tee_sim_init(g_dir, root, &err) != 0)
    die(err.msg);
  /* This process as an enclave in role sm; the group admits its build. */
  struct teex_tee_config ec = {.data_dir = g_dir, .role = "sm"};
  struct teex_tee *enclave;
  if (teex_tee_open(&ec, &enclave, &err) != 0)
    die(err.msg);
  char rh[65], mh[65], cpol[320], text[1024];
  teex_hex_encode(root, 32, rh);
  teex_hex_encode(teex_tee_self(enclave)->mr_enclave, 32, mh);
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", g_dir);
  int tl = snprintf(text, sizeof text,
                    "[policy]\nroles = sm\nallow_simulated = true\n[roots]\n"
                    "net = %s\n[measurements]\nsm = %s\n",
                    rh, mh);
  FILE *f = fopen(cpol, "w");
  if (f == NULL || fwrite(text, 1, (size_t)tl, f) != (size_t)tl ||
      fclose(f) != 0)
    die("write clients policy");
  int ports[2 * N];
  if (bench_free_ports(ports, 2 * N) != 0)
    die("bind");
  bench_ds_group_setup(&g_grp, g_bin, g_dir, "r", ports);
  const char *extra[] = {"--enclave", "sm=smns", "--client-policy", cpol, NULL};
  if (bench_ds_group_init(&g_grp, extra) != 0)
    die("ds init");
  char pp[400];
  struct teex_tee_policy pol;
  snprintf(pp, sizeof pp, "%s/policy.conf", g_grp.state[0]);
  teex_tee_policy_init(&pol);
  if (teex_tee_policy_load(&pol, pp, &err) != 0)
    die(err.msg);
  struct teex_ratls_verifier ver = {&pol};
  EVP_PKEY *key;
  X509 *cert;
  if (teex_ratls_identity_new(enclave, NULL, &key, &cert, &err) != 0)
    die(err.msg);
  struct teex_tls_config tc = {.cert = cert,
                               .key = key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &ver};
  struct teex_tls_ctx *tls;
  if (teex_tls_ctx_new(&tls, &tc, 0, &err) != 0)
    die(err.msg);
  if (bench_ds_group_up(&g_grp) != 0)
    die("a replica did not start");
  struct teex_ds_client_config cc = {.replicas = g_grp.addrs,
                                     .n_replicas = N,
                                     .tls = tls,
                                     .ns = "smns",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *raw;
  if (teex_ds_sync_open(&cc, &raw, &err) != 0)
    die(err.msg);
  int warm = 0;
  for (int i = 0; i < 100 && !warm; i++)
    if (raw_set(raw, -1) == 0)
      warm = 1;
    else
      bench_sleep_ms(100);
  if (!warm)
    die("the group never took a write");
  uint8_t secret[64];
  teex_random(secret, sizeof secret);
  struct teex_statestore_ds_config dc = {
      .client = cc, .secret = secret, .secret_len = 64, .label = "sm"};
  struct teex_statestore *ds;
  if (teex_statestore_open_ds(&dc, &ds, &err) != 0)
    die(err.msg);
  char ldir[320];
  snprintf(ldir, sizeof ldir, "%s/local", g_dir);
  struct teex_store *store;
  struct teex_statestore *local;
  if (teex_store_open(ldir, secret, TEEX_STORE_CREATE, &store, &err) != 0 ||
      teex_statestore_open_local(store, &local, &err) != 0)
    die(err.msg);

  double *t_set = calloc((size_t)ops, sizeof(double));
  double *t_put = calloc((size_t)ops, sizeof(double));
  double *t_lease = calloc((size_t)ops, sizeof(double));
  double *t_local = calloc((size_t)ops, sizeof(double));
  if (!t_set || !t_put || !t_lease || !t_local)
    die("out of memory");
  static const char val[100] = "a state record of 100 bytes";
  for (int b = 0; b < ops; b += BLOCK) {
    for (int i = b; i < b + BLOCK; i++) {
      double t0 = bench_now_s();
      if (raw_set(raw, i) != 0)
        die("set");
      t_set[i] = bench_now_s() - t0;
    }
    for (int i = b; i < b + BLOCK; i++) {
      char name[64];
      snprintf(name, sizeof name, "svc/bench-%d", i);
      double t0 = bench_now_s();
      if (teex_statestore_put(ds, name, val, sizeof val, &err) != 0)
        die(err.msg);
      t_put[i] = bench_now_s() - t0;
    }
    for (int i = b; i < b + BLOCK; i++) {
      struct lease l = {i};
      double t0 = bench_now_s();
      if (teex_statestore_run(ds, lease_fn, &l, &err) != 0)
        die(err.msg);
      t_lease[i] = bench_now_s() - t0;
    }
    for (int i = b; i < b + BLOCK; i++) {
      struct lease l = {i};
      double t0 = bench_now_s();
      if (teex_statestore_run(local, lease_fn, &l, &err) != 0)
        die(err.msg);
      t_local[i] = bench_now_s() - t0;
    }
  }
  double s = p50(t_set, ops) * 1e3, p = p50(t_put, ops) * 1e3,
         l = p50(t_lease, ops) * 1e3, lo = p50(t_local, ops) * 1e3;
  printf("statestore, %d operations each, one at a time, p50 latency:\n", ops);
  printf("  TEE-DS SET (baseline: a replicated write)      %7.2f ms\n", s);
  printf("  statestore put on TEE-DS (sealed, one TXN)     %7.2f ms  (x%.2f)\n",
         p, p / s);
  printf("  lease transaction on TEE-DS (2 reads + TXN)    %7.2f ms  (x%.2f)\n",
         l, l / s);
  printf("  lease transaction on the sealed local store    %7.2f ms  (x%.2f)\n",
         lo, lo / s);
  teex_statestore_close(ds);
  teex_statestore_close(local);
  teex_store_close(store);
  teex_ds_sync_close(raw);
  teex_tls_ctx_free(tls);
  EVP_PKEY_free(key);
  X509_free(cert);
  teex_tee_close(enclave);
  bench_ds_group_stop(&g_grp);
  char *rm[] = {"/bin/rm", "-rf", g_dir, NULL};
  bench_run(rm);
  free(t_set);
  free(t_put);
  free(t_lease);
  free(t_local);
  return 0;
}
