/* TEE-DS commits through libraft's in-memory fixture (3 replicas, one
 * process, no network, no disk): CPU cost of the replicated state machine.
 * Baseline in the same run: the same fixture and the same number and size
 * of entries, with a state machine that only counts them (no sealing, no
 * decoding, no map). Measured: SET commands sealed under the group key,
 * opened, decoded and applied on all 3 replicas. Both keep WINDOW proposals
 * in flight. The ratio is measured / baseline commits per CPU second.
 * Usage: bench_ds [commands] [value_bytes] [rounds]  (default 2000 100 3)
 * The fixture itself dominates and grows superlinearly with the log (its
 * in-memory I/O copies entries), so keep the command count small. */
#include "ds/consensus.h"
#include "ds/replica.h"
#include "teex/crypto.h"
#include "teex/ds.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW 64

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_ds: %s\n", what);
  exit(1);
}

/* ---- the counting baseline state machine ---- */
static int count_apply(void *sm, uint64_t index, const uint8_t *data,
                       size_t len, void **result) {
  (void)index;
  (void)data;
  (void)len;
  (*(unsigned long *)sm)++;
  *result = NULL;
  return 0;
}
static void count_free(void *sm, void *r) {
  (void)sm;
  (void)r;
}
static const struct teex_ds_sm_hooks count_hooks = {count_apply, count_free,
                                                    NULL, NULL};

static unsigned long g_done;
static void on_commit(void *arg, int status, void *result) {
  (void)arg;
  if (status != 0)
    die("proposal failed");
  (void)result;
  g_done++;
}
static void on_result(void *arg, int status, struct teex_ds_result *res) {
  (void)arg;
  if (status != 0 || res->status != 0)
    die("command failed");
  teex_ds_result_free(res);
  free(res);
  g_done++;
}

struct group {
  struct raft_fixture f;
  struct teex_ds_consensus *cons[3];
  struct teex_ds_replica *rep[3];
  unsigned long counts[3];
};

static uint64_t fixture_clock(void *arg) {
  return (uint64_t)raft_fixture_time(arg);
}

static void group_start(struct group *g, int sealed) {
  static const uint8_t key[32] = "bench-group-key-0123456789abcdef";
  memset(g, 0, sizeof(*g));
  if (raft_fixture_initialize(&g->f) != 0)
    die("fixture");
  for (unsigned i = 0; i < 3; i++) {
    if (sealed) {
      struct teex_ds_replica_config cfg = {
          .group_key = key, .clock_ms = fixture_clock, .clock_arg = &g->f};
      if (teex_ds_replica_new(&cfg, &g->rep[i], NULL) ||
          teex_ds_raft_new(&teex_ds_replica_hooks, g->rep[i], &g->cons[i]))
        die("replica");
      teex_ds_replica_bind(g->rep[i], g->cons[i]);
    } else if (teex_ds_raft_new(&count_hooks, &g->counts[i], &g->cons[i])) {
      die("consensus");
    }
    if (raft_fixture_grow(&g->f, teex_ds_raft_fsm(g->cons[i])))
      die("grow");
    teex_ds_raft_attach(g->cons[i], raft_fixture_get(&g->f, i));
  }
  struct raft_configuration conf;
  if (raft_fixture_configuration(&g->f, 3, &conf) ||
      raft_fixture_bootstrap(&g->f, &conf))
    die("bootstrap");
  raft_configuration_close(&conf);
  if (raft_fixture_start(&g->f) ||
      !raft_fixture_step_until_has_leader(&g->f, 10000))
    die("no leader");
}

static void group_stop(struct group *g) {
  raft_fixture_close(&g->f);
  for (unsigned i = 0; i < 3; i++) {
    g->cons[i]->ops->free(g->cons[i]);
    teex_ds_replica_free(g->rep[i]);
  }
}

/* Commits n commands; returns commits per CPU second. */
static double run(int sealed, unsigned long n, size_t value_bytes) {
  struct group g;
  group_start(&g, sealed);
  unsigned l = raft_fixture_leader_index(&g.f);
  uint8_t *val = malloc(value_bytes);
  memset(val, 'v', value_bytes);
  char key[32];
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "bench"};
  c.val = val;
  c.val_len = value_bytes;
  /* the baseline's entries are as large as the sealed ones */
  size_t plain_len = TEEX_DS_ENTRY_HDR2 + TEEX_XAEAD_OVERHEAD + 8 + 4 + 5 + 4 +
                     16 + 4 + value_bytes + 4 + 8 + 8 + 4 + 4 + 4;
  uint8_t *plain = calloc(1, plain_len);
  g_done = 0;
  unsigned long sent = 0;
  double t0 = cpu_now();
  while (g_done < n) {
    while (sent < n && sent - g_done < WINDOW) {
      int rc;
      if (sealed) {
        snprintf(key, sizeof(key), "bench/k%012lu", sent % 1000);
        c.key = (const uint8_t *)key;
        c.key_len = strlen(key);
        rc = teex_ds_replica_submit(g.rep[l], &c, on_result, NULL, NULL);
      } else {
        rc = g.cons[l]->ops->propose(g.cons[l], plain, plain_len, on_commit,
                                     NULL);
      }
      if (rc != 0)
        die("submit");
      sent++;
    }
    raft_fixture_step(&g.f);
  }
  double dt = cpu_now() - t0;
  group_stop(&g);
  free(val);
  free(plain);
  return (double)n / dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
  size_t vb = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
  int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 3;
  if (n == 0 || vb > TEEX_DS_VALUE_MAX || rounds < 1 || rounds > 15)
    die("usage: bench_ds [commands] [value_bytes] [rounds]");
  double ratio[15], base_r[15], meas_r[15];
  for (int r = 0; r < rounds; r++) {
    base_r[r] = run(0, n, vb);
    meas_r[r] = run(1, n, vb);
    ratio[r] = meas_r[r] / base_r[r];
    printf("round %d: baseline %.0f commits/s, sealed kv %.0f commits/s, "
           "ratio %.2f\n",
           r + 1, base_r[r], meas_r[r], ratio[r]);
  }
  qsort(ratio, (size_t)rounds, sizeof(double), cmp);
  qsort(meas_r, (size_t)rounds, sizeof(double), cmp);
  printf("in-memory fixture, 3 replicas in one process, %lu SETs of %zu-byte "
         "values, %d in flight: sealed kv median %.0f commits per CPU "
         "second; median ratio to the counting baseline %.2f\n",
         n, vb, WINDOW, meas_r[rounds / 2], ratio[rounds / 2]);
  return 0;
}
