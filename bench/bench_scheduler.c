/* Scheduling decisions per second with 10,000 registered workers, through
 * the dispatcher's own scheduler (src/dispatch/scheduler.c), against the
 * obvious baseline — scan every worker for the least loaded eligible one,
 * preferring warm — in the same run.
 * Setup: 10,000 workers of 8 slots, 1,000 images, each worker warm for 4;
 * tasks pick a random image; the system is kept half full (a task is
 * released 40,000 decisions after it was placed).
 * Usage: bench_scheduler [decisions]   (default 2,000,000) */
#include "teex/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORKERS 10000
#define SLOTS 8
#define IMAGES 1000
#define WARM_PER_WORKER 4
#define INFLIGHT 40000

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
  return *x >> 33;
}

static void image_hash(uint32_t i, uint8_t out[32]) {
  memset(out, 0, 32);
  memcpy(out, &i, sizeof i);
  out[31] = 0x5A;
}

/* The baseline: a full scan per decision. */
struct naive_worker {
  uint32_t inflight, capacity;
  uint32_t warm[WARM_PER_WORKER];
};

static uint32_t naive_pick(struct naive_worker *w, uint32_t image) {
  uint32_t best = UINT32_MAX;
  int best_warm = 0;
  for (uint32_t i = 0; i < WORKERS; i++) {
    if (w[i].inflight >= w[i].capacity)
      continue;
    int warm = 0;
    for (int k = 0; k < WARM_PER_WORKER; k++)
      warm |= w[i].warm[k] == image;
    if (best == UINT32_MAX || warm > best_warm ||
        (warm == best_warm && w[i].inflight < w[best].inflight)) {
      best = i;
      best_warm = warm;
    }
  }
  if (best != UINT32_MAX)
    w[best].inflight++;
  return best;
}

int main(int argc, char **argv) {
  long decisions = 2000000;
  if (argc > 1)
    decisions = strtol(argv[1], NULL, 10);
  if (decisions < INFLIGHT * 2)
    decisions = INFLIGHT * 2;
  struct teex_sched_config cfg = {.max_workers = WORKERS,
                                  .max_queued = 1024,
                                  .max_queued_per_user = 64,
                                  .heartbeat_timeout_ms = 1u << 30,
                                  .seed = 7};
  struct teex_sched *s = teex_sched_new(&cfg);
  if (s == NULL)
    return 1;
  uint64_t x = 99;
  static struct naive_worker nw[WORKERS];
  for (uint32_t i = 0; i < WORKERS; i++) {
    uint8_t addr[20] = {0};
    memcpy(addr, &i, sizeof i);
    uint32_t h;
    if (teex_sched_worker_add(s, addr, SLOTS, 0, &h) != 0)
      return 1;
    uint8_t warm[WARM_PER_WORKER * 32];
    nw[i].capacity = SLOTS;
    for (int k = 0; k < WARM_PER_WORKER; k++) {
      uint32_t img = (uint32_t)(lcg(&x) % IMAGES);
      image_hash(img, warm + 32 * k);
      nw[i].warm[k] = img;
    }
    teex_sched_worker_heartbeat(s, h, 0, warm, WARM_PER_WORKER);
  }

  static uint32_t ring_w[INFLIGHT];
  static uint32_t ring_img[INFLIGHT];
  struct teex_sched_task t;
  memset(&t, 0, sizeof t);
  long placed = 0, busy = 0;
  double t0 = now();
  for (long d = 0; d < decisions; d++) {
    long slot = d % INFLIGHT;
    if (d >= INFLIGHT) {
      uint8_t img[32];
      image_hash(ring_img[slot], img);
      teex_sched_release(s, ring_w[slot], img, 1);
    }
    uint32_t img = (uint32_t)(lcg(&x) % IMAGES);
    image_hash(img, t.image);
    uint32_t w;
    if (teex_sched_pick(s, &t, 1, &w) == 0) {
      ring_w[slot] = w;
      ring_img[slot] = img;
      placed++;
    } else {
      busy++;
    }
  }
  double el = now() - t0;
  struct teex_sched_stats st;
  teex_sched_stats(s, &st);
  double ours = (double)decisions / el;

  /* Baseline: far fewer decisions (each scans 10,000 workers). */
  long nd = decisions / 200;
  static uint32_t nring[INFLIGHT];
  long ninflight = nd / 2 < INFLIGHT ? nd / 2 : INFLIGHT;
  t0 = now();
  for (long d = 0; d < nd; d++) {
    long slot = d % ninflight;
    if (d >= ninflight)
      nw[nring[slot]].inflight--;
    nring[slot] = naive_pick(nw, (uint32_t)(lcg(&x) % IMAGES));
  }
  double nel = now() - t0;
  double naive = (double)nd / nel;

  printf("scheduler, %d workers x %d slots, %d images (%d warm each), "
         "%d in flight:\n",
         WORKERS, SLOTS, IMAGES, WARM_PER_WORKER, INFLIGHT);
  printf("  teex scheduler   %10.0f decisions/s  (%ld decisions, %ld placed, "
         "warm hits %.1f%%)\n",
         ours, decisions, placed,
         100.0 * (double)st.warm_hits / (double)(st.picks ? st.picks : 1));
  printf("  full-scan        %10.0f decisions/s  (%ld decisions)\n", naive, nd);
  printf("  ratio            %10.1fx\n", ours / naive);
  teex_sched_free(s);
  return busy > decisions / 10;
}
