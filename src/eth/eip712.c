/* EIP-712 typed-data hashing over jansson documents. */
#include "eth_internal.h"

#include "teex/crypto.h"
#include "teex/eip712.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
  json_t *types; /* object: name -> array of {name,type} */
  struct teex_err *err;
};

/* Splits "Person[2][]" into its base name length; suffix follows. */
static size_t base_len(const char *type) {
  const char *b = strchr(type, '[');
  return b ? (size_t)(b - type) : strlen(type);
}

static json_t *struct_fields(struct ctx *c, const char *name, size_t n) {
  char buf[TEEX_ABI_MAX_NAME];
  if (n == 0 || n >= sizeof buf)
    return NULL;
  memcpy(buf, name, n);
  buf[n] = 0;
  json_t *f = json_object_get(c->types, buf);
  return json_is_array(f) ? f : NULL;
}

/* Collects the struct types name depends on (itself included) into deps, a
 * JSON object used as a set. */
static int collect_deps(struct ctx *c, const char *name, size_t n, json_t *deps,
                        int depth) {
  char buf[TEEX_ABI_MAX_NAME];
  json_t *fields = struct_fields(c, name, n);
  if (!fields)
    return 0;
  memcpy(buf, name, n);
  buf[n] = 0;
  if (json_object_get(deps, buf))
    return 0;
  if (depth > TEEX_EIP712_MAX_DEPTH)
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: types nest too deeply");
  json_object_set_new(deps, buf, json_true());
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) {
    const char *t = json_string_value(json_object_get(f, "type"));
    if (!t || !json_is_string(json_object_get(f, "name")))
      return teex_err_set(c->err, TEEX_EFORMAT,
                          "EIP-712: type %s has a malformed member", buf);
    int rc = collect_deps(c, t, base_len(t), deps, depth + 1);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static void put_struct_sig(struct teex_sb *b, const char *name,
                           json_t *fields) {
  size_t i;
  json_t *f;
  teex_sb_str(b, name);
  teex_sb_str(b, "(");
  json_array_foreach(fields, i, f) {
    if (i)
      teex_sb_str(b, ",");
    teex_sb_str(b, json_string_value(json_object_get(f, "type")));
    teex_sb_str(b, " ");
    teex_sb_str(b, json_string_value(json_object_get(f, "name")));
  }
  teex_sb_str(b, ")");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int encode_type(struct ctx *c, const char *primary, char *out,
                       size_t cap) {
  json_t *deps = json_object();
  const char **names = NULL;
  size_t n = 0;
  int rc;
  struct teex_sb b;
  if (!deps)
    return teex_err_set(c->err, TEEX_ENOMEM, NULL);
  if (!struct_fields(c, primary, strlen(primary))) {
    rc = teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: unknown type %.64s",
                      primary);
    goto done;
  }
  if ((rc = collect_deps(c, primary, strlen(primary), deps, 0)) != 0)
    goto done;
  names = calloc(json_object_size(deps), sizeof *names);
  if (!names) {
    rc = teex_err_set(c->err, TEEX_ENOMEM, NULL);
    goto done;
  }
  const char *k;
  json_t *v;
  json_object_foreach(deps, k, v) {
    if (strcmp(k, primary) != 0)
      names[n++] = k;
  }
  qsort(names, n, sizeof *names, cmp_str);
  teex_sb_init(&b, out, cap);
  put_struct_sig(&b, primary, json_object_get(c->types, primary));
  for (size_t i = 0; i < n; i++)
    put_struct_sig(&b, names[i], json_object_get(c->types, names[i]));
  rc =
      b.over ? teex_err_set(c->err, TEEX_ETOOBIG, "EIP-712: type too long") : 0;
done:
  free(names);
  json_decref(deps);
  return rc;
}

static int hash_struct(struct ctx *c, const char *name, json_t *data,
                       uint8_t out[32], int depth);

/* Reads a JSON number or string as a 32-byte two's complement word. */
static int json_word(struct ctx *c, json_t *v, int is_signed, uint8_t w[32],
                     const char *field) {
  teex_u256 u;
  int neg = 0;
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    neg = x < 0;
    teex_u256_from_u64(u, neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (*s == '-') {
      neg = 1;
      s++;
    }
    if (teex_u256_parse(s, u) != 0)
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not a number",
                          field);
  } else {
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not a number",
                        field);
  }
  if (neg && !is_signed)
    return teex_err_set(c->err, TEEX_EFORMAT,
                        "EIP-712: %s is negative for an unsigned type", field);
  if (neg && !teex_u256_is_zero(u)) {
    teex_u256 one;
    for (int i = 0; i < 32; i++)
      u[i] = (uint8_t)~u[i];
    teex_u256_from_u64(one, 1);
    teex_u256_add(u, u, one);
    if (!(u[0] & 0x80))
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s out of range",
                          field);
  } else if (is_signed && (u[0] & 0x80)) {
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s out of range",
                        field);
  }
  memcpy(w, u, 32);
  return 0;
}

