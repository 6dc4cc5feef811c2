/* The dispatcher's scheduler (see include/teex/scheduler.h).
 *
 * Data layout, chosen so a decision costs O(choices), not O(workers):
 *   - workers[]: one record per registered worker, addressed by handle;
 *   - free_list[]: handles of workers with a free slot (swap-remove);
 *   - images: interned image hashes, each with the list of workers that
 *     reported it warm;
 *   - per-user FIFO queues in a round-robin ring for tasks that must wait. */
#include "teex/scheduler.h"

#include "teex/error.h"

#include <stdlib.h>
#include <string.h>

/* Distinct images tracked; more are placed without warm awareness. */
#define IMAGE_MAX 65536u
#define NO_POS UINT32_MAX

struct worker {
  uint8_t addr[20];
  int used;
  uint32_t capacity;
  uint32_t inflight;
  uint64_t last_seen_ms;
  uint32_t warm[TEEX_SCHED_WARM_MAX]; /* image ids, most recent last */
  uint32_t nwarm;
  uint32_t free_pos; /* index in free_list, NO_POS if absent */
};

struct image {
  uint8_t hash[32];
  int used;
  uint32_t *workers; /* handles warm for this image */
  uint32_t nworkers, cap;
};

struct qtask {
  struct teex_sched_task t;
  uint32_t next; /* next task of the same user, NO_POS at the tail */
};

struct user {
  uint8_t addr[20];
  int used;
  uint32_t head, tail, count;
  uint32_t ring_pos; /* index in ring, NO_POS when the queue is empty */
};

struct teex_sched {
  struct teex_sched_config cfg;
  uint64_t rng;

  struct worker *workers;
  uint32_t nworkers_slots; /* highest handle + 1 */
  uint32_t nworkers;       /* registered */
  uint32_t *free_handles;  /* recycled handles */
  uint32_t nfree_handles;
  uint32_t *addr_table; /* open addressing: handle + 1, 0 = empty */
  uint32_t addr_mask;

  uint32_t *free_list;
  uint32_t nfree;

  struct image *images;
  uint32_t image_mask;
  uint32_t nimages;

  struct qtask *tasks; /* pool */
  uint32_t task_free;  /* free list through next */
  uint32_t nqueued;
  struct user *users; /* open addressing by address */
  uint32_t user_mask;
  uint32_t *ring; /* user indices with waiting tasks */
  uint32_t nring, ring_cursor;

  uint64_t picks, warm_hits;
};

