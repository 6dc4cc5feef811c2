/* A 3-replica TEE-DS group of real `teex ds run` processes on loopback,
 * for the benchmarks that need one (bench_ds_net, bench_statestore,
 * bench_ds_scale): file names, free ports, `teex ds init` of the three
 * replicas, start, readiness, stop. Not part of teexlib. */
#ifndef TEEX_BENCH_DS_GROUP_H
#define TEEX_BENCH_DS_GROUP_H

#include <sys/types.h>

#define BENCH_DS_N 3

struct bench_ds_group {
  const char *bin; /* the teex binary (borrowed) */
  const char *dir; /* the sim platform's data directory (borrowed) */
  char state[BENCH_DS_N][320], log[BENCH_DS_N][320], ready[BENCH_DS_N][320];
  char peer[BENCH_DS_N][64], client[BENCH_DS_N][64];
  const char *addrs[BENCH_DS_N]; /* client addresses, for ds_client */
  pid_t pid[BENCH_DS_N];         /* 0: not running */
};

/* Monotonic time in seconds; a sleep of ms milliseconds. */
double bench_now_s(void);
void bench_sleep_ms(int ms);
/* qsort comparator of doubles; the p-quantile (0..1) of n sorted values. */
int bench_cmp_double(const void *a, const void *b);
double bench_pct(const double *v, int n, double p);

/* posix_spawn of argv with stdout and stderr appended to log (NULL:
 * inherited); the pid or -1. */
pid_t bench_spawn(char *const argv[], const char *log);
/* Runs argv to its end (output to /dev/null): its exit status or -1. */
int bench_run(char *const argv[]);
/* n free loopback TCP ports (bound together, then released); -1 if a
 * bind failed. */
int bench_free_ports(int *ports, int n);

/* Names the replicas' files "<dir>/<tag><i>" (state), ".log", ".ready"
 * and gives replica i the peer port ports[2i] and the client port
 * ports[2i+1]. */
void bench_ds_group_setup(struct bench_ds_group *g, const char *bin,
                          const char *dir, const char *tag, const int *ports);
/* `teex ds init` of the three: replica 1 founds the group with the three
 * members and `extra` (NULL-terminated, e.g. "--client", spec), the others
 * join with its group.conf. 0 or -1. */
int bench_ds_group_init(struct bench_ds_group *g, const char *const *extra);
/* Starts replica i (`teex ds run`, election timeout 150 ms): 0 or -1. */
int bench_ds_group_start(struct bench_ds_group *g, int i);
/* Waits (at most 30 s) for replica i's ready file: 0 or -1. */
int bench_ds_group_wait_ready(const struct bench_ds_group *g, int i);
/* Starts all three and waits until each is ready: 0 or -1. */
int bench_ds_group_up(struct bench_ds_group *g);
/* SIGKILL to every running replica (for a bench's fatal error path). */
void bench_ds_group_kill(const struct bench_ds_group *g);
/* SIGTERM to every running replica, and waits for it. */
void bench_ds_group_stop(struct bench_ds_group *g);

#endif
