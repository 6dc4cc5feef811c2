/* ABI values, encoding and hostile-input-safe decoding. */
#include "eth_internal.h"

#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

/* ---- values ---- */

void teex_abi_value_clear(struct teex_abi_value *v) {
  if (!v)
    return;
  free(v->data);
  for (size_t i = 0; i < v->n_items; i++)
    teex_abi_value_clear(&v->items[i]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

static void set_word(struct teex_abi_value *v, enum teex_abi_kind k,
                     const uint8_t w[32]) {
  memset(v, 0, sizeof *v);
  v->kind = k;
  memcpy(v->word, w, 32);
}

void teex_abi_uint(struct teex_abi_value *v, const teex_u256 x) {
  set_word(v, TEEX_ABI_UINT, x);
}

void teex_abi_uint64(struct teex_abi_value *v, uint64_t x) {
  teex_u256 w;
  teex_u256_from_u64(w, x);
  set_word(v, TEEX_ABI_UINT, w);
}

void teex_abi_int64(struct teex_abi_value *v, int64_t x) {
  uint8_t w[32];
  memset(w, x < 0 ? 0xff : 0, 32);
  for (int i = 0; i < 8; i++)
    w[31 - i] = (uint8_t)((uint64_t)x >> (8 * i));
  set_word(v, TEEX_ABI_INT, w);
}

void teex_abi_address(struct teex_abi_value *v, const uint8_t addr[20]) {
  uint8_t w[32] = {0};
  memcpy(w + 12, addr, 20);
  set_word(v, TEEX_ABI_ADDRESS, w);
}

void teex_abi_bool(struct teex_abi_value *v, int b) {
  uint8_t w[32] = {0};
  w[31] = b ? 1 : 0;
  set_word(v, TEEX_ABI_BOOL, w);
}

void teex_abi_fixed_bytes(struct teex_abi_value *v, const void *p, size_t n) {
  uint8_t w[32] = {0};
  memcpy(w, p, n > 32 ? 32 : n);
  set_word(v, TEEX_ABI_FIXED_BYTES, w);
}

static int set_data(struct teex_abi_value *v, enum teex_abi_kind k,
                    const void *p, size_t n) {
  memset(v, 0, sizeof *v);
  v->kind = k;
  v->data = malloc(n + 1);
  if (!v->data)
    return TEEX_ENOMEM;
  if (n)
    memcpy(v->data, p, n);
  v->data[n] = 0;
  v->len = n;
  return 0;
}

int teex_abi_bytes(struct teex_abi_value *v, const void *p, size_t n) {
  return set_data(v, TEEX_ABI_BYTES, p, n);
}

int teex_abi_string(struct teex_abi_value *v, const char *s) {
  return set_data(v, TEEX_ABI_STRING, s, strlen(s));
}

int teex_abi_string_n(struct teex_abi_value *v, const char *s, size_t n) {
  return set_data(v, TEEX_ABI_STRING, s, n);
}

static int set_items(struct teex_abi_value *v, enum teex_abi_kind k, size_t n) {
  memset(v, 0, sizeof *v);
  v->kind = k;
  if (n) {
    v->items = calloc(n, sizeof *v->items);
    if (!v->items)
      return TEEX_ENOMEM;
  }
  v->n_items = n;
  return 0;
}

int teex_abi_tuple(struct teex_abi_value *v, size_t n) {
  return set_items(v, TEEX_ABI_TUPLE, n);
}
int teex_abi_array(struct teex_abi_value *v, size_t n) {
  return set_items(v, TEEX_ABI_ARRAY, n);
}
int teex_abi_fixed_array(struct teex_abi_value *v, size_t n) {
  return set_items(v, TEEX_ABI_FIXED_ARRAY, n);
}

int teex_abi_get_u64(const struct teex_abi_value *v, uint64_t *out) {
  if (v->kind != TEEX_ABI_UINT)
    return TEEX_EINVAL;
  return teex_u256_to_u64(v->word, out);
}

int teex_abi_get_address(const struct teex_abi_value *v, uint8_t addr[20]) {
  if (v->kind != TEEX_ABI_ADDRESS)
    return TEEX_EINVAL;
  memcpy(addr, v->word + 12, 20);
  return 0;
}

/* ---- word checks shared by encoder and decoder ---- */

/* Returns NULL when w is a valid word of scalar type t, else why not. */
static const char *check_word(const struct teex_abi_type *t,
                              const uint8_t w[32]) {
  size_t nb;
  switch (t->kind) {
  case TEEX_ABI_UINT:
    nb = t->bits / 8;
    for (size_t i = 0; i < 32 - nb; i++)
      if (w[i])
        return "value out of range for uintN";
    return NULL;
  case TEEX_ABI_INT: {
    nb = t->bits / 8;
    uint8_t fill = (w[32 - nb] & 0x80) ? 0xff : 0;
    for (size_t i = 0; i < 32 - nb; i++)
      if (w[i] != fill)
        return "value out of range for intN";
    return NULL;
  }
  case TEEX_ABI_ADDRESS:
    for (int i = 0; i < 12; i++)
      if (w[i])
        return "address with nonzero high bytes";
    return NULL;
  case TEEX_ABI_BOOL:
    for (int i = 0; i < 31; i++)
      if (w[i])
        return "bool not 0 or 1";
    return w[31] > 1 ? "bool not 0 or 1" : NULL;
  case TEEX_ABI_FIXED_BYTES:
    for (size_t i = t->bits; i < 32; i++)
      if (w[i])
        return "bytesN with nonzero padding";
    return NULL;
  default:
    return "not a scalar";
  }
}

static int is_scalar(enum teex_abi_kind k) {
  return k <= TEEX_ABI_FIXED_BYTES;
}

/* ---- encoding ---- */

static int encode_value(const struct teex_abi_type *t,
                        const struct teex_abi_value *v, struct teex_buf *out,
                        struct teex_err *err);

static int pad_append(struct teex_buf *out, const uint8_t *p, size_t n) {
  static const uint8_t zero[32];
  int rc = n ? teex_buf_append(out, p, n) : 0;
  if (rc == 0 && n % 32)
    rc = teex_buf_append(out, zero, 32 - n % 32);
  return rc;
}

static int put_len_word(struct teex_buf *out, size_t n) {
  teex_u256 w;
  teex_u256_from_u64(w, (uint64_t)n);
  return teex_buf_append(out, w, 32);
}

/* Encodes a sequence of n values with types types[i] (or elem for all when
 * types is NULL) as a tuple: heads, then the tails of the dynamic ones. */
static int encode_seq(const struct teex_abi_type *const *types,
                      const struct teex_abi_type *elem,
                      const struct teex_abi_value *vals, size_t n,
                      struct teex_buf *out, struct teex_err *err) {
  struct teex_buf head, tail;
  size_t head_size = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    head_size += teex_abi_head_size(types ? types[i] : elem);
  teex_buf_init(&head, out->max, 0);
  teex_buf_init(&tail, out->max, 0);
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct teex_abi_type *t = types ? types[i] : elem;
    if (teex_abi_type_is_dynamic(t)) {
      rc = put_len_word(&head, head_size + tail.len);
      if (rc == 0)
        rc = encode_value(t, &vals[i], &tail, err);
    } else {
      rc = encode_value(t, &vals[i], &head, err);
    }
  }
  if (rc == 0)
    rc = teex_buf_append(out, head.data, head.len);
  if (rc == 0 && tail.len)
    rc = teex_buf_append(out, tail.data, tail.len);
  teex_buf_free(&head);
  teex_buf_free(&tail);
  if (rc != 0 && (!err || err->code == 0))
    teex_err_set(err, rc, "ABI encode: %s", teex_strerror(rc));
  return rc;
}

static int encode_value(const struct teex_abi_type *t,
                        const struct teex_abi_value *v, struct teex_buf *out,
                        struct teex_err *err) {
  char tn[128];
  if (is_scalar(t->kind)) {
    const char *why;
    if (v->kind != t->kind) {
      teex_abi_type_format(t, tn, sizeof tn);
      return teex_err_set(err, TEEX_EINVAL, "ABI encode: value is not a %s",
                          tn);
    }
    if ((why = check_word(t, v->word)) != NULL)
      return teex_err_set(err, TEEX_EINVAL, "ABI encode: %s", why);
    return teex_buf_append(out, v->word, 32);
  }
  switch (t->kind) {
  case TEEX_ABI_BYTES:
  case TEEX_ABI_STRING: {
    int rc;
    if (v->kind != TEEX_ABI_BYTES && v->kind != TEEX_ABI_STRING)
      return teex_err_set(err, TEEX_EINVAL, "ABI encode: value is not %s",
                          t->kind == TEEX_ABI_BYTES ? "bytes" : "a string");
    if ((rc = put_len_word(out, v->len)) != 0)
      return rc;
    return pad_append(out, v->data, v->len);
  }
  case TEEX_ABI_ARRAY:
  case TEEX_ABI_FIXED_ARRAY: {
    int rc;
    if (v->kind != TEEX_ABI_ARRAY && v->kind != TEEX_ABI_FIXED_ARRAY)
      return teex_err_set(err, TEEX_EINVAL,
                          "ABI encode: value is not an array");
    if (t->kind == TEEX_ABI_FIXED_ARRAY && v->n_items != t->len)
      return teex_err_set(err, TEEX_EINVAL,
                          "ABI encode: fixed array needs %zu items, got %zu",
                          t->len, v->n_items);
    if (t->kind == TEEX_ABI_ARRAY && (rc = put_len_word(out, v->n_items)) != 0)
      return rc;
    return encode_seq(NULL, t->elem, v->items, v->n_items, out, err);
  }
  case TEEX_ABI_TUPLE:
    if (v->kind != TEEX_ABI_TUPLE || v->n_items != t->n_fields)
      return teex_err_set(err, TEEX_EINVAL,
                          "ABI encode: tuple needs %zu members", t->n_fields);
    return encode_seq((const struct teex_abi_type *const *)t->fields, NULL,
                      v->items, v->n_items, out, err);
  default:
    return teex_err_set(err, TEEX_EINVAL, "ABI encode: bad type");
  }
}

int teex_abi_encode(const struct teex_abi_type *t,
                    const struct teex_abi_value *v, struct teex_buf *out,
                    struct teex_err *err) {
  size_t mark = out->len;
  int rc = encode_value(t, v, out, err);
  if (rc != 0)
    out->len = mark;
  return rc;
}

int teex_abi_selector(const char *sig, uint8_t sel[4], struct teex_err *err) {
  char canon[TEEX_ABI_SIG_MAX];
  uint8_t h[32];
  int rc = teex_abi_canonical_sig(sig, canon, sizeof canon, NULL, err);
  if (rc != 0)
    return rc;
  teex_keccak256(canon, strlen(canon), h);
  memcpy(sel, h, 4);
  return 0;
}

int teex_abi_event_topic(const char *sig, uint8_t topic[32],
                         struct teex_err *err) {
  char canon[TEEX_ABI_SIG_MAX];
  int rc = teex_abi_canonical_sig(sig, canon, sizeof canon, NULL, err);
  if (rc == 0)
    teex_keccak256(canon, strlen(canon), topic);
  return rc;
}

int teex_abi_encode_call(const char *sig, const struct teex_abi_value *args,
                         struct teex_buf *out, struct teex_err *err) {
  char canon[TEEX_ABI_SIG_MAX];
  struct teex_abi_type *params = NULL;
  uint8_t h[32];
  size_t mark = out->len;
  int rc = teex_abi_canonical_sig(sig, canon, sizeof canon, &params, err);
  if (rc != 0)
    return rc;
  teex_keccak256(canon, strlen(canon), h);
  rc = teex_buf_append(out, h, 4);
  if (rc == 0)
    rc = teex_abi_encode(params, args, out, err);
  if (rc != 0) {
    out->len = mark;
    teex_err_wrap(err, rc, "encode call %s", canon);
  }
  teex_abi_type_free(params);
  return rc;
}

/* ---- decoding ---- */

struct dec {
  const uint8_t *data;
  size_t len;
  size_t budget; /* bytes still allowed to be allocated */
  struct teex_err *err;
};

static int derr(struct dec *d, int code, const char *what, size_t at) {
  return teex_err_set(d->err, code, "ABI decode: %s at byte %zu", what, at);
}

static int charge(struct dec *d, size_t n, size_t at) {
  if (n > d->budget)
    return derr(d, TEEX_ETOOBIG, "decoded value too large", at);
  d->budget -= n;
  return 0;
}

/* Reads a word at `at` as a size bounded by limit. */
static int read_size(struct dec *d, size_t at, size_t limit, size_t *out) {
  if (at > d->len || d->len - at < 32)
    return derr(d, TEEX_ETRUNC, "data ends inside a word", at);
  const uint8_t *w = d->data + at;
  for (int i = 0; i < 24; i++)
    if (w[i])
      return derr(d, TEEX_EFORMAT, "offset or length too large", at);
  uint64_t v = 0;
  for (int i = 24; i < 32; i++)
    v = (v << 8) | w[i];
  if (v > limit)
    return derr(d, TEEX_ETRUNC, "offset or length past the data", at);
  *out = (size_t)v;
  return 0;
}

static int decode_at(struct dec *d, const struct teex_abi_type *t, size_t at,
                     struct teex_abi_value *out);

/* Bytes taken by the heads of a tuple's or fixed array's members. */
static size_t seq_head_size(const struct teex_abi_type *t) {
  if (t->kind == TEEX_ABI_FIXED_ARRAY)
    return t->len * teex_abi_head_size(t->elem);
  size_t s = 0;
  for (size_t i = 0; i < t->n_fields; i++)
    s += teex_abi_head_size(t->fields[i]);
  return s;
}

/* Decodes n members laid out as a tuple starting at `start`. */
static int decode_seq(struct dec *d, const struct teex_abi_type *const *types,
                      const struct teex_abi_type *elem, size_t n, size_t start,
                      struct teex_abi_value *items) {
  size_t pos = start;
  if (start > d->len)
    return derr(d, TEEX_ETRUNC, "tuple starts past the data", start);
  for (size_t i = 0; i < n; i++) {
    const struct teex_abi_type *t = types ? types[i] : elem;
    int rc;
    if (teex_abi_type_is_dynamic(t)) {
      size_t off = 0; /* set by read_size; gcc -O3 cannot see it */
      if ((rc = read_size(d, pos, d->len - start, &off)) != 0)
        return rc;
      rc = decode_at(d, t, start + off, &items[i]);
      pos += 32;
    } else {
      rc = decode_at(d, t, pos, &items[i]);
      pos += teex_abi_head_size(t);
    }
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int alloc_items(struct dec *d, struct teex_abi_value *out,
                       enum teex_abi_kind k, size_t n, size_t at) {
  int rc;
  if (n > SIZE_MAX / sizeof *out->items)
    return derr(d, TEEX_ETOOBIG, "too many items", at);
  if ((rc = charge(d, n * sizeof *out->items, at)) != 0)
    return rc;
  if (set_items(out, k, n) != 0)
    return teex_err_set(d->err, TEEX_ENOMEM, "ABI decode: out of memory");
  return 0;
}

static int decode_at(struct dec *d, const struct teex_abi_type *t, size_t at,
                     struct teex_abi_value *out) {
  int rc;
  if (is_scalar(t->kind)) {
    const char *why;
    if (at > d->len || d->len - at < 32)
      return derr(d, TEEX_ETRUNC, "data ends inside a word", at);
    if ((why = check_word(t, d->data + at)) != NULL)
      return derr(d, TEEX_EFORMAT, why, at);
    set_word(out, t->kind, d->data + at);
    return 0;
  }
  switch (t->kind) {
  case TEEX_ABI_BYTES:
  case TEEX_ABI_STRING: {
    size_t n, padded;
    if ((rc = read_size(d, at, d->len, &n)) != 0)
      return rc;
    padded = (n + 31) / 32 * 32;
    if (padded > d->len - at - 32)
      return derr(d, TEEX_ETRUNC, "bytes run past the data", at);
    for (size_t i = n; i < padded; i++)
      if (d->data[at + 32 + i])
        return derr(d, TEEX_EFORMAT, "nonzero padding", at + 32 + i);
    if ((rc = charge(d, n + 1, at)) != 0)
      return rc;
    if (set_data(out, t->kind, d->data + at + 32, n) != 0)
      return teex_err_set(d->err, TEEX_ENOMEM, "ABI decode: out of memory");
    return 0;
  }
  case TEEX_ABI_ARRAY: {
    size_t n, head = teex_abi_head_size(t->elem);
    /* Each element takes at least `head` bytes after the count word, so a
     * lying count is caught before any allocation. */
    if ((rc = read_size(d, at, d->len, &n)) != 0)
      return rc;
    if (head && n > (d->len - at - 32) / head)
      return derr(d, TEEX_ETRUNC, "array count exceeds the data", at);
    if ((rc = alloc_items(d, out, TEEX_ABI_ARRAY, n, at)) != 0)
      return rc;
    return decode_seq(d, NULL, t->elem, n, at + 32, out->items);
  }
  case TEEX_ABI_FIXED_ARRAY:
  case TEEX_ABI_TUPLE: {
    /* The heads of all members must be there before anything is
     * allocated for them. */
    int is_tuple = t->kind == TEEX_ABI_TUPLE;
    size_t n = is_tuple ? t->n_fields : t->len;
    if (at > d->len || d->len - at < seq_head_size(t))
      return derr(d, TEEX_ETRUNC, "data ends inside a tuple or array", at);
    if ((rc = alloc_items(d, out, t->kind, n, at)) != 0)
      return rc;
    return decode_seq(
        d, is_tuple ? (const struct teex_abi_type *const *)t->fields : NULL,
        is_tuple ? NULL : t->elem, n, at, out->items);
  }
  default:
    return derr(d, TEEX_EINVAL, "bad type", at);
  }
}

int teex_abi_decode(const struct teex_abi_type *t, const uint8_t *data,
                    size_t len, struct teex_abi_value *out,
                    struct teex_err *err) {
  struct dec d = {data, len, TEEX_ABI_DECODE_BUDGET, err};
  memset(out, 0, sizeof *out);
  int rc = decode_at(&d, t, 0, out);
  if (rc != 0)
    teex_abi_value_clear(out);
  return rc;
}

/* ---- events ---- */

int teex_abi_log_decode(const char *sig, uint32_t indexed_mask,
                        const uint8_t (*topics)[32], size_t n_topics,
                        const uint8_t *data, size_t len,
                        struct teex_abi_value *out, struct teex_err *err) {
  char canon[TEEX_ABI_SIG_MAX];
  struct teex_abi_type *params = NULL;
  struct teex_abi_type body = {.kind = TEEX_ABI_TUPLE};
  struct teex_abi_value bv = {0};
  uint8_t topic0[32];
  size_t n_indexed = 0, k = 0, ti = 1;
  int rc;
  memset(out, 0, sizeof *out);
  if ((rc = teex_abi_canonical_sig(sig, canon, sizeof canon, &params, err)))
    return rc;
  if (params->n_fields > 32 ||
      (params->n_fields < 32 && (indexed_mask >> params->n_fields) != 0)) {
    rc = teex_err_set(err, TEEX_EINVAL, "event %s: bad indexed mask", canon);
    goto done;
  }
  for (size_t i = 0; i < params->n_fields; i++)
    n_indexed += (indexed_mask >> i) & 1;
  teex_keccak256(canon, strlen(canon), topic0);
  if (n_topics != n_indexed + 1 || memcmp(topics[0], topic0, 32) != 0) {
    rc = teex_err_set(err, TEEX_EFORMAT, "log is not a %s event", canon);
    goto done;
  }
  body.fields =
      calloc(params->n_fields ? params->n_fields : 1, sizeof *body.fields);
  if (!body.fields) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto done;
  }
  for (size_t i = 0; i < params->n_fields; i++)
    if (!((indexed_mask >> i) & 1))
      body.fields[body.n_fields++] = params->fields[i];
  if ((rc = teex_abi_decode(&body, data, len, &bv, err)) != 0) {
    teex_err_wrap(err, rc, "event %s data", canon);
    goto done;
  }
  if ((rc = teex_abi_tuple(out, params->n_fields)) != 0)
    goto done;
  for (size_t i = 0; i < params->n_fields; i++) {
    const struct teex_abi_type *t = params->fields[i];
    if ((indexed_mask >> i) & 1) {
      const uint8_t *w = topics[ti++];
      if (teex_abi_type_is_dynamic(t) || !is_scalar(t->kind)) {
        set_word(&out->items[i], TEEX_ABI_FIXED_BYTES, w);
      } else {
        const char *why = check_word(t, w);
        if (why) {
          rc = teex_err_set(err, TEEX_EFORMAT, "event %s topic %zu: %s", canon,
                            ti - 1, why);
          goto done;
        }
        set_word(&out->items[i], t->kind, w);
      }
    } else {
      out->items[i] = bv.items[k];
      memset(&bv.items[k], 0, sizeof bv.items[k]);
      k++;
    }
  }
done:
  if (rc != 0)
    teex_abi_value_clear(out);
  teex_abi_value_clear(&bv);
  free(body.fields);
  teex_abi_type_free(params);
  return rc;
}

/* ---- formatting and revert data ---- */

static void fmt_value(struct teex_sb *b, const struct teex_abi_type *t,
                      const struct teex_abi_value *v, int depth) {
  char tmp[TEEX_U256_DEC_MAX + 2];
  if (depth > TEEX_ABI_MAX_DEPTH + 1)
    return;
  switch (t->kind) {
  case TEEX_ABI_UINT:
    teex_u256_format_dec(v->word, tmp);
    teex_sb_str(b, tmp);
    break;
  case TEEX_ABI_INT:
    if (v->word[0] & 0x80) {
      teex_u256 neg, one;
      for (int i = 0; i < 32; i++)
        neg[i] = (uint8_t)~v->word[i];
      teex_u256_from_u64(one, 1);
      teex_u256_add(neg, neg, one);
      tmp[0] = '-';
      teex_u256_format_dec(neg, tmp + 1);
    } else {
      teex_u256_format_dec(v->word, tmp);
    }
    teex_sb_str(b, tmp);
    break;
  case TEEX_ABI_ADDRESS:
    teex_eth_address_hex(v->word + 12, tmp);
    teex_sb_str(b, tmp);
    break;
  case TEEX_ABI_BOOL:
    teex_sb_str(b, v->word[31] ? "true" : "false");
    break;
  case TEEX_ABI_FIXED_BYTES:
  case TEEX_ABI_BYTES: {
    const uint8_t *p = t->kind == TEEX_ABI_BYTES ? v->data : v->word;
    size_t n = t->kind == TEEX_ABI_BYTES ? v->len : t->bits;
    char hx[3];
    teex_sb_str(b, "0x");
    for (size_t i = 0; i < n && !b->over; i++) {
      teex_hex_encode(p + i, 1, hx);
      teex_sb_put(b, hx, 2);
    }
    break;
  }
  case TEEX_ABI_STRING:
    teex_sb_str(b, "\"");
    for (size_t i = 0; i < v->len && !b->over; i++) {
      char c = (char)v->data[i];
      if ((unsigned char)c < 0x20 || c == 0x7f || c == '"' || c == '\\')
        c = '?'; /* never let data forge terminal control sequences */
      teex_sb_put(b, &c, 1);
    }
    teex_sb_str(b, "\"");
    break;
  case TEEX_ABI_ARRAY:
  case TEEX_ABI_FIXED_ARRAY:
  case TEEX_ABI_TUPLE:
    teex_sb_str(b, t->kind == TEEX_ABI_TUPLE ? "(" : "[");
    for (size_t i = 0; i < v->n_items && !b->over; i++) {
      if (i)
        teex_sb_str(b, ",");
      fmt_value(b, t->kind == TEEX_ABI_TUPLE ? t->fields[i] : t->elem,
                &v->items[i], depth + 1);
    }
    teex_sb_str(b, t->kind == TEEX_ABI_TUPLE ? ")" : "]");
    break;
  }
}

void teex_abi_value_format(const struct teex_abi_type *t,
                           const struct teex_abi_value *v, char *out,
                           size_t cap) {
  struct teex_sb b;
  teex_sb_init(&b, out, cap);
  fmt_value(&b, t, v, 0);
}

static const char *panic_text(uint64_t code) {
  switch (code) {
  case 0x00:
    return "generic compiler panic";
  case 0x01:
    return "assertion failed";
  case 0x11:
    return "arithmetic overflow or underflow";
  case 0x12:
    return "division or modulo by zero";
  case 0x21:
    return "invalid enum value";
  case 0x22:
    return "corrupt storage byte array";
  case 0x31:
    return "pop on empty array";
  case 0x32:
    return "array index out of bounds";
  case 0x41:
    return "out of memory";
  case 0x51:
    return "call to a zero-initialised function";
  default:
    return "unknown panic code";
  }
}

enum teex_abi_revert_kind
teex_abi_revert_describe(const uint8_t *data, size_t len,
                         const char *const *custom_sigs, char *msg,
                         size_t cap) {
  static const uint8_t sel_error[4] = {0x08, 0xc3, 0x79, 0xa0};
  static const uint8_t sel_panic[4] = {0x4e, 0x48, 0x7b, 0x71};
  struct teex_sb b;
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v = {0};
  enum teex_abi_revert_kind kind = TEEX_REVERT_INVALID;
  char hx[2 * 64 + 1];
  teex_sb_init(&b, msg, cap);
  if (len == 0) {
    teex_sb_str(&b, "reverted without a reason");
    return TEEX_REVERT_NONE;
  }
  if (len < 4) {
    teex_sb_str(&b, "reverted with malformed data");
    return TEEX_REVERT_INVALID;
  }
  if (memcmp(data, sel_error, 4) == 0) {
    if (teex_abi_type_parse("(string)", &t, NULL) == 0 &&
        teex_abi_decode(t, data + 4, len - 4, &v, NULL) == 0) {
      teex_sb_str(&b, "reverted: ");
      fmt_value(&b, t->fields[0], &v.items[0], 0);
      kind = TEEX_REVERT_ERROR;
    } else {
      teex_sb_str(&b, "reverted with a malformed Error(string)");
    }
    goto done;
  }
  if (memcmp(data, sel_panic, 4) == 0) {
    uint64_t code;
    char line[96];
    if (teex_abi_type_parse("(uint256)", &t, NULL) == 0 &&
        teex_abi_decode(t, data + 4, len - 4, &v, NULL) == 0) {
      if (teex_u256_to_u64(v.items[0].word, &code) != 0)
        code = UINT64_MAX;
      snprintf(line, sizeof line, "panic 0x%02llx: %s",
               (unsigned long long)code, panic_text(code));
      teex_sb_str(&b, line);
      kind = TEEX_REVERT_PANIC;
    } else {
      teex_sb_str(&b, "reverted with a malformed Panic(uint256)");
    }
    goto done;
  }
  kind = TEEX_REVERT_CUSTOM;
  for (size_t i = 0; custom_sigs && custom_sigs[i]; i++) {
    uint8_t sel[4];
    char name[TEEX_ABI_MAX_NAME];
    if (teex_abi_selector(custom_sigs[i], sel, NULL) != 0 ||
        memcmp(sel, data, 4) != 0)
      continue;
    if (teex_abi_sig_parse(custom_sigs[i], name, &t, NULL) != 0)
      continue;
    if (teex_abi_decode(t, data + 4, len - 4, &v, NULL) == 0) {
      teex_sb_str(&b, "reverted: ");
      teex_sb_str(&b, name);
      fmt_value(&b, t, &v, 0);
      goto done;
    }
    teex_abi_type_free(t);
    t = NULL;
  }
  teex_hex_encode(data, 4, hx);
  teex_sb_str(&b, "reverted with custom error 0x");
  teex_sb_str(&b, hx);
  if (len > 4) {
    size_t n = len - 4 > 64 ? 64 : len - 4;
    teex_hex_encode(data + 4, n, hx);
    teex_sb_str(&b, " (data 0x");
    teex_sb_str(&b, hx);
    teex_sb_str(&b, len - 4 > 64 ? "...)" : ")");
  }
done:
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);
  return kind;
}
