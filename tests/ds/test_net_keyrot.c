/* TEE-DS group key rotation with real `teex ds run` processes and the
 * operator's CLI: replica 3 is removed, then `teex ds rotate-key` runs
 * while a client writes. Every acknowledged write (before, during and
 * after the rotation) reads back, the remaining replicas converge, and a
 * restart of each of them (from snapshots taken after the rotation:
 * --snapshot-threshold 16) still reads everything. The removed replica
 * never receives the new epoch: its sealed group.key is byte for byte what
 * it was before the rotation (the members' grew by one epoch), its log
 * shows no hand-over, and the rotation's followers each fetched the epoch
 * once. A client that is not an operator cannot rotate. */
#include "net_fixture.c"

#include "ds/group.h"
#include "ds/membership.h"

#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct kt {
  struct net net;
  char cert[600], key[600];
};

static int setup(void **state) {
  struct kt *m = calloc(1, sizeof(*m));
  struct net *t = &m->net;
  net_prepare(t);
  t->init_extra[0] = "--operator";
  t->init_extra[1] = "app";
  t->snapshot_threshold = "16";
  net_init_states(t, NULL, NULL);
  snprintf(m->cert, sizeof m->cert, "%s/op.pem", t->dir);
  snprintf(m->key, sizeof m->key, "%s/op.key", t->dir);
  FILE *f = fopen(m->cert, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, t->cert), 1);
  fclose(f);
  f = fopen(m->key, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_PrivateKey(f, t->key, NULL, NULL, 0, NULL, NULL),
                   1);
  fclose(f);
  *state = m;
  return 0;
}

static int teardown(void **state) {
  struct kt *m = *state;
  net_close(&m->net);
  free(m);
  return 0;
}

/* `teex ds CMD --state (replica via) [ID]` as a process. */
static int spawn_cmd(struct kt *m, const char *cmd, int via, const char *id,
                     const char *cert, const char *key, const char *log) {
  struct net *t = &m->net;
  char *a[12] = {(char *)tu_teex_bin(),
                 "ds",
                 (char *)cmd,
                 "--state",
                 t->state[via],
                 "--cert",
                 (char *)cert,
                 "--key",
                 (char *)key};
  int n = 9;
  if (id != NULL)
    a[n++] = (char *)id;
  a[n] = NULL;
  int pid = tu_spawn(a, log);
  assert_true(pid > 0);
  return pid;
}

/* Exit status of pid, or -1 while it runs. */
static int exited(int pid) {
  int ws;
  if (waitpid(pid, &ws, WNOHANG) == pid)
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
  return -1;
}

