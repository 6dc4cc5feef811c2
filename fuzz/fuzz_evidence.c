/* libFuzzer harness: the evidence container, the sim quote body and the
 * report-data binding, through teex_tee_verify. The policy trusts the root
 * named in the input itself (when long enough), so inputs get past the root
 * check into signature verification, binding decoding and policy rules. */
#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/tee.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIM_ROOT_OFFSET (TEEX_EVIDENCE_HEADER_LEN + 174)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready)
    ready = teex_crypto_init() == 0;
  struct teex_tee_policy p;
  teex_tee_policy_init(&p);
  p.allow_simulated = 1;
  p.allow_any_code = 1;
  p.allow_debug = 1;
  p.max_age = 0;
  if (size >= SIM_ROOT_OFFSET + 32)
    teex_tee_policy_add_root(&p, data + SIM_ROOT_OFFSET);
  struct teex_err err;
  struct teex_tee_identity id;
  uint8_t nonce[TEEX_TEE_NONCE_LEN] = {0};
  (void)teex_tee_verify(data, size, &p, NULL, 1800000000, &id, &err);
  (void)teex_tee_verify(data, size, &p, nonce, 1800000000, &id, &err);
  struct teex_evidence ev;
  if (teex_evidence_parse(data, size, &ev, &err) == 0 && ev.binding_len) {
    struct teex_tee_binding b;
    if (teex_tee_binding_decode(ev.binding, ev.binding_len, &b, &err) == 0) {
      /* A decoded binding re-encodes to the same bytes (canonical). */
      uint8_t enc[TEEX_TEE_BINDING_MAX];
      size_t n;
      if (teex_tee_binding_encode(&b, enc, &n) != 0 || n != ev.binding_len ||
          memcmp(enc, ev.binding, n) != 0)
        __builtin_trap();
    }
  }
  return 0;
}
