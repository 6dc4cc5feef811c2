/* ABI type strings: parsing, canonical formatting, properties. */
#include "eth_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void teex_abi_type_free(struct teex_abi_type *t) {
  if (!t)
    return;
  teex_abi_type_free(t->elem);
  for (size_t i = 0; i < t->n_fields; i++)
    teex_abi_type_free(t->fields[i]);
  free(t->fields);
  free(t);
}

int teex_abi_type_is_dynamic(const struct teex_abi_type *t) {
  switch (t->kind) {
  case TEEX_ABI_BYTES:
  case TEEX_ABI_STRING:
  case TEEX_ABI_ARRAY:
    return 1;
  case TEEX_ABI_FIXED_ARRAY:
    return teex_abi_type_is_dynamic(t->elem);
  case TEEX_ABI_TUPLE:
    for (size_t i = 0; i < t->n_fields; i++)
      if (teex_abi_type_is_dynamic(t->fields[i]))
        return 1;
    return 0;
  default:
    return 0;
  }
}

size_t teex_abi_head_size(const struct teex_abi_type *t) {
  if (teex_abi_type_is_dynamic(t))
    return 32;
  if (t->kind == TEEX_ABI_FIXED_ARRAY)
    return t->len * teex_abi_head_size(t->elem);
  if (t->kind == TEEX_ABI_TUPLE) {
    size_t s = 0;
    for (size_t i = 0; i < t->n_fields; i++)
      s += teex_abi_head_size(t->fields[i]);
    return s;
  }
  return 32;
}

struct parser {
  const char *p;
  struct teex_err *err;
};

static int perr(struct parser *ps, const char *what) {
  return teex_err_set(ps->err, TEEX_EFORMAT, "ABI type: %s at \"%.32s\"", what,
                      ps->p);
}

/* Reads decimal digits (no leading zero) into *out, bounded by max. */
static int parse_num(struct parser *ps, size_t max, size_t *out, int *any) {
  size_t v = 0;
  *any = 0;
  if (*ps->p == '0' && isdigit((unsigned char)ps->p[1]))
    return perr(ps, "leading zero");
  while (isdigit((unsigned char)*ps->p)) {
    v = v * 10 + (size_t)(*ps->p - '0');
    if (v > max)
      return perr(ps, "number too large");
    ps->p++;
    *any = 1;
  }
  *out = v;
  return 0;
}

static struct teex_abi_type *new_type(enum teex_abi_kind k) {
  struct teex_abi_type *t = calloc(1, sizeof *t);
  if (t)
    t->kind = k;
  return t;
}

static int parse_type(struct parser *ps, int depth, struct teex_abi_type **out);

static int parse_tuple_body(struct parser *ps, int depth,
                            struct teex_abi_type *t) {
  /* ps->p is just past '(' */
  if (*ps->p == ')') {
    ps->p++;
    return 0;
  }
  for (;;) {
    struct teex_abi_type *f = NULL, **nf;
    int rc;
    if (t->n_fields >= TEEX_ABI_MAX_FIELDS)
      return perr(ps, "too many tuple members");
    if ((rc = parse_type(ps, depth + 1, &f)) != 0)
      return rc;
    nf = realloc(t->fields, (t->n_fields + 1) * sizeof *nf);
    if (!nf) {
      teex_abi_type_free(f);
      return teex_err_set(ps->err, TEEX_ENOMEM, NULL);
    }
    t->fields = nf;
    t->fields[t->n_fields++] = f;
    if (*ps->p == ',') {
      ps->p++;
      continue;
    }
    if (*ps->p == ')') {
      ps->p++;
      return 0;
    }
    return perr(ps, "expected ',' or ')'");
  }
}

