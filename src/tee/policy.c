/* Attestation policy tables and the policy file (include/teex/tee_policy.h).
 */
#include "teex/tee_policy.h"

#include "teex/crypto.h"
#include "teex/tee.h"

#include <string.h>

void teex_tee_policy_init(struct teex_tee_policy *p) {
  memset(p, 0, sizeof *p);
  p->max_age = TEEX_POLICY_DEFAULT_MAX_AGE;
}

int teex_tee_policy_add_root(struct teex_tee_policy *p,
                             const uint8_t root[32]) {
  if (p->n_roots == TEEX_POLICY_MAX_ROOTS)
    return TEEX_ETOOBIG;
  memcpy(p->roots[p->n_roots++], root, 32);
  return 0;
}

int teex_tee_policy_add_measurement(struct teex_tee_policy *p,
                                    const uint8_t mr_enclave[32]) {
  if (p->n_measurements == TEEX_POLICY_MAX_MEASUREMENTS)
    return TEEX_ETOOBIG;
  memcpy(p->measurements[p->n_measurements++], mr_enclave, 32);
  return 0;
}

int teex_tee_policy_add_signer(struct teex_tee_policy *p,
                               const struct teex_tee_signer *s) {
  if (p->n_signers == TEEX_POLICY_MAX_SIGNERS)
    return TEEX_ETOOBIG;
  p->signers[p->n_signers++] = *s;
  return 0;
}

int teex_tee_policy_add_role(struct teex_tee_policy *p, const char *role) {
  if (!teex_tee_role_valid(role))
    return TEEX_EINVAL;
  if (p->n_roles == TEEX_POLICY_MAX_ROLES)
    return TEEX_ETOOBIG;
  memcpy(p->roles[p->n_roles++], role, strlen(role) + 1);
  return 0;
}

static int parse_hash(const char *s, uint8_t out[32]) {
  size_t n;
  if (strlen(s) != 64 || teex_hex_decode(s, out, 32, &n) != 0 || n != 32)
    return TEEX_EINVAL;
  return 0;
}

/* Splits s at separator characters; calls fn on each non-empty token
 * (copied into a bounded buffer). */
static int each_token(const char *s, const char *seps,
                      int (*fn)(const char *tok, void *arg), void *arg) {
  char tok[TEEX_CONFIG_VALUE_MAX + 1];
  while (*s != '\0') {
    size_t skip = strspn(s, seps);
    s += skip;
    size_t n = strcspn(s, seps);
    if (n == 0)
      break;
    if (n >= sizeof tok)
      return TEEX_ETOOBIG;
    memcpy(tok, s, n);
    tok[n] = '\0';
    int rc = fn(tok, arg);
    if (rc != 0)
      return rc;
    s += n;
  }
  return 0;
}

static int add_role_tok(const char *tok, void *arg) {
  return teex_tee_policy_add_role(arg, tok);
}

/* "mr_signer product|* min_svn" */
static int parse_signer(const char *v, struct teex_tee_signer *s) {
  char hex[65], prod[16], svn[16];
  memset(s, 0, sizeof *s);
  size_t n = strcspn(v, " \t");
  if (n != 64)
    return TEEX_EINVAL;
  memcpy(hex, v, 64);
  hex[64] = '\0';
  v += n + strspn(v + n, " \t");
  n = strcspn(v, " \t");
  if (n == 0 || n >= sizeof prod)
    return TEEX_EINVAL;
  memcpy(prod, v, n);
  prod[n] = '\0';
  v += n + strspn(v + n, " \t");
  n = strcspn(v, " \t");
  if (n == 0 || n >= sizeof svn || v[n + strspn(v + n, " \t")] != '\0')
    return TEEX_EINVAL;
  memcpy(svn, v, n);
  svn[n] = '\0';
  uint64_t x;
  if (parse_hash(hex, s->mr_signer) != 0)
    return TEEX_EINVAL;
  if (strcmp(prod, "*") == 0) {
    s->any_product = 1;
  } else {
    if (teex_parse_u64(prod, &x) != 0 || x > 0xffff)
      return TEEX_EINVAL;
    s->product_id = (uint16_t)x;
  }
  if (teex_parse_u64(svn, &x) != 0 || x > 0xffff)
    return TEEX_EINVAL;
  s->min_svn = (uint16_t)x;
  return 0;
}

