/* Redis commands on TEE-DS (see resp_cmds.h). Each command is a row of the
 * table at the end: its arity (Redis's convention: N exactly, -N at least
 * N), a begin function that checks the arguments and either replies at once
 * or prepares the first TEE-DS command, and a next function that turns each
 * result into the reply (or the next command of a multi-key command). */
#include "ds/resp_cmds.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*begin_fn)(struct teex_resp_session *, struct teex_resp_call *,
                        struct teex_buf *);
typedef int (*next_fn)(struct teex_resp_session *, struct teex_resp_call *, int,
                       const struct teex_ds_result *, struct teex_buf *);

struct resp_command {
  const char *name;
  int arity;
  begin_fn begin;
  next_fn next;
  int writes; /* a failed backend call may still have taken effect */
};

/* ---- helpers ---- */

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

static int arg_is(const struct teex_resp_arg *a, const char *s) {
  size_t n = strlen(s);
  if (a->len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower(a->p[i]) != lower((unsigned char)s[i]))
      return 0;
  return 1;
}

/* Redis's string2ll: optional '-', digits, no leading zeros, no spaces. */
static int arg_ll(const struct teex_resp_arg *a, long long *out) {
  size_t n = a->len, i = 0;
  int neg = 0;
  if (n == 0 || n > 20)
    return -1;
  if (a->p[0] == '-') {
    neg = 1;
    i = 1;
    if (n == 1)
      return -1;
  }
  if (a->p[i] == '0' && (n - i > 1 || neg))
    return -1;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (a->p[i] < '0' || a->p[i] > '9')
      return -1;
    unsigned d = (unsigned)(a->p[i] - '0');
    if (v > (ULLONG_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (unsigned long long)LLONG_MAX + 1)
      return -1;
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
  } else {
    if (v > (unsigned long long)LLONG_MAX)
      return -1;
    *out = (long long)v;
  }
  return 0;
}

static int err_not_int(struct teex_buf *out) {
  return teex_resp_error(out, "ERR value is not an integer or out of range");
}

static int err_syntax(struct teex_buf *out) {
  return teex_resp_error(out, "ERR syntax error");
}

/* The longest Redis key this session can store. */
static size_t key_max(const struct teex_resp_session *s) {
  return TEEX_DS_KEY_MAX - s->ns_len - 1;
}

/* "NS/" + k into dst. 0, or -1 when too long. */
static int map_key(const struct teex_resp_session *s,
                   const struct teex_resp_arg *k, uint8_t *dst, size_t *len) {
  if (k->len > key_max(s))
    return -1;
  memcpy(dst, s->ns, s->ns_len);
  dst[s->ns_len] = '/';
  if (k->len)
    memcpy(dst + s->ns_len + 1, k->p, k->len);
  *len = s->ns_len + 1 + k->len;
  return 0;
}

static int err_key_long(const struct teex_resp_session *s,
                        struct teex_buf *out) {
  return teex_resp_error(out,
                         "ERR key too long (at most %zu bytes in namespace "
                         "'%s'); nothing was stored",
                         key_max(s), s->ns);
}

static int err_val_long(struct teex_buf *out) {
  return teex_resp_error(out,
                         "ERR value too large (at most %d bytes); nothing "
                         "was stored",
                         TEEX_DS_VALUE_MAX);
}

/* Sets up call->cmd for op on key argv[i] (already checked). */
static void prepare(struct teex_resp_session *s, struct teex_resp_call *c,
                    uint8_t op, size_t i, int read) {
  memset(&c->cmd, 0, sizeof(c->cmd));
  c->cmd.op = op;
  c->cmd.grant = s->ns;
  c->cmd.key = c->key;
  if (i > 0)
    map_key(s, &c->argv[i], c->key, &c->cmd.key_len);
  c->read_mode = read ? s->read_mode : TEEX_RESP_READ_LINEARIZABLE;
}

/* Every key argument from `from` on (every `stride`-th) fits. */
static int keys_fit(const struct teex_resp_session *s,
                    const struct teex_resp_call *c, size_t from,
                    size_t stride) {
  for (size_t i = from; i < c->argc; i += stride)
    if (c->argv[i].len > key_max(s))
      return 0;
  return 1;
}

static int backend_err(struct teex_buf *out, const struct teex_resp_call *c,
                       int status) {
  if (status == TEEX_EPERM)
    return teex_resp_error(out, "NOPERM TEE-DS refused: the namespace is not "
                                "granted to the proxy's client certificate");
  if (status == TEEX_ETIMEDOUT)
    return teex_resp_error(out,
                           "ERR TEE-DS unavailable: no replica leader "
                           "answered in time (is the replica group up?)%s",
                           c->def->writes ? "; the write may or may not have "
                                            "taken effect, retry"
                                          : "");
  return teex_resp_error(out, "ERR TEE-DS unavailable: %s%s",
                         teex_strerror(status),
                         c->def->writes ? " (the write may or may not have "
                                          "taken effect; retry)"
                                        : "");
}

