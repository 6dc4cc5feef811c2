/* bench/ds_group.h. */
#include "ds_group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_pct(const double *v, int n, double p) {
  return v[(int)(p * (n - 1) + 0.5)];
}

pid_t bench_spawn(char *const argv[], const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (log != NULL) {
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int bench_run(char *const argv[]) {
  pid_t pid = bench_spawn(argv, "/dev/null");
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int bench_free_ports(int *ports, int n) {
  int fds[64], rc = 0, i;
  if (n > 64)
    return -1;
  for (i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fds[i], (struct sockaddr *)&a, &l) != 0) {
      rc = -1;
      i++;
      break;
    }
    ports[i] = ntohs(a.sin_port);
  }
  while (i-- > 0)
    if (fds[i] >= 0)
      close(fds[i]);
  return rc;
}

void bench_ds_group_setup(struct bench_ds_group *g, const char *bin,
                          const char *dir, const char *tag, const int *ports) {
  g->bin = bin;
  g->dir = dir;
  for (int i = 0; i < BENCH_DS_N; i++) {
    snprintf(g->state[i], sizeof g->state[i], "%s/%s%d", dir, tag, i + 1);
    snprintf(g->log[i], sizeof g->log[i], "%s/%s%d.log", dir, tag, i + 1);
    snprintf(g->ready[i], sizeof g->ready[i], "%s/%s%d.ready", dir, tag, i + 1);
    snprintf(g->peer[i], sizeof g->peer[i], "127.0.0.1:%d", ports[2 * i]);
    snprintf(g->client[i], sizeof g->client[i], "127.0.0.1:%d",
             ports[2 * i + 1]);
    g->addrs[i] = g->client[i];
    g->pid[i] = 0;
  }
}

int bench_ds_group_init(struct bench_ds_group *g, const char *const *extra) {
  char m[BENCH_DS_N][200];
  for (int i = 0; i < BENCH_DS_N; i++)
    snprintf(m[i], sizeof m[i], "%d=%s,%s", i + 1, g->peer[i], g->client[i]);
  char *a1[32] = {(char *)g->bin,
                  "ds",
                  "init",
                  "--data-dir",
                  (char *)g->dir,
                  "--state",
                  g->state[0],
                  "--id",
                  "1",
                  "--new-group",
                  "--member",
                  m[0],
                  "--member",
                  m[1],
                  "--member",
                  m[2]};
  size_t n = 16;
  for (size_t e = 0; extra != NULL && extra[e] != NULL; e++) {
    if (n + 1 >= sizeof a1 / sizeof *a1)
      return -1;
    a1[n++] = (char *)extra[e];
  }
  a1[n] = NULL;
  if (bench_run(a1) != 0)
    return -1;
  char group[400];
  snprintf(group, sizeof group, "%s/group.conf", g->state[0]);
  for (int i = 1; i < BENCH_DS_N; i++) {
    char id[8];
    snprintf(id, sizeof id, "%d", i + 1);
    char *a[] = {
        (char *)g->bin, "ds",   "init", "--data-dir", (char *)g->dir, "--state",
        g->state[i],    "--id", id,     "--group",    group,          NULL};
    if (bench_run(a) != 0)
      return -1;
  }
  return 0;
}

int bench_ds_group_start(struct bench_ds_group *g, int i) {
  unlink(g->ready[i]);
  char *argv[] = {(char *)g->bin,       "ds",           "run",
                  "--data-dir",         (char *)g->dir, "--state",
                  g->state[i],          "--ready-file", g->ready[i],
                  "--election-timeout", "150",          NULL};
  g->pid[i] = bench_spawn(argv, g->log[i]);
  if (g->pid[i] < 0) {
    g->pid[i] = 0;
    return -1;
  }
  return 0;
}

int bench_ds_group_wait_ready(const struct bench_ds_group *g, int i) {
  for (int t = 0; t < 600; t++) {
    if (access(g->ready[i], F_OK) == 0)
      return 0;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return -1;
}

int bench_ds_group_up(struct bench_ds_group *g) {
  for (int i = 0; i < BENCH_DS_N; i++)
    if (bench_ds_group_start(g, i) != 0)
      return -1;
  for (int i = 0; i < BENCH_DS_N; i++)
    if (bench_ds_group_wait_ready(g, i) != 0)
      return -1;
  return 0;
}

void bench_ds_group_kill(const struct bench_ds_group *g) {
  for (int i = 0; i < BENCH_DS_N; i++)
    if (g->pid[i] > 0)
      kill(g->pid[i], SIGKILL);
}

void bench_ds_group_stop(struct bench_ds_group *g) {
  for (int i = 0; i < BENCH_DS_N; i++)
    if (g->pid[i] > 0) {
      kill(g->pid[i], SIGTERM);
      waitpid(g->pid[i], NULL, 0);
      g->pid[i] = 0;
    }
}
