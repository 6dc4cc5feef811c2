/* Attestation policy: which evidence a verifier accepts — trusted roots,
 * allowed measurements, allowed signers with a minimum svn, roles, debug,
 * simulated evidence and maximum age. A policy is plain data, filled in code
 * or parsed from a policy file (format below and in docs/attestation.md):
 *
 *   [policy]
 *   roles = worker, sm          # empty or absent: any role
 *   allow_debug = false         # default false
 *   allow_simulated = true      # default false
 *   max_age = 86400             # seconds; 0 = no limit; default 86400
 *   allow_any_code = false      # true: no measurement/signer pinned
 *   [roots]                     # label = 64 hex digits
 *   devnet = 6f1c...
 *   [measurements]              # label = mr_enclave (64 hex digits)
 *   worker-1.2 = 9a0b...
 *   [signers]                   # label = mr_signer product_id|* min_svn
 *   teex = 5d2e... 1 3
 */
#ifndef TEEX_TEE_POLICY_H
#define TEEX_TEE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "teex/config.h"
#include "teex/error.h"

#define TEEX_POLICY_MAX_ROOTS 8
#define TEEX_POLICY_MAX_MEASUREMENTS 64
#define TEEX_POLICY_MAX_SIGNERS 16
#define TEEX_POLICY_MAX_ROLES 16
#define TEEX_POLICY_DEFAULT_MAX_AGE 86400

struct teex_tee_signer {
  uint8_t mr_signer[32];
  int any_product;
  uint16_t product_id;
  uint16_t min_svn;
};

/* Rules, all of which must hold:
 *  - the evidence chains to one of roots (sim: the network root's Ed25519
 *    public key; hardware: SHA-256 of the vendor root CA certificate);
 *  - simulated evidence only when allow_simulated;
 *  - mr_enclave in measurements, when any are listed;
 *  - mr_signer equal to a listed signer (same product unless any_product)
 *    with svn >= its min_svn, when any signers are listed;
 *  - with neither measurements nor signers listed, allow_any_code must be set
 *    (otherwise every piece of evidence is refused);
 *  - debug only when allow_debug;
 *  - role in roles, when any are listed;
 *  - now - issued_at <= max_age (0: no limit), issued_at <= now + skew. */
struct teex_tee_policy {
  uint8_t roots[TEEX_POLICY_MAX_ROOTS][32];
  size_t n_roots;
  uint8_t measurements[TEEX_POLICY_MAX_MEASUREMENTS][32];
  size_t n_measurements;
  struct teex_tee_signer signers[TEEX_POLICY_MAX_SIGNERS];
  size_t n_signers;
  char roles[TEEX_POLICY_MAX_ROLES][32];
  size_t n_roles;
  int allow_debug;
  int allow_simulated;
  int allow_any_code;
  uint64_t max_age; /* seconds, 0 = unlimited */
};

/* An empty policy that refuses everything: no roots, max_age default. */
void teex_tee_policy_init(struct teex_tee_policy *p);

/* Adders; TEEX_ETOOBIG when the table is full, TEEX_EINVAL for a bad
 * role name. */
int teex_tee_policy_add_root(struct teex_tee_policy *p, const uint8_t root[32]);
int teex_tee_policy_add_measurement(struct teex_tee_policy *p,
                                    const uint8_t mr_enclave[32]);
int teex_tee_policy_add_signer(struct teex_tee_policy *p,
                               const struct teex_tee_signer *s);
int teex_tee_policy_add_role(struct teex_tee_policy *p, const char *role);

/* Fills p (after teex_tee_policy_init) from a parsed config. Unknown keys
 * and sections are errors (a typo must not silently loosen a policy).
 * TEEX_ECONFIG with the key named in err. */
int teex_tee_policy_from_config(struct teex_tee_policy *p,
                                const struct teex_config *c,
                                struct teex_err *err);

/* Parses policy file text / loads a policy file. */
int teex_tee_policy_parse(struct teex_tee_policy *p, const char *text,
                          size_t len, struct teex_err *err);
int teex_tee_policy_load(struct teex_tee_policy *p, const char *path,
                         struct teex_err *err);

#endif