/* A refusal by the state machine that the command does not handle itself. */
static int status_err(struct teex_buf *out, int st) {
  switch (st) {
  case TEEX_ENOSPC:
    return teex_resp_error(out, "OOM TEE-DS key limit reached (%u keys)",
                           TEEX_DS_KEYS_MAX);
  case TEEX_EPERM:
    return teex_resp_error(out, "ERR key outside the proxy's namespace");
  case TEEX_ETOOBIG:
    return teex_resp_error(out, "ERR key or value too large");
  case TEEX_EREPLAY:
    return teex_resp_error(out, "ERR TEE-DS refused the entry as a replay; "
                                "retry");
  case TEEX_EBUSY: /* scale-out: frozen while it moves (nothing written) */
    return teex_resp_error(out, "TRYAGAIN TEE-DS namespace is moving to "
                                "another group; nothing was written, retry");
  case TEEX_EMOVED: /* scale-out: and the proxy could not follow */
    return teex_resp_error(out, "MOVED TEE-DS namespace moved to another "
                                "group; serve it with --dir (the placement "
                                "directory)");
  default:
    return teex_resp_error(out, "ERR TEE-DS: %s", teex_strerror(st));
  }
}

/* ---- sessions ---- */

int teex_resp_session_init(struct teex_resp_session *s, const char *ns,
                           uint64_t id) {
  memset(s, 0, sizeof(*s));
  size_t n = ns ? strlen(ns) : 0;
  if (n == 0 || n > TEEX_DS_NS_MAX)
    return TEEX_EINVAL;
  for (size_t i = 0; i < n; i++) {
    char ch = ns[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
          ch == '-' || ch == '.'))
      return TEEX_EINVAL;
  }
  memcpy(s->ns, ns, n + 1);
  s->ns_len = n;
  s->id = id;
  return 0;
}

/* ---- GET, SET and friends ---- */

static int get_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                     struct teex_buf *out) {
  if (!keys_fit(s, c, 1, 1))
    return err_key_long(s, out);
  prepare(s, c, TEEX_DS_GET, 1, 1);
  return TEEX_RESP_EXEC;
}

static int get_next(struct teex_resp_session *s, struct teex_resp_call *c,
                    int status, const struct teex_ds_result *res,
                    struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_ENOTFOUND)
    return teex_resp_null(out);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_bulk(out, res->val, res->val_len);
}

static int strlen_next(struct teex_resp_session *s, struct teex_resp_call *c,
                       int status, const struct teex_ds_result *res,
                       struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_ENOTFOUND)
    return teex_resp_int(out, 0);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_int(out, (int64_t)res->val_len);
}

/* c->flags for SET's reply */
#define SET_REPLY_INT 0x100 /* SETNX: :1 / :0 instead of +OK / nil */

/* A TTL argument in seconds (scale 1000) or ms (scale 1): > 0 and within
 * TEEX_DS_TTL_MAX_MS. */
static int ttl_arg(const struct teex_resp_arg *a, uint64_t scale, uint64_t *ms,
                   int *not_int) {
  long long v;
  *not_int = 0;
  if (arg_ll(a, &v) != 0) {
    *not_int = 1;
    return -1;
  }
  if (v <= 0 || (uint64_t)v > TEEX_DS_TTL_MAX_MS / scale)
    return -1;
  *ms = (uint64_t)v * scale;
  return 0;
}

/* SET key value [NX|XX] [EX s|PX ms|KEEPTTL]; GET, EXAT and PXAT refused. */
static int set_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                     struct teex_buf *out) {
  uint8_t flags = 0;
  uint64_t ttl = 0;
  int have_ttl = 0;
  for (size_t i = 3; i < c->argc; i++) {
    const struct teex_resp_arg *a = &c->argv[i];
    if (arg_is(a, "NX") && !(flags & TEEX_DS_IF_PRESENT)) {
      flags |= TEEX_DS_IF_ABSENT;
    } else if (arg_is(a, "XX") && !(flags & TEEX_DS_IF_ABSENT)) {
      flags |= TEEX_DS_IF_PRESENT;
    } else if (arg_is(a, "KEEPTTL") && !have_ttl) {
      flags |= TEEX_DS_KEEP_TTL;
      have_ttl = 1;
    } else if ((arg_is(a, "EX") || arg_is(a, "PX")) && !have_ttl &&
               i + 1 < c->argc) {
      int not_int;
      if (ttl_arg(&c->argv[i + 1], arg_is(a, "EX") ? 1000 : 1, &ttl,
                  &not_int) != 0)
        return not_int ? err_not_int(out)
                       : teex_resp_error(out, "ERR invalid expire time in "
                                              "'set' command");
      have_ttl = 1;
      i++;
    } else if (arg_is(a, "GET")) {
      return teex_resp_error(out, "ERR SET with GET is not supported by "
                                  "TEE-DS (use GET, then SET)");
    } else if (arg_is(a, "EXAT") || arg_is(a, "PXAT")) {
      return teex_resp_error(out, "ERR SET with EXAT/PXAT is not supported "
                                  "by TEE-DS (use EX/PX)");
    } else {
      return err_syntax(out);
    }
  }
  if (!keys_fit(s, c, 1, c->argc))
    return err_key_long(s, out);
  if (c->argv[2].len > TEEX_DS_VALUE_MAX)
    return err_val_long(out);
  prepare(s, c, TEEX_DS_SET, 1, 0);
  c->cmd.flags = flags;
  c->cmd.ttl_ms = ttl;
  c->cmd.val = c->argv[2].p;
  c->cmd.val_len = c->argv[2].len;
  return TEEX_RESP_EXEC;
}

static int set_next(struct teex_resp_session *s, struct teex_resp_call *c,
                    int status, const struct teex_ds_result *res,
                    struct teex_buf *out) {
  (void)s;
  int as_int = c->flags & SET_REPLY_INT;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_EEXIST || res->status == TEEX_ENOTFOUND)
    return as_int ? teex_resp_int(out, 0) : teex_resp_null(out);
  if (res->status != 0)
    return status_err(out, res->status);
  return as_int ? teex_resp_int(out, 1) : teex_resp_simple(out, "OK");
}