static uint64_t rng_next(struct teex_sched *s) {
  /* xorshift64*: quality is ample for load balancing. */
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t hash_bytes(const uint8_t *p, size_t n) {
  /* Keys are addresses and hashes: already uniform, but mix anyway since a
   * registering worker chooses its own address. FNV-1a. */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static uint32_t pow2_at_least(uint32_t n) {
  uint32_t p = 16;
  while (p < n)
    p <<= 1;
  return p;
}

struct teex_sched *teex_sched_new(const struct teex_sched_config *cfg) {
  if (cfg->max_workers == 0 || cfg->max_workers > (1u << 24) ||
      cfg->max_queued > (1u << 24))
    return NULL;
  struct teex_sched *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->cfg = *cfg;
  s->rng = cfg->seed ? cfg->seed : 0x9E3779B97F4A7C15ULL;
  s->addr_mask = pow2_at_least(cfg->max_workers * 2) - 1;
  s->image_mask = pow2_at_least(IMAGE_MAX * 2) - 1;
  s->user_mask = pow2_at_least((cfg->max_queued ? cfg->max_queued : 1) * 2) - 1;
  s->workers = calloc(cfg->max_workers, sizeof *s->workers);
  s->free_handles = calloc(cfg->max_workers, sizeof *s->free_handles);
  s->addr_table = calloc(s->addr_mask + 1, sizeof *s->addr_table);
  s->free_list = calloc(cfg->max_workers, sizeof *s->free_list);
  s->images = calloc(s->image_mask + 1, sizeof *s->images);
  s->tasks = calloc(cfg->max_queued ? cfg->max_queued : 1, sizeof *s->tasks);
  s->users = calloc(s->user_mask + 1, sizeof *s->users);
  s->ring = calloc(s->user_mask + 1, sizeof *s->ring);
  if (!s->workers || !s->free_handles || !s->addr_table || !s->free_list ||
      !s->images || !s->tasks || !s->users || !s->ring) {
    teex_sched_free(s);
    return NULL;
  }
  for (uint32_t i = 0; i < cfg->max_queued; i++)
    s->tasks[i].next = i + 1 < cfg->max_queued ? i + 1 : NO_POS;
  s->task_free = cfg->max_queued ? 0 : NO_POS;
  return s;
}

void teex_sched_free(struct teex_sched *s) {
  if (s == NULL)
    return;
  if (s->images)
    for (uint32_t i = 0; i <= s->image_mask; i++)
      free(s->images[i].workers);
  free(s->workers);
  free(s->free_handles);
  free(s->addr_table);
  free(s->free_list);
  free(s->images);
  free(s->tasks);
  free(s->users);
  free(s->ring);
  free(s);
}

/* ---- worker address table ---- */

static uint32_t *addr_slot(struct teex_sched *s, const uint8_t addr[20]) {
  uint32_t i = hash_bytes(addr, 20) & s->addr_mask;
  for (;;) {
    uint32_t v = s->addr_table[i];
    if (v == 0 || memcmp(s->workers[v - 1].addr, addr, 20) == 0)
      return &s->addr_table[i];
    i = (i + 1) & s->addr_mask;
  }
}

static void addr_delete(struct teex_sched *s, const uint8_t addr[20]) {
  /* Backward-shift deletion keeps probe chains intact without tombstones. */
  uint32_t *slot = addr_slot(s, addr);
  if (*slot == 0)
    return;
  uint32_t i = (uint32_t)(slot - s->addr_table);
  s->addr_table[i] = 0;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & s->addr_mask;
    uint32_t v = s->addr_table[j];
    if (v == 0)
      return;
    uint32_t home = hash_bytes(s->workers[v - 1].addr, 20) & s->addr_mask;
    /* Move v back to i when its home is not in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      s->addr_table[i] = v;
      s->addr_table[j] = 0;
      i = j;
    }
  }
}

/* ---- free list ---- */

static void free_list_add(struct teex_sched *s, uint32_t h) {
  struct worker *w = &s->workers[h];
  if (w->free_pos != NO_POS)
    return;
  w->free_pos = s->nfree;
  s->free_list[s->nfree++] = h;
}

static void free_list_del(struct teex_sched *s, uint32_t h) {
  struct worker *w = &s->workers[h];
  if (w->free_pos == NO_POS)
    return;
  uint32_t last = s->free_list[--s->nfree];
  s->free_list[w->free_pos] = last;
  s->workers[last].free_pos = w->free_pos;
  w->free_pos = NO_POS;
}

/* ---- images ---- */

static struct image *image_find(struct teex_sched *s, const uint8_t hash[32],
                                int insert, uint32_t *id) {
  uint32_t i = hash_bytes(hash, 32) & s->image_mask;
  for (;;) {
    struct image *im = &s->images[i];
    if (!im->used) {
      if (!insert || s->nimages >= IMAGE_MAX)
        return NULL;
      im->used = 1;
      memcpy(im->hash, hash, 32);
      s->nimages++;
      *id = i;
      return im;
    }
    if (memcmp(im->hash, hash, 32) == 0) {
      *id = i;
      return im;
    }
    i = (i + 1) & s->image_mask;
  }
}

static void image_del_worker(struct teex_sched *s, uint32_t id, uint32_t h) {
  struct image *im = &s->images[id];
  for (uint32_t i = 0; i < im->nworkers; i++) {
    if (im->workers[i] == h) {
      im->workers[i] = im->workers[--im->nworkers];
      return;
    }
  }
}

static int image_add_worker(struct teex_sched *s, uint32_t id, uint32_t h) {
  struct image *im = &s->images[id];
  if (im->nworkers == im->cap) {
    uint32_t cap = im->cap ? im->cap * 2 : 8;
    uint32_t *p = realloc(im->workers, cap * sizeof *p);
    if (p == NULL)
      return TEEX_ENOMEM;
    im->workers = p;
    im->cap = cap;
  }
  im->workers[im->nworkers++] = h;
  return 0;
}

static void worker_clear_warm(struct teex_sched *s, uint32_t h) {
  struct worker *w = &s->workers[h];
  for (uint32_t i = 0; i < w->nwarm; i++)
    image_del_worker(s, w->warm[i], h);
  w->nwarm = 0;
}

static void worker_add_warm(struct teex_sched *s, uint32_t h,
                            const uint8_t hash[32]) {
  struct worker *w = &s->workers[h];
  uint32_t id;
  if (image_find(s, hash, 1, &id) == NULL)
    return; /* image table full: this image is simply not warm-aware */
  for (uint32_t i = 0; i < w->nwarm; i++)
    if (w->warm[i] == id)
      return;
  if (w->nwarm == TEEX_SCHED_WARM_MAX) {
    /* Evict the oldest. */
    image_del_worker(s, w->warm[0], h);
    memmove(w->warm, w->warm + 1, (TEEX_SCHED_WARM_MAX - 1) * sizeof *w->warm);
    w->nwarm--;
  }
  if (image_add_worker(s, id, h) == 0)
    w->warm[w->nwarm++] = id;
}

/* ---- workers ---- */

int teex_sched_worker_add(struct teex_sched *s, const uint8_t addr[20],
                          uint32_t capacity, uint64_t now_ms,
                          uint32_t *handle) {
  if (capacity == 0)
    return TEEX_EINVAL;
  uint32_t *slot = addr_slot(s, addr);
  uint32_t h;
  if (*slot != 0) {
    h = *slot - 1;
  } else {
    if (s->nworkers == s->cfg.max_workers)
      return TEEX_ETOOBIG;
    h = s->nfree_handles ? s->free_handles[--s->nfree_handles]
                         : s->nworkers_slots++;
    struct worker *w = &s->workers[h];
    memset(w, 0, sizeof *w);
    memcpy(w->addr, addr, 20);
    w->used = 1;
    w->free_pos = NO_POS;
    *slot = h + 1;
    s->nworkers++;
  }
  struct worker *w = &s->workers[h];
  w->capacity = capacity;
  w->last_seen_ms = now_ms;
  if (w->inflight < w->capacity)
    free_list_add(s, h);
  else
    free_list_del(s, h);
  *handle = h;
  return 0;
}

static struct worker *get_worker(struct teex_sched *s, uint32_t h) {
  if (h >= s->nworkers_slots || !s->workers[h].used)
    return NULL;
  return &s->workers[h];
}

int teex_sched_worker_heartbeat(struct teex_sched *s, uint32_t handle,
                                uint64_t now_ms, const uint8_t *warm,
                                size_t nwarm) {
  struct worker *w = get_worker(s, handle);
  if (w == NULL)
    return TEEX_ENOTFOUND;
  w->last_seen_ms = now_ms;
  if (warm != NULL) {
    worker_clear_warm(s, handle);
    size_t first =
        nwarm > TEEX_SCHED_WARM_MAX ? nwarm - TEEX_SCHED_WARM_MAX : 0;
    for (size_t i = first; i < nwarm; i++)
      worker_add_warm(s, handle, warm + 32 * i);
  }
  return 0;
}

int teex_sched_worker_remove(struct teex_sched *s, uint32_t handle) {
  struct worker *w = get_worker(s, handle);
  if (w == NULL)
    return TEEX_ENOTFOUND;
  worker_clear_warm(s, handle);
  free_list_del(s, handle);
  addr_delete(s, w->addr);
  w->used = 0;
  s->free_handles[s->nfree_handles++] = handle;
  s->nworkers--;
  return 0;
}

static int alive(const struct teex_sched *s, const struct worker *w,
                 uint64_t now_ms) {
  return now_ms <= w->last_seen_ms + s->cfg.heartbeat_timeout_ms;
}

size_t teex_sched_expire_workers(struct teex_sched *s, uint64_t now_ms,
                                 uint32_t *out, size_t max) {
  size_t n = 0;
  for (uint32_t h = 0; h < s->nworkers_slots; h++) {
    struct worker *w = &s->workers[h];
    if (w->used && !alive(s, w, now_ms)) {
      if (n < max)
        out[n] = h;
      n++;
      teex_sched_worker_remove(s, h);
    }
  }
  return n;
}

/* ---- decisions ---- */

static int excluded(const struct teex_sched_task *t, uint32_t h) {
  for (uint32_t i = 0; i < t->nexclude && i < TEEX_SCHED_EXCLUDE_MAX; i++)
    if (t->exclude[i] == h)
      return 1;
  return 0;
}

static int eligible(const struct teex_sched *s, const struct worker *w,
                    uint32_t h, const struct teex_sched_task *t,
                    uint64_t now_ms) {
  return w->used && w->inflight < w->capacity && alive(s, w, now_ms) &&
         !excluded(t, h);
}

/* Lower is better: the fraction of slots in use, compared without division
 * (a/b < c/d  <=>  a*d < c*b). */
static int less_loaded(const struct worker *a, const struct worker *b) {
  return (uint64_t)a->inflight * b->capacity <
         (uint64_t)b->inflight * a->capacity;
}

/* Best eligible worker among candidates cand[0..n) — all of them when n is
 * small, else TEEX_SCHED_CHOICES random ones. NO_POS when none. */
static uint32_t choose(struct teex_sched *s, const uint32_t *cand, uint32_t n,
                       const struct teex_sched_task *t, uint64_t now_ms,
                       int exhaustive) {
  uint32_t best = NO_POS;
  if (n == 0)
    return NO_POS;
  if (exhaustive || n <= 2 * TEEX_SCHED_CHOICES) {
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = cand[i];
      struct worker *w = &s->workers[h];
      if (eligible(s, w, h, t, now_ms) &&
          (best == NO_POS || less_loaded(w, &s->workers[best])))
        best = h;
    }
    return best;
  }
  for (int k = 0; k < TEEX_SCHED_CHOICES; k++) {
    uint32_t h = cand[rng_next(s) % n];
    struct worker *w = &s->workers[h];
    if (eligible(s, w, h, t, now_ms) &&
        (best == NO_POS || less_loaded(w, &s->workers[best])))
      best = h;
  }
  return best;
}

int teex_sched_pick(struct teex_sched *s, const struct teex_sched_task *task,
                    uint64_t now_ms, uint32_t *worker) {
  uint32_t best = NO_POS, id;
  int warm = 0;
  struct image *im = image_find(s, task->image, 0, &id);
  if (im != NULL && im->nworkers > 0) {
    best = choose(s, im->workers, im->nworkers, task, now_ms, 0);
    warm = best != NO_POS;
  }
  if (best == NO_POS) {
    best = choose(s, s->free_list, s->nfree, task, now_ms, 0);
    /* Random sampling can miss the few eligible workers (excluded or dead
     * ones sampled): fall back to a full scan of those with free slots. */
    if (best == NO_POS)
      best = choose(s, s->free_list, s->nfree, task, now_ms, 1);
  }
  if (best == NO_POS) {
    uint32_t excl = 0;
    for (uint32_t i = 0; i < task->nexclude && i < TEEX_SCHED_EXCLUDE_MAX; i++)
      excl += get_worker(s, task->exclude[i]) != NULL;
    return s->nworkers > excl ? TEEX_EBUSY : TEEX_ENOTFOUND;
  }
  struct worker *w = &s->workers[best];
  w->inflight++;
  if (w->inflight >= w->capacity)
    free_list_del(s, best);
  s->picks++;
  s->warm_hits += (uint64_t)warm;
  *worker = best;
  return 0;
}

int teex_sched_release(struct teex_sched *s, uint32_t worker,
                       const uint8_t image[32], int ok) {
  struct worker *w = get_worker(s, worker);
  if (w == NULL)
    return TEEX_ENOTFOUND;
  if (w->inflight == 0)
    return TEEX_ESTATE;
  w->inflight--;
  if (w->inflight < w->capacity)
    free_list_add(s, worker);
  if (ok && image != NULL)
    worker_add_warm(s, worker, image);
  return 0;
}

/* ---- waiting tasks ---- */

static struct user *user_find(struct teex_sched *s, const uint8_t addr[20],
                              int insert) {
  uint32_t i = hash_bytes(addr, 20) & s->user_mask;
  for (;;) {
    struct user *u = &s->users[i];
    if (!u->used) {
      if (!insert)
        return NULL;
      memset(u, 0, sizeof *u);
      u->used = 1;
      memcpy(u->addr, addr, 20);
      u->head = u->tail = NO_POS;
      u->ring_pos = NO_POS;
      return u;
    }
    if (memcmp(u->addr, addr, 20) == 0)
      return u;
    i = (i + 1) & s->user_mask;
  }
}

int teex_sched_enqueue(struct teex_sched *s, const struct teex_sched_task *t) {
  if (s->task_free == NO_POS || s->nqueued >= s->cfg.max_queued)
    return TEEX_ETOOBIG;
  /* A user is in the table only while it has waiting tasks, so the table
   * (2 * max_queued entries) is never more than half full. */
  struct user *u = user_find(s, t->user, 1);
  if (s->cfg.max_queued_per_user && u->count >= s->cfg.max_queued_per_user)
    return TEEX_ETOOBIG;
  uint32_t idx = s->task_free;
  s->task_free = s->tasks[idx].next;
  s->tasks[idx].t = *t;
  s->tasks[idx].next = NO_POS;
  if (u->tail == NO_POS)
    u->head = idx;
  else
    s->tasks[u->tail].next = idx;
  u->tail = idx;
  u->count++;
  s->nqueued++;
  if (u->ring_pos == NO_POS) {
    u->ring_pos = s->nring;
    s->ring[s->nring++] = (uint32_t)(u - s->users);
  }
  return 0;
}

/* Removes a user with no waiting task from the table, by backward-shift
 * deletion; users moved keep their ring entries pointing at them. */
static void user_delete(struct teex_sched *s, struct user *u) {
  uint32_t i = (uint32_t)(u - s->users);
  s->users[i].used = 0;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & s->user_mask;
    struct user *v = &s->users[j];
    if (!v->used)
      return;
    uint32_t home = hash_bytes(v->addr, 20) & s->user_mask;
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      s->users[i] = *v;
      v->used = 0;
      if (s->users[i].ring_pos != NO_POS)
        s->ring[s->users[i].ring_pos] = i;
      i = j;
    }
  }
}

