/* TEE-DS client routing across groups (scale-out): a client of one
 * namespace that finds the namespace's group in a signed placement
 * directory (ds_place.h), talks to it through the group client
 * (ds_client.h), and follows moves: a group that no longer owns the
 * namespace answers TEEX_EMOVED with its placement record, whose signed
 * directory the router verifies against the placement key, adopts if its
 * epoch is newer, and retries at the new owner (bounded hops). A write
 * refused because the namespace is frozen for a move (TEEX_EBUSY) was not
 * applied: the router retries it until the operation's timeout, so it lands
 * at the destination once the move completes. docs/internals/ds.md. */
#ifndef TEEX_DS_ROUTER_H
#define TEEX_DS_ROUTER_H

#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_place.h"
#include "teex/ds_proxy.h"
#include "teex/error.h"
#include "teex/tls.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TEEX_DS_ROUTER_TLS_MAX 8  /* distinct group policies one router uses */
#define TEEX_DS_ROUTER_HOPS_MAX 4 /* moves followed by one operation */

/* A client TLS context that checks replicas against the evidence policy
 * whose file has SHA-256 `policy` (the directory names each group's). */
struct teex_ds_router_tls {
  uint8_t policy[32];
  struct teex_tls_ctx *tls; /* must outlive the router */
};

struct teex_ds_router_config {
  const uint8_t *dir; /* the signed directory the client starts from */
  size_t dir_len;
  const uint8_t *placement_pk; /* 32 bytes: the deployment's placement key */
  const struct teex_ds_router_tls *tls;
  size_t n_tls;
  const char *ns;       /* the namespace */
  const uint8_t *grant; /* SM grant for ns, as in ds_client.h (NULL: none) */
  size_t grant_len;
  uint32_t timeout_ms; /* per operation (0: the client default) */
  uint32_t connect_timeout_ms;
  /* Called on the loop when the router adopted a newer directory (to keep
   * it for the next start); may be NULL. */
  void (*on_directory)(void *arg, const uint8_t *dir, size_t len,
                       uint64_t epoch);
  void *on_directory_arg;
};

struct teex_ds_router;

/* Verifies the directory (TEEX_EBADSIG, the parser's errors), checks that
 * it places ns (TEEX_ENOTFOUND) and makes the router. The caller owns *out
 * (teex_ds_router_close). */
int teex_ds_router_new(uv_loop_t *loop, const struct teex_ds_router_config *cfg,
                       struct teex_ds_router **out, struct teex_err *err);

/* Runs cmd (copied) on the group that owns the namespace, as
 * teex_ds_client_exec does; cb never runs inside this call. Extra outcomes:
 * status 0 with res->status TEEX_EMOVED (the moves could not be followed:
 * more than TEEX_DS_ROUTER_HOPS_MAX, or an answer that is no newer than
 * what the router knows), TEEX_EBUSY (still frozen at the timeout);
 * TEEX_EBADSIG (a "moved" answer whose directory does not verify);
 * TEEX_EPOLICY (no TLS context for the owner group's policy). */
int teex_ds_router_exec(struct teex_ds_router *r, const struct teex_ds_cmd *cmd,
                        enum teex_ds_read_mode mode, teex_ds_done_cb cb,
                        void *arg, struct teex_err *err);

/* The group the router currently sends to, the directory epoch it holds,
 * how many moves it followed. */
uint64_t teex_ds_router_group(const struct teex_ds_router *r);
uint64_t teex_ds_router_epoch(const struct teex_ds_router *r);
uint64_t teex_ds_router_moves(const struct teex_ds_router *r);
/* Attempts refused because the namespace was frozen (then retried). */
uint64_t teex_ds_router_waits(const struct teex_ds_router *r);

/* Ends pending operations with TEEX_ECANCELED and frees the router once
 * its handles are closed. NULL-safe. */
void teex_ds_router_close(struct teex_ds_router *r);

/* The RESP proxy's backend over a router (src/ds/backend_router.c): the
 * proxy's namespace on whichever group the directory names, following
 * moves. The caller owns *out (its ops->free). */
int teex_ds_backend_router_new(uv_loop_t *loop,
                               const struct teex_ds_router_config *cfg,
                               struct teex_ds_backend **out,
                               struct teex_err *err);

/* ---- blocking wrapper: one router on a private loop ---- */
struct teex_ds_router_sync;
int teex_ds_router_sync_open(const struct teex_ds_router_config *cfg,
                             struct teex_ds_router_sync **out,
                             struct teex_err *err);
/* As teex_ds_sync_exec. */
int teex_ds_router_sync_exec(struct teex_ds_router_sync *s,
                             const struct teex_ds_cmd *cmd,
                             enum teex_ds_read_mode mode,
                             struct teex_ds_result *res, struct teex_err *err);
struct teex_ds_router *
teex_ds_router_sync_router(struct teex_ds_router_sync *s);
void teex_ds_router_sync_close(struct teex_ds_router_sync *s);

#endif
