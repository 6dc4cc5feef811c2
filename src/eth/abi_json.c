/* ABI values to and from JSON. */
#include "eth_internal.h"

#include "teex/crypto.h"

#include <stdlib.h>
#include <string.h>

static int num_word(const struct teex_abi_type *t, json_t *j, uint8_t w[32]) {
  teex_u256 u;
  int neg = 0;
  if (json_is_integer(j)) {
    json_int_t x = json_integer_value(j);
    neg = x < 0;
    teex_u256_from_u64(u, neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
  } else if (json_is_string(j)) {
    const char *s = json_string_value(j);
    if (*s == '-') {
      neg = 1;
      s++;
    }
    if (teex_u256_parse(s, u) != 0)
      return TEEX_EINVAL;
  } else {
    return TEEX_EINVAL;
  }
  if (neg && t->kind != TEEX_ABI_INT)
    return TEEX_EINVAL;
  if (neg && !teex_u256_is_zero(u)) {
    teex_u256 one;
    for (int i = 0; i < 32; i++)
      u[i] = (uint8_t)~u[i];
    teex_u256_from_u64(one, 1);
    teex_u256_add(u, u, one);
    if (!(u[0] & 0x80))
      return TEEX_EINVAL;
  } else if (t->kind == TEEX_ABI_INT && (u[0] & 0x80)) {
    return TEEX_EINVAL;
  }
  memcpy(w, u, 32);
  return 0;
}

static int hex_bytes(json_t *j, uint8_t **out, size_t *len) {
  const char *s = json_string_value(j);
  size_t n;
  if (!s || strncmp(s, "0x", 2) != 0)
    return TEEX_EINVAL;
  n = strlen(s + 2) / 2 + 1;
  if (!(*out = malloc(n)))
    return TEEX_ENOMEM;
  if (teex_hex_decode(s, *out, n, len) != 0) {
    free(*out);
    *out = NULL;
    return TEEX_EINVAL;
  }
  return 0;
}

static int from_json(const struct teex_abi_type *t, json_t *j,
                     struct teex_abi_value *v, struct teex_err *err,
                     int depth) {
  char tn[128];
  int rc = 0;
  memset(v, 0, sizeof *v);
  teex_abi_type_format(t, tn, sizeof tn);
  if (depth > TEEX_ABI_MAX_DEPTH)
    return teex_err_set(err, TEEX_EINVAL, "ABI JSON: nested too deeply");
  switch (t->kind) {
  case TEEX_ABI_UINT:
  case TEEX_ABI_INT: {
    struct teex_buf tmp;
    v->kind = t->kind;
    if (num_word(t, j, v->word) != 0)
      return teex_err_set(err, TEEX_EINVAL, "ABI JSON: not a valid %s", tn);
    teex_buf_init(&tmp, 32, 0);
    rc = teex_abi_encode(t, v, &tmp, NULL);
    teex_buf_free(&tmp);
    if (rc != 0)
      return teex_err_set(err, TEEX_EINVAL,
                          "ABI JSON: value out of range for %s", tn);
    return 0;
  }
  case TEEX_ABI_ADDRESS: {
    uint8_t a[20];
    if (!json_is_string(j) || teex_eth_address_parse(json_string_value(j), a))
      return teex_err_set(err, TEEX_EINVAL, "ABI JSON: not an address");
    teex_abi_address(v, a);
    return 0;
  }
  case TEEX_ABI_BOOL:
    if (!json_is_boolean(j))
      return teex_err_set(err, TEEX_EINVAL, "ABI JSON: not a bool");
    teex_abi_bool(v, json_is_true(j));
    return 0;
  case TEEX_ABI_FIXED_BYTES:
  case TEEX_ABI_BYTES: {
    uint8_t *p = NULL;
    size_t n = 0;
    if ((rc = hex_bytes(j, &p, &n)) != 0)
      return teex_err_set(err, rc, "ABI JSON: %s needs 0x-hex", tn);
    if (t->kind == TEEX_ABI_FIXED_BYTES) {
      if (n != t->bits)
        rc = teex_err_set(err, TEEX_EINVAL, "ABI JSON: %s needs %u bytes", tn,
                          t->bits);
      else
        teex_abi_fixed_bytes(v, p, n);
    } else if (teex_abi_bytes(v, p, n) != 0) {
      rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    }
    free(p);
    return rc;
  }
  case TEEX_ABI_STRING:
    if (!json_is_string(j))
      return teex_err_set(err, TEEX_EINVAL, "ABI JSON: not a string");
    if (teex_abi_string_n(v, json_string_value(j), json_string_length(j)) != 0)
      return teex_err_set(err, TEEX_ENOMEM, NULL);
    return 0;
  case TEEX_ABI_ARRAY:
  case TEEX_ABI_FIXED_ARRAY:
  case TEEX_ABI_TUPLE: {
    size_t n = json_array_size(j);
    if (!json_is_array(j))
      return teex_err_set(err, TEEX_EINVAL, "ABI JSON: %s needs an array", tn);
    if ((t->kind == TEEX_ABI_FIXED_ARRAY && n != t->len) ||
        (t->kind == TEEX_ABI_TUPLE && n != t->n_fields))
      return teex_err_set(err, TEEX_EINVAL,
                          "ABI JSON: %s has the wrong number of items", tn);
    rc = t->kind == TEEX_ABI_ARRAY         ? teex_abi_array(v, n)
         : t->kind == TEEX_ABI_FIXED_ARRAY ? teex_abi_fixed_array(v, n)
                                           : teex_abi_tuple(v, n);
    if (rc != 0)
      return teex_err_set(err, TEEX_ENOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
      rc = from_json(t->kind == TEEX_ABI_TUPLE ? t->fields[i] : t->elem,
                     json_array_get(j, i), &v->items[i], err, depth + 1);
      if (rc != 0) {
        teex_abi_value_clear(v);
        return rc;
      }
    }
    return 0;
  }
  }
  return teex_err_set(err, TEEX_EINVAL, "ABI JSON: bad type");
}

int teex_abi_value_from_json(const struct teex_abi_type *t, json_t *j,
                             struct teex_abi_value *out, struct teex_err *err) {
  return from_json(t, j, out, err, 0);
}

json_t *teex_abi_value_to_json(const struct teex_abi_type *t,
                               const struct teex_abi_value *v) {
  char buf[TEEX_U256_DEC_MAX + 2];
  switch (t->kind) {
  case TEEX_ABI_UINT:
  case TEEX_ABI_INT:
  case TEEX_ABI_ADDRESS:
  case TEEX_ABI_BOOL:
    if (t->kind == TEEX_ABI_BOOL)
      return json_boolean(v->word[31]);
    teex_abi_value_format(t, v, buf, sizeof buf);
    return json_string(buf);
  case TEEX_ABI_FIXED_BYTES:
  case TEEX_ABI_BYTES: {
    const uint8_t *p = t->kind == TEEX_ABI_BYTES ? v->data : v->word;
    size_t n = t->kind == TEEX_ABI_BYTES ? v->len : t->bits;
    char *hx = malloc(2 * n + 3);
    json_t *r;
    if (!hx)
      return NULL;
    hx[0] = '0';
    hx[1] = 'x';
    teex_hex_encode(p, n, hx + 2);
    r = json_string(hx);
    free(hx);
    return r;
  }
  case TEEX_ABI_STRING:
    return json_stringn_nocheck((const char *)v->data, v->len);
  default: {
    json_t *a = json_array();
    for (size_t i = 0; a && i < v->n_items; i++)
      json_array_append_new(a, teex_abi_value_to_json(t->kind == TEEX_ABI_TUPLE
                                                          ? t->fields[i]
                                                          : t->elem,
                                                      &v->items[i]));
    return a;
  }
  }
}
