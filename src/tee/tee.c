/* The TEE context and evidence verification, independent of any backend
 * (include/teex/tee.h). Backends are looked up in one table. */
#include "teex/tee.h"

#include "tee/tee_internal.h"
#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/harden.h"
#include "teex/mem.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every backend teex knows. Adding SGX-DCAP or TDX means adding a line. */
static const struct teex_tee_backend *const backends[] = {
    &teex_tee_sim_backend,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

const struct teex_tee_backend *teex_tee_backend_by_type(uint16_t tee_type) {
  for (size_t i = 0; i < N_BACKENDS; i++)
    if (backends[i]->tee_type == tee_type)
      return backends[i];
  return NULL;
}

const struct teex_tee_backend *teex_tee_backend_by_name(const char *name) {
  for (size_t i = 0; i < N_BACKENDS; i++)
    if (strcmp(backends[i]->name, name) == 0)
      return backends[i];
  return NULL;
}

const char *teex_tee_type_name(uint16_t tee_type) {
  switch (tee_type) {
  case TEEX_TEE_TYPE_SIM:
    return "sim (SIMULATED, not hardware)";
  case TEEX_TEE_TYPE_SGX_DCAP:
    return "sgx-dcap";
  case TEEX_TEE_TYPE_TDX:
    return "tdx";
  default:
    return "unknown";
  }
}

int teex_tee_open(const struct teex_tee_config *cfg, struct teex_tee **out,
                  struct teex_err *err) {
  *out = NULL;
  const char *name = cfg->backend ? cfg->backend : "sim";
  const struct teex_tee_backend *be = teex_tee_backend_by_name(name);
  if (be == NULL)
    return teex_err_set(err, TEEX_EUNSUPPORTED, "tee backend %s unknown", name);
  if (!teex_tee_role_valid(cfg->role))
    return teex_err_set(err, TEEX_EINVAL,
                        "role \"%s\" is not a name ([a-z0-9_-], 1..31)",
                        cfg->role ? cfg->role : "");
  if (teex_crypto_init() != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "cannot initialise crypto");
  if (cfg->harden && teex_harden_process(0, err) != 0)
    return teex_err_wrap(err, 0, "tee %s", name);
  struct teex_tee *tee = calloc(1, sizeof *tee);
  if (tee == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  tee->backend = be;
  int rc = be->open(tee, cfg, err);
  if (rc != 0)
    goto fail_after_alloc;
  rc = be->measure(tee, &tee->self, err);
  if (rc != 0)
    goto fail_after_open;
  *out = tee;
  return 0;
fail_after_open:
  be->close(tee);
fail_after_alloc:
  free(tee);
  return teex_err_wrap(err, rc, "tee %s", name);
}

void teex_tee_close(struct teex_tee *tee) {
  if (tee == NULL)
    return;
  tee->backend->close(tee);
  teex_wipe(tee, sizeof *tee);
  free(tee);
}

const struct teex_tee_identity *teex_tee_self(const struct teex_tee *tee) {
  return &tee->self;
}

int teex_tee_quote(struct teex_tee *tee, const uint8_t rd[64],
                   uint64_t issued_at, const struct teex_tee_binding *binding,
                   struct teex_buf *out, struct teex_err *err) {
  uint8_t enc[TEEX_TEE_BINDING_MAX];
  size_t enc_len = 0;
  if (binding != NULL) {
    if (teex_tee_binding_encode(binding, enc, &enc_len) != 0)
      return teex_err_set(err, TEEX_EINVAL, "quote: binding role invalid");
    if (strcmp(binding->role, tee->self.role) != 0 ||
        binding->issued_at != issued_at)
      return teex_err_set(err, TEEX_EINVAL,
                          "quote: binding role or time differs from the "
                          "quote's");
    if (teex_tee_report_data_check(binding, rd, err) != 0)
      return teex_err_wrap(err, TEEX_EINVAL, "quote");
  }
  struct teex_buf body;
  teex_buf_init(&body, TEEX_EVIDENCE_BODY_MAX, 0);
  int rc = tee->backend->quote(tee, issued_at, rd, &body, err);
  if (rc == 0) {
    rc = teex_evidence_encode(tee->backend->tee_type, body.data, body.len,
                              binding ? enc : NULL, enc_len, out);
    if (rc != 0)
      teex_err_set(err, rc, "quote: evidence does not fit");
  } else {
    teex_err_wrap(err, 0, "quote");
  }
  teex_buf_free(&body);
  return rc;
}

int teex_tee_quote_binding(struct teex_tee *tee, struct teex_tee_binding *b,
                           struct teex_buf *out, struct teex_err *err) {
  memcpy(b->role, tee->self.role, sizeof b->role);
  b->issued_at = (uint64_t)time(NULL);
  uint8_t rd[TEEX_TEE_REPORT_DATA_LEN];
  if (teex_tee_report_data(b, rd) != 0)
    return teex_err_set(err, TEEX_EINVAL, "quote: role invalid");
  return teex_tee_quote(tee, rd, b->issued_at, b, out, err);
}

int teex_tee_seal_key(struct teex_tee *tee, enum teex_seal_policy policy,
                      uint16_t svn, uint8_t key[32], struct teex_err *err) {
  if (policy != TEEX_SEAL_ENCLAVE && policy != TEEX_SEAL_SIGNER)
    return teex_err_set(err, TEEX_EINVAL, "unknown sealing policy %d",
                        (int)policy);
  if (policy == TEEX_SEAL_SIGNER && svn > tee->self.svn)
    return teex_err_set(err, TEEX_EPERM,
                        "sealing key for svn %u refused: own svn is %u "
                        "(an older version cannot read a newer one's data)",
                        svn, tee->self.svn);
  return tee->backend->seal_key(tee, policy, svn, key, err);
}

static void short_hex(const uint8_t h[32], char out[17]) {
  teex_hex_encode(h, 8, out);
}

/* The policy rules of include/teex/tee_policy.h, in a fixed order so each
 * failure gives one reason. */
static int check_policy(const struct teex_tee_policy *p,
                        const struct teex_tee_identity *id,
                        const uint8_t *nonce, uint64_t now,
                        struct teex_err *err) {
  char hx[17];
  if (p->n_measurements == 0 && p->n_signers == 0 && !p->allow_any_code)
    return teex_err_set(err, TEEX_EPOLICY,
                        "policy allows no measurement and no signer");
  if (p->n_measurements > 0) {
    int ok = 0;
    for (size_t i = 0; i < p->n_measurements && !ok; i++)
      ok = memcmp(p->measurements[i], id->mr_enclave, 32) == 0;
    if (!ok) {
      short_hex(id->mr_enclave, hx);
      return teex_err_set(err, TEEX_EPOLICY,
                          "wrong measurement: mr_enclave %s... is not "
                          "allowed by the policy",
                          hx);
    }
  }
  if (p->n_signers > 0) {
    int signer_ok = 0, svn_ok = 0;
    uint16_t need = 0;
    for (size_t i = 0; i < p->n_signers && !svn_ok; i++) {
      const struct teex_tee_signer *s = &p->signers[i];
      if (memcmp(s->mr_signer, id->mr_signer, 32) != 0 ||
          (!s->any_product && s->product_id != id->product_id))
        continue;
      signer_ok = 1;
      need = s->min_svn;
      svn_ok = id->svn >= s->min_svn;
    }
    if (!signer_ok) {
      short_hex(id->mr_signer, hx);
      return teex_err_set(err, TEEX_EPOLICY,
                          "wrong signer: mr_signer %s... product %u is not "
                          "allowed by the policy",
                          hx, id->product_id);
    }
    if (!svn_ok)
      return teex_err_set(err, TEEX_EPOLICY,
                          "svn too low: svn %u is below the policy minimum %u",
                          id->svn, need);
  }
  if (id->debug && !p->allow_debug)
    return teex_err_set(err, TEEX_EPOLICY, "debug enclave forbidden by policy");
  if (p->n_roles > 0) {
    int ok = 0;
    for (size_t i = 0; i < p->n_roles && !ok; i++)
      ok = strcmp(p->roles[i], id->role) == 0;
    if (!ok)
      return teex_err_set(err, TEEX_EPOLICY,
                          "wrong role: %s is not allowed by the policy",
                          id->role);
  }
  if (id->issued_at > now && id->issued_at - now > TEEX_TEE_CLOCK_SKEW)
    return teex_err_set(err, TEEX_EEXPIRED,
                        "evidence issued %" PRIu64 " s in the future",
                        id->issued_at - now);
  if (p->max_age != 0 && now > id->issued_at &&
      now - id->issued_at > p->max_age)
    return teex_err_set(err, TEEX_EEXPIRED,
                        "evidence expired: issued %" PRIu64
                        " s ago, policy max_age is %" PRIu64 " s",
                        now - id->issued_at, p->max_age);
  if (nonce != NULL) {
    if (!id->has_binding || !id->binding.has_nonce)
      return teex_err_set(err, TEEX_EREPLAY,
                          "nonce mismatch: evidence carries no nonce");
    if (!teex_ct_equal(id->binding.nonce, nonce, TEEX_TEE_NONCE_LEN))
      return teex_err_set(err, TEEX_EREPLAY,
                          "nonce mismatch: evidence was made for another "
                          "challenge");
  }
  return 0;
}

int teex_tee_verify(const uint8_t *ev, size_t ev_len,
                    const struct teex_tee_policy *policy, const uint8_t *nonce,
                    uint64_t now, struct teex_tee_identity *out,
                    struct teex_err *err) {
  struct teex_tee_identity id;
  memset(&id, 0, sizeof id);
  struct teex_evidence e;
  int rc = teex_evidence_parse(ev, ev_len, &e, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "malformed evidence");
  const struct teex_tee_backend *be = teex_tee_backend_by_type(e.tee_type);
  if (be == NULL)
    return teex_err_set(err, TEEX_EATTEST,
                        "evidence has unknown tee type 0x%04x", e.tee_type);
  if ((e.tee_type & TEEX_TEE_TYPE_SIMULATED_BIT) && !policy->allow_simulated)
    return teex_err_set(err, TEEX_EPOLICY,
                        "simulated evidence not allowed by policy");
  rc = be->verify_body(e.body, e.body_len, policy, &id, err);
  if (rc != 0)
    return rc;
  id.tee_type = e.tee_type;
  id.simulated = (e.tee_type & TEEX_TEE_TYPE_SIMULATED_BIT) != 0;
  if (e.binding_len > 0) {
    rc = teex_tee_binding_decode(e.binding, e.binding_len, &id.binding, err);
    if (rc != 0)
      return teex_err_wrap(err, TEEX_EATTEST, "malformed evidence binding");
    rc = teex_tee_report_data_check(&id.binding, id.report_data, err);
    if (rc != 0)
      return rc;
    if (strcmp(id.binding.role, id.role) != 0 ||
        id.binding.issued_at != id.issued_at)
      return teex_err_set(err, TEEX_EATTEST,
                          "binding role or issue time differs from the "
                          "attested one");
    id.has_binding = 1;
  }
  rc = check_policy(policy, &id, nonce, now, err);
  if (rc != 0)
    return rc;
  if (out != NULL)
    *out = id;
  return 0;
}