static int hex_value(struct ctx *c, json_t *v, uint8_t **out, size_t *len,
                     const char *field) {
  const char *s = json_string_value(v);
  size_t n;
  if (!s || s[0] != '0' || s[1] != 'x')
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not 0x-hex",
                        field);
  n = strlen(s + 2) / 2 + 1;
  *out = malloc(n);
  if (!*out)
    return teex_err_set(c->err, TEEX_ENOMEM, NULL);
  if (teex_hex_decode(s, *out, n, len) != 0) {
    free(*out);
    *out = NULL;
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not 0x-hex",
                        field);
  }
  return 0;
}

/* Encodes one member value of type `type` into a 32-byte word. */
static int encode_field(struct ctx *c, const char *type, json_t *v,
                        uint8_t w[32], const char *field, int depth) {
  size_t bl = base_len(type);
  int rc = 0;
  if (depth > TEEX_EIP712_MAX_DEPTH)
    return teex_err_set(c->err, TEEX_EFORMAT,
                        "EIP-712: value nests too deeply");
  if (type[bl] == '[') {
    /* Arrays: keccak of the concatenated encodings of the elements. The
     * last suffix is the outermost dimension. */
    const char *last = strrchr(type, '[');
    char inner[256];
    size_t il = (size_t)(last - type), fixed = 0, i;
    json_t *e;
    struct teex_keccak_ctx k;
    if (il >= sizeof inner)
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: type too long");
    memcpy(inner, type, il);
    inner[il] = 0;
    if (last[1] != ']') {
      uint64_t n64;
      char num[16];
      size_t nl = strcspn(last + 1, "]");
      if (nl == 0 || nl >= sizeof num || last[1 + nl] != ']' || last[2 + nl])
        return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: bad type %.64s",
                            type);
      memcpy(num, last + 1, nl);
      num[nl] = 0;
      if (teex_u256_parse(num, w) != 0 || teex_u256_to_u64(w, &n64) != 0 ||
          n64 == 0)
        return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: bad type %.64s",
                            type);
      fixed = (size_t)n64;
    } else if (last[2]) {
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: bad type %.64s",
                          type);
    }
    if (!json_is_array(v))
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not an array",
                          field);
    if (fixed && json_array_size(v) != fixed)
      return teex_err_set(c->err, TEEX_EFORMAT,
                          "EIP-712: %s needs %zu elements", field, fixed);
    teex_keccak256_init(&k);
    json_array_foreach(v, i, e) {
      uint8_t ew[32];
      if ((rc = encode_field(c, inner, e, ew, field, depth + 1)) != 0)
        return rc;
      teex_keccak256_update(&k, ew, 32);
    }
    teex_keccak256_final(&k, w);
    return 0;
  }
  if (struct_fields(c, type, bl))
    return hash_struct(c, type, v, w, depth + 1);
  if (strcmp(type, "string") == 0) {
    const char *s = json_string_value(v);
    if (!s)
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not a string",
                          field);
    teex_keccak256(s, json_string_length(v), w);
    return 0;
  }
  if (strcmp(type, "bytes") == 0) {
    uint8_t *p = NULL;
    size_t n = 0;
    if ((rc = hex_value(c, v, &p, &n, field)) != 0)
      return rc;
    teex_keccak256(p, n, w);
    free(p);
    return 0;
  }
  struct teex_abi_type *t = NULL;
  if (teex_abi_type_parse(type, &t, NULL) != 0 ||
      t->kind > TEEX_ABI_FIXED_BYTES) {
    teex_abi_type_free(t);
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: unknown type %.64s",
                        type);
  }
  memset(w, 0, 32);
  switch (t->kind) {
  case TEEX_ABI_BOOL:
    if (!json_is_boolean(v))
      rc = teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not a bool",
                        field);
    else
      w[31] = json_is_true(v);
    break;
  case TEEX_ABI_ADDRESS: {
    const char *s = json_string_value(v);
    if (!s || teex_eth_address_parse(s, w + 12) != 0)
      rc = teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s is not an address",
                        field);
    break;
  }
  case TEEX_ABI_FIXED_BYTES: {
    uint8_t *p = NULL;
    size_t n = 0;
    if ((rc = hex_value(c, v, &p, &n, field)) != 0)
      break;
    if (n != t->bits)
      rc = teex_err_set(c->err, TEEX_EFORMAT,
                        "EIP-712: %s needs %u bytes, got %zu", field, t->bits,
                        n);
    else
      memcpy(w, p, n);
    free(p);
    break;
  }
  default: { /* UINT / INT: range-check through the ABI word rules */
    struct teex_abi_value av = {0};
    struct teex_buf tmp;
    if ((rc = json_word(c, v, t->kind == TEEX_ABI_INT, w, field)) != 0)
      break;
    av.kind = t->kind;
    memcpy(av.word, w, 32);
    teex_buf_init(&tmp, 64, 0);
    if (teex_abi_encode(t, &av, &tmp, NULL) != 0)
      rc = teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s out of range for %s",
                        field, type);
    teex_buf_free(&tmp);
    break;
  }
  }
  teex_abi_type_free(t);
  return rc;
}

