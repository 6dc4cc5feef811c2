/* TEE-DS state machine: commands, their encoding, and their deterministic
 * application to an in-memory ordered map.
 *
 * Determinism: the result of applying a command depends only on the state,
 * the command and the clock proposed by the leader inside the sealed entry;
 * never on the local clock, randomness, or allocation addresses. The map is
 * a sorted array (binary search; byte order, shorter key first on a common
 * prefix), which gives prefix scans with a cursor for free. */
#include "teex/ds.h"

#include "teex/crypto.h"
#include "teex/ds_place.h"
#include "teex/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_VERSION 1
#define SNAP_VERSION 1

struct item {
  uint8_t *key;
  size_t key_len;
  uint8_t *val;
  size_t val_len;
  uint64_t expire_ms; /* 0: never */
};

struct teex_ds_kv {
  struct item *items;
  size_t n, cap;
  uint64_t clock_ms;
};

/* ---- results ---- */

void teex_ds_result_free(struct teex_ds_result *res) {
  if (res == NULL)
    return;
  if (res->val != NULL) {
    teex_wipe(res->val, res->val_len);
    free(res->val);
  }
  for (size_t i = 0; i < res->n_items; i++) {
    teex_wipe((void *)res->items[i].key, res->items[i].key_len);
    teex_wipe((void *)res->items[i].val, res->items[i].val_len);
    free((void *)res->items[i].key);
    free((void *)res->items[i].val);
  }
  free(res->items);
  memset(res, 0, sizeof(*res));
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d != NULL && n > 0)
    memcpy(d, p, n);
  return d;
}

/* ---- validation shared by encode and decode ---- */

