/* The dispatcher's scheduler: which registered worker runs a task.
 *
 * I/O-free and deterministic (time comes in as arguments, randomness from a
 * seeded generator), so the same code runs in the daemon, the unit tests and
 * the benchmark. It weighs, in order: the worker must be alive (heartbeat
 * within the timeout), have a free slot, and not be excluded for this task
 * (it failed it before); a worker that already has the image warm is
 * preferred; among candidates the least loaded wins (power-of-d random
 * choices over the workers with free slots, so a decision costs O(d), not
 * O(workers)). When no worker has a free slot the task waits in a per-user
 * queue; freed slots go to users in round-robin order (fairness), and a
 * waiting task whose deadline passed is handed back as expired. */
#ifndef TEEX_SCHEDULER_H
#define TEEX_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#define TEEX_SCHED_WARM_MAX 16   /* warm images a worker reports */
#define TEEX_SCHED_EXCLUDE_MAX 8 /* workers a task may have failed on */
#define TEEX_SCHED_CHOICES 4     /* random candidates per decision */

struct teex_sched;

struct teex_sched_config {
  uint32_t max_workers;          /* hard limit on registered workers */
  uint32_t max_queued;           /* hard limit on waiting tasks */
  uint32_t max_queued_per_user;  /* one user cannot fill the queue */
  uint64_t heartbeat_timeout_ms; /* a silent worker is dropped after this */
  uint64_t seed;                 /* random choices; fixed in tests */
};

/* A task as the scheduler sees it (the dispatcher keeps the rest). */
struct teex_sched_task {
  uint64_t task_ref;    /* the dispatcher's handle for the task */
  uint8_t image[32];    /* image hash */
  uint8_t user[20];     /* paying user's address */
  uint64_t deadline_ms; /* absolute; 0 = none */
  uint32_t exclude[TEEX_SCHED_EXCLUDE_MAX]; /* worker handles to avoid */
  uint32_t nexclude;
};

/* Creates a scheduler. NULL on bad config or out of memory. */
struct teex_sched *teex_sched_new(const struct teex_sched_config *cfg);
void teex_sched_free(struct teex_sched *s);

/* Registers a worker (its enclave address) with `capacity` slots. Re-adding
 * a known address updates it and returns its existing handle.
 * TEEX_ETOOBIG when max_workers are registered, TEEX_EINVAL for capacity 0. */
int teex_sched_worker_add(struct teex_sched *s, const uint8_t addr[20],
                          uint32_t capacity, uint64_t now_ms, uint32_t *handle);

/* A heartbeat: the worker is alive and reports its warm images (replacing
 * the previous list): warm holds nwarm 32-byte image hashes back to back,
 * at most the last TEEX_SCHED_WARM_MAX are kept; NULL keeps the list.
 * TEEX_ENOTFOUND
 * for an unknown handle. */
int teex_sched_worker_heartbeat(struct teex_sched *s, uint32_t handle,
                                uint64_t now_ms, const uint8_t *warm,
                                size_t nwarm);

/* Removes a worker. Its running tasks are the dispatcher's to retry. */
int teex_sched_worker_remove(struct teex_sched *s, uint32_t handle);

/* Drops every worker silent for longer than the heartbeat timeout; writes
 * up to max of their handles to out and returns how many were dropped. */
size_t teex_sched_expire_workers(struct teex_sched *s, uint64_t now_ms,
                                 uint32_t *out, size_t max);

/* Chooses a worker for task and takes one of its slots. 0 and *worker set,
 * or TEEX_EBUSY when no eligible worker has a free slot (queue it), or
 * TEEX_ENOTFOUND when no eligible worker exists at all. */
int teex_sched_pick(struct teex_sched *s, const struct teex_sched_task *task,
                    uint64_t now_ms, uint32_t *worker);

/* Gives back the slot a task held on worker (finished, failed or timed out).
 * The worker becomes warm for image when ok (it ran it). */
int teex_sched_release(struct teex_sched *s, uint32_t worker,
                       const uint8_t image[32], int ok);

/* Queues a task that found no free slot. TEEX_ETOOBIG when the queue or
 * this user's share of it is full. */
int teex_sched_enqueue(struct teex_sched *s, const struct teex_sched_task *t);

/* After slots were released: takes the next waiting task (round-robin over
 * users) that can be placed now. Returns 1 with *task and *worker set (the
 * slot is taken), 2 with *task set for a task whose deadline passed (it is
 * dropped; tell the user), 0 when nothing can be placed. */
int teex_sched_next(struct teex_sched *s, uint64_t now_ms,
                    struct teex_sched_task *task, uint32_t *worker);

/* Counters for status pages and tests. */
struct teex_sched_stats {
  uint32_t workers;
  uint32_t free_slots;
  uint32_t queued;
  uint64_t picks;
  uint64_t warm_hits;
};
void teex_sched_stats(const struct teex_sched *s, struct teex_sched_stats *st);

/* Slots in use on a worker (for tests); -1 for an unknown handle. */
int teex_sched_worker_load(const struct teex_sched *s, uint32_t handle);

#endif