static int parse_base(struct parser *ps, int depth,
                      struct teex_abi_type **out) {
  struct teex_abi_type *t = NULL;
  int rc = 0, any = 0;
  size_t n = 0;
  if (*ps->p == '(' || strncmp(ps->p, "tuple(", 6) == 0) {
    ps->p += *ps->p == '(' ? 1 : 6;
    if (!(t = new_type(TEEX_ABI_TUPLE)))
      return teex_err_set(ps->err, TEEX_ENOMEM, NULL);
    if ((rc = parse_tuple_body(ps, depth, t)) != 0)
      goto fail;
    *out = t;
    return 0;
  }
  const char *start = ps->p;
  while (isalpha((unsigned char)*ps->p))
    ps->p++;
  size_t wl = (size_t)(ps->p - start);
#define WORD(w) (wl == sizeof(w) - 1 && memcmp(start, w, wl) == 0)
  if (WORD("uint") || WORD("int")) {
    if (!(t = new_type(start[0] == 'u' ? TEEX_ABI_UINT : TEEX_ABI_INT)))
      return teex_err_set(ps->err, TEEX_ENOMEM, NULL);
    if ((rc = parse_num(ps, 256, &n, &any)) != 0)
      goto fail;
    if (!any)
      n = 256;
    if (n < 8 || n % 8) {
      rc = perr(ps, "integer width must be 8..256 in steps of 8");
      goto fail;
    }
    t->bits = (unsigned)n;
  } else if (WORD("bytes")) {
    if ((rc = parse_num(ps, 32, &n, &any)) != 0)
      return rc;
    if (!(t = new_type(any ? TEEX_ABI_FIXED_BYTES : TEEX_ABI_BYTES)))
      return teex_err_set(ps->err, TEEX_ENOMEM, NULL);
    if (any && n == 0) {
      rc = perr(ps, "bytes0 is not a type");
      goto fail;
    }
    t->bits = (unsigned)n;
  } else if (WORD("address")) {
    t = new_type(TEEX_ABI_ADDRESS);
  } else if (WORD("bool")) {
    t = new_type(TEEX_ABI_BOOL);
  } else if (WORD("string")) {
    t = new_type(TEEX_ABI_STRING);
  } else {
    ps->p = start;
    return perr(ps, "unknown type");
  }
#undef WORD
  if (!t)
    return teex_err_set(ps->err, TEEX_ENOMEM, NULL);
  *out = t;
  return 0;
fail:
  teex_abi_type_free(t);
  return rc;
}

static int parse_type(struct parser *ps, int depth,
                      struct teex_abi_type **out) {
  struct teex_abi_type *t = NULL;
  int rc;
  if (depth > TEEX_ABI_MAX_DEPTH)
    return perr(ps, "nested too deeply");
  if ((rc = parse_base(ps, depth, &t)) != 0)
    return rc;
  while (*ps->p == '[') {
    size_t n = 0;
    int any = 0;
    struct teex_abi_type *a;
    if (++depth > TEEX_ABI_MAX_DEPTH) {
      rc = perr(ps, "nested too deeply");
      goto fail;
    }
    ps->p++;
    if ((rc = parse_num(ps, TEEX_ABI_MAX_FIXED_LEN, &n, &any)) != 0)
      goto fail;
    if (*ps->p != ']') {
      rc = perr(ps, "expected ']'");
      goto fail;
    }
    ps->p++;
    if (any && n == 0) {
      rc = perr(ps, "zero-length fixed array");
      goto fail;
    }
    if (!(a = new_type(any ? TEEX_ABI_FIXED_ARRAY : TEEX_ABI_ARRAY))) {
      rc = teex_err_set(ps->err, TEEX_ENOMEM, NULL);
      goto fail;
    }
    a->len = n;
    a->elem = t;
    t = a;
  }
  /* Keep the static size of any type small enough that head arithmetic
   * cannot overflow and a decode cannot demand absurd sizes. */
  if (!teex_abi_type_is_dynamic(t) &&
      teex_abi_static_size_checked(t) > TEEX_ABI_DECODE_BUDGET) {
    rc = perr(ps, "static size too large");
    goto fail;
  }
  *out = t;
  return 0;
fail:
  teex_abi_type_free(t);
  return rc;
}

size_t teex_abi_static_size_checked(const struct teex_abi_type *t) {
  /* Saturates at SIZE_MAX instead of overflowing. */
  if (t->kind == TEEX_ABI_FIXED_ARRAY) {
    size_t e = teex_abi_type_is_dynamic(t->elem)
                   ? 32
                   : teex_abi_static_size_checked(t->elem);
    if (e != 0 && t->len > SIZE_MAX / e)
      return SIZE_MAX;
    return e * t->len;
  }
  if (t->kind == TEEX_ABI_TUPLE) {
    size_t s = 0;
    for (size_t i = 0; i < t->n_fields; i++) {
      size_t f = teex_abi_type_is_dynamic(t->fields[i])
                     ? 32
                     : teex_abi_static_size_checked(t->fields[i]);
      if (f > SIZE_MAX - s)
        return SIZE_MAX;
      s += f;
    }
    return s;
  }
  return 32;
}

int teex_abi_type_parse(const char *s, struct teex_abi_type **out,
                        struct teex_err *err) {
  struct parser ps = {s, err};
  struct teex_abi_type *t = NULL;
  int rc;
  *out = NULL;
  if ((rc = parse_type(&ps, 0, &t)) != 0)
    return rc;
  if (*ps.p) {
    teex_abi_type_free(t);
    return perr(&ps, "trailing characters");
  }
  *out = t;
  return 0;
}