static int grant_valid(const char *g) {
  size_t n = g ? strlen(g) : 0;
  if (n == 0 || n > TEEX_DS_NS_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = g[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

static int cmd_validate(const struct teex_ds_cmd *c, struct teex_err *err) {
  if ((c->op < TEEX_DS_GET || c->op > TEEX_DS_TXN) && c->op != TEEX_DS_PLACE)
    return teex_err_set(err, TEEX_EINVAL, "unknown op %u", c->op);
  if (c->flags & ~0x0f)
    return teex_err_set(err, TEEX_EINVAL, "unknown flags 0x%x", c->flags);
  if ((c->flags & TEEX_DS_IF_ABSENT) && (c->flags & TEEX_DS_IF_PRESENT))
    return teex_err_set(err, TEEX_EINVAL, "if-absent and if-present");
  if (!grant_valid(c->grant))
    return teex_err_set(err, TEEX_EINVAL, "bad namespace grant");
  if (c->key_len > TEEX_DS_KEY_MAX || c->after_len > TEEX_DS_KEY_MAX ||
      c->expect_len > TEEX_DS_VALUE_MAX || c->val_len > TEEX_DS_VALUE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "key or value too large");
  if ((c->key_len && !c->key) || (c->val_len && !c->val) ||
      (c->expect_len && !c->expect) || (c->after_len && !c->after))
    return teex_err_set(err, TEEX_EINVAL, "null buffer");
  if (c->ttl_ms > TEEX_DS_TTL_MAX_MS)
    return teex_err_set(err, TEEX_EINVAL, "ttl too long");
  if (c->op == TEEX_DS_MSET || c->op == TEEX_DS_TXN) {
    if (c->n_pairs == 0 || c->n_pairs > TEEX_DS_MSET_MAX || !c->pairs)
      return teex_err_set(err, TEEX_ETOOBIG, "multi-set of %zu pairs",
                          c->n_pairs);
    for (size_t i = 0; i < c->n_pairs; i++)
      if (c->pairs[i].key_len > TEEX_DS_KEY_MAX ||
          c->pairs[i].val_len > TEEX_DS_VALUE_MAX)
        return teex_err_set(err, TEEX_ETOOBIG, "key or value too large");
  } else if (c->n_pairs != 0) {
    return teex_err_set(err, TEEX_EINVAL, "pairs on a single-key command");
  }
  if (c->op == TEEX_DS_TXN) {
    /* One kind byte per pair; the single-key fields stay empty. */
    if (c->expect_len != c->n_pairs || c->key_len != 0 || c->val_len != 0 ||
        c->ttl_ms != 0 || c->flags != 0)
      return teex_err_set(err, TEEX_EINVAL, "malformed transaction");
    for (size_t i = 0; i < c->n_pairs; i++)
      if (c->expect[i] < TEEX_DS_TXN_EQ || c->expect[i] > TEEX_DS_TXN_DEL)
        return teex_err_set(err, TEEX_EINVAL, "transaction pair kind %u",
                            c->expect[i]);
  }
  if (c->op == TEEX_DS_SCAN && (c->limit == 0 || c->limit > TEEX_DS_SCAN_MAX))
    return teex_err_set(err, TEEX_EINVAL, "scan limit %u", c->limit);
  return 0;
}

/* ---- encoding: little-endian, every length u32 ---- */

struct wr {
  uint8_t *p;
  size_t n;
};
static void w_bytes(struct wr *w, const void *p, size_t n) {
  if (n)
    memcpy(w->p + w->n, p, n);
  w->n += n;
}
static void w_u32(struct wr *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  w_bytes(w, b, 4);
}
static void w_u64(struct wr *w, uint64_t v) {
  w_u32(w, (uint32_t)v);
  w_u32(w, (uint32_t)(v >> 32));
}
static void w_blob(struct wr *w, const uint8_t *p, size_t n) {
  w_u32(w, (uint32_t)n);
  w_bytes(w, p, n);
}

int teex_ds_cmd_encode(const struct teex_ds_cmd *cmd, uint8_t **out,
                       size_t *out_len, struct teex_err *err) {
  int rc = cmd_validate(cmd, err);
  if (rc != 0)
    return teex_err_wrap(err, 0, "encode command");
  size_t glen = strlen(cmd->grant);
  size_t total = 4 + glen + 4 + cmd->key_len + 4 + cmd->val_len + 4 +
                 cmd->expect_len + 8 + 8 + 4 + cmd->after_len + 4 + 4;
  for (size_t i = 0; i < cmd->n_pairs; i++)
    total += 8 + cmd->pairs[i].key_len + cmd->pairs[i].val_len;
  struct wr w = {malloc(total), 0};
  if (w.p == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "encode command: out of memory");
  uint8_t hdr[4] = {CMD_VERSION, cmd->op, cmd->flags, (uint8_t)glen};
  w_bytes(&w, hdr, 4);
  w_bytes(&w, cmd->grant, glen);
  w_blob(&w, cmd->key, cmd->key_len);
  w_blob(&w, cmd->val, cmd->val_len);
  w_blob(&w, cmd->expect, cmd->expect_len);
  w_u64(&w, (uint64_t)cmd->delta);
  w_u64(&w, cmd->ttl_ms);
  w_blob(&w, cmd->after, cmd->after_len);
  w_u32(&w, cmd->limit);
  w_u32(&w, (uint32_t)cmd->n_pairs);
  for (size_t i = 0; i < cmd->n_pairs; i++) {
    w_blob(&w, cmd->pairs[i].key, cmd->pairs[i].key_len);
    w_blob(&w, cmd->pairs[i].val, cmd->pairs[i].val_len);
  }
  *out = w.p;
  *out_len = w.n;
  return 0;
}

struct rd {
  const uint8_t *p;
  size_t len, off;
  int bad;
};
static const uint8_t *r_bytes(struct rd *r, size_t n) {
  if (r->bad || r->len - r->off < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = r->p + r->off;
  r->off += n;
  return p;
}
static uint32_t r_u32(struct rd *r) {
  const uint8_t *b = r_bytes(r, 4);
  if (!b)
    return 0;
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
         (uint32_t)b[3] << 24;
}
static uint64_t r_u64(struct rd *r) {
  uint64_t lo = r_u32(r);
  return lo | (uint64_t)r_u32(r) << 32;
}
/* A length-prefixed blob of at most max bytes. */
static const uint8_t *r_blob(struct rd *r, size_t max, size_t *n, int *big) {
  *n = 0;
  uint32_t l = r_u32(r);
  if (l > max) {
    *big = 1;
    r->bad = 1;
    return NULL;
  }
  *n = l;
  return r_bytes(r, l);
}

int teex_ds_cmd_decode(const uint8_t *buf, size_t len,
                       struct teex_ds_cmd_view *v, struct teex_err *err) {
  memset(v, 0, sizeof(*v));
  if (len > TEEX_DS_CMD_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "decode command: %zu bytes", len);
  struct rd r = {buf, len, 0, 0};
  int big = 0;
  const uint8_t *hdr = r_bytes(&r, 4);
  if (hdr == NULL)
    return teex_err_set(err, TEEX_ETRUNC, "decode command: truncated");
  if (hdr[0] != CMD_VERSION)
    return teex_err_set(err, TEEX_EVERSION, "decode command: version %u",
                        hdr[0]);
  struct teex_ds_cmd *c = &v->cmd;
  c->op = hdr[1];
  c->flags = hdr[2];
  size_t glen = hdr[3];
  if (glen > TEEX_DS_NS_MAX)
    return teex_err_set(err, TEEX_EFORMAT, "decode command: grant length");
  const uint8_t *g = r_bytes(&r, glen);
  if (g != NULL && memchr(g, 0, glen) != NULL)
    return teex_err_set(err, TEEX_EFORMAT, "decode command: NUL in grant");
  if (g != NULL)
    memcpy(v->grant, g, glen);
  v->grant[glen] = 0;
  c->grant = v->grant;
  c->key = r_blob(&r, TEEX_DS_KEY_MAX, &c->key_len, &big);
  c->val = r_blob(&r, TEEX_DS_VALUE_MAX, &c->val_len, &big);
  c->expect = r_blob(&r, TEEX_DS_VALUE_MAX, &c->expect_len, &big);
  c->delta = (int64_t)r_u64(&r);
  c->ttl_ms = r_u64(&r);
  c->after = r_blob(&r, TEEX_DS_KEY_MAX, &c->after_len, &big);
  c->limit = r_u32(&r);
  uint32_t np = r_u32(&r);
  if (!r.bad && np > TEEX_DS_MSET_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "decode command: %u pairs", np);
  for (uint32_t i = 0; i < np && !r.bad; i++) {
    struct teex_ds_pair *p = &v->pairs[i];
    p->key = r_blob(&r, TEEX_DS_KEY_MAX, &p->key_len, &big);
    p->val = r_blob(&r, TEEX_DS_VALUE_MAX, &p->val_len, &big);
  }
  if (r.bad)
    return teex_err_set(err, big ? TEEX_ETOOBIG : TEEX_ETRUNC,
                        "decode command: %s", big ? "too large" : "truncated");
  if (r.off != len)
    return teex_err_set(err, TEEX_EFORMAT, "decode command: trailing bytes");
  c->n_pairs = np;
  c->pairs = np ? v->pairs : NULL;
  int rc = cmd_validate(c, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "decode command");
  return 0;
}

/* ---- the map ---- */

int teex_ds_kv_new(struct teex_ds_kv **out) {
  *out = calloc(1, sizeof(**out));
  return *out ? 0 : TEEX_ENOMEM;
}

static void item_clear(struct item *it) {
  teex_wipe(it->key, it->key_len);
  teex_wipe(it->val, it->val_len);
  free(it->key);
  free(it->val);
  memset(it, 0, sizeof(*it));
}

void teex_ds_kv_free(struct teex_ds_kv *kv) {
  if (kv == NULL)
    return;
  for (size_t i = 0; i < kv->n; i++)
    item_clear(&kv->items[i]);
  free(kv->items);
  free(kv);
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
  size_t m = al < bl ? al : bl;
  int c = m ? memcmp(a, b, m) : 0;
  if (c != 0)
    return c;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

/* Index of the first item >= key; *found when equal. */
static size_t lower_bound(const struct teex_ds_kv *kv, const uint8_t *key,
                          size_t len, int *found) {
  size_t lo = 0, hi = kv->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_cmp(kv->items[mid].key, kv->items[mid].key_len, key, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < kv->n &&
           key_cmp(kv->items[lo].key, kv->items[lo].key_len, key, len) == 0;
  return lo;
}

static int live(const struct teex_ds_kv *kv, const struct item *it) {
  return it->expire_ms == 0 || it->expire_ms > kv->clock_ms;
}

/* The live item for key, or NULL. */
static struct item *find(const struct teex_ds_kv *kv, const uint8_t *key,
                         size_t len) {
  int found;
  size_t i = lower_bound(kv, key, len, &found);
  if (!found || !live(kv, &kv->items[i]))
    return NULL;
  return &kv->items[i];
}

static void remove_at(struct teex_ds_kv *kv, size_t i) {
  item_clear(&kv->items[i]);
  memmove(&kv->items[i], &kv->items[i + 1],
          (kv->n - i - 1) * sizeof(kv->items[0]));
  kv->n--;
}

static void purge_expired(struct teex_ds_kv *kv) {
  size_t j = 0;
  for (size_t i = 0; i < kv->n; i++) {
    if (live(kv, &kv->items[i]))
      kv->items[j++] = kv->items[i];
    else
      item_clear(&kv->items[i]);
  }
  kv->n = j;
}

static uint64_t expiry(const struct teex_ds_kv *kv, uint64_t ttl_ms) {
  return ttl_ms ? kv->clock_ms + ttl_ms : 0;
}

/* Sets key to val (copied) with expiry exp; replaces an existing item. */
static int put(struct teex_ds_kv *kv, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen, uint64_t exp) {
  uint8_t *v = dup_bytes(val, vlen);
  if (v == NULL)
    return TEEX_ENOMEM;
  int found;
  size_t i = lower_bound(kv, key, klen, &found);
  if (found) {
    struct item *it = &kv->items[i];
    teex_wipe(it->val, it->val_len);
    free(it->val);
    it->val = v;
    it->val_len = vlen;
    it->expire_ms = exp;
    return 0;
  }
  if (kv->n >= TEEX_DS_KEYS_MAX) {
    purge_expired(kv);
    i = lower_bound(kv, key, klen, &found);
    if (kv->n >= TEEX_DS_KEYS_MAX) {
      free(v);
      return TEEX_ENOSPC;
    }
  }
  uint8_t *k = dup_bytes(key, klen);
  if (k == NULL) {
    free(v);
    return TEEX_ENOMEM;
  }
  if (kv->n == kv->cap) {
    size_t nc = kv->cap ? kv->cap * 2 : 16;
    struct item *ni = realloc(kv->items, nc * sizeof(*ni));
    if (ni == NULL) {
      free(k);
      free(v);
      return TEEX_ENOMEM;
    }
    kv->items = ni;
    kv->cap = nc;
  }
  memmove(&kv->items[i + 1], &kv->items[i], (kv->n - i) * sizeof(*kv->items));
  kv->items[i] = (struct item){k, klen, v, vlen, exp};
  kv->n++;
  return 0;
}

static int in_grant(const char *grant, const uint8_t *key, size_t len) {
  size_t g = strlen(grant);
  return len > g && memcmp(key, grant, g) == 0 && key[g] == '/';
}

static int cmd_keys_in_grant(const struct teex_ds_cmd *c) {
  if (c->op == TEEX_DS_PLACE) /* names the grant itself, no key */
    return c->key_len == 0;
  if (c->op == TEEX_DS_MSET || c->op == TEEX_DS_TXN) {
    for (size_t i = 0; i < c->n_pairs; i++)
      if (!in_grant(c->grant, c->pairs[i].key, c->pairs[i].key_len))
        return 0;
    return 1;
  }
  return in_grant(c->grant, c->key, c->key_len);
}

/* Parses a canonical decimal int64 ("-0", "+1", "01", "" are not). */
static int parse_i64(const uint8_t *p, size_t n, int64_t *out) {
  if (n == 0 || n > 20)
    return -1;
  size_t i = 0;
  int neg = 0;
  if (p[0] == '-') {
    neg = 1;
    i = 1;
    if (n == 1)
      return -1;
  }
  if (p[i] == '0' && (n - i > 1 || neg))
    return -1;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return -1;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX)
      return -1;
    *out = (int64_t)v;
  }
  return 0;
}

static int do_get(const struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                  struct teex_ds_result *res) {
  const struct item *it = find(kv, c->key, c->key_len);
  if (it == NULL) {
    res->status = TEEX_ENOTFOUND;
    return 0;
  }
  res->found = 1;
  res->val = dup_bytes(it->val, it->val_len);
  if (res->val == NULL)
    return TEEX_ENOMEM;
  res->val_len = it->val_len;
  res->expire_at_ms = it->expire_ms;
  return 0;
}

/* Live keys under the prefix c->key (already checked to be in the grant). */
static void do_count(const struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                     struct teex_ds_result *res) {
  int found;
  size_t i = lower_bound(kv, c->key, c->key_len, &found);
  int64_t n = 0;
  for (; i < kv->n; i++) {
    const struct item *it = &kv->items[i];
    if (it->key_len < c->key_len || memcmp(it->key, c->key, c->key_len) != 0)
      break;
    n += live(kv, it);
  }
  res->num = n;
}

static int do_scan(const struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                   struct teex_ds_result *res) {
  int found;
  size_t i;
  /* Start after the cursor if it is beyond the prefix, else at the prefix. */
  if (c->after_len > 0 &&
      key_cmp(c->after, c->after_len, c->key, c->key_len) >= 0) {
    i = lower_bound(kv, c->after, c->after_len, &found);
    if (found)
      i++;
  } else {
    i = lower_bound(kv, c->key, c->key_len, &found);
  }
  res->items = calloc(c->limit, sizeof(*res->items));
  if (res->items == NULL)
    return TEEX_ENOMEM;
  for (; i < kv->n; i++) {
    const struct item *it = &kv->items[i];
    if (it->key_len < c->key_len || memcmp(it->key, c->key, c->key_len) != 0)
      break;
    if (!live(kv, it))
      continue;
    if (res->n_items == c->limit) {
      res->more = 1;
      break;
    }
    struct teex_ds_pair *p = &res->items[res->n_items];
    p->key = dup_bytes(it->key, it->key_len);
    p->val = dup_bytes(it->val, it->val_len);
    if (p->key == NULL || p->val == NULL) {
      free((void *)p->key);
      free((void *)p->val);
      p->key = p->val = NULL;
      return TEEX_ENOMEM;
    }
    p->key_len = it->key_len;
    p->val_len = it->val_len;
    res->n_items++;
  }
  return 0;
}

/* ---- placement (scale-out, include/teex/ds_place.h) ----
 * A namespace that is moving away or has moved keeps a placement record in
 * the map under PLACE_KEY_PREFIX | ns. No client key can start with that
 * byte (namespaces are [a-z0-9_.-]), so no command but TEEX_DS_PLACE reaches
 * it; it travels in snapshots and the digest like any item. */
#define PLACE_KEY_PREFIX "\x01place/"

static size_t place_key(const char *grant, uint8_t out[96]) {
  size_t pl = sizeof(PLACE_KEY_PREFIX) - 1, gl = strlen(grant);
  memcpy(out, PLACE_KEY_PREFIX, pl);
  memcpy(out + pl, grant, gl);
  return pl + gl;
}

static int is_place_key(const struct item *it) {
  return it->key_len > 0 && it->key[0] == 0x01;
}

static int is_write(uint8_t op) {
  return op != TEEX_DS_GET && op != TEEX_DS_SCAN && op != TEEX_DS_COUNT;
}

/* Answers c here when its namespace is frozen (writes: TEEX_EBUSY) or moved
 * (everything: TEEX_EMOVED); the record goes back in res->val so the client
 * learns where to. Returns 1 when answered (*rc: 0 or TEEX_ENOMEM). */
static int place_gate(const struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                      struct teex_ds_result *res, int *rc) {
  if (c->op == TEEX_DS_PLACE)
    return 0;
  uint8_t k[96];
  size_t kl = place_key(c->grant, k);
  const struct item *it = find(kv, k, kl);
  struct teex_ds_place_record r;
  if (it == NULL || teex_ds_place_record_parse(it->val, it->val_len, &r) != 0)
    return 0;
  if (r.state == TEEX_DS_PLACE_FROZEN && !is_write(c->op))
    return 0;
  if (r.state == TEEX_DS_PLACE_OWNED)
    return 0;
  res->status = r.state == TEEX_DS_PLACE_MOVED ? TEEX_EMOVED : TEEX_EBUSY;
  res->val = dup_bytes(it->val, it->val_len);
  res->val_len = it->val_len;
  *rc = res->val ? 0 : TEEX_ENOMEM;
  if (*rc != 0)
    teex_ds_result_free(res);
  return 1;
}

/* TEEX_DS_PLACE: see ds.h. */
static int do_place(struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                    struct teex_ds_result *res) {
  struct teex_ds_place_record r;
  if (teex_ds_place_record_parse(c->val, c->val_len, &r) != 0) {
    res->status = TEEX_EINVAL;
    return 0;
  }
  uint8_t k[96];
  size_t kl = place_key(c->grant, k);
  int found;
  size_t at = lower_bound(kv, k, kl, &found);
  if (found) {
    /* The previous record goes back, so a resumed move knows where the
     * interrupted one got to. */
    const struct item *it = &kv->items[at];
    struct teex_ds_place_record cur;
    res->found = 1;
    res->val = dup_bytes(it->val, it->val_len);
    if (res->val == NULL)
      return TEEX_ENOMEM;
    res->val_len = it->val_len;
    /* A stale command (an older epoch) never undoes a newer placement, and
     * a namespace whose data was dropped is not frozen or owned again at
     * the epoch that moved it. */
    if (teex_ds_place_record_parse(it->val, it->val_len, &cur) == 0 &&
        (r.epoch < cur.epoch ||
         (r.epoch == cur.epoch && cur.state == TEEX_DS_PLACE_MOVED &&
          r.state != TEEX_DS_PLACE_MOVED))) {
      res->status = TEEX_ESTATE;
      return 0;
    }
  }
  if (r.state == TEEX_DS_PLACE_OWNED) {
    if (found)
      remove_at(kv, at);
    return 0;
  }
  int rc = put(kv, k, kl, c->val, c->val_len, 0);
  if (rc != 0 || r.state != TEEX_DS_PLACE_MOVED)
    return rc;
  /* Moved: the data left with the copy; drop every key of the namespace. */
  uint8_t pre[TEEX_DS_NS_MAX + 1];
  size_t gl = strlen(c->grant);
  memcpy(pre, c->grant, gl);
  pre[gl] = '/';
  size_t i = lower_bound(kv, pre, gl + 1, &found);
  while (i < kv->n && kv->items[i].key_len > gl &&
         memcmp(kv->items[i].key, pre, gl + 1) == 0) {
    res->num++;
    remove_at(kv, i);
  }
  return 0;
}

/* Keys the writes of c would add (for the key-count limit, before any
 * write). */
static size_t new_keys(const struct teex_ds_kv *kv,
                       const struct teex_ds_cmd *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->n_pairs; i++) {
    if (c->op == TEEX_DS_TXN && c->expect[i] != TEEX_DS_TXN_PUT)
      continue;
    int found;
    lower_bound(kv, c->pairs[i].key, c->pairs[i].key_len, &found);
    n += !found;
  }
  return n;
}

/* 0 when the key-count limit allows c's writes (purging expired items if
 * that makes room), TEEX_ENOSPC when not. */
static int room_for(struct teex_ds_kv *kv, const struct teex_ds_cmd *c) {
  if (kv->n + new_keys(kv, c) <= TEEX_DS_KEYS_MAX)
    return 0;
  purge_expired(kv);
  return kv->n + new_keys(kv, c) <= TEEX_DS_KEYS_MAX ? 0 : TEEX_ENOSPC;
}

/* TEEX_DS_TXN: all checks first, then all writes, or nothing. */
static int do_txn(struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                  struct teex_ds_result *res) {
  int64_t writes = 0;
  for (size_t i = 0; i < c->n_pairs; i++) {
    const struct teex_ds_pair *p = &c->pairs[i];
    const struct item *it;
    switch (c->expect[i]) {
    case TEEX_DS_TXN_EQ:
      it = find(kv, p->key, p->key_len);
      if (it == NULL || it->val_len != p->val_len ||
          (p->val_len > 0 && memcmp(it->val, p->val, p->val_len) != 0)) {
        res->status = TEEX_ESTATE;
        res->num = (int64_t)i;
        return 0;
      }
      break;
    case TEEX_DS_TXN_ABSENT:
      if (find(kv, p->key, p->key_len) != NULL) {
        res->status = TEEX_ESTATE;
        res->num = (int64_t)i;
        return 0;
      }
      break;
    default:
      writes++;
    }
  }
  if (room_for(kv, c) != 0) {
    res->status = TEEX_ENOSPC;
    return 0;
  }
  int rc = 0;
  for (size_t i = 0; i < c->n_pairs && rc == 0; i++) {
    const struct teex_ds_pair *p = &c->pairs[i];
    if (c->expect[i] == TEEX_DS_TXN_PUT) {
      rc = put(kv, p->key, p->key_len, p->val, p->val_len, 0);
    } else if (c->expect[i] == TEEX_DS_TXN_DEL) {
      int found;
      size_t at = lower_bound(kv, p->key, p->key_len, &found);
      if (found)
        remove_at(kv, at);
    }
  }
  res->num = writes;
  return rc;
}

int teex_ds_kv_read(const struct teex_ds_kv *kv, const struct teex_ds_cmd *c,
                    struct teex_ds_result *res) {
  memset(res, 0, sizeof(*res));
  res->clock_ms = kv->clock_ms;
  if (cmd_validate(c, NULL) != 0) {
    res->status = TEEX_EINVAL;
    return 0;
  }
  if (!cmd_keys_in_grant(c)) {
    res->status = TEEX_EPERM;
    return 0;
  }
  int rc = 0;
  if (place_gate(kv, c, res, &rc))
    return rc;
  if (c->op == TEEX_DS_GET)
    rc = do_get(kv, c, res);
  else if (c->op == TEEX_DS_SCAN)
    rc = do_scan(kv, c, res);
  else if (c->op == TEEX_DS_COUNT)
    do_count(kv, c, res);
  else
    return TEEX_EINVAL;
  if (rc != 0)
    teex_ds_result_free(res);
  return rc;
}

int teex_ds_kv_apply(struct teex_ds_kv *kv, uint64_t index, uint64_t clock_ms,
                     const struct teex_ds_cmd *c, struct teex_ds_result *res) {
  memset(res, 0, sizeof(*res));
  /* A new leader's clock may lag the old one's: never go backwards. */
  if (clock_ms > kv->clock_ms)
    kv->clock_ms = clock_ms;
  res->index = index;
  res->clock_ms = kv->clock_ms;
  if (cmd_validate(c, NULL) != 0) {
    res->status = TEEX_EINVAL;
    return 0;
  }
  if (!cmd_keys_in_grant(c)) {
    res->status = TEEX_EPERM;
    return 0;
  }
  int rc = 0;
  if (place_gate(kv, c, res, &rc))
    return rc;
  struct item *it;
  switch (c->op) {
  case TEEX_DS_PLACE:
    rc = do_place(kv, c, res);
    break;
  case TEEX_DS_GET:
    rc = do_get(kv, c, res);
    break;
  case TEEX_DS_SCAN:
    rc = do_scan(kv, c, res);
    break;
  case TEEX_DS_COUNT:
    do_count(kv, c, res);
    break;
  case TEEX_DS_EXPIRE: {
    /* Only the expiry changes; the previous one goes back in num so the
     * caller can tell "removed a TTL" from "had none" (PERSIST). */
    it = find(kv, c->key, c->key_len);
    if (it == NULL) {
      res->status = TEEX_ENOTFOUND;
      break;
    }
    res->found = 1;
    res->num = (int64_t)it->expire_ms;
    it->expire_ms = expiry(kv, c->ttl_ms);
    res->expire_at_ms = it->expire_ms;
    break;
  }
  case TEEX_DS_SET: {
    it = find(kv, c->key, c->key_len);
    if ((c->flags & TEEX_DS_IF_ABSENT) && it != NULL) {
      res->status = TEEX_EEXIST;
      break;
    }
    if ((c->flags & TEEX_DS_IF_PRESENT) && it == NULL) {
      res->status = TEEX_ENOTFOUND;
      break;
    }
    uint64_t exp = (it && (c->flags & TEEX_DS_KEEP_TTL))
                       ? it->expire_ms
                       : expiry(kv, c->ttl_ms);
    res->found = it != NULL;
    rc = put(kv, c->key, c->key_len, c->val, c->val_len, exp);
    break;
  }
  case TEEX_DS_DEL: {
    int found;
    size_t i = lower_bound(kv, c->key, c->key_len, &found);
    if (found && live(kv, &kv->items[i])) {
      res->num = 1;
      res->found = 1;
    } else {
      res->status = TEEX_ENOTFOUND;
    }
    if (found)
      remove_at(kv, i); /* an expired item goes too */
    break;
  }
  case TEEX_DS_CAS: {
    it = find(kv, c->key, c->key_len);
    int match;
    if (c->flags & TEEX_DS_EXPECT_ABSENT)
      match = it == NULL;
    else
      match = it != NULL && it->val_len == c->expect_len &&
              (c->expect_len == 0 ||
               memcmp(it->val, c->expect, c->expect_len) == 0);
    if (!match) {
      res->status = TEEX_ESTATE;
      if (it != NULL) {
        res->found = 1;
        res->val = dup_bytes(it->val, it->val_len);
        if (res->val == NULL) {
          rc = TEEX_ENOMEM;
          break;
        }
        res->val_len = it->val_len;
      }
      break;
    }
    res->found = it != NULL;
    rc = put(kv, c->key, c->key_len, c->val, c->val_len, expiry(kv, c->ttl_ms));
    break;
  }
  case TEEX_DS_INCR: {
    it = find(kv, c->key, c->key_len);
    int64_t cur = 0;
    if (it != NULL && parse_i64(it->val, it->val_len, &cur) != 0) {
      res->status = TEEX_EFORMAT;
      break;
    }
    if ((c->delta > 0 && cur > INT64_MAX - c->delta) ||
        (c->delta < 0 && cur < INT64_MIN - c->delta)) {
      res->status = TEEX_EINVAL;
      break;
    }
    int64_t nv = cur + c->delta;
    char txt[24];
    int tl = snprintf(txt, sizeof(txt), "%" PRId64, nv);
    uint64_t exp = it ? it->expire_ms : expiry(kv, c->ttl_ms);
    res->found = it != NULL;
    res->num = nv;
    rc = put(kv, c->key, c->key_len, (const uint8_t *)txt, (size_t)tl, exp);
    break;
  }
  case TEEX_DS_MSET: {
    /* All or nothing: a key-count overflow is checked before any write. */
    if (room_for(kv, c) != 0) {
      res->status = TEEX_ENOSPC;
      break;
    }
    for (size_t i = 0; i < c->n_pairs && rc == 0; i++)
      rc = put(kv, c->pairs[i].key, c->pairs[i].key_len, c->pairs[i].val,
               c->pairs[i].val_len, expiry(kv, c->ttl_ms));
    res->num = (int64_t)c->n_pairs;
    break;
  }
  case TEEX_DS_TXN:
    rc = do_txn(kv, c, res);
    break;
  default:
    res->status = TEEX_EINVAL;
  }
  if (rc == TEEX_ENOSPC) {
    res->status = rc;
    rc = 0;
  }
  if (rc != 0)
    teex_ds_result_free(res);
  return rc;
}

size_t teex_ds_kv_count(const struct teex_ds_kv *kv) {
  size_t n = 0;
  for (size_t i = 0; i < kv->n; i++)
    n += live(kv, &kv->items[i]) && !is_place_key(&kv->items[i]);
  return n;
}

uint64_t teex_ds_kv_clock(const struct teex_ds_kv *kv) {
  return kv->clock_ms;
}

/* ---- snapshot: version(4) clock(8) n(4) {klen key vlen val expire(8)}* ----
 * The digest is SHA-256 of the snapshot bytes. */

int teex_ds_kv_snapshot(const struct teex_ds_kv *kv, uint8_t **out,
                        size_t *out_len) {
  size_t total = 16;
  for (size_t i = 0; i < kv->n; i++)
    total += 16 + kv->items[i].key_len + kv->items[i].val_len;
  struct wr w = {malloc(total), 0};
  if (w.p == NULL)
    return TEEX_ENOMEM;
  w_u32(&w, SNAP_VERSION);
  w_u64(&w, kv->clock_ms);
  w_u32(&w, (uint32_t)kv->n);
  for (size_t i = 0; i < kv->n; i++) {
    w_blob(&w, kv->items[i].key, kv->items[i].key_len);
    w_blob(&w, kv->items[i].val, kv->items[i].val_len);
    w_u64(&w, kv->items[i].expire_ms);
  }
  *out = w.p;
  *out_len = w.n;
  return 0;
}

void teex_ds_kv_digest(const struct teex_ds_kv *kv, uint8_t out[32]) {
  uint8_t *snap;
  size_t len;
  if (teex_ds_kv_snapshot(kv, &snap, &len) != 0) {
    memset(out, 0, 32);
    return;
  }
  teex_sha256(snap, len, out);
  teex_wipe(snap, len);
  free(snap);
}

int teex_ds_kv_restore(struct teex_ds_kv *kv, const uint8_t *buf, size_t len,
                       struct teex_err *err) {
  struct rd r = {buf, len, 0, 0};
  int big = 0;
  if (r_u32(&r) != SNAP_VERSION || r.bad)
    return teex_err_set(err, TEEX_EVERSION, "restore snapshot: version");
  uint64_t clock = r_u64(&r);
  uint32_t n = r_u32(&r);
  if (r.bad || n > TEEX_DS_KEYS_MAX)
    return teex_err_set(err, TEEX_EFORMAT, "restore snapshot: count");
  struct teex_ds_kv *tmp;
  if (teex_ds_kv_new(&tmp) != 0)
    return teex_err_set(err, TEEX_ENOMEM, "restore snapshot: out of memory");
  int rc = 0;
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    size_t kl = 0, vl = 0;
    const uint8_t *k = r_blob(&r, TEEX_DS_KEY_MAX, &kl, &big);
    const uint8_t *v = r_blob(&r, TEEX_DS_VALUE_MAX, &vl, &big);
    uint64_t exp = r_u64(&r);
    if (r.bad) {
      rc = teex_err_set(err, TEEX_EFORMAT, "restore snapshot: truncated");
      break;
    }
    /* Items must be strictly increasing, so the map stays sorted. */
    if (tmp->n > 0 && key_cmp(tmp->items[tmp->n - 1].key,
                              tmp->items[tmp->n - 1].key_len, k, kl) >= 0) {
      rc = teex_err_set(err, TEEX_EFORMAT, "restore snapshot: order");
      break;
    }
    if (put(tmp, k, kl, v, vl, exp) != 0)
      rc = teex_err_set(err, TEEX_ENOMEM, "restore snapshot: out of memory");
  }
  if (rc == 0 && r.off != len)
    rc = teex_err_set(err, TEEX_EFORMAT, "restore snapshot: trailing bytes");
  if (rc != 0) {
    teex_ds_kv_free(tmp);
    return rc;
  }
  for (size_t i = 0; i < kv->n; i++)
    item_clear(&kv->items[i]);
  free(kv->items);
  *kv = *tmp;
  kv->clock_ms = clock;
  free(tmp);
  return 0;
}
