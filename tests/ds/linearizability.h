/* A linearizability checker for single-key register histories (Wing & Gong
 * search with memoisation, as in Lowe's and Knossos' checkers).
 *
 * A history is a set of operations, each with the logical time it was
 * invoked and the time its response arrived (LIN_PENDING when none did: the
 * operation may have taken effect at any point after its call, or never).
 * The history is linearizable iff there is a total order of the operations
 * that respects real time (an operation that returned before another was
 * invoked comes first), in which every completed operation's response is what
 * a sequential register would give. */
#ifndef TEEX_TESTS_DS_LINEARIZABILITY_H
#define TEEX_TESTS_DS_LINEARIZABILITY_H

#include <stddef.h>
#include <stdint.h>

#define LIN_MAX_OPS 64
#define LIN_PENDING UINT64_MAX
#define LIN_ABSENT INT64_MIN /* the register holds no value */

enum lin_kind {
  LIN_READ = 1,  /* out: value read */
  LIN_WRITE = 2, /* arg: value written */
  LIN_CAS = 3,   /* expect -> arg; ok: whether it swapped */
  LIN_INCR = 4,  /* arg: delta (absent counts as 0); out: new value */
};

struct lin_op {
  int kind;
  int64_t arg, expect;
  uint64_t call, ret; /* logical times; ret LIN_PENDING if no response */
  int64_t out;
  int ok;
};

/* 1: linearizable; 0: not; -1: too many operations (> LIN_MAX_OPS) or out
 * of memory. *explored (may be NULL) receives the number of search states
 * visited. */
int lin_check(const struct lin_op *ops, size_t n, int64_t init,
              size_t *explored);

#endif
