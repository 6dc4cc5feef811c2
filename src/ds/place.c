/* TEE-DS placement directory and placement records (ds_place.h). */
#include "teex/ds_place.h"

#include "teex/crypto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dir_domain[] = "teex ds directory v1"; /* + its NUL */
static const char score_domain[] = "teex ds place v1";   /* + its NUL */
static const char dir_magic[] = "teex-ds-directory v1\n";

static int ns_valid(const char *ns) {
  size_t n = strlen(ns);
  if (n == 0 || n > TEEX_DS_NS_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = ns[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

/* "host:port": printable, no space or comma, a ':' before a port. */
static int addr_valid(const char *a) {
  size_t n = strlen(a);
  if (n < 3 || n > TEEX_DS_DIR_ADDR_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (a[i] <= ' ' || a[i] > '~' || a[i] == ',')
      return 0;
  const char *colon = strrchr(a, ':');
  return colon != NULL && colon != a && colon[1] != '\0';
}

int teex_ds_dir_validate(const struct teex_ds_dir *d, struct teex_err *err) {
  if (d->epoch == 0 || d->epoch > TEEX_DS_DIR_EPOCH_MAX)
    return teex_err_set(err, TEEX_EINVAL, "directory epoch %llu out of range",
                        (unsigned long long)d->epoch);
  if (d->n_groups == 0 || d->n_groups > TEEX_DS_DIR_GROUPS_MAX)
    return teex_err_set(err, TEEX_EINVAL, "directory has %zu groups (1..%d)",
                        d->n_groups, TEEX_DS_DIR_GROUPS_MAX);
  for (size_t i = 0; i < d->n_groups; i++) {
    const struct teex_ds_dir_group *g = &d->groups[i];
    if (g->id == 0 || g->id > TEEX_DS_DIR_EPOCH_MAX)
      return teex_err_set(err, TEEX_EINVAL, "group id out of range");
    if (i > 0 && g->id <= d->groups[i - 1].id)
      return teex_err_set(err, TEEX_EINVAL,
                          "groups not in increasing id order at group %llu",
                          (unsigned long long)g->id);
    if (g->n_members == 0 || g->n_members > TEEX_DS_DIR_MEMBERS_MAX)
      return teex_err_set(err, TEEX_EINVAL, "group %llu: %zu members (1..%d)",
                          (unsigned long long)g->id, g->n_members,
                          TEEX_DS_DIR_MEMBERS_MAX);
    for (size_t m = 0; m < g->n_members; m++)
      if (!addr_valid(g->members[m]))
        return teex_err_set(err, TEEX_EINVAL, "group %llu: bad member address",
                            (unsigned long long)g->id);
  }
  if (d->n_places > TEEX_DS_DIR_PLACES_MAX)
    return teex_err_set(err, TEEX_EINVAL, "too many placements");
  for (size_t i = 0; i < d->n_places; i++) {
    const struct teex_ds_dir_place *p = &d->places[i];
    if (!ns_valid(p->ns))
      return teex_err_set(err, TEEX_EINVAL, "bad namespace in a placement");
    if (i > 0 && strcmp(p->ns, d->places[i - 1].ns) <= 0)
      return teex_err_set(err, TEEX_EINVAL,
                          "placements not in namespace order at %s", p->ns);
    if (teex_ds_dir_group(d, p->group) == NULL)
      return teex_err_set(err, TEEX_EINVAL, "%s placed on unknown group %llu",
                          p->ns, (unsigned long long)p->group);
  }
  return 0;
}

const struct teex_ds_dir_group *teex_ds_dir_group(const struct teex_ds_dir *d,
                                                  uint64_t id) {
  for (size_t i = 0; i < d->n_groups; i++)
    if (d->groups[i].id == id)
      return &d->groups[i];
  return NULL;
}

/* ---- text writer ---- */

struct tw {
  uint8_t *p;
  size_t cap, n;
  int over;
};

static void tw_put(struct tw *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tw_put(struct tw *w, const char *fmt, ...) {
  if (w->over)
    return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf((char *)w->p + w->n, w->cap - w->n, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= w->cap - w->n)
    w->over = 1;
  else
    w->n += (size_t)k;
}

int teex_ds_dir_sign(const struct teex_ds_dir *d, const uint8_t sk[64],
                     uint8_t *out, size_t cap, size_t *out_len,
                     struct teex_err *err) {
  int rc = teex_ds_dir_validate(d, err);
  if (rc != 0)
    return rc;
  if (cap > TEEX_DS_DIR_MAX)
    cap = TEEX_DS_DIR_MAX;
  struct tw w = {out, cap, 0, 0};
  tw_put(&w, "%s", dir_magic);
  tw_put(&w, "epoch %llu\n", (unsigned long long)d->epoch);
  for (size_t i = 0; i < d->n_groups; i++) {
    const struct teex_ds_dir_group *g = &d->groups[i];
    char pol[65];
    teex_hex_encode(g->policy, 32, pol);
    tw_put(&w, "group %llu %s %s ", (unsigned long long)g->id,
           g->hashed ? "hash" : "nohash", pol);
    for (size_t m = 0; m < g->n_members; m++)
      tw_put(&w, "%s%s", m ? "," : "", g->members[m]);
    tw_put(&w, "\n");
  }
  for (size_t i = 0; i < d->n_places; i++)
    tw_put(&w, "place %s %llu\n", d->places[i].ns,
           (unsigned long long)d->places[i].group);
  size_t body = w.n;
  uint8_t sig[64];
  char sighex[129];
  if (!w.over) {
    /* domain (with its NUL) | body, signed as one message */
    size_t dl = sizeof dir_domain;
    uint8_t *msg = malloc(dl + body);
    if (msg == NULL)
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    memcpy(msg, dir_domain, dl);
    memcpy(msg + dl, out, body);
    rc = teex_ed25519_sign(sk, msg, dl + body, sig);
    free(msg);
    if (rc != 0)
      return teex_err_set(err, TEEX_ECRYPTO, "sign directory");
    teex_hex_encode(sig, 64, sighex);
    tw_put(&w, "signature %s\n", sighex);
  }
  if (w.over)
    return teex_err_set(err, TEEX_ETOOBIG, "directory text over %zu bytes",
                        cap);
  *out_len = w.n;
  return 0;
}

/* ---- parser ---- */

/* Canonical decimal 1..2^62 (no sign, no leading zero). */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 19 || (s[0] == '0'))
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > TEEX_DS_DIR_EPOCH_MAX)
    return -1;
  *out = v;
  return 0;
}

/* The next space-separated field of [*p, end): sets f/fn, advances *p. */
static int field(const char **p, const char *end, const char **f, size_t *fn) {
  const char *s = *p;
  const char *e = s;
  while (e < end && *e != ' ')
    e++;
  if (e == s)
    return -1;
  *f = s;
  *fn = (size_t)(e - s);
  *p = e < end ? e + 1 : e;
  /* a trailing separator with nothing after it is malformed */
  if (e < end && *p == end)
    return -1;
  return 0;
}

static int field_is(const char *f, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(f, lit, n) == 0;
}

static int parse_group(const char *s, const char *end,
                       struct teex_ds_dir_group *g) {
  const char *f;
  size_t n;
  memset(g, 0, sizeof(*g));
  if (field(&s, end, &f, &n) || parse_u64(f, n, &g->id))
    return -1;
  if (field(&s, end, &f, &n))
    return -1;
  if (field_is(f, n, "hash"))
    g->hashed = 1;
  else if (!field_is(f, n, "nohash"))
    return -1;
  if (field(&s, end, &f, &n) || n != 64)
    return -1;
  char hex[65];
  memcpy(hex, f, 64);
  hex[64] = 0;
  for (int i = 0; i < 64; i++) /* canonical: lower-case only */
    if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
      return -1;
  size_t pl;
  if (teex_hex_decode(hex, g->policy, 32, &pl) != 0 || pl != 32)
    return -1;
  if (field(&s, end, &f, &n) || s != end)
    return -1;
  /* comma-separated members */
  const char *m = f, *mend = f + n;
  while (m <= mend) {
    const char *c = memchr(m, ',', (size_t)(mend - m));
    if (c == NULL)
      c = mend;
    size_t len = (size_t)(c - m);
    if (len == 0 || len > TEEX_DS_DIR_ADDR_MAX ||
        g->n_members == TEEX_DS_DIR_MEMBERS_MAX)
      return -1;
    memcpy(g->members[g->n_members], m, len);
    g->members[g->n_members][len] = 0;
    if (!addr_valid(g->members[g->n_members]))
      return -1;
    g->n_members++;
    m = c + 1;
  }
  return 0;
}

int teex_ds_dir_parse(const uint8_t *text, size_t len, struct teex_ds_dir *d,
                      size_t *body_len, uint8_t sig[64], struct teex_err *err) {
  memset(d, 0, sizeof(*d));
  if (len > TEEX_DS_DIR_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "directory over %d bytes",
                        TEEX_DS_DIR_MAX);
  const char *s = (const char *)text, *end = s + len;
  size_t ml = strlen(dir_magic);
  if (len < ml || memcmp(s, dir_magic, ml) != 0) {
    if (len >= 18 && memcmp(s, "teex-ds-directory ", 18) == 0)
      return teex_err_set(err, TEEX_EVERSION, "directory: unknown version");
    return teex_err_set(err, TEEX_EFORMAT, "not a TEE-DS directory");
  }
  const char *p = s + ml;
  int line = 1, have_epoch = 0, have_sig = 0;
  while (p < end) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      return teex_err_set(err, TEEX_EFORMAT,
                          "directory line %d: no newline at the end", line);
    if (have_sig)
      return teex_err_set(err, TEEX_EFORMAT,
                          "directory line %d: text after the signature", line);
    for (const char *q = p; q < nl; q++)
      if (*q < ' ' || *q > '~')
        return teex_err_set(err, TEEX_EFORMAT,
                            "directory line %d: control character", line);
    const char *f, *q = p;
    size_t fn;
    if (field(&q, nl, &f, &fn) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "directory line %d: empty", line);
    int bad = 0;
    if (field_is(f, fn, "epoch")) {
      bad = have_epoch || d->n_groups > 0 || field(&q, nl, &f, &fn) ||
            q != nl || parse_u64(f, fn, &d->epoch);
      have_epoch = 1;
    } else if (field_is(f, fn, "group")) {
      if (!have_epoch || d->n_places > 0 ||
          d->n_groups == TEEX_DS_DIR_GROUPS_MAX)
        bad = 1;
      else
        bad = parse_group(q, nl, &d->groups[d->n_groups++]);
    } else if (field_is(f, fn, "place")) {
      struct teex_ds_dir_place *pl = &d->places[d->n_places];
      if (d->n_groups == 0 || d->n_places == TEEX_DS_DIR_PLACES_MAX ||
          field(&q, nl, &f, &fn) || fn > TEEX_DS_NS_MAX) {
        bad = 1;
      } else {
        memcpy(pl->ns, f, fn);
        pl->ns[fn] = 0;
        bad = field(&q, nl, &f, &fn) || q != nl || parse_u64(f, fn, &pl->group);
        d->n_places++;
      }
    } else if (field_is(f, fn, "signature")) {
      char hex[129];
      size_t sl;
      bad = field(&q, nl, &f, &fn) || q != nl || fn != 128;
      if (!bad) {
        memcpy(hex, f, 128);
        hex[128] = 0;
        for (int i = 0; i < 128; i++)
          if (!((hex[i] >= '0' && hex[i] <= '9') ||
                (hex[i] >= 'a' && hex[i] <= 'f')))
            bad = 1;
        bad = bad || teex_hex_decode(hex, sig, 64, &sl) != 0 || sl != 64;
      }
      *body_len = (size_t)(p - s);
      have_sig = 1;
    } else {
      return teex_err_set(err, TEEX_EFORMAT,
                          "directory line %d: unknown keyword", line);
    }
    if (bad)
      return teex_err_set(err, TEEX_EFORMAT, "directory line %d: malformed",
                          line);
    p = nl + 1;
  }
  if (!have_sig)
    return teex_err_set(err, TEEX_EBADSIG, "directory is not signed");
  int rc = teex_ds_dir_validate(d, err);
  if (rc != 0)
    return teex_err_wrap(err, TEEX_EFORMAT, "directory");
  return 0;
}

int teex_ds_dir_open(const uint8_t *text, size_t len, const uint8_t pk[32],
                     struct teex_ds_dir *d, struct teex_err *err) {
  size_t body = 0;
  uint8_t sig[64];
  int rc = teex_ds_dir_parse(text, len, d, &body, sig, err);
  if (rc != 0)
    return rc;
  size_t dl = sizeof dir_domain;
  uint8_t *msg = malloc(dl + body);
  if (msg == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  memcpy(msg, dir_domain, dl);
  memcpy(msg + dl, text, body);
  rc = teex_ed25519_verify(pk, msg, dl + body, sig);
  free(msg);
  if (rc != 0) {
    memset(d, 0, sizeof(*d));
    return teex_err_set(err, TEEX_EBADSIG,
                        "directory signature does not verify against the "
                        "placement key (forged or altered)");
  }
  return 0;
}

/* ---- placement ---- */

uint64_t teex_ds_place_score(const char *ns, uint64_t group) {
  struct teex_sha256_ctx c;
  uint8_t h[32], b[8], nl = (uint8_t)strlen(ns);
  teex_sha256_init(&c);
  teex_sha256_update(&c, score_domain, sizeof score_domain);
  teex_sha256_update(&c, &nl, 1);
  teex_sha256_update(&c, ns, nl);
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(group >> (56 - 8 * i));
  teex_sha256_update(&c, b, 8);
  teex_sha256_final(&c, h);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | h[i];
  return v;
}

uint64_t teex_ds_dir_hash_owner(const struct teex_ds_dir *d, const char *ns) {
  uint64_t best = 0, best_score = 0;
  for (size_t i = 0; i < d->n_groups; i++) {
    if (!d->groups[i].hashed)
      continue;
    uint64_t sc = teex_ds_place_score(ns, d->groups[i].id);
    /* groups are in increasing id order: ">" keeps the lower id on a tie */
    if (best == 0 || sc > best_score) {
      best = d->groups[i].id;
      best_score = sc;
    }
  }
  return best;
}

uint64_t teex_ds_dir_owner(const struct teex_ds_dir *d, const char *ns) {
  for (size_t i = 0; i < d->n_places; i++)
    if (strcmp(d->places[i].ns, ns) == 0)
      return d->places[i].group;
  return teex_ds_dir_hash_owner(d, ns);
}

int teex_ds_dir_set_place(struct teex_ds_dir *d, const char *ns, uint64_t group,
                          struct teex_err *err) {
  if (!ns_valid(ns))
    return teex_err_set(err, TEEX_EINVAL, "bad namespace");
  if (group != 0 && teex_ds_dir_group(d, group) == NULL)
    return teex_err_set(err, TEEX_EINVAL, "no group %llu in the directory",
                        (unsigned long long)group);
  size_t i = 0;
  while (i < d->n_places && strcmp(d->places[i].ns, ns) < 0)
    i++;
  int exists = i < d->n_places && strcmp(d->places[i].ns, ns) == 0;
  if (group == 0) {
    if (exists) {
      memmove(&d->places[i], &d->places[i + 1],
              (d->n_places - i - 1) * sizeof(d->places[0]));
      d->n_places--;
    }
    return 0;
  }
  if (!exists) {
    if (d->n_places == TEEX_DS_DIR_PLACES_MAX)
      return teex_err_set(err, TEEX_ETOOBIG, "too many placements");
    memmove(&d->places[i + 1], &d->places[i],
            (d->n_places - i) * sizeof(d->places[0]));
    d->n_places++;
    snprintf(d->places[i].ns, sizeof d->places[i].ns, "%s", ns);
  }
  d->places[i].group = group;
  return 0;
}

int teex_ds_dir_put_group(struct teex_ds_dir *d,
                          const struct teex_ds_dir_group *g,
                          struct teex_err *err) {
  if (g->id == 0 || g->id > TEEX_DS_DIR_EPOCH_MAX || g->n_members == 0 ||
      g->n_members > TEEX_DS_DIR_MEMBERS_MAX)
    return teex_err_set(err, TEEX_EINVAL, "bad group");
  for (size_t m = 0; m < g->n_members; m++)
    if (!addr_valid(g->members[m]))
      return teex_err_set(err, TEEX_EINVAL, "bad member address %s",
                          g->members[m]);
  size_t i = 0;
  while (i < d->n_groups && d->groups[i].id < g->id)
    i++;
  if (i < d->n_groups && d->groups[i].id == g->id) {
    d->groups[i] = *g;
    return 0;
  }
  if (d->n_groups == TEEX_DS_DIR_GROUPS_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "too many groups");
  memmove(&d->groups[i + 1], &d->groups[i],
          (d->n_groups - i) * sizeof(d->groups[0]));
  d->groups[i] = *g;
  d->n_groups++;
  return 0;
}

/* ---- placement record ---- */

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

int teex_ds_place_record_encode(const struct teex_ds_place_record *r,
                                uint8_t **out, size_t *out_len) {
  if (r->state > TEEX_DS_PLACE_MOVED || (r->dir_len && r->dir == NULL))
    return TEEX_EINVAL;
  if (r->dir_len > TEEX_DS_DIR_MAX)
    return TEEX_ETOOBIG;
  size_t n = TEEX_DS_PLACE_RECORD_HDR + r->dir_len;
  uint8_t *b = malloc(n);
  if (b == NULL)
    return TEEX_ENOMEM;
  memcpy(b, "TXP1", 4);
  b[4] = r->state;
  put_be(b + 5, r->group, 8);
  put_be(b + 13, r->epoch, 8);
  put_be(b + 21, r->dir_len, 4);
  if (r->dir_len)
    memcpy(b + TEEX_DS_PLACE_RECORD_HDR, r->dir, r->dir_len);
  *out = b;
  *out_len = n;
  return 0;
}

int teex_ds_place_record_parse(const uint8_t *p, size_t n,
                               struct teex_ds_place_record *r) {
  memset(r, 0, sizeof(*r));
  if (n < TEEX_DS_PLACE_RECORD_HDR || memcmp(p, "TXP1", 4) != 0)
    return TEEX_EFORMAT;
  if (p[4] > TEEX_DS_PLACE_MOVED)
    return TEEX_EFORMAT;
  uint64_t dl = get_be(p + 21, 4);
  if (dl > TEEX_DS_DIR_MAX)
    return TEEX_ETOOBIG;
  if (dl != n - TEEX_DS_PLACE_RECORD_HDR)
    return TEEX_EFORMAT;
  r->state = p[4];
  r->group = get_be(p + 5, 8);
  r->epoch = get_be(p + 13, 8);
  r->dir = dl ? p + TEEX_DS_PLACE_RECORD_HDR : NULL;
  r->dir_len = (size_t)dl;
  return 0;
}