/* SETNX key value */
static int setnx_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                       struct teex_buf *out) {
  if (!keys_fit(s, c, 1, 2))
    return err_key_long(s, out);
  if (c->argv[2].len > TEEX_DS_VALUE_MAX)
    return err_val_long(out);
  prepare(s, c, TEEX_DS_SET, 1, 0);
  c->cmd.flags = TEEX_DS_IF_ABSENT;
  c->cmd.val = c->argv[2].p;
  c->cmd.val_len = c->argv[2].len;
  c->flags = SET_REPLY_INT;
  return TEEX_RESP_EXEC;
}

/* SETEX key seconds value / PSETEX key ms value */
static int setex_common(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out, uint64_t scale,
                        const char *name) {
  uint64_t ttl;
  int not_int;
  if (ttl_arg(&c->argv[2], scale, &ttl, &not_int) != 0)
    return not_int ? err_not_int(out)
                   : teex_resp_error(
                         out, "ERR invalid expire time in '%s' command", name);
  if (!keys_fit(s, c, 1, 3))
    return err_key_long(s, out);
  if (c->argv[3].len > TEEX_DS_VALUE_MAX)
    return err_val_long(out);
  prepare(s, c, TEEX_DS_SET, 1, 0);
  c->cmd.ttl_ms = ttl;
  c->cmd.val = c->argv[3].p;
  c->cmd.val_len = c->argv[3].len;
  return TEEX_RESP_EXEC;
}
static int setex_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                       struct teex_buf *out) {
  return setex_common(s, c, out, 1000, "setex");
}
static int psetex_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  return setex_common(s, c, out, 1, "psetex");
}

/* ---- multi-key: DEL, EXISTS, MGET (one TEE-DS command per key) ---- */

static int multi_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                       struct teex_buf *out, uint8_t op, int read) {
  if (!keys_fit(s, c, 1, 1))
    return err_key_long(s, out);
  c->step = 1;
  c->acc = 0;
  prepare(s, c, op, 1, read);
  return TEEX_RESP_EXEC;
}

/* Moves to the next key, or finishes with reply :acc. */
static int multi_step(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out, int int_reply) {
  c->step++;
  if (c->step < c->argc) {
    uint8_t op = c->cmd.op;
    prepare(s, c, op, c->step, op == TEEX_DS_GET);
    return TEEX_RESP_EXEC;
  }
  return int_reply ? teex_resp_int(out, c->acc) : TEEX_RESP_DONE;
}

static int del_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                     struct teex_buf *out) {
  return multi_begin(s, c, out, TEEX_DS_DEL, 0);
}

/* DEL and EXISTS: one command per key, counting the keys found (DEL
 * removed, EXISTS read); a missing key counts nothing. */
static int count_next(struct teex_resp_session *s, struct teex_resp_call *c,
                      int status, const struct teex_ds_result *res,
                      struct teex_buf *out) {
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == 0)
    c->acc++;
  else if (res->status != TEEX_ENOTFOUND)
    return status_err(out, res->status);
  return multi_step(s, c, out, 1);
}

static int exists_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  return multi_begin(s, c, out, TEEX_DS_GET, 1);
}

/* MGET replies as it goes: the array header first, then one element per
 * key (an error element if that key's read failed). */
static int mget_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  if (!keys_fit(s, c, 1, 1))
    return err_key_long(s, out);
  int rc = teex_resp_array(out, c->argc - 1);
  if (rc != 0)
    return rc;
  return multi_begin(s, c, out, TEEX_DS_GET, 1);
}

static int mget_next(struct teex_resp_session *s, struct teex_resp_call *c,
                     int status, const struct teex_ds_result *res,
                     struct teex_buf *out) {
  int rc;
  if (status < 0)
    rc = backend_err(out, c, status);
  else if (res->status == TEEX_ENOTFOUND)
    rc = teex_resp_null(out);
  else if (res->status != 0)
    rc = status_err(out, res->status);
  else
    rc = teex_resp_bulk(out, res->val, res->val_len);
  if (rc != 0)
    return rc;
  return multi_step(s, c, out, 0);
}

/* MSET k v [k v ...]: one atomic TEE-DS multi-set. */
static int mset_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  if ((c->argc - 1) % 2 != 0)
    return teex_resp_error(out,
                           "ERR wrong number of arguments for 'mset' command");
  size_t n = (c->argc - 1) / 2;
  if (n > TEEX_DS_MSET_MAX)
    return teex_resp_error(out,
                           "ERR MSET of more than %d keys is not supported "
                           "by TEE-DS (split it; each MSET is atomic)",
                           TEEX_DS_MSET_MAX);
  if (!keys_fit(s, c, 1, 2))
    return err_key_long(s, out);
  for (size_t i = 2; i < c->argc; i += 2)
    if (c->argv[i].len > TEEX_DS_VALUE_MAX)
      return err_val_long(out);
  c->pairs = calloc(n, sizeof(*c->pairs));
  c->pair_keys = malloc(n * TEEX_DS_KEY_MAX);
  if (c->pairs == NULL || c->pair_keys == NULL)
    return TEEX_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    uint8_t *k = c->pair_keys + i * TEEX_DS_KEY_MAX;
    map_key(s, &c->argv[1 + 2 * i], k, &c->pairs[i].key_len);
    c->pairs[i].key = k;
    c->pairs[i].val = c->argv[2 + 2 * i].p;
    c->pairs[i].val_len = c->argv[2 + 2 * i].len;
  }
  prepare(s, c, TEEX_DS_MSET, 0, 0);
  c->cmd.key = NULL;
  c->cmd.pairs = c->pairs;
  c->cmd.n_pairs = n;
  return TEEX_RESP_EXEC;
}

