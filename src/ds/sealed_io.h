/* Internal: a struct raft_io that wraps raft_uv's and keeps raft's own
 * persistent state (term and vote) rollback-evident, plus the "not fresh,
 * do not vote" rule (docs/internals/ds.md, "Persistence and freshness").
 *
 * raft_uv writes term and vote in plain metadata files. This wrapper keeps
 * a sealed record (the TEE's sealing key, enclave policy) of (term, vote)
 * and the previous (term, vote), written before raft_uv's own write
 * whenever either changes. At load it refuses metadata that matches
 * neither (the files were edited or swapped). The record also holds the
 * last log index raft_uv confirmed persisted (rewritten at most once a
 * second, at a truncation and at close); a log that ends before it at load
 * was cut short, and the replica starts as a non-voter (below). A replica whose
 * raft state exists but whose sealed record does not cannot show its state is
 * fresh: it starts as a non-voter — its vote grants are rewritten into refusals
 * and its own vote requests claim an empty log, so nobody grants them —
 * until its log reaches the commit index of the first AppendEntries it
 * receives from a leader; then it writes a sealed record and votes again. */
#ifndef TEEX_DS_SEALED_IO_H
#define TEEX_DS_SEALED_IO_H

#include "teex/error.h"
#include "teex/tee.h"

#include <limits.h>
#include <raft.h>
#include <stdint.h>

struct teex_ds_sealed_io {
  struct raft_io io; /* give this one to raft_init */
  struct raft_io *inner;
  struct teex_tee *tee;
  char path[PATH_MAX];
  uint8_t group_id[16];
  uint64_t term, vote, prev_term, prev_vote;
  uint64_t index;     /* persisted log index in the sealed record */
  uint64_t persisted; /* highest index raft_uv confirmed written */
  unsigned ticks;
  int have_record;
  int fresh;            /* may vote and stand for election */
  uint64_t catch_up_to; /* commit index to reach before voting (0: unknown) */
  uint64_t suppressed;  /* vote grants / requests neutralised so far */
  /* The group's anchored index on chain (0: none), set before raft loads;
   * a log ending below it means the state was rolled back. */
  uint64_t anchor_floor;
  int rolled_back; /* below the anchor at load, not yet caught up */
  /* Leader leases (docs/internals/ds.md, "Reads and clocks"): after a start
   * this replica grants no vote for vote_guard_ms (set before raft starts;
   * 0: none), as if it had just heard from a leader — a leader's lease
   * counts on every replica that acknowledged it refusing votes for an
   * election timeout, which a restart would otherwise forget. */
  uint64_t vote_guard_ms;
  uint64_t vote_guard_until; /* raft_io time */
  uint64_t guarded;          /* vote grants refused by the guard */
  int commit_seen;           /* catch_up_to took a leader's commit index */
  raft_io_tick_cb tick;
  raft_io_recv_cb recv;
  raft_io_close_cb close_cb;
  /* Coalescing (coalesce = 1, set before raft starts): AppendEntries that
   * raft sends to one peer within a loop iteration and that continue each
   * other (raft sends one per proposal) go out as one message, when the
   * owner calls teex_ds_sealed_io_flush — from a uv_prepare and a uv_check
   * handle, so nothing waits past the iteration. */
  int coalesce;
  struct sio_outq *outq; /* per peer; NULL until the first one */
  unsigned n_outq;
  uint64_t coalesced; /* AppendEntries merged into an earlier one */
};

/* Sends what coalescing holds (see above). */
void teex_ds_sealed_io_flush(struct teex_ds_sealed_io *s);

/* Wraps inner (raft_uv, initialised). The record lives at path (sealed by
 * tee, bound to group_id). Nothing is read until raft calls load. */
void teex_ds_sealed_io_init(struct teex_ds_sealed_io *s, struct raft_io *inner,
                            struct teex_tee *tee, const char *path,
                            const uint8_t group_id[16]);

/* Writes p to path atomically (temporary file, fsync, rename, fsync of the
 * directory), mode 0600. TEEX_EIO. */
int teex_ds_write_atomic(const char *path, const void *p, size_t n,
                         struct teex_err *err);

#endif
