/* TEE-DS consensus interface: what the replicated state machine needs from a
 * consensus library, and nothing more, so that libraft (no longer maintained
 * upstream) can be replaced without touching the state machine.
 *
 * The state machine side (struct teex_ds_sm_hooks) is I/O-free: it is handed
 * committed bytes in log order and returns a result for the proposer. The
 * consensus side (struct teex_ds_consensus_ops) proposes bytes, confirms
 * leadership with a barrier, and changes membership. Callbacks follow the
 * libuv contract: a call that fails synchronously never fires its callback. */
#ifndef TEEX_DS_CONSENSUS_H
#define TEEX_DS_CONSENSUS_H

#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_DS_CONSENSUS_VERSION 1

/* Called by the consensus for every committed command, in log order, on
 * every replica. `index` is the entry's log index. Returns 0 and sets
 * *result (may be NULL; ownership passes to the consensus, which hands it to
 * the proposer's callback or releases it with result_free). A nonzero return
 * means this replica cannot apply the entry (e.g. it cannot decrypt it): the
 * consensus must stop applying on this replica rather than skip the entry,
 * so the replica halts instead of diverging. */
struct teex_ds_sm_hooks {
  int (*apply)(void *sm, uint64_t index, const uint8_t *data, size_t len,
               void **result);
  void (*result_free)(void *sm, void *result);
  /* Serialises the whole state (malloc'd; the consensus frees it). */
  int (*snapshot)(void *sm, uint8_t **out, size_t *out_len);
  /* Replaces the whole state; all or nothing. */
  int (*restore)(void *sm, const uint8_t *data, size_t len);
};

struct teex_ds_consensus;

/* status 0: committed and applied on this replica; result as returned by
 * hooks->apply (owned by the callback: release it with hooks->result_free).
 * status < 0: not committed (TEEX_ESTATE: not leader / leadership lost,
 * TEEX_ECANCELED: shutting down); result is NULL. */
typedef void (*teex_ds_propose_cb)(void *arg, int status, void *result);
/* status 0: every entry before the barrier is applied on this replica and
 * this replica was leader when the barrier committed. */
typedef void (*teex_ds_barrier_cb)(void *arg, int status);
typedef void (*teex_ds_change_cb)(void *arg, int status);

struct teex_ds_consensus_ops {
  int version; /* TEEX_DS_CONSENSUS_VERSION */
  /* Proposes a copy of data (len <= the implementation's entry limit).
   * TEEX_ESTATE if not leader, TEEX_ENOMEM, TEEX_ETOOBIG. */
  int (*propose)(struct teex_ds_consensus *c, const uint8_t *data, size_t len,
                 teex_ds_propose_cb cb, void *arg);
  int (*barrier)(struct teex_ds_consensus *c, teex_ds_barrier_cb cb, void *arg);
  int (*is_leader)(struct teex_ds_consensus *c);
  uint64_t (*leader_id)(struct teex_ds_consensus *c); /* 0 if unknown */
  uint64_t (*self_id)(struct teex_ds_consensus *c);
  uint64_t (*term)(struct teex_ds_consensus *c);
  uint64_t (*last_applied)(struct teex_ds_consensus *c);
  uint64_t (*last_index)(struct teex_ds_consensus *c);
  /* Membership, on the leader: add a server and make it a voter once it
   * has caught up; remove a server. */
  int (*add_voter)(struct teex_ds_consensus *c, uint64_t id,
                   const char *address, teex_ds_change_cb cb, void *arg);
  int (*remove)(struct teex_ds_consensus *c, uint64_t id, teex_ds_change_cb cb,
                void *arg);
  /* Sticky error of this replica (a failed apply), or 0. */
  int (*failed)(struct teex_ds_consensus *c);
  void (*free)(struct teex_ds_consensus *c);
  /* On the leader: hand leadership to voter `to` (0: the most up-to-date
   * one). cb(0) once this replica is no longer leader (a new one may still
   * be elected); TEEX_ESTATE if not leader. */
  int (*transfer)(struct teex_ds_consensus *c, uint64_t to,
                  teex_ds_change_cb cb, void *arg);
};

struct teex_ds_consensus {
  const struct teex_ds_consensus_ops *ops;
  const struct teex_ds_sm_hooks *hooks;
  void *sm;
};

/* ---- the libraft implementation (consensus_raft.c) ---- */

struct raft;
struct raft_fsm;

/* Creates a consensus that drives hooks/sm. The raft instance is created
 * elsewhere (the in-memory fixture in tests; the sealed, RA-TLS raft_io in
 * the networked replica) with the struct raft_fsm that
 * teex_ds_raft_fsm() returns, and then given with teex_ds_raft_attach().
 * free releases the consensus, not the raft instance; pending proposals are
 * not called back (the raft instance calls them back when it is closed). */
int teex_ds_raft_new(const struct teex_ds_sm_hooks *hooks, void *sm,
                     struct teex_ds_consensus **out);
struct raft_fsm *teex_ds_raft_fsm(struct teex_ds_consensus *c);
void teex_ds_raft_attach(struct teex_ds_consensus *c, struct raft *r);

#endif