static int ok_next(struct teex_resp_session *s, struct teex_resp_call *c,
                   int status, const struct teex_ds_result *res,
                   struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_simple(out, "OK");
}

/* ---- INCR family ---- */

static int incr_common(struct teex_resp_session *s, struct teex_resp_call *c,
                       struct teex_buf *out, int64_t delta) {
  if (!keys_fit(s, c, 1, c->argc))
    return err_key_long(s, out);
  prepare(s, c, TEEX_DS_INCR, 1, 0);
  c->cmd.delta = delta;
  return TEEX_RESP_EXEC;
}
static int incr_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  return incr_common(s, c, out, 1);
}
static int decr_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  return incr_common(s, c, out, -1);
}
static int incrby_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  long long d;
  if (arg_ll(&c->argv[2], &d) != 0)
    return err_not_int(out);
  return incr_common(s, c, out, d);
}
static int decrby_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  long long d;
  if (arg_ll(&c->argv[2], &d) != 0)
    return err_not_int(out);
  if (d == LLONG_MIN)
    return teex_resp_error(out, "ERR decrement would overflow");
  return incr_common(s, c, out, -d);
}

static int incr_next(struct teex_resp_session *s, struct teex_resp_call *c,
                     int status, const struct teex_ds_result *res,
                     struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_EFORMAT)
    return err_not_int(out);
  if (res->status == TEEX_EINVAL)
    return teex_resp_error(out, "ERR increment or decrement would overflow");
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_int(out, res->num);
}

/* ---- expiry: EXPIRE, PEXPIRE, PERSIST, TTL, PTTL ---- */

#define EXPIRE_DELETES 0x1 /* a non-positive TTL: the key is deleted */

static int expire_common(struct teex_resp_session *s, struct teex_resp_call *c,
                         struct teex_buf *out, uint64_t scale,
                         const char *name) {
  if (c->argc > 3)
    return teex_resp_error(out,
                           "ERR %s options (NX, XX, GT, LT) are not supported "
                           "by TEE-DS",
                           name);
  long long v;
  if (arg_ll(&c->argv[2], &v) != 0)
    return err_not_int(out);
  if (!keys_fit(s, c, 1, c->argc))
    return err_key_long(s, out);
  if (v <= 0) { /* Redis deletes the key at once */
    prepare(s, c, TEEX_DS_DEL, 1, 0);
    c->flags = EXPIRE_DELETES;
    return TEEX_RESP_EXEC;
  }
  if ((uint64_t)v > TEEX_DS_TTL_MAX_MS / scale)
    return teex_resp_error(out, "ERR invalid expire time in '%s' command",
                           name);
  prepare(s, c, TEEX_DS_EXPIRE, 1, 0);
  c->cmd.ttl_ms = (uint64_t)v * scale;
  return TEEX_RESP_EXEC;
}
static int expire_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  return expire_common(s, c, out, 1000, "expire");
}
static int pexpire_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                         struct teex_buf *out) {
  return expire_common(s, c, out, 1, "pexpire");
}

static int expire_next(struct teex_resp_session *s, struct teex_resp_call *c,
                       int status, const struct teex_ds_result *res,
                       struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_ENOTFOUND)
    return teex_resp_int(out, 0);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_int(out, 1);
}

static int persist_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                         struct teex_buf *out) {
  if (!keys_fit(s, c, 1, 1))
    return err_key_long(s, out);
  prepare(s, c, TEEX_DS_EXPIRE, 1, 0);
  c->cmd.ttl_ms = 0;
  return TEEX_RESP_EXEC;
}

static int persist_next(struct teex_resp_session *s, struct teex_resp_call *c,
                        int status, const struct teex_ds_result *res,
                        struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_ENOTFOUND)
    return teex_resp_int(out, 0);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_int(out, res->num != 0); /* 1 only if it had a TTL */
}

#define TTL_MS 0x1

static int ttl_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                     struct teex_buf *out) {
  int rc = get_begin(s, c, out);
  c->flags = 0;
  return rc;
}
static int pttl_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  int rc = get_begin(s, c, out);
  c->flags = TTL_MS;
  return rc;
}

static int ttl_next(struct teex_resp_session *s, struct teex_resp_call *c,
                    int status, const struct teex_ds_result *res,
                    struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status == TEEX_ENOTFOUND)
    return teex_resp_int(out, -2);
  if (res->status != 0)
    return status_err(out, res->status);
  if (res->expire_at_ms == 0)
    return teex_resp_int(out, -1);
  uint64_t ms =
      res->expire_at_ms > res->clock_ms ? res->expire_at_ms - res->clock_ms : 0;
  /* Redis rounds the remaining seconds to the nearest */
  return teex_resp_int(out,
                       (int64_t)((c->flags & TTL_MS) ? ms : (ms + 500) / 1000));
}

/* ---- SCAN cursor [MATCH pattern] [COUNT n] [TYPE t] ---- */