static int wait_exit(int pid, int ms) {
  for (int i = 0; i < ms / 20; i++) {
    int st = exited(pid);
    if (st >= 0)
      return st;
    net_sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static size_t count_in(const char *path, const char *needle) {
  size_t n, c = 0;
  char *s = (char *)tu_read_file(path, &n);
  for (const char *p = s; p != NULL && (p = strstr(p, needle)) != NULL; p++)
    c++;
  free(s);
  return c;
}

static uint8_t *key_file(struct net *t, int i, size_t *n) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", t->state[i], TEEX_DS_KEY_FILE);
  return tu_read_file(path, n);
}

static int snapshots_in(struct net *t, int i) {
  char cmd[800];
  snprintf(cmd, sizeof cmd, "ls %s/raft | grep -c '^snapshot-' >/dev/null",
           t->state[i]);
  return system(cmd) == 0;
}

#define N_WRITES 400
static void read_all(struct net *t, const int *acked, int n) {
  struct teex_ds_sync *s = net_client(t, "app", 5000);
  char k[32], v[32], got[64];
  for (int i = 0; i < n; i++) {
    if (!acked[i])
      continue;
    snprintf(k, sizeof k, "app/k%d", i);
    snprintf(v, sizeof v, "v%d", i);
    int rc = net_get(s, k, TEEX_DS_READ_LINEARIZABLE, got, sizeof got);
    if (rc != 0 || strcmp(got, v) != 0)
      fail_msg("acknowledged %s lost: %s '%s'", k, teex_strerror(rc), got);
  }
  teex_ds_sync_close(s);
}

static void test_rotate_after_removal_under_writes(void **state) {
  struct kt *m = *state;
  struct net *t = &m->net;
  net_start_all(t);
  net_warm_up(t);
  static int acked[N_WRITES];
  memset(acked, 0, sizeof acked);
  struct teex_ds_sync *s = net_client(t, "app", 5000);
  char k[32], v[32], log[700];
  int w = 0;
  for (; w < 30; w++) {
    snprintf(k, sizeof k, "app/k%d", w);
    snprintf(v, sizeof v, "v%d", w);
    NET_SET_OK(t, s, k, v);
    acked[w] = 1;
  }
  /* Remove replica 3 and stop it. */
  snprintf(log, sizeof log, "%s/remove.log", t->dir);
  int pid = spawn_cmd(m, "remove-replica", 0, "3", m->cert, m->key, log);
  assert_int_equal(wait_exit(pid, 60000), 0);
  net_sleep_ms(500);
  assert_true(net_stop(t, 2, SIGTERM) >= 0);
  size_t removed_len0, member_len0, n;
  uint8_t *removed0 = key_file(t, 2, &removed_len0);
  uint8_t *member0 = key_file(t, 0, &member_len0);
  assert_non_null(removed0);
  assert_non_null(member0);
  free(member0);
  /* Rotate while writing. */
  snprintf(log, sizeof log, "%s/rotate.log", t->dir);
  pid = spawn_cmd(m, "rotate-key", 1, NULL, m->cert, m->key, log);
  int st = -1;
  for (; w < N_WRITES && (st = exited(pid)) < 0; w++) {
    snprintf(k, sizeof k, "app/k%d", w);
    snprintf(v, sizeof v, "v%d", w);
    acked[w] = net_set(s, k, v) == 0; /* an unacknowledged one may be lost */
  }
  if (st < 0)
    st = wait_exit(pid, 60000);
  if (st != 0) {
    for (int i = 0; i < NET_N; i++)
      net_dump_log(t, i);
    fail_msg("rotate-key exited %d (%s)", st, log);
  }
  assert_true(count_in(log, "group key rotated") == 1);
  int during = w;
  for (int i = 0; i < 60 && w < N_WRITES; i++, w++) {
    snprintf(k, sizeof k, "app/k%d", w);
    snprintf(v, sizeof v, "v%d", w);
    NET_SET_OK(t, s, k, v);
    acked[w] = 1;
  }
  assert_true(w > during);
  print_message("writes: 30 before the rotation, %d during it, %d after\n",
                during - 30, w - during);
  teex_ds_sync_close(s);
  read_all(t, acked, w);
  /* The members: one rotation, the follower fetched the epoch once. */
  assert_int_equal(count_in(t->log[0], "group key rotated") +
                       count_in(t->log[1], "group key rotated"),
                   1);
  assert_int_equal(count_in(t->log[0], "group key epoch received") +
                       count_in(t->log[1], "group key epoch received"),
                   1);
  uint8_t *kf0 = key_file(t, 0, &n);
  assert_non_null(kf0);
  assert_int_equal(n, member_len0 + 48); /* TXK1 header + 2 epochs vs 32 */
  free(kf0);
  kf0 = key_file(t, 1, &n);
  assert_int_equal(n, member_len0 + 48);
  free(kf0);
  /* The removed replica: its key file untouched, nothing handed over. */
  uint8_t *removed1 = key_file(t, 2, &n);
  assert_int_equal(n, removed_len0);
  assert_memory_equal(removed0, removed1, n);
  free(removed0);
  free(removed1);
  assert_int_equal(count_in(t->log[2], "group key epoch received"), 0);
  /* Snapshots were taken (threshold 16) after the rotation; restart each
   * member in turn: everything still reads back. */
  assert_true(snapshots_in(t, 0));
  assert_true(snapshots_in(t, 1));
  for (int i = 0; i < 2; i++) {
    assert_true(net_stop(t, i, SIGTERM) >= 0);
    net_start(t, i);
    read_all(t, acked, w);
  }
  /* Both stopped, both restarted: from their own sealed state alone. */
  net_stop(t, 0, SIGKILL);
  net_stop(t, 1, SIGKILL);
  assert_int_equal(net_start_nowait(t, 0, "20000"), 0);
  assert_int_equal(net_start_nowait(t, 1, "20000"), 0);
  assert_int_equal(tu_wait_file(t->ready[0], 30000), 0);
  assert_int_equal(tu_wait_file(t->ready[1], 30000), 0);
  read_all(t, acked, w);
  for (int i = 0; i < 2; i++)
    if (count_in(t->log[i], "replica halted") != 0) {
      net_dump_log(t, i);
      fail_msg("replica %d halted", i + 1);
    }
}

/* A certificate client that is not an operator cannot rotate. */
static void test_not_operator_cannot_rotate(void **state) {
  struct kt *m = *state;
  struct net *t = &m->net;
  net_start_all(t);
  net_warm_up(t);
  EVP_PKEY *ok = NULL;
  X509 *oc = NULL;
  struct teex_err err;
  assert_int_equal(
      teex_tls_selfsigned_new("not-an-operator", 1, &ok, &oc, &err), 0);
  char cert[600], key[600], log[700];
  snprintf(cert, sizeof cert, "%s/other.pem", t->dir);
  snprintf(key, sizeof key, "%s/other.key", t->dir);
  FILE *f = fopen(cert, "w");
  assert_non_null(f);
  PEM_write_X509(f, oc);
  fclose(f);
  f = fopen(key, "w");
  assert_non_null(f);
  PEM_write_PrivateKey(f, ok, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  EVP_PKEY_free(ok);
  X509_free(oc);
  snprintf(log, sizeof log, "%s/rotate-other.log", t->dir);
  int pid = spawn_cmd(m, "rotate-key", 0, NULL, cert, key, log);
  assert_int_not_equal(wait_exit(pid, 30000), 0);
  size_t n0;
  uint8_t *k0 = key_file(t, 0, &n0);
  free(k0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(count_in(t->log[i], "group key rotated"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rotate_after_removal_under_writes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_operator_cannot_rotate, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
