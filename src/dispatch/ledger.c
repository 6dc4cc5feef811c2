/* The dispatcher's payment ledger (see include/teex/ledger.h).
 *
 * Tasks live in a pool (stable indices) indexed by an open-addressing table
 * on the task id; each user has a list of its remembered tasks. Users live
 * in their own open-addressing table and are never deleted (bounded by
 * max_users). */
#include "teex/ledger.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

enum task_state { TASK_RUNNING = 1, TASK_DONE = 2, TASK_FAILED = 3 };

struct task {
  struct teex_payment_auth auth;
  uint32_t user;      /* index in users */
  uint32_t next_user; /* next task of the same user */
  uint32_t next_free;
  uint8_t state;
};

struct user {
  uint8_t addr[20];
  int used;
  teex_amount escrow;  /* as last read from chain, minus our debits */
  teex_amount settled; /* cumulative settled on chain */
  teex_amount earned;  /* settled + prices of completed tasks since */
  teex_amount running; /* prices of running tasks */
  uint32_t tasks;      /* list head */
};

struct teex_ledger {
  uint8_t self[20];
  struct teex_ledger_limits lim;
  struct task *pool;
  uint32_t pool_free;
  uint32_t *index; /* task id -> pool index + 1; 0 empty */
  uint32_t index_mask;
  struct user *users;
  uint32_t user_mask;
  uint32_t nusers;
};

static uint32_t fnv(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static uint32_t pow2(uint32_t n) {
  uint32_t p = 16;
  while (p < n)
    p <<= 1;
  return p;
}

struct teex_ledger *teex_ledger_new(const uint8_t dispatcher[20],
                                    const struct teex_ledger_limits *lim) {
  if (lim->max_users == 0 || lim->max_tasks == 0 ||
      lim->max_users > (1u << 24) || lim->max_tasks > (1u << 24))
    return NULL;
  struct teex_ledger *l = calloc(1, sizeof *l);
  if (l == NULL)
    return NULL;
  memcpy(l->self, dispatcher, 20);
  l->lim = *lim;
  l->index_mask = pow2(lim->max_tasks * 2) - 1;
  l->user_mask = pow2(lim->max_users * 2) - 1;
  l->pool = calloc(lim->max_tasks, sizeof *l->pool);
  l->index = calloc(l->index_mask + 1, sizeof *l->index);
  l->users = calloc(l->user_mask + 1, sizeof *l->users);
  if (!l->pool || !l->index || !l->users) {
    teex_ledger_free(l);
    return NULL;
  }
  for (uint32_t i = 0; i < lim->max_tasks; i++)
    l->pool[i].next_free = i + 1 < lim->max_tasks ? i + 1 : NONE;
  l->pool_free = 0;
  return l;
}

void teex_ledger_free(struct teex_ledger *l) {
  if (l == NULL)
    return;
  free(l->pool);
  free(l->index);
  free(l->users);
  free(l);
}

/* ---- tables ---- */

static struct user *user_get(struct teex_ledger *l, const uint8_t addr[20],
                             int insert) {
  uint32_t i = fnv(addr, 20) & l->user_mask;
  for (;;) {
    struct user *u = &l->users[i];
    if (!u->used) {
      if (!insert || l->nusers >= l->lim.max_users)
        return NULL;
      memset(u, 0, sizeof *u);
      u->used = 1;
      memcpy(u->addr, addr, 20);
      u->tasks = NONE;
      l->nusers++;
      return u;
    }
    if (memcmp(u->addr, addr, 20) == 0)
      return u;
    i = (i + 1) & l->user_mask;
  }
}

static const struct user *user_find(const struct teex_ledger *l,
                                    const uint8_t addr[20]) {
  return user_get((struct teex_ledger *)l, addr, 0);
}

static uint32_t *index_slot(struct teex_ledger *l, const uint8_t id[32]) {
  uint32_t i = fnv(id, 32) & l->index_mask;
  for (;;) {
    uint32_t v = l->index[i];
    if (v == 0 || memcmp(l->pool[v - 1].auth.task_id, id, 32) == 0)
      return &l->index[i];
    i = (i + 1) & l->index_mask;
  }
}

static void index_delete(struct teex_ledger *l, const uint8_t id[32]) {
  uint32_t *slot = index_slot(l, id);
  if (*slot == 0)
    return;
  uint32_t i = (uint32_t)(slot - l->index), j = i;
  l->index[i] = 0;
  for (;;) {
    j = (j + 1) & l->index_mask;
    uint32_t v = l->index[j];
    if (v == 0)
      return;
    uint32_t home = fnv(l->pool[v - 1].auth.task_id, 32) & l->index_mask;
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      l->index[i] = v;
      l->index[j] = 0;
      i = j;
    }
  }
}