/* Does one pattern element at pat[*pi] match ch? Advances *pi past it. */
static int glob_one(const uint8_t *pat, size_t plen, size_t *pi, uint8_t ch) {
  size_t p = *pi;
  if (pat[p] == '?') {
    *pi = p + 1;
    return 1;
  }
  if (pat[p] == '\\' && p + 1 < plen) {
    *pi = p + 2;
    return pat[p + 1] == ch;
  }
  if (pat[p] != '[') {
    *pi = p + 1;
    return pat[p] == ch;
  }
  p++;
  int neg = p < plen && pat[p] == '^';
  if (neg)
    p++;
  int match = 0;
  while (p < plen && pat[p] != ']') {
    if (pat[p] == '\\' && p + 1 < plen) {
      match |= pat[p + 1] == ch;
      p += 2;
    } else if (p + 2 < plen && pat[p + 1] == '-' && pat[p + 2] != ']') {
      uint8_t lo = pat[p], hi = pat[p + 2];
      if (lo > hi) {
        uint8_t t = lo;
        lo = hi;
        hi = t;
      }
      match |= ch >= lo && ch <= hi;
      p += 3;
    } else {
      match |= pat[p] == ch;
      p++;
    }
  }
  *pi = p < plen ? p + 1 : p; /* an unterminated class runs to the end */
  return neg ? !match : match;
}

/* Iterative, with backtracking to the last '*' only: O(len(pat) * len(s)),
 * whatever the pattern. */
int teex_resp_glob(const uint8_t *pat, size_t plen, const uint8_t *s,
                   size_t slen) {
  size_t p = 0, i = 0, star_p = 0, star_i = 0;
  int star = 0;
  while (i < slen) {
    if (p < plen && pat[p] == '*') {
      star = 1;
      star_p = ++p;
      star_i = i;
      continue;
    }
    size_t np = p;
    if (p < plen && glob_one(pat, plen, &np, s[i])) {
      p = np;
      i++;
      continue;
    }
    if (!star)
      return 0;
    p = star_p;
    i = ++star_i;
  }
  while (p < plen && pat[p] == '*')
    p++;
  return p == plen;
}

#define SCAN_NO_TYPE 0x1 /* TYPE other than string: nothing matches */

static int scan_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  /* The cursor: 0 starts; anything else must name a cursor we handed out
   * (redis-cli reads it as an unsigned 64-bit integer). */
  const struct teex_resp_arg *cur = &c->argv[1];
  uint64_t id = 0;
  if (cur->len == 0 || cur->len > 20)
    return teex_resp_error(out, "ERR invalid cursor");
  for (size_t i = 0; i < cur->len; i++) {
    if (cur->p[i] < '0' || cur->p[i] > '9' ||
        id > (UINT64_MAX - (uint64_t)(cur->p[i] - '0')) / 10)
      return teex_resp_error(out, "ERR invalid cursor");
    id = id * 10 + (uint64_t)(cur->p[i] - '0');
  }
  size_t after_len = 0;
  if (id != 0) {
    size_t slot = id % TEEX_RESP_CURSORS;
    if (s->cursors == NULL || s->cursors->slot[slot].id != id)
      return teex_resp_error(out, "ERR invalid cursor (unknown or expired; "
                                  "restart the scan from 0)");
    after_len = s->cursors->slot[slot].len;
    memcpy(c->after, s->cursors->slot[slot].key, after_len);
  }
  uint32_t limit = TEEX_RESP_SCAN_DEFAULT;
  c->match_at = 0;
  c->flags = 0;
  for (size_t i = 2; i < c->argc; i += 2) {
    if (i + 1 >= c->argc)
      return err_syntax(out);
    if (arg_is(&c->argv[i], "MATCH")) {
      c->match_at = i + 1;
    } else if (arg_is(&c->argv[i], "COUNT")) {
      long long n;
      if (arg_ll(&c->argv[i + 1], &n) != 0)
        return err_not_int(out);
      if (n < 1)
        return err_syntax(out);
      limit = n > TEEX_DS_SCAN_MAX ? TEEX_DS_SCAN_MAX : (uint32_t)n;
    } else if (arg_is(&c->argv[i], "TYPE")) {
      if (!arg_is(&c->argv[i + 1], "string"))
        c->flags |= SCAN_NO_TYPE;
    } else {
      return err_syntax(out);
    }
  }
  /* Scan only under the pattern's literal prefix. */
  struct teex_resp_arg prefix = {(const uint8_t *)"", 0};
  if (c->match_at) {
    const struct teex_resp_arg *m = &c->argv[c->match_at];
    size_t n = 0;
    while (n < m->len && m->p[n] != '*' && m->p[n] != '?' && m->p[n] != '[' &&
           m->p[n] != '\\')
      n++;
    prefix.p = m->p;
    prefix.len = n > key_max(s) ? key_max(s) : n;
  }
  prepare(s, c, TEEX_DS_SCAN, 0, 1);
  map_key(s, &prefix, c->key, &c->cmd.key_len);
  c->cmd.after = c->after;
  c->cmd.after_len = after_len;
  c->cmd.limit = limit;
  return TEEX_RESP_EXEC;
}

