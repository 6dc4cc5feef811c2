/* The network backend of the RESP proxy (include/teex/ds_proxy.h): the
 * TEE-DS client library (include/teex/ds_client.h) on the proxy's loop.
 * One client, so one RPC connection per replica shared by every proxy
 * connection; the client library sends operations in the order they are
 * started, which with the proxy's rules keeps a pipelined connection's
 * commands in order (see docs/internals/ds.md, "Ordering and failures over
 * the network"). */
#include "teex/ds_proxy.h"

#include "teex/ds_client.h"

#include <stdlib.h>
#include <string.h>

/* INFO asks each replica for its status, blocking the proxy's loop for at
 * most this long per replica that does not answer. */
#define INFO_TIMEOUT_MS 300u

struct net {
  struct teex_ds_backend base;
  uv_loop_t *loop;
  struct teex_ds_client *client;
  struct teex_tls_ctx *tls; /* not owned */
  char *replicas[TEEX_DS_CLIENT_MAX_REPLICAS];
  size_t n;
  int in_exec; /* inside teex_ds_client_exec */
};

struct call {
  struct net *n;
  teex_ds_done_cb cb;
  void *arg;
  /* Set only when the result came back inside exec: it is then handed
   * over from the loop, so the proxy never sees a synchronous callback. */
  uv_timer_t defer;
  int status;
  struct teex_ds_result *res;
};

static void deferred_closed(uv_handle_t *h) {
  free(h->data);
}

static void deferred(uv_timer_t *t) {
  struct call *k = t->data;
  k->cb(k->arg, k->status, k->res);
  uv_close((uv_handle_t *)&k->defer, deferred_closed);
}

static void net_done(void *arg, int status, struct teex_ds_result *res) {
  struct call *k = arg;
  if (k->n->in_exec) {
    /* The client library starts every operation from its loop, so this
     * does not happen; should that change, the contract still holds. */
    k->status = status;
    k->res = res;
    uv_timer_init(k->n->loop, &k->defer);
    k->defer.data = k;
    uv_timer_start(&k->defer, deferred, 0, 0);
    return;
  }
  k->cb(k->arg, status, res);
  free(k);
}

static int net_exec(struct teex_ds_backend *b, const struct teex_ds_cmd *cmd,
                    int read_mode, teex_ds_done_cb cb, void *arg,
                    struct teex_err *err) {
  struct net *n = (struct net *)b;
  struct call *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds proxy: out of memory");
  k->n = n;
  k->cb = cb;
  k->arg = arg;
  n->in_exec = 1;
  int rc = teex_ds_client_exec(n->client, cmd,
                               read_mode == TEEX_DS_PROXY_READ_FOLLOWER
                                   ? TEEX_DS_READ_FOLLOWER
                                   : TEEX_DS_READ_LINEARIZABLE,
                               net_done, k, err);
  n->in_exec = 0;
  if (rc != 0) {
    free(k);
    return rc;
  }
  return 0;
}

static void net_info(struct teex_ds_backend *b,
                     struct teex_ds_backend_info *out) {
  struct net *n = (struct net *)b;
  memset(out, 0, sizeof(*out));
  out->backend = "TEE-DS replica group over RA-TLS";
  out->replicas = (unsigned)n->n;
  struct teex_ds_replica_info best;
  int have = 0;
  for (size_t i = 0; i < n->n; i++) {
    struct teex_ds_replica_info r;
    struct teex_err err;
    teex_err_clear(&err);
    if (teex_ds_replica_info_get(n->tls, n->replicas[i], INFO_TIMEOUT_MS, &r,
                                 &err) != 0)
      continue;
    out->replicas_up++;
    /* the leader's view, else the one with the highest term */
    if (!have || (r.leader && !best.leader) ||
        (!best.leader && r.term > best.term)) {
      best = r;
      have = 1;
    }
  }
  if (!have)
    return;
  out->known = 1;
  out->leader = best.leader;
  out->self_id = best.id;
  out->leader_id = best.leader_id;
  out->term = best.term;
  out->last_applied = best.last_applied;
}

static void net_free(struct teex_ds_backend *b) {
  struct net *n = (struct net *)b;
  if (n == NULL)
    return;
  /* cancels what is pending: each cb gets TEEX_ECANCELED */
  teex_ds_client_close(n->client);
  for (size_t i = 0; i < n->n; i++)
    free(n->replicas[i]);
  free(n);
}

static const struct teex_ds_backend_ops net_ops = {
    .exec = net_exec,
    .info = net_info,
    .free = net_free,
};

int teex_ds_backend_net_new(uv_loop_t *loop,
                            const struct teex_ds_client_config *cfg,
                            struct teex_ds_backend **out,
                            struct teex_err *err) {
  *out = NULL;
  struct net *n = calloc(1, sizeof(*n));
  if (n == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds proxy: out of memory");
  n->base.ops = &net_ops;
  n->loop = loop;
  n->tls = cfg->tls;
  int rc = teex_ds_client_new(loop, cfg, &n->client, err);
  if (rc != 0) {
    free(n);
    return teex_err_wrap(err, 0, "ds proxy");
  }
  for (size_t i = 0; i < cfg->n_replicas; i++) {
    n->replicas[i] = strdup(cfg->replicas[i]);
    if (n->replicas[i] == NULL) {
      net_free(&n->base);
      return teex_err_set(err, TEEX_ENOMEM, "ds proxy: out of memory");
    }
    n->n++;
  }
  *out = &n->base;
  return 0;
}
