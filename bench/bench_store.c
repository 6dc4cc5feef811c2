/* Sealed store against raw LMDB in the same run: puts (batched, 1000 per
 * transaction), lookups in one read transaction (shuffled order), durable
 * one-put-per-commit writes, and the open-time verification of the whole
 * store. Both sides use the same LMDB flags and the same keys and values;
 * the ratio is sealed / raw ops/s. Rounds alternate raw and sealed; the
 * median ratio is printed.
 * Usage: bench_store [records] [value_bytes] [rounds]
 *        (default 20000 100 3) */
#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/error.h"
#include "teex/store.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000
#define DURABLE_OPS 200

/* CPU time of this process: the machine is shared, and descheduling would
 * otherwise dominate. Durable commits are timed on the wall clock (they
 * wait for fsync). */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_store: %s: %s\n", what, msg);
  exit(1);
}

static size_t n_rec, val_len;
static uint8_t *val;
static size_t *order;

static int key_of(size_t i, char out[32]) {
  return snprintf(out, 32, "bench/key-%08zu", i);
}

static void rmrf(const char *dir) {
  char p[512];
  const char *files[] = {"data.mdb", "lock.mdb", "teex.lock"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(dir);
}

struct result {
  double put, get, durable, open;
};

static void raw_round(const char *dir, struct result *r) {
  MDB_env *env;
  MDB_txn *t;
  MDB_dbi dbi;
  char k[32];
  mkdir(dir, 0700);
  if (mdb_env_create(&env) || mdb_env_set_mapsize(env, 1ull << 30) ||
      mdb_env_set_maxdbs(env, 4) ||
      mdb_env_open(env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600))
    die("raw", "open");
  if (mdb_txn_begin(env, NULL, 0, &t) ||
      mdb_dbi_open(t, "rec", MDB_CREATE, &dbi) || mdb_txn_commit(t))
    die("raw", "dbi");
  double t0 = now();
  for (size_t i = 0; i < n_rec; i += BATCH) {
    if (mdb_txn_begin(env, NULL, 0, &t))
      die("raw", "begin");
    for (size_t j = i; j < i + BATCH && j < n_rec; j++) {
      MDB_val mk = {(size_t)key_of(j, k), k}, mv = {val_len, val};
      if (mdb_put(t, dbi, &mk, &mv, 0))
        die("raw", "put");
    }
    if (mdb_txn_commit(t))
      die("raw", "commit");
  }
  r->put = (double)n_rec / (now() - t0);
  t0 = now();
  if (mdb_txn_begin(env, NULL, MDB_RDONLY, &t))
    die("raw", "begin");
  uint8_t sink = 0;
  for (size_t i = 0; i < n_rec; i++) {
    MDB_val mk = {(size_t)key_of(order[i], k), k}, mv;
    if (mdb_get(t, dbi, &mk, &mv))
      die("raw", "get");
    sink ^= ((uint8_t *)mv.mv_data)[mv.mv_size - 1];
  }
  mdb_txn_abort(t);
  r->get = (double)n_rec / (now() - t0);
  t0 = wall();
  for (size_t i = 0; i < DURABLE_OPS; i++) {
    MDB_val mk = {(size_t)key_of(i, k), k}, mv = {val_len, val};
    if (mdb_txn_begin(env, NULL, 0, &t) || mdb_put(t, dbi, &mk, &mv, 0) ||
        mdb_txn_commit(t))
      die("raw", "durable put");
  }
  r->durable = DURABLE_OPS / (wall() - t0);
  mdb_env_close(env);
  /* Open: LMDB's own open plus one full cursor pass (what sealed open
   * does besides its crypto). */
  t0 = now();
  if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
      mdb_env_open(env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600) ||
      mdb_txn_begin(env, NULL, MDB_RDONLY, &t) ||
      mdb_dbi_open(t, "rec", 0, &dbi))
    die("raw", "reopen");
  MDB_cursor *c;
  MDB_val mk, mv;
  if (mdb_cursor_open(t, dbi, &c))
    die("raw", "cursor");
  while (mdb_cursor_get(c, &mk, &mv, MDB_NEXT) == 0)
    sink ^= ((uint8_t *)mv.mv_data)[0];
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  mdb_env_close(env);
  r->open = 1.0 / (now() - t0);
  if (sink == 0x5a)
    fputc(' ', stderr); /* keep the reads */
  rmrf(dir);
}