static int scan_next(struct teex_resp_session *s, struct teex_resp_call *c,
                     int status, const struct teex_ds_result *res,
                     struct teex_buf *out) {
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status != 0)
    return status_err(out, res->status);
  char cursor[24] = "0";
  if (res->more && res->n_items > 0 && s->cursors != NULL) {
    const struct teex_ds_pair *last = &res->items[res->n_items - 1];
    uint64_t id = ++s->cursors->next;
    size_t slot = id % TEEX_RESP_CURSORS;
    s->cursors->slot[slot].id = id;
    s->cursors->slot[slot].len = last->key_len;
    memcpy(s->cursors->slot[slot].key, last->key, last->key_len);
    snprintf(cursor, sizeof(cursor), "%" PRIu64, id);
  }
  size_t n = 0;
  const struct teex_resp_arg *m = c->match_at ? &c->argv[c->match_at] : NULL;
  /* Keys come back without the namespace prefix. */
  size_t strip = s->ns_len + 1;
  int *keep = calloc(res->n_items ? res->n_items : 1, sizeof(int));
  if (keep == NULL)
    return TEEX_ENOMEM;
  for (size_t i = 0; i < res->n_items; i++) {
    const struct teex_ds_pair *it = &res->items[i];
    if (it->key_len < strip || (c->flags & SCAN_NO_TYPE))
      continue;
    if (m &&
        !teex_resp_glob(m->p, m->len, it->key + strip, it->key_len - strip))
      continue;
    keep[i] = 1;
    n++;
  }
  int rc = teex_resp_array(out, 2);
  if (rc == 0)
    rc = teex_resp_bulk_str(out, cursor);
  if (rc == 0)
    rc = teex_resp_array(out, n);
  for (size_t i = 0; i < res->n_items && rc == 0; i++)
    if (keep[i])
      rc = teex_resp_bulk(out, res->items[i].key + strip,
                          res->items[i].key_len - strip);
  free(keep);
  return rc;
}

/* ---- keyspace and server ---- */

static int dbsize_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  (void)out;
  prepare(s, c, TEEX_DS_COUNT, 0, 1);
  struct teex_resp_arg none = {(const uint8_t *)"", 0};
  map_key(s, &none, c->key, &c->cmd.key_len);
  return TEEX_RESP_EXEC;
}

static int dbsize_next(struct teex_resp_session *s, struct teex_resp_call *c,
                       int status, const struct teex_ds_result *res,
                       struct teex_buf *out) {
  (void)s;
  if (status < 0)
    return backend_err(out, c, status);
  if (res->status != 0)
    return status_err(out, res->status);
  return teex_resp_int(out, res->num);
}

static int keys_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  (void)s;
  (void)c;
  return teex_resp_error(out, "ERR KEYS is not supported by TEE-DS (use "
                              "SCAN, e.g. redis-cli --scan --pattern P)");
}

#define INFO_SERVER 0x1
#define INFO_KEYSPACE 0x2

static int info_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  c->flags = 0;
  if (c->argc == 1)
    c->flags = INFO_SERVER | INFO_KEYSPACE;
  for (size_t i = 1; i < c->argc; i++) {
    const struct teex_resp_arg *a = &c->argv[i];
    if (arg_is(a, "all") || arg_is(a, "default") || arg_is(a, "everything"))
      c->flags |= INFO_SERVER | INFO_KEYSPACE;
    else if (arg_is(a, "server"))
      c->flags |= INFO_SERVER;
    else if (arg_is(a, "keyspace"))
      c->flags |= INFO_KEYSPACE;
  }
  if (c->flags == 0) /* Redis answers other sections with nothing */
    return teex_resp_bulk(out, "", 0);
  return dbsize_begin(s, c, out);
}

static int info_next(struct teex_resp_session *s, struct teex_resp_call *c,
                     int status, const struct teex_ds_result *res,
                     struct teex_buf *out) {
  struct teex_buf t;
  teex_buf_init(&t, 4096, 0);
  int rc = 0;
  if (c->flags & INFO_SERVER) {
    struct teex_ds_backend_info in;
    memset(&in, 0, sizeof(in));
    if (s->info)
      s->info(s->info_arg, &in);
    rc |= teex_buf_printf(
        &t,
        "# Server\r\n"
        "redis_version:7.0.0\r\n"
        "server_name:teex TEE-DS (RESP proxy; encrypted, replicated "
        "key-value store in TEEs)\r\n"
        "teex_ds_proxy:1\r\n"
        "namespace:%s\r\n"
        "backend:%s\r\n"
        "read_mode:%s\r\n",
        s->ns, in.backend ? in.backend : "unknown",
        s->read_mode == TEEX_RESP_READ_FOLLOWER ? "follower" : "linearizable");
    if (in.known)
      rc |= teex_buf_printf(&t,
                            "ds_role:%s\r\n"
                            "ds_replicas:%u\r\n"
                            "ds_replicas_up:%u\r\n"
                            "ds_self_id:%" PRIu64 "\r\n"
                            "ds_leader_id:%" PRIu64 "\r\n"
                            "ds_term:%" PRIu64 "\r\n"
                            "ds_last_applied:%" PRIu64 "\r\n",
                            in.leader ? "leader" : "follower", in.replicas,
                            in.replicas_up, in.self_id, in.leader_id, in.term,
                            in.last_applied);
  }
  if (c->flags & INFO_KEYSPACE) {
    rc |= teex_buf_printf(&t, "%s# Keyspace\r\n",
                          (c->flags & INFO_SERVER) ? "\r\n" : "");
    if (status == 0 && res->status == 0 && res->num > 0)
      rc |= teex_buf_printf(&t, "db0:keys=%" PRId64 "\r\n", res->num);
    else if (status < 0 || res->status != 0)
      rc |= teex_buf_printf(&t, "# unavailable: %s\r\n",
                            teex_strerror(status < 0 ? status : res->status));
  }
  if (rc == 0)
    rc = teex_resp_bulk(out, t.data, t.len);
  teex_buf_free(&t);
  return rc;
}

static int ping_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  (void)s;
  if (c->argc > 2)
    return teex_resp_error(out,
                           "ERR wrong number of arguments for 'ping' command");
  if (c->argc == 2)
    return teex_resp_bulk(out, c->argv[1].p, c->argv[1].len);
  return teex_resp_simple(out, "PONG");
}

