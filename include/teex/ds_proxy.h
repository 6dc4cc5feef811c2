/* TEE-DS at the edge: a Redis-protocol (RESP2) proxy that lets local tools
 * (redis-cli, redis-benchmark, Redis client libraries) use one namespace of
 * TEE-DS. It listens on loopback only and runs every Redis command as
 * TEE-DS commands through a backend: the network client of a replica group
 * in production, or an in-process group for development and tests.
 * docs/internals/ds.md ("Redis protocol at the edge") lists the commands,
 * their differences from Redis and the limits. */
#ifndef TEEX_DS_PROXY_H
#define TEEX_DS_PROXY_H

#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/error.h"

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Read modes (the values of the network client's enum teex_ds_read_mode). */
#define TEEX_DS_PROXY_READ_LINEARIZABLE 0
#define TEEX_DS_PROXY_READ_FOLLOWER 1

/* What INFO reports about the backend. */
struct teex_ds_backend_info {
  const char *backend; /* a static description */
  int known;           /* the fields below are filled */
  int leader;
  uint64_t self_id, leader_id, term, last_applied;
  unsigned replicas;
  unsigned replicas_up; /* answered a status request (network backend) */
};

/* ---- the backend seam ----
 * exec runs one command (its buffers need to live only during the call)
 * and later calls cb exactly once with the result (owned by cb:
 * teex_ds_result_free, then free) or a status < 0 (res NULL). A call that
 * fails synchronously returns the error and never calls cb; a call that
 * succeeds never calls cb before it returns. This is the shape of the
 * network client's teex_ds_client_exec; an adapter to it is one exec
 * function. */
struct teex_ds_backend;
struct teex_ds_backend_ops {
  int (*exec)(struct teex_ds_backend *b, const struct teex_ds_cmd *cmd,
              int read_mode, teex_ds_done_cb cb, void *arg,
              struct teex_err *err);
  void (*info)(struct teex_ds_backend *b,
               struct teex_ds_backend_info *out); /* optional */
  /* Cancels what is pending (each cb gets TEEX_ECANCELED) and frees. */
  void (*free)(struct teex_ds_backend *b);
};
struct teex_ds_backend {
  const struct teex_ds_backend_ops *ops;
};

/* The in-process backend: a group of `replicas` (1..5) TEE-DS replicas on
 * libraft's in-memory fixture, driven by the loop, with a random group key.
 * Every command (reads too) goes through the replicated, sealed log, so
 * reads see the group clock of now; nothing is persisted and nothing leaves
 * the process: a development mode, not a replicated store. clock_ms: the
 * leader's clock (NULL: CLOCK_REALTIME). TEEX_EINVAL, TEEX_ENOMEM. */
int teex_ds_backend_local_new(uv_loop_t *loop, unsigned replicas,
                              uint64_t (*clock_ms)(void *), void *clock_arg,
                              struct teex_ds_backend **out,
                              struct teex_err *err);

/* The network backend: a replica group through the client library
 * (teex_ds_client_new with cfg; cfg->tls must outlive the backend).
 * Commands go to the leader (follower reads to any replica), redirects and
 * lost leaders are retried as the client library does until cfg's timeout;
 * callbacks always come from the loop, never inside exec. INFO asks every
 * replica for its status (blocking the loop up to 300 ms per replica that
 * does not answer). TEEX_EINVAL, TEEX_ENOMEM. */
int teex_ds_backend_net_new(uv_loop_t *loop,
                            const struct teex_ds_client_config *cfg,
                            struct teex_ds_backend **out, struct teex_err *err);

/* ---- listen address check ---- */

/* Resolves host:port ("[v6]:port" too) with getaddrinfo (or `resolve`,
 * which has getaddrinfo's contract, when not NULL) and accepts it only if
 * every address it resolves to is loopback (127.0.0.0/8, ::1, or
 * ::ffff:127.0.0.0/104); the first one goes into *out. A name that resolves
 * anywhere else, a wildcard (0.0.0.0, ::) or an unresolvable name is
 * refused: TEEX_EPERM or TEEX_EINVAL with the reason. */
typedef int (*teex_ds_resolve_fn)(const char *host, const char *port,
                                  const struct addrinfo *hints,
                                  struct addrinfo **res);
typedef void (*teex_ds_freeaddr_fn)(struct addrinfo *res);
int teex_ds_proxy_check_listen(const char *addr, teex_ds_resolve_fn resolve,
                               teex_ds_freeaddr_fn freeaddr,
                               struct sockaddr_storage *out,
                               struct teex_err *err);

/* ---- the proxy ---- */

#define TEEX_DS_PROXY_CLIENTS_MAX 1024 /* default max_clients */
/* Replies handed to the socket and not yet written, per connection, past
 * which the proxy stops reading that connection's requests. */
#define TEEX_DS_PROXY_OUT_HIGH (8u << 20)

struct teex_ds_proxy_config {
  const char *listen;              /* "127.0.0.1:6379"; port 0 picks one */
  const char *ns;                  /* the namespace Redis keys live in */
  int read_mode;                   /* TEEX_DS_PROXY_READ_* */
  unsigned max_clients;            /* 0: TEEX_DS_PROXY_CLIENTS_MAX */
  struct teex_ds_backend *backend; /* not owned; outlives the proxy */
  teex_ds_resolve_fn resolve;      /* NULL: getaddrinfo (tests inject) */
  teex_ds_freeaddr_fn freeaddr;    /* NULL: freeaddrinfo */
};

struct teex_ds_proxy;

/* Checks the address (teex_ds_proxy_check_listen) and the namespace, and
 * listens. Synchronous failures fire nothing: TEEX_EPERM (not loopback),
 * TEEX_EINVAL, TEEX_ECONN (cannot bind), TEEX_ENOMEM. */
int teex_ds_proxy_start(uv_loop_t *loop, const struct teex_ds_proxy_config *cfg,
                        struct teex_ds_proxy **out, struct teex_err *err);

/* The port it listens on. */
int teex_ds_proxy_port(const struct teex_ds_proxy *p);

/* Connections served so far and open now. */
void teex_ds_proxy_stats(const struct teex_ds_proxy *p, uint64_t *accepted,
                         unsigned *open);

/* Stops listening and closes every connection; p is freed once its
 * handles are closed and its pending backend calls have called back (free
 * the backend after this to cancel them). */
void teex_ds_proxy_close(struct teex_ds_proxy *p);

#endif