static void user_pop(struct teex_sched *s, struct user *u) {
  uint32_t idx = u->head;
  u->head = s->tasks[idx].next;
  if (u->head == NO_POS)
    u->tail = NO_POS;
  s->tasks[idx].next = s->task_free;
  s->task_free = idx;
  u->count--;
  s->nqueued--;
  if (u->count == 0) {
    /* Leave the ring (swap-remove); keep the cursor on the next user. */
    uint32_t pos = u->ring_pos;
    uint32_t last = s->ring[--s->nring];
    s->ring[pos] = last;
    s->users[last].ring_pos = pos;
    u->ring_pos = NO_POS;
    if (s->ring_cursor > s->nring)
      s->ring_cursor = 0;
    user_delete(s, u);
  }
}

int teex_sched_next(struct teex_sched *s, uint64_t now_ms,
                    struct teex_sched_task *task, uint32_t *worker) {
  for (uint32_t tried = 0; tried < s->nring; tried++) {
    if (s->ring_cursor >= s->nring)
      s->ring_cursor = 0;
    struct user *u = &s->users[s->ring[s->ring_cursor]];
    struct qtask *q = &s->tasks[u->head];
    if (q->t.deadline_ms != 0 && now_ms > q->t.deadline_ms) {
      *task = q->t;
      user_pop(s, u);
      return 2;
    }
    int rc = teex_sched_pick(s, &q->t, now_ms, worker);
    if (rc == 0) {
      *task = q->t;
      uint32_t before = s->nring;
      user_pop(s, u);
      /* Round robin: the next call starts with the next user. When this
       * user left the ring, the swap put another user at the cursor. */
      if (s->nring == before)
        s->ring_cursor++;
      return 1;
    }
    if (rc == TEEX_ENOTFOUND) {
      *task = q->t; /* no worker could ever take it: hand it back */
      user_pop(s, u);
      return 2;
    }
    s->ring_cursor++;
  }
  return 0;
}

void teex_sched_stats(const struct teex_sched *s, struct teex_sched_stats *st) {
  st->workers = s->nworkers;
  uint32_t free_slots = 0;
  for (uint32_t i = 0; i < s->nfree; i++) {
    const struct worker *w = &s->workers[s->free_list[i]];
    free_slots += w->capacity - w->inflight;
  }
  st->free_slots = free_slots;
  st->queued = s->nqueued;
  st->picks = s->picks;
  st->warm_hits = s->warm_hits;
}

int teex_sched_worker_load(const struct teex_sched *s, uint32_t handle) {
  if (handle >= s->nworkers_slots || !s->workers[handle].used)
    return -1;
  return (int)s->workers[handle].inflight;
}
