/* libFuzzer harness: the attestation policy file parser. */
#include "teex/tee_policy.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_tee_policy p;
  struct teex_err err;
  teex_tee_policy_init(&p);
  if (teex_tee_policy_parse(&p, (const char *)data, size, &err) == 0) {
    if (p.n_roots > TEEX_POLICY_MAX_ROOTS ||
        p.n_measurements > TEEX_POLICY_MAX_MEASUREMENTS ||
        p.n_signers > TEEX_POLICY_MAX_SIGNERS ||
        p.n_roles > TEEX_POLICY_MAX_ROLES)
      __builtin_trap();
  }
  return 0;
}