static void sealed_round(const char *dir, const uint8_t root[32],
                         struct result *r) {
  struct teex_store *s;
  struct teex_store_txn *t;
  struct teex_err err;
  char k[32];
  if (teex_store_open(dir, root, TEEX_STORE_CREATE, &s, &err))
    die("sealed open", err.msg);
  double t0 = now();
  for (size_t i = 0; i < n_rec; i += BATCH) {
    if (teex_store_txn_begin(s, 0, &t, &err))
      die("sealed begin", err.msg);
    for (size_t j = i; j < i + BATCH && j < n_rec; j++)
      if (teex_store_txn_put(t, k, (size_t)key_of(j, k), val, val_len, &err))
        die("sealed put", err.msg);
    if (teex_store_txn_commit(t, &err))
      die("sealed commit", err.msg);
  }
  r->put = (double)n_rec / (now() - t0);
  struct teex_buf b;
  teex_buf_init(&b, val_len, 0);
  t0 = now();
  if (teex_store_txn_begin(s, TEEX_STORE_TXN_RDONLY, &t, &err))
    die("sealed begin", err.msg);
  for (size_t i = 0; i < n_rec; i++)
    if (teex_store_txn_get(t, k, (size_t)key_of(order[i], k), &b, &err))
      die("sealed get", err.msg);
  teex_store_txn_abort(t);
  r->get = (double)n_rec / (now() - t0);
  teex_buf_free(&b);
  t0 = wall();
  for (size_t i = 0; i < DURABLE_OPS; i++)
    if (teex_store_put(s, k, (size_t)key_of(i, k), val, val_len, &err))
      die("sealed durable put", err.msg);
  r->durable = DURABLE_OPS / (wall() - t0);
  teex_store_close(s);
  t0 = now();
  if (teex_store_open(dir, root, 0, &s, &err))
    die("sealed reopen", err.msg);
  teex_store_close(s);
  r->open = 1.0 / (now() - t0);
  rmrf(dir);
}

static double field(const struct result *r, int m) {
  return m == 0 ? r->put : m == 1 ? r->get : m == 2 ? r->durable : r->open;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  n_rec = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
  val_len = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
  int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 3;
  if (n_rec < DURABLE_OPS || val_len > 1000000 || rounds < 1 || rounds > 50)
    die("usage", "bench_store [records>=200] [value_bytes] [rounds]");
  if (teex_crypto_init())
    die("init", "crypto");
  val = malloc(val_len ? val_len : 1);
  order = malloc(n_rec * sizeof *order);
  if (val == NULL || order == NULL)
    die("init", "out of memory");
  teex_random(val, val_len);
  for (size_t i = 0; i < n_rec; i++)
    order[i] = i;
  for (size_t i = n_rec - 1; i > 0; i--) {
    uint32_t r;
    teex_random(&r, sizeof r);
    size_t j = r % (i + 1), x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  uint8_t root[32];
  teex_random(root, sizeof root);
  const char *tmp = getenv("TMPDIR");
  char dir[256];
  snprintf(dir, sizeof dir, "%s/teex-bench-store-%ld", tmp ? tmp : "/tmp",
           (long)getpid());

  struct result raw[50], sealed[50];
  double ratio[4][50];
  for (int i = 0; i < rounds; i++) {
    raw_round(dir, &raw[i]);
    sealed_round(dir, root, &sealed[i]);
    ratio[0][i] = sealed[i].put / raw[i].put;
    ratio[1][i] = sealed[i].get / raw[i].get;
    ratio[2][i] = sealed[i].durable / raw[i].durable;
    ratio[3][i] = sealed[i].open / raw[i].open;
  }
  double rp[50], sp[50];
  const char *names[] = {"put (1000 per txn)", "get (read txn)",
                         "put (1 per durable commit)", "open + verify"};
  printf("records=%zu value=%zu bytes rounds=%d (median)\n", n_rec, val_len,
         rounds);
  printf("%-28s %14s %14s %8s\n", "operation", "raw LMDB /s", "sealed /s",
         "ratio");
  for (int m = 0; m < 4; m++) {
    for (int i = 0; i < rounds; i++) {
      rp[i] = field(&raw[i], m);
      sp[i] = field(&sealed[i], m);
    }
    printf("%-28s %14.0f %14.0f %8.2f\n", names[m], median(rp, rounds),
           median(sp, rounds), median(ratio[m], rounds));
  }
  printf("ops per CPU-second (durable: per wall-clock second); open: opens "
         "per second of a store holding all records\n");
  free(val);
  free(order);
  return 0;
}
