/* TEE-DS client library: runs commands (include/teex/ds.h) against a
 * replica group over RA-TLS RPC (proto/ds.proto). It finds the leader,
 * follows "not leader" redirects, and retries until the operation's timeout
 * when a replica is unreachable or the leader is lost — reads always,
 * writes only while they certainly did not reach a leader (a write whose
 * connection broke after it was sent has an unknown outcome and is
 * reported, never silently repeated). The server sets the command's grant
 * from the client's verified certificate; keys are "ns/...". */
#ifndef TEEX_DS_CLIENT_H
#define TEEX_DS_CLIENT_H

#include "teex/ds.h"
#include "teex/error.h"
#include "teex/tls.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TEEX_DS_CLIENT_DEFAULT_TIMEOUT_MS 5000u
#define TEEX_DS_CLIENT_MAX_REPLICAS 16
/* Default bound on one attempt to reach a replica (TCP connect + RA-TLS
 * handshake) before the operation moves on to the next replica. */
#define TEEX_DS_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS 2000u

struct teex_ds_client;

enum teex_ds_read_mode {
  TEEX_DS_READ_LINEARIZABLE = 0,
  TEEX_DS_READ_FOLLOWER = 1
};

struct teex_ds_client_config {
  const char *const *replicas; /* "host:port" of each replica's client RPC */
  size_t n_replicas;
  struct teex_tls_ctx *tls; /* client context: verifies replicas' RA-TLS
                               evidence (role ds) and presents the client's
                               certificate; must outlive the client */
  const char *ns;           /* the namespace this client works in */
  /* An SM grant for ns (teex_ds_grant_sign), sent with every command: what
   * opens a service's namespace to a worker (copied; NULL: none). */
  const uint8_t *grant;
  size_t grant_len;
  uint32_t timeout_ms; /* per operation, 0 = default; retries included */
  /* Per attempt to reach one replica, 0 = default: a replica cut off by the
   * network (packets dropped, not refused) costs an operation this much,
   * not its whole timeout, before the next replica is tried. The attempt
   * itself goes on in the background (the TLS handshake timeout ends it). */
  uint32_t connect_timeout_ms;
};

/* Async, on a libuv loop: finds the leader, follows redirects, retries on a
 * lost leader until timeout. cmd->grant is ignored (the server sets it);
 * keys are "ns/...". The caller owns *out (teex_ds_client_close). */
int teex_ds_client_new(uv_loop_t *loop, const struct teex_ds_client_config *cfg,
                       struct teex_ds_client **out, struct teex_err *err);

/* Runs cmd (copied: the caller's buffers need not outlive the call). cb as
 * in ds.h: status 0 with res (the callback owns it: teex_ds_result_free,
 * then free), or a negative code and res NULL — TEEX_ETIMEDOUT (no leader
 * answered in time), TEEX_EPERM (namespace not granted), TEEX_ECLOSED /
 * TEEX_ESTATE (a write whose outcome is unknown), TEEX_ECANCELED (client
 * closed), or the server's refusal. Fails synchronously (no cb):
 * TEEX_EINVAL / TEEX_ETOOBIG (bad command), TEEX_ESTATE (closing),
 * TEEX_ENOMEM. */
int teex_ds_client_exec(struct teex_ds_client *c, const struct teex_ds_cmd *cmd,
                        enum teex_ds_read_mode mode, teex_ds_done_cb cb,
                        void *arg, struct teex_err *err);

/* Ends every pending operation with TEEX_ECANCELED, closes the connections
 * and frees the client once libuv has closed its handles. NULL-safe. */
void teex_ds_client_close(struct teex_ds_client *c);

/* ---- blocking wrapper (CLIs, tests): one client on a private loop ---- */

struct teex_ds_sync;

int teex_ds_sync_open(const struct teex_ds_client_config *cfg,
                      struct teex_ds_sync **out, struct teex_err *err);
/* Runs cmd and waits. 0 with *res filled (the caller frees it with
 * teex_ds_result_free; res->status holds the command's own outcome), or the
 * error the callback would get, with a message in err. */
int teex_ds_sync_exec(struct teex_ds_sync *s, const struct teex_ds_cmd *cmd,
                      enum teex_ds_read_mode mode, struct teex_ds_result *res,
                      struct teex_err *err);
void teex_ds_sync_close(struct teex_ds_sync *s);

/* One replica's view of the group (`teex ds status`). */
struct teex_ds_replica_info {
  uint64_t id, leader_id, term, last_index, last_applied, keys, clock_ms;
  uint64_t catch_up_to;
  uint64_t read_barriers, reads; /* barriers proposed / reads they confirmed */
  uint64_t lease_reads; /* linearizable reads served under the leader lease */
  uint64_t coalesced;   /* AppendEntries merged into one (leader) */
  int leader, voting, failed;
  char leader_addr[128];
  char failure[256];
  uint8_t applied_chain[32]; /* after last_applied */
  uint64_t anchor_index;     /* the chain anchor it started with (0: none) */
  char freshness[320];       /* "not anchored", "rolled back: ...", ... */
};

/* Asks the replica at addr for its status (blocking). */
int teex_ds_replica_info_get(struct teex_tls_ctx *tls, const char *addr,
                             uint32_t timeout_ms,
                             struct teex_ds_replica_info *out,
                             struct teex_err *err);

#endif
