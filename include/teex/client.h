/* The user's side of invoking a service (docs/network.md "Clients"): a
 * blocking connection to a worker whose RA-TLS evidence is checked against
 * a policy, the worker.Hello proof that it holds the service key on this
 * very session, and worker.Run with the checks of everything the worker
 * returns (the result signature by the service key, the output commitment,
 * the receipt and its signature by the worker's attested enclave key).
 *
 * The assignment comes from the dispatcher (dispatcher.Submit); until the
 * dispatcher client lands here, the caller supplies it (`teex invoke
 * --assignment FILE`). */
#ifndef TEEX_CLIENT_H
#define TEEX_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"
#include "teex/settle.h"
#include "teex/statements.h"
#include "teex/tee_policy.h"

struct teex_client_worker;

/* Connects to the worker at addr ("host:port") and verifies its RA-TLS
 * evidence against policy (which should pin role "worker" and the worker
 * measurements the network allows; borrowed until close). *out is owned by
 * the caller (teex_client_close). TEEX_ECONN / TEEX_ETIMEDOUT / the
 * verifier's code (TEEX_EPOLICY ...), reason in err. */
int teex_client_connect(const char *addr, const struct teex_tee_policy *policy,
                        uint32_t timeout_ms, struct teex_client_worker **out,
                        struct teex_err *err);

/* The worker's attested enclave address (from its verified evidence). */
void teex_client_worker_address(const struct teex_client_worker *c,
                                uint8_t addr[20]);

/* worker.Hello: asks the worker to prove it holds the service key for
 * (service_id, image_hash) on this session; checks the signature over the
 * session's exporter recovers to signing_key (the listed service key
 * address). TEEX_EBADSIG when it does not; the worker's error otherwise
 * (for example when it cannot get the keys). */
int teex_client_hello(struct teex_client_worker *c,
                      const uint8_t service_id[32],
                      const uint8_t image_hash[32],
                      const uint8_t signing_key[20], struct teex_err *err);

/* What a task returned, checked. Owned by the caller:
 * teex_client_result_free. */
#define TEEX_CLIENT_MAX_DATASETS 16 /* = TEEX_EXEC_DATASETS_MAX */

struct teex_client_result {
  uint8_t *output; /* the service's output (wiped on free) */
  size_t output_len;
  uint8_t input_salt[32];
  uint8_t output_salt[32];
  uint8_t result_sig[65];      /* service key over teex_stmt_result_digest */
  struct teex_receipt receipt; /* settlement v1 receipt; shares -> shares */
  uint8_t receipt_sig[65];     /* worker enclave key over the receipt digest */
  uint64_t duration_us;        /* time in the worker's executor */
  struct teex_data_share shares[TEEX_CLIENT_MAX_DATASETS];
};

/* What the user knows and expects of a task: checked against the worker's
 * answer. */
struct teex_client_expect {
  uint8_t signing_key[20];       /* the listed service key address */
  struct teex_domain settlement; /* receipt EIP-712 domain */
  /* The task's datasets, in order, each with its provider and listed price:
   * their ids go to the worker with the assignment (whose datasets_hash
   * covers them) and the receipt's data shares must be exactly these.
   * NULL / 0 for a task without datasets. */
  const struct teex_data_share *shares;
  size_t nshares;
};

/* worker.Run: sends the assignment (with the dispatcher's signature) and
 * input under a fresh random salt, then checks the answer with
 * teex_client_check_result. out is filled only on success. The worker's
 * refusal or the task's failure comes back as its code and message
 * (TEEX_EREMOTE for a service that raised, TEEX_ETIMEDOUT, TEEX_EREPLAY,
 * TEEX_EEXPIRED ...). */
int teex_client_run(struct teex_client_worker *c,
                    const struct teex_assignment *a,
                    const uint8_t dispatcher_sig[65],
                    const struct teex_client_expect *ex, const uint8_t *input,
                    size_t input_len, struct teex_client_result *out,
                    struct teex_err *err);

/* Checks a result against the assignment, the input and what the user
 * expects: the output commitment, the service key's result signature, the
 * receipt's fields (task, service, image, user, dispatcher, worker = the
 * attested address `worker`, commitments, price, split) and the worker's
 * receipt signature. Pure. TEEX_EBADSIG / TEEX_EAUTH with the reason. */
int teex_client_check_result(const struct teex_assignment *a,
                             const uint8_t worker[20],
                             const struct teex_client_expect *ex,
                             const uint8_t *input, size_t input_len,
                             const struct teex_client_result *r,
                             struct teex_err *err);

void teex_client_result_free(struct teex_client_result *r); /* NULL-safe */
void teex_client_close(struct teex_client_worker *c);       /* NULL-safe */

#endif
