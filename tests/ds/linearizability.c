/* Wing & Gong search over a register history; see linearizability.h. */
#include "ds/linearizability.h"

#include <stdlib.h>
#include <string.h>

struct memo_ent {
  uint64_t mask;
  int64_t value;
  int used;
};

struct search {
  const struct lin_op *ops;
  size_t n;
  uint64_t completed; /* mask of ops with a response */
  struct memo_ent *memo;
  size_t memo_cap, memo_n;
  size_t explored;
  int oom;
};

static uint64_t mix(uint64_t mask, int64_t v) {
  uint64_t h = mask * 0x9e3779b97f4a7c15ull ^ (uint64_t)v;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

/* Returns 1 if (mask, value) was already explored (and failed), else
 * records it and returns 0. */
static int memo_seen(struct search *s, uint64_t mask, int64_t value) {
  if (s->memo_n * 2 >= s->memo_cap) {
    size_t nc = s->memo_cap ? s->memo_cap * 2 : 1024;
    struct memo_ent *nm = calloc(nc, sizeof(*nm));
    if (nm == NULL) {
      s->oom = 1;
      return 1;
    }
    for (size_t i = 0; i < s->memo_cap; i++) {
      if (!s->memo[i].used)
        continue;
      size_t j = mix(s->memo[i].mask, s->memo[i].value) & (nc - 1);
      while (nm[j].used)
        j = (j + 1) & (nc - 1);
      nm[j] = s->memo[i];
    }
    free(s->memo);
    s->memo = nm;
    s->memo_cap = nc;
  }
  size_t j = mix(mask, value) & (s->memo_cap - 1);
  while (s->memo[j].used) {
    if (s->memo[j].mask == mask && s->memo[j].value == value)
      return 1;
    j = (j + 1) & (s->memo_cap - 1);
  }
  s->memo[j] = (struct memo_ent){mask, value, 1};
  s->memo_n++;
  return 0;
}

/* Applies op to value; returns 0 if the op's recorded response is
 * impossible from this state. */
static int step(const struct lin_op *op, int64_t value, int64_t *next) {
  int done = op->ret != LIN_PENDING;
  *next = value;
  switch (op->kind) {
  case LIN_READ:
    return !done || op->out == value;
  case LIN_WRITE:
    *next = op->arg;
    return 1;
  case LIN_CAS: {
    int swap = value != LIN_ABSENT && value == op->expect;
    if (done && op->ok != swap)
      return 0;
    if (swap)
      *next = op->arg;
    return 1;
  }
  case LIN_INCR: {
    int64_t base = value == LIN_ABSENT ? 0 : value;
    *next = base + op->arg;
    return !done || op->out == *next;
  }
  }
  return 0;
}

static int dfs(struct search *s, uint64_t mask, int64_t value) {
  if ((mask & s->completed) == s->completed)
    return 1; /* every completed op is placed; pending ones may never be */
  if (s->oom || memo_seen(s, mask, value))
    return 0;
  s->explored++;
  /* The earliest response among the ops not yet placed: an op invoked after
   * it cannot come next. */
  uint64_t horizon = LIN_PENDING;
  for (size_t i = 0; i < s->n; i++)
    if (!(mask >> i & 1) && s->ops[i].ret < horizon)
      horizon = s->ops[i].ret;
  for (size_t i = 0; i < s->n; i++) {
    if ((mask >> i & 1) || s->ops[i].call > horizon)
      continue;
    int64_t next;
    if (step(&s->ops[i], value, &next) && dfs(s, mask | (uint64_t)1 << i, next))
      return 1;
  }
  return 0;
}

int lin_check(const struct lin_op *ops, size_t n, int64_t init,
              size_t *explored) {
  if (n > LIN_MAX_OPS)
    return -1;
  struct search s;
  memset(&s, 0, sizeof(s));
  s.ops = ops;
  s.n = n;
  for (size_t i = 0; i < n; i++)
    if (ops[i].ret != LIN_PENDING)
      s.completed |= (uint64_t)1 << i;
  int ok = dfs(&s, 0, init);
  free(s.memo);
  if (explored)
    *explored = s.explored;
  return s.oom ? -1 : ok;
}