static int echo_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  (void)s;
  return teex_resp_bulk(out, c->argv[1].p, c->argv[1].len);
}

static int select_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  (void)s;
  long long db;
  if (arg_ll(&c->argv[1], &db) != 0)
    return err_not_int(out);
  if (db != 0)
    return teex_resp_error(out, "ERR DB index is out of range");
  return teex_resp_simple(out, "OK");
}

static int quit_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  (void)c;
  s->quit = 1;
  return teex_resp_simple(out, "OK");
}

/* redis-cli asks COMMAND DOCS when it starts interactively, for its
 * hints and `help`; an error makes it use its own built-in help table
 * (an empty answer would leave `help` empty). Plain COMMAND lists
 * nothing. */
static int command_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                         struct teex_buf *out) {
  (void)s;
  if (c->argc >= 2 && arg_is(&c->argv[1], "COUNT"))
    return teex_resp_int(out, 0);
  if (c->argc >= 2 && arg_is(&c->argv[1], "DOCS"))
    return teex_resp_error(out, "ERR COMMAND DOCS is not supported by TEE-DS "
                                "(see docs/internals/ds.md)");
  return teex_resp_array(out, 0);
}

/* redis-benchmark reads CONFIG GET save/appendonly; there is no such
 * configuration here, so every CONFIG GET matches nothing. */
static int config_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  (void)s;
  if (arg_is(&c->argv[1], "GET"))
    return teex_resp_array(out, 0);
  return teex_resp_error(out, "ERR CONFIG %.*s is not supported by TEE-DS",
                         (int)(c->argv[1].len > 32 ? 32 : c->argv[1].len),
                         (const char *)c->argv[1].p);
}

static int set_client_name(struct teex_resp_session *s,
                           const struct teex_resp_arg *a,
                           struct teex_buf *out) {
  if (a->len >= sizeof(s->name))
    return teex_resp_error(out, "ERR client name too long");
  for (size_t i = 0; i < a->len; i++)
    if (a->p[i] <= ' ' || a->p[i] > '~')
      return teex_resp_error(out, "ERR Client names cannot contain spaces, "
                                  "newlines or special characters.");
  memcpy(s->name, a->p, a->len);
  s->name[a->len] = 0;
  return 0;
}

static int client_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                        struct teex_buf *out) {
  const struct teex_resp_arg *sub = &c->argv[1];
  if (arg_is(sub, "SETNAME") && c->argc == 3) {
    size_t at = out->len;
    int rc = set_client_name(s, &c->argv[2], out);
    if (rc != 0 || out->len != at)
      return rc;
    return teex_resp_simple(out, "OK");
  }
  if (arg_is(sub, "GETNAME") && c->argc == 2)
    return s->name[0] ? teex_resp_bulk_str(out, s->name) : teex_resp_null(out);
  if (arg_is(sub, "ID") && c->argc == 2)
    return teex_resp_int(out, (int64_t)s->id);
  if (arg_is(sub, "SETINFO") && c->argc == 4)
    return teex_resp_simple(out, "OK");
  return teex_resp_error(out,
                         "ERR unknown subcommand or wrong number of arguments "
                         "for '%.*s'. Try CLIENT HELP.",
                         (int)(sub->len > 32 ? 32 : sub->len),
                         (const char *)sub->p);
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only. */
static int hello_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                       struct teex_buf *out) {
  if (c->argc >= 2) {
    long long v;
    if (arg_ll(&c->argv[1], &v) != 0)
      return teex_resp_error(out, "ERR Protocol version is not an integer or "
                                  "out of range");
    if (v != 2)
      return teex_resp_error(out, "NOPROTO this TEE-DS proxy speaks RESP2 "
                                  "only (HELLO 2)");
  }
  for (size_t i = 2; i < c->argc; i++) {
    if (arg_is(&c->argv[i], "AUTH"))
      return teex_resp_error(out, "ERR AUTH is not supported by TEE-DS (the "
                                  "proxy listens on loopback only)");
    if (arg_is(&c->argv[i], "SETNAME") && i + 1 < c->argc) {
      size_t at = out->len;
      int rc = set_client_name(s, &c->argv[++i], out);
      if (rc != 0 || out->len != at)
        return rc;
    } else {
      return err_syntax(out);
    }
  }
  int rc = teex_resp_array(out, 14);
  rc = rc ? rc : teex_resp_bulk_str(out, "server");
  rc = rc ? rc : teex_resp_bulk_str(out, "teex-ds");
  rc = rc ? rc : teex_resp_bulk_str(out, "version");
  rc = rc ? rc : teex_resp_bulk_str(out, "7.0.0");
  rc = rc ? rc : teex_resp_bulk_str(out, "proto");
  rc = rc ? rc : teex_resp_int(out, 2);
  rc = rc ? rc : teex_resp_bulk_str(out, "id");
  rc = rc ? rc : teex_resp_int(out, (int64_t)s->id);
  rc = rc ? rc : teex_resp_bulk_str(out, "mode");
  rc = rc ? rc : teex_resp_bulk_str(out, "standalone");
  rc = rc ? rc : teex_resp_bulk_str(out, "role");
  rc = rc ? rc : teex_resp_bulk_str(out, "master");
  rc = rc ? rc : teex_resp_bulk_str(out, "modules");
  rc = rc ? rc : teex_resp_array(out, 0);
  return rc;
}

static int auth_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                      struct teex_buf *out) {
  (void)s;
  (void)c;
  return teex_resp_error(out, "ERR AUTH is not supported by TEE-DS (the "
                              "proxy listens on loopback only)");
}