int teex_abi_sig_parse(const char *sig, char *name,
                       struct teex_abi_type **params, struct teex_err *err) {
  const char *paren = strchr(sig, '(');
  struct teex_abi_type *t = NULL;
  *params = NULL;
  if (!paren || paren == sig || (size_t)(paren - sig) >= TEEX_ABI_MAX_NAME)
    return teex_err_set(err, TEEX_EFORMAT,
                        "ABI signature: bad name in \"%.64s\"", sig);
  for (const char *c = sig; c < paren; c++)
    if (!isalnum((unsigned char)*c) && *c != '_' && *c != '$')
      return teex_err_set(err, TEEX_EFORMAT,
                          "ABI signature: bad name in \"%.64s\"", sig);
  struct parser ps = {paren + 1, err};
  if (!(t = new_type(TEEX_ABI_TUPLE)))
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  int rc = parse_tuple_body(&ps, 0, t);
  if (rc == 0 && *ps.p)
    rc = perr(&ps, "trailing characters");
  if (rc != 0) {
    teex_abi_type_free(t);
    return rc;
  }
  memcpy(name, sig, (size_t)(paren - sig));
  name[paren - sig] = 0;
  *params = t;
  return 0;
}

void teex_sb_init(struct teex_sb *b, char *out, size_t cap) {
  b->out = out;
  b->cap = cap;
  b->len = 0;
  b->over = 0;
  if (cap)
    out[0] = 0;
}

void teex_sb_put(struct teex_sb *b, const char *s, size_t n) {
  if (b->cap == 0)
    return;
  if (b->len + n >= b->cap) {
    n = b->cap - 1 - b->len;
    b->over = 1;
  }
  memcpy(b->out + b->len, s, n);
  b->len += n;
  b->out[b->len] = 0;
}

void teex_sb_str(struct teex_sb *b, const char *s) {
  teex_sb_put(b, s, strlen(s));
}

static void fmt_type(struct teex_sb *b, const struct teex_abi_type *t) {
  char num[32];
  switch (t->kind) {
  case TEEX_ABI_UINT:
  case TEEX_ABI_INT:
    snprintf(num, sizeof num, "%s%u", t->kind == TEEX_ABI_UINT ? "uint" : "int",
             t->bits);
    teex_sb_str(b, num);
    break;
  case TEEX_ABI_ADDRESS:
    teex_sb_str(b, "address");
    break;
  case TEEX_ABI_BOOL:
    teex_sb_str(b, "bool");
    break;
  case TEEX_ABI_FIXED_BYTES:
    snprintf(num, sizeof num, "bytes%u", t->bits);
    teex_sb_str(b, num);
    break;
  case TEEX_ABI_BYTES:
    teex_sb_str(b, "bytes");
    break;
  case TEEX_ABI_STRING:
    teex_sb_str(b, "string");
    break;
  case TEEX_ABI_ARRAY:
    fmt_type(b, t->elem);
    teex_sb_str(b, "[]");
    break;
  case TEEX_ABI_FIXED_ARRAY:
    fmt_type(b, t->elem);
    snprintf(num, sizeof num, "[%zu]", t->len);
    teex_sb_str(b, num);
    break;
  case TEEX_ABI_TUPLE:
    teex_sb_str(b, "(");
    for (size_t i = 0; i < t->n_fields; i++) {
      if (i)
        teex_sb_str(b, ",");
      fmt_type(b, t->fields[i]);
    }
    teex_sb_str(b, ")");
    break;
  }
}

int teex_abi_type_format(const struct teex_abi_type *t, char *out, size_t cap) {
  struct teex_sb b;
  teex_sb_init(&b, out, cap);
  fmt_type(&b, t);
  return b.over || cap == 0 ? TEEX_ETOOBIG : 0;
}

int teex_abi_canonical_sig(const char *sig, char *out, size_t cap,
                           struct teex_abi_type **params_out,
                           struct teex_err *err) {
  char name[TEEX_ABI_MAX_NAME];
  struct teex_abi_type *params = NULL;
  int rc = teex_abi_sig_parse(sig, name, &params, err);
  if (rc != 0)
    return rc;
  struct teex_sb b;
  teex_sb_init(&b, out, cap);
  teex_sb_str(&b, name);
  fmt_type(&b, params);
  if (b.over) {
    teex_abi_type_free(params);
    return teex_err_set(err, TEEX_ETOOBIG, "ABI signature too long");
  }
  if (params_out)
    *params_out = params;
  else
    teex_abi_type_free(params);
  return 0;
}
