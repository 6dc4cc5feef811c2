/* The routing backend of the RESP proxy (include/teex/ds_router.h): the
 * proxy's namespace served by whichever group the signed placement
 * directory names, following moves (ds_router.c). The proxy keeps one
 * command in flight per Redis connection, as with the network backend. */
#include "teex/ds_router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rb {
  struct teex_ds_backend base;
  struct teex_ds_router *router;
  char desc[96];
};

static int rb_exec(struct teex_ds_backend *b, const struct teex_ds_cmd *cmd,
                   int read_mode, teex_ds_done_cb cb, void *arg,
                   struct teex_err *err) {
  struct rb *r = (struct rb *)b;
  /* the router starts every operation from a timer: cb never runs inside */
  return teex_ds_router_exec(r->router, cmd,
                             read_mode == TEEX_DS_PROXY_READ_FOLLOWER
                                 ? TEEX_DS_READ_FOLLOWER
                                 : TEEX_DS_READ_LINEARIZABLE,
                             cb, arg, err);
}

static void rb_info(struct teex_ds_backend *b,
                    struct teex_ds_backend_info *out) {
  struct rb *r = (struct rb *)b;
  memset(out, 0, sizeof(*out));
  snprintf(r->desc, sizeof r->desc,
           "TEE-DS group %llu of the placement directory (epoch %llu)",
           (unsigned long long)teex_ds_router_group(r->router),
           (unsigned long long)teex_ds_router_epoch(r->router));
  out->backend = r->desc;
}

static void rb_free(struct teex_ds_backend *b) {
  struct rb *r = (struct rb *)b;
  if (r == NULL)
    return;
  teex_ds_router_close(r->router); /* pending cbs get TEEX_ECANCELED */
  free(r);
}

static const struct teex_ds_backend_ops rb_ops = {
    .exec = rb_exec,
    .info = rb_info,
    .free = rb_free,
};

int teex_ds_backend_router_new(uv_loop_t *loop,
                               const struct teex_ds_router_config *cfg,
                               struct teex_ds_backend **out,
                               struct teex_err *err) {
  *out = NULL;
  struct rb *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds proxy: out of memory");
  r->base.ops = &rb_ops;
  int rc = teex_ds_router_new(loop, cfg, &r->router, err);
  if (rc != 0) {
    free(r);
    return teex_err_wrap(err, 0, "ds proxy");
  }
  *out = &r->base;
  return 0;
}