static const struct resp_command commands[] = {
    {"get", 2, get_begin, get_next, 0},
    {"set", -3, set_begin, set_next, 1},
    {"setnx", 3, setnx_begin, set_next, 1},
    {"setex", 4, setex_begin, ok_next, 1},
    {"psetex", 4, psetex_begin, ok_next, 1},
    {"strlen", 2, get_begin, strlen_next, 0},
    {"del", -2, del_begin, count_next, 1},
    {"unlink", -2, del_begin, count_next, 1},
    {"exists", -2, exists_begin, count_next, 0},
    {"mget", -2, mget_begin, mget_next, 0},
    {"mset", -3, mset_begin, ok_next, 1},
    {"incr", 2, incr_begin, incr_next, 1},
    {"decr", 2, decr_begin, incr_next, 1},
    {"incrby", 3, incrby_begin, incr_next, 1},
    {"decrby", 3, decrby_begin, incr_next, 1},
    {"expire", -3, expire_begin, expire_next, 1},
    {"pexpire", -3, pexpire_begin, expire_next, 1},
    {"persist", 2, persist_begin, persist_next, 1},
    {"ttl", 2, ttl_begin, ttl_next, 0},
    {"pttl", 2, pttl_begin, ttl_next, 0},
    {"scan", -2, scan_begin, scan_next, 0},
    {"dbsize", 1, dbsize_begin, dbsize_next, 0},
    {"keys", 2, keys_begin, NULL, 0},
    {"info", -1, info_begin, info_next, 0},
    {"ping", -1, ping_begin, NULL, 0},
    {"echo", 2, echo_begin, NULL, 0},
    {"select", 2, select_begin, NULL, 0},
    {"quit", -1, quit_begin, NULL, 0},
    {"command", -1, command_begin, NULL, 0},
    {"config", -2, config_begin, NULL, 0},
    {"client", -2, client_begin, NULL, 0},
    {"hello", -1, hello_begin, NULL, 0},
    {"auth", -2, auth_begin, NULL, 0},
};

void teex_resp_call_reset(struct teex_resp_call *c) {
  if (c == NULL)
    return;
  free(c->args);
  free(c->argv);
  free(c->pairs);
  free(c->pair_keys);
  c->args = NULL;
  c->argv = NULL;
  c->pairs = NULL;
  c->pair_keys = NULL;
  c->def = NULL;
  c->argc = 0;
}

/* A command name, printable, for an error message. */
static void printable(const struct teex_resp_arg *a, char *dst, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < a->len && n + 1 < size; i++)
    dst[n++] = (a->p[i] >= ' ' && a->p[i] <= '~' && a->p[i] != '\'')
                   ? (char)a->p[i]
                   : '?';
  dst[n] = 0;
}

int teex_resp_call_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                         const struct teex_resp_cmd *req,
                         struct teex_buf *out) {
  teex_resp_call_reset(c);
  const struct resp_command *def = NULL;
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (arg_is(&req->argv[0], commands[i].name)) {
      def = &commands[i];
      break;
    }
  char name[64];
  printable(&req->argv[0], name, sizeof(name));
  if (def == NULL) {
    struct teex_buf args;
    teex_buf_init(&args, 256, 0);
    for (size_t i = 1; i < req->argc && args.len < 128; i++) {
      char a[64];
      printable(&req->argv[i], a, sizeof(a));
      if (teex_buf_printf(&args, "'%s' ", a) != 0)
        break;
    }
    int rc = teex_resp_error(
        out, "ERR unknown command '%s', with args beginning with: %.*s", name,
        (int)args.len, args.data ? (const char *)args.data : "");
    teex_buf_free(&args);
    return rc;
  }
  if ((def->arity > 0 && req->argc != (size_t)def->arity) ||
      (def->arity < 0 && req->argc < (size_t)-def->arity)) {
    for (char *p = name; *p; p++)
      *p = (char)lower(*p);
    return teex_resp_error(
        out, "ERR wrong number of arguments for '%s' command", name);
  }
  /* Keep our own copy: the parser's buffer moves as more bytes arrive. */
  size_t total = 0;
  for (size_t i = 0; i < req->argc; i++)
    total += req->argv[i].len;
  c->args = malloc(total ? total : 1);
  c->argv = malloc(req->argc * sizeof(*c->argv));
  if (c->args == NULL || c->argv == NULL) {
    teex_resp_call_reset(c);
    return TEEX_ENOMEM;
  }
  size_t at = 0;
  for (size_t i = 0; i < req->argc; i++) {
    if (req->argv[i].len)
      memcpy(c->args + at, req->argv[i].p, req->argv[i].len);
    c->argv[i].p = c->args + at;
    c->argv[i].len = req->argv[i].len;
    at += req->argv[i].len;
  }
  c->argc = req->argc;
  c->def = def;
  c->flags = 0;
  c->step = 0;
  c->acc = 0;
  int rc = def->begin(s, c, out);
  if (rc != TEEX_RESP_EXEC)
    teex_resp_call_reset(c);
  return rc;
}

int teex_resp_call_next(struct teex_resp_session *s, struct teex_resp_call *c,
                        int status, const struct teex_ds_result *res,
                        struct teex_buf *out) {
  if (c->def == NULL || c->def->next == NULL)
    return TEEX_EINVAL;
  if (status == 0 && res == NULL)
    status = TEEX_EINTERNAL;
  int rc = c->def->next(s, c, status, res, out);
  if (rc != TEEX_RESP_EXEC)
    teex_resp_call_reset(c);
  return rc;
}