static int hash_struct(struct ctx *c, const char *name, json_t *data,
                       uint8_t out[32], int depth) {
  char enc[4096], nm[TEEX_ABI_MAX_NAME];
  size_t bl = base_len(name), i;
  json_t *fields = struct_fields(c, name, bl), *f;
  struct teex_keccak_ctx k;
  uint8_t th[32];
  int rc;
  if (!fields || bl >= sizeof nm)
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: unknown type");
  memcpy(nm, name, bl);
  nm[bl] = 0;
  if (!json_is_object(data))
    return teex_err_set(c->err, TEEX_EFORMAT,
                        "EIP-712: %s value is not an object", nm);
  if ((rc = encode_type(c, nm, enc, sizeof enc)) != 0)
    return rc;
  teex_keccak256(enc, strlen(enc), th);
  teex_keccak256_init(&k);
  teex_keccak256_update(&k, th, 32);
  json_array_foreach(fields, i, f) {
    const char *fname = json_string_value(json_object_get(f, "name"));
    const char *ftype = json_string_value(json_object_get(f, "type"));
    json_t *v = json_object_get(data, fname);
    uint8_t w[32];
    if (!v) {
      return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: %s.%s is missing", nm,
                          fname);
    }
    if ((rc = encode_field(c, ftype, v, w, fname, depth)) != 0)
      return rc;
    teex_keccak256_update(&k, w, 32);
  }
  teex_keccak256_final(&k, out);
  return 0;
}

/* Loads the document and makes sure types.EIP712Domain exists. */
static int load(const char *json, json_t **doc, struct ctx *c) {
  json_error_t je;
  size_t n = strlen(json);
  if (n > TEEX_EIP712_MAX_JSON)
    return teex_err_set(c->err, TEEX_ETOOBIG, "EIP-712: document too large");
  *doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
  if (!*doc)
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: bad JSON: %s", je.text);
  c->types = json_object_get(*doc, "types");
  if (!json_is_object(c->types))
    return teex_err_set(c->err, TEEX_EFORMAT, "EIP-712: no types object");
  if (!json_object_get(c->types, "EIP712Domain")) {
    static const char *const dn[] = {"name", "version", "chainId",
                                     "verifyingContract", "salt"};
    static const char *const dt[] = {"string", "string", "uint256", "address",
                                     "bytes32"};
    json_t *domain = json_object_get(*doc, "domain"), *arr = json_array();
    for (size_t i = 0; i < 5 && arr; i++)
      if (json_object_get(domain, dn[i]))
        json_array_append_new(
            arr, json_pack("{s:s,s:s}", "name", dn[i], "type", dt[i]));
    if (!arr)
      return teex_err_set(c->err, TEEX_ENOMEM, NULL);
    json_object_set_new(c->types, "EIP712Domain", arr);
  }
  return 0;
}

int teex_eip712_hash_parts(const char *json, uint8_t domain_separator[32],
                           uint8_t message_hash[32], struct teex_err *err) {
  struct ctx c = {NULL, err};
  json_t *doc = NULL;
  int rc = load(json, &doc, &c);
  if (rc != 0)
    goto done;
  const char *primary = json_string_value(json_object_get(doc, "primaryType"));
  if (!primary) {
    rc = teex_err_set(err, TEEX_EFORMAT, "EIP-712: no primaryType");
    goto done;
  }
  if ((rc = hash_struct(&c, "EIP712Domain", json_object_get(doc, "domain"),
                        domain_separator, 0)) != 0)
    goto done;
  rc = hash_struct(&c, primary, json_object_get(doc, "message"), message_hash,
                   0);
done:
  json_decref(doc);
  return rc;
}

int teex_eip712_hash(const char *json, uint8_t digest[32],
                     struct teex_err *err) {
  uint8_t ds[32], mh[32];
  int rc = teex_eip712_hash_parts(json, ds, mh, err);
  if (rc == 0)
    teex_eip712_digest(ds, mh, digest);
  return rc;
}

int teex_eip712_encode_type(const char *typed_json, const char *primary,
                            char *out, size_t cap, struct teex_err *err) {
  struct ctx c = {NULL, err};
  json_t *doc = NULL;
  int rc = load(typed_json, &doc, &c);
  if (rc == 0)
    rc = encode_type(&c, primary, out, cap);
  json_decref(doc);
  return rc;
}

void teex_eip712_digest(const uint8_t domain_separator[32],
                        const uint8_t struct_hash[32], uint8_t digest[32]) {
  uint8_t m[66] = {0x19, 0x01};
  memcpy(m + 2, domain_separator, 32);
  memcpy(m + 34, struct_hash, 32);
  teex_keccak256(m, sizeof m, digest);
}

int teex_eip712_sign(const uint8_t sk[32], const uint8_t digest[32],
                     uint8_t sig[65]) {
  int rc = teex_secp256k1_sign(sk, digest, sig);
  if (rc == 0)
    sig[64] += 27;
  return rc;
}

int teex_eip712_recover(const uint8_t digest[32], const uint8_t sig[65],
                        uint8_t addr[20]) {
  return teex_eth_recover_address(digest, sig, addr);
}
