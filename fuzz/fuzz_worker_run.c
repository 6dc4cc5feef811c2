/* libFuzzer harness: the worker.Run request decoder and the assignment
 * check behind it (what a user's bytes reach before any work is done). A
 * decoded request must satisfy the decoder's bounds; the check must not
 * accept an assignment signed by nobody the worker trusts. */
#include "teex/executor.h"
#include "teex/worker.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_worker_run_req r;
  struct teex_err err;
  if (teex_worker_run_req_decode(data, size, &r, &err) != 0)
    return 0;
  if (r.input_len > TEEX_EXEC_INPUT_MAX || r.input_len > size)
    __builtin_trap();
  /* A worker trusting one fixed dispatcher address: a fuzzer cannot forge
   * its signature, so acceptance would be a bug. */
  static const uint8_t trusted[1][20] = {{0x01, 0x02, 0x03}};
  struct teex_worker_policy p = {.chain_id = r.assignment.chain_id,
                                 .dispatchers = trusted,
                                 .n_dispatchers = 1};
  memcpy(p.self, r.assignment.worker, 20);
  if (teex_worker_check_assignment(&p, &r.assignment, r.dispatcher_sig,
                                   r.assignment.expires_at - 1, &err) == 0)
    __builtin_trap();
  teex_worker_run_req_free(&r);
  return 0;
}
