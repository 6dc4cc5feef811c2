/* A user's side of the dispatcher (docs/network.md): what the next payment
 * authorisation builds on, submitting a signed authorisation for a task and
 * getting a verified assignment, and a task's status with its settlement
 * proof. Blocking calls over server-only RA-TLS (the user is not an
 * enclave; the dispatcher is, and its evidence is checked against a
 * policy). */
#ifndef TEEX_USER_H
#define TEEX_USER_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"
#include "teex/ledger.h"
#include "teex/statements.h"
#include "teex/tee_policy.h"

#define TEEX_USER_ENDPOINT_MAX 255

struct teex_user_dispatcher;

/* Connects to a dispatcher's user endpoint, verifying its evidence. */
int teex_user_dispatcher_connect(const char *addr,
                                 const struct teex_tee_policy *policy,
                                 struct teex_user_dispatcher **out,
                                 struct teex_err *err);
void teex_user_dispatcher_close(struct teex_user_dispatcher *d);

struct teex_user_base {
  teex_amount base;    /* sign the next task with cumulative = base + price */
  teex_amount escrow;  /* the user's escrow for this dispatcher */
  teex_amount settled; /* cumulative settled on chain */
  uint8_t dispatcher[20];
  struct teex_domain domain; /* chain id + Settlement: the EIP-712 domain */
};

int teex_user_base(struct teex_user_dispatcher *d, const uint8_t user[20],
                   struct teex_user_base *out, struct teex_err *err);

/* Signs a filled authorisation (user, dispatcher, task id, service, image,
 * datasets hash, price, cumulative) with the user's key (EIP-712). */
int teex_user_sign_auth(const struct teex_domain *domain,
                        struct teex_payment_auth *a, const uint8_t sk[32]);

struct teex_user_assignment {
  struct teex_assignment a;
  uint8_t signature[65];
  char endpoint[TEEX_USER_ENDPOINT_MAX + 1];
  int retry; /* the task was known: not charged again */
};

/* Submits the task. The assignment returned is checked: signed by the
 * dispatcher's address (from teex_user_base), and for exactly this user,
 * task, service, image, price and datasets. dataset_ids (32 * n_datasets
 * bytes, may be NULL when 0) are the ids auth->datasets_hash covers.
 * failed_worker (may be NULL) asks for another worker under the same task
 * id. */
int teex_user_submit(struct teex_user_dispatcher *d,
                     const struct teex_payment_auth *auth,
                     const uint8_t *dataset_ids, size_t n_datasets,
                     const uint8_t dispatcher[20], uint64_t deadline,
                     const uint8_t *failed_worker,
                     struct teex_user_assignment *out, struct teex_err *err);

struct teex_user_status {
  char state[16]; /* queued | assigned | earned | settled | failed */
  uint8_t worker[20];
  int has_receipt;             /* once earned */
  struct teex_receipt receipt; /* its data shares point at shares */
  struct teex_data_share shares[16];
  uint8_t receipt_sig[65];
  int settled;
  uint8_t batch_id[32];
  uint8_t root[32];
  uint8_t proof[40 * 32];
  size_t nproof;
  char cid[129];
};

int teex_user_status(struct teex_user_dispatcher *d, const uint8_t task_id[32],
                     struct teex_user_status *out, struct teex_err *err);

/* ---- the whole invocation ---- */

struct teex_invoke_request {
  const char *dispatcher; /* its user endpoint */
  /* An open connection to that dispatcher to use (and leave open), so that
   * several invocations share one RA-TLS session; NULL: connect to
   * `dispatcher` for this call only. */
  struct teex_user_dispatcher *conn;
  const struct teex_tee_policy *enclave_policy; /* dispatcher and workers */
  const char *chain_conf;                       /* the network's chain.conf */
  uint8_t service_id[32];
  int pin_image; /* 1: run exactly image_hash, else the listed one */
  uint8_t image_hash[32];
  teex_amount max_price;  /* 0: no limit */
  const uint8_t *user_sk; /* 32 bytes: the paying account's key */
  const uint8_t *input;
  size_t input_len;
  unsigned max_attempts; /* workers to try (0: 3) */
  /* The task's datasets (32-byte ids, in the order the service reads them
   * with teex.data(i)); at most TEEX_CLIENT_MAX_DATASETS. */
  const uint8_t *dataset_ids;
  size_t n_datasets;
};

struct teex_invoke_result {
  uint8_t *output; /* malloc'd; free() */
  size_t output_len;
  uint8_t task_id[32];
  uint8_t worker[20];
  teex_amount price;      /* the service's plus each dataset's */
  teex_amount data_price; /* the datasets' part of price */
  teex_amount cumulative;
  unsigned attempts;
  uint64_t duration_us; /* in the worker's executor */
};

/* Invokes a listed service: reads the listing on chain (price, image,
 * service key) and each dataset's (provider, price; not listed or revoked:
 * TEEX_ENOTFOUND / TEEX_EPOLICY before anything is signed), asks the dispatcher
 * for the cumulative base, signs the payment authorisation, gets a verified
 * assignment, connects to the worker (its evidence, its proof of holding the
 * service key over this TLS session), sends the input and verifies the signed
 * output and the receipt. A worker that cannot be reached or fails mid-task is
 * reported to the dispatcher and another one is tried under the same task id
 * (never charged twice). A service error (the service raised) is returned as
 * TEEX_EREMOTE with its message, not retried. */
int teex_invoke(const struct teex_invoke_request *req,
                struct teex_invoke_result *out, struct teex_err *err);

#endif