/* ---- amounts ---- */

int teex_amount_parse(const char *s, teex_amount *out) {
  if (s == NULL || *s == '\0' || strlen(s) > 39)
    return TEEX_EINVAL;
  teex_amount v = 0, max = ~(teex_amount)0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return TEEX_EINVAL;
    unsigned d = (unsigned)(*p - '0');
    if (v > (max - d) / 10)
      return TEEX_EINVAL;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

void teex_amount_format(teex_amount v, char out[40]) {
  char tmp[40];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v > 0);
  for (int i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

/* ---- the rules ---- */

static int same_auth(const struct teex_payment_auth *a,
                     const struct teex_payment_auth *b) {
  return memcmp(a->user, b->user, 20) == 0 &&
         memcmp(a->dispatcher, b->dispatcher, 20) == 0 &&
         memcmp(a->task_id, b->task_id, 32) == 0 &&
         memcmp(a->service_id, b->service_id, 32) == 0 &&
         memcmp(a->image_hash, b->image_hash, 32) == 0 &&
         memcmp(a->datasets_hash, b->datasets_hash, 32) == 0 &&
         a->price == b->price && a->cumulative == b->cumulative;
}

int teex_ledger_set_chain(struct teex_ledger *l, const uint8_t user[20],
                          teex_amount escrow, teex_amount settled) {
  struct user *u = user_get(l, user, 1);
  if (u == NULL)
    return TEEX_ETOOBIG;
  if (settled < u->settled)
    return 0; /* a stale read: the chain never goes backwards */
  if (settled > u->earned)
    u->earned = settled;
  u->settled = settled;
  u->escrow = escrow;
  return 0;
}

int teex_ledger_accept(struct teex_ledger *l, const struct teex_payment_auth *a,
                       teex_amount price, struct teex_err *err) {
  char s1[40], s2[40];
  if (memcmp(a->dispatcher, l->self, 20) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "authorisation is for another dispatcher");
  if (a->price != price) {
    teex_amount_format(a->price, s1);
    teex_amount_format(price, s2);
    return teex_err_set(err, TEEX_EINVAL,
                        "authorised price %s wei differs from the task's "
                        "price %s wei",
                        s1, s2);
  }
  uint32_t *slot = index_slot(l, a->task_id);
  if (*slot != 0) {
    struct task *t = &l->pool[*slot - 1];
    if (!same_auth(&t->auth, a))
      return teex_err_set(err, TEEX_EREPLAY,
                          "task id already used with another authorisation");
    if (t->state != TASK_RUNNING)
      return teex_err_set(err, TEEX_EREPLAY, "task already %s",
                          t->state == TASK_DONE ? "completed" : "failed");
    return TEEX_LEDGER_RETRY;
  }
  struct user *u = user_get(l, a->user, 1);
  if (u == NULL)
    return teex_err_set(err, TEEX_ETOOBIG, "dispatcher ledger full (users)");
  teex_amount base = u->earned + u->running;
  if (base + price < base || a->cumulative < base + price) {
    teex_amount_format(base, s1);
    teex_amount_format(a->cumulative, s2);
    return teex_err_set(err, TEEX_EPOLICY,
                        "cumulative %s wei does not cover earlier tasks: sign "
                        "cumulative = %s + price",
                        s2, s1);
  }
  /* The most this user can be debited if every running task completes. */
  teex_amount need = base + price - u->settled;
  if (need > u->escrow) {
    teex_amount_format(need - u->escrow, s1);
    teex_amount_format(u->escrow, s2);
    return teex_err_set(err, TEEX_EFUNDS,
                        "escrow %s wei too small: deposit %s wei more", s2, s1);
  }
  if (l->pool_free == NONE)
    return teex_err_set(err, TEEX_ETOOBIG, "dispatcher ledger full (tasks)");
  uint32_t idx = l->pool_free;
  struct task *t = &l->pool[idx];
  l->pool_free = t->next_free;
  t->auth = *a;
  t->user = (uint32_t)(u - l->users);
  t->state = TASK_RUNNING;
  t->next_user = u->tasks;
  u->tasks = idx;
  u->running += price;
  *slot = idx + 1;
  return TEEX_LEDGER_NEW;
}

static struct task *task_get(struct teex_ledger *l, const uint8_t id[32]) {
  uint32_t v = *index_slot(l, id);
  return v ? &l->pool[v - 1] : NULL;
}

int teex_ledger_complete(struct teex_ledger *l, const uint8_t task_id[32]) {
  struct task *t = task_get(l, task_id);
  if (t == NULL)
    return TEEX_ENOTFOUND;
  if (t->state != TASK_RUNNING)
    return TEEX_ESTATE;
  struct user *u = &l->users[t->user];
  t->state = TASK_DONE;
  u->running -= t->auth.price;
  u->earned += t->auth.price;
  return 0;
}

/* Unlinks and frees pool entry idx (prev is its predecessor in the user's
 * list, NONE when it is the head). */
static void task_drop(struct teex_ledger *l, struct user *u, uint32_t prev,
                      uint32_t idx) {
  struct task *t = &l->pool[idx];
  if (prev == NONE)
    u->tasks = t->next_user;
  else
    l->pool[prev].next_user = t->next_user;
  index_delete(l, t->auth.task_id);
  t->state = 0;
  t->next_free = l->pool_free;
  l->pool_free = idx;
}

int teex_ledger_fail(struct teex_ledger *l, const uint8_t task_id[32]) {
  struct task *t = task_get(l, task_id);
  if (t == NULL)
    return TEEX_ENOTFOUND;
  if (t->state != TASK_RUNNING)
    return TEEX_ESTATE;
  struct user *u = &l->users[t->user];
  t->state = TASK_FAILED;
  u->running -= t->auth.price;
  return 0;
}

int teex_ledger_base(const struct teex_ledger *l, const uint8_t user[20],
                     teex_amount *base) {
  const struct user *u = user_find(l, user);
  if (u == NULL) {
    *base = 0;
    return TEEX_ENOTFOUND;
  }
  *base = u->earned + u->running;
  return 0;
}

int teex_ledger_due(const struct teex_ledger *l, const uint8_t user[20],
                    struct teex_payment_auth *auth, teex_amount *debit) {
  const struct user *u = user_find(l, user);
  if (u == NULL)
    return TEEX_ENOTFOUND;
  const struct task *best = NULL;
  for (uint32_t i = u->tasks; i != NONE; i = l->pool[i].next_user) {
    const struct task *t = &l->pool[i];
    if (t->auth.cumulative > u->earned || t->auth.cumulative <= u->settled)
      continue;
    /* Highest cumulative; on a tie, a completed task's authorisation reads
     * more naturally in the published batch (any is valid: the chain only
     * honours the cumulative amount). */
    if (best == NULL || t->auth.cumulative > best->auth.cumulative ||
        (t->auth.cumulative == best->auth.cumulative && t->state == TASK_DONE &&
         best->state != TASK_DONE))
      best = t;
  }
  if (best == NULL)
    return 0;
  *auth = best->auth;
  *debit = best->auth.cumulative - u->settled;
  return 1;
}

int teex_ledger_settled(struct teex_ledger *l, const uint8_t user[20],
                        teex_amount cumulative) {
  struct user *u = user_get(l, user, 0);
  if (u == NULL)
    return TEEX_ENOTFOUND;
  if (cumulative <= u->settled)
    return 0;
  teex_amount debit = cumulative - u->settled;
  u->escrow = debit > u->escrow ? 0 : u->escrow - debit;
  u->settled = cumulative;
  if (u->earned < cumulative)
    u->earned = cumulative;
  /* Forget finished tasks whose authorisation can no longer matter. A
   * replay of a forgotten authorisation is still refused: its cumulative is
   * at or below what was settled, so it cannot cover base + price. */
  uint32_t prev = NONE, i = u->tasks;
  while (i != NONE) {
    uint32_t next = l->pool[i].next_user;
    struct task *t = &l->pool[i];
    if (t->state != TASK_RUNNING && t->auth.cumulative <= cumulative)
      task_drop(l, u, prev, i);
    else
      prev = i;
    i = next;
  }
  return 0;
}