int teex_tee_policy_from_config(struct teex_tee_policy *p,
                                const struct teex_config *c,
                                struct teex_err *err) {
  for (size_t i = 0; i < c->count; i++) {
    const char *k = c->entries[i].key, *v = c->entries[i].value;
    int rc = 0;
    uint8_t h[32];
    if (strncmp(k, "roots.", 6) == 0) {
      if (parse_hash(v, h) != 0)
        return teex_err_set(err, TEEX_ECONFIG,
                            "policy %s: expected 64 hex digits", k);
      rc = teex_tee_policy_add_root(p, h);
    } else if (strncmp(k, "measurements.", 13) == 0) {
      if (parse_hash(v, h) != 0)
        return teex_err_set(err, TEEX_ECONFIG,
                            "policy %s: expected 64 hex digits", k);
      rc = teex_tee_policy_add_measurement(p, h);
    } else if (strncmp(k, "signers.", 8) == 0) {
      struct teex_tee_signer s;
      if (parse_signer(v, &s) != 0)
        return teex_err_set(err, TEEX_ECONFIG,
                            "policy %s: expected \"<64 hex> <product|*> "
                            "<min_svn>\"",
                            k);
      rc = teex_tee_policy_add_signer(p, &s);
    } else if (strcmp(k, "policy.roles") == 0) {
      rc = each_token(v, ", \t", add_role_tok, p);
      if (rc == TEEX_EINVAL)
        return teex_err_set(err, TEEX_ECONFIG,
                            "policy %s: a role is not a name [a-z0-9_-]", k);
    } else if (strcmp(k, "policy.allow_debug") == 0 ||
               strcmp(k, "policy.allow_simulated") == 0 ||
               strcmp(k, "policy.allow_any_code") == 0) {
      int b;
      if (teex_config_get_bool(c, k, 0, &b, err) != 0)
        return teex_err_wrap(err, TEEX_ECONFIG, "policy");
      if (k[13] == 'd')
        p->allow_debug = b;
      else if (k[13] == 's')
        p->allow_simulated = b;
      else
        p->allow_any_code = b;
    } else if (strcmp(k, "policy.max_age") == 0) {
      if (teex_config_get_u64(c, k, 0, &p->max_age, err) != 0)
        return teex_err_wrap(err, TEEX_ECONFIG, "policy");
    } else {
      return teex_err_set(err, TEEX_ECONFIG, "policy: unknown key %s", k);
    }
    if (rc == TEEX_ETOOBIG)
      return teex_err_set(err, TEEX_ECONFIG, "policy %s: too many entries", k);
    if (rc != 0)
      return teex_err_set(err, TEEX_ECONFIG, "policy %s: invalid", k);
  }
  return 0;
}

int teex_tee_policy_parse(struct teex_tee_policy *p, const char *text,
                          size_t len, struct teex_err *err) {
  struct teex_config c;
  teex_config_init(&c);
  int rc = teex_config_parse(&c, text, len, err);
  if (rc == 0)
    rc = teex_tee_policy_from_config(p, &c, err);
  teex_config_free(&c);
  return rc;
}

int teex_tee_policy_load(struct teex_tee_policy *p, const char *path,
                         struct teex_err *err) {
  struct teex_config c;
  teex_config_init(&c);
  int rc = teex_config_load(&c, path, err);
  if (rc == 0)
    rc = teex_tee_policy_from_config(p, &c, err);
  if (rc != 0)
    teex_err_wrap(err, 0, "policy file %s", path);
  teex_config_free(&c);
  return rc;
}
