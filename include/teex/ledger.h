/* The dispatcher's payment ledger: which tasks a user has authorised, what
 * is reserved against the user's escrow, what has been earned, and which
 * authorisation to settle on chain (docs/settlement.md v1, DESIGN.md §6).
 *
 * I/O-free: the caller verifies the EIP-712 signature of each authorisation
 * (include/teex/eip712 bindings) and reports chain state (escrow, settled
 * cumulative) as it learns it. The rules:
 *   - a task id is accepted once; the same authorisation again is a retry
 *     (answered as before), a different one under a known task id is a
 *     replay and refused;
 *   - a new authorisation must cover everything not failed so far plus its
 *     own price (cumulative >= base + price, where base = prices of tasks
 *     completed or still running), and that reservation must fit in escrow;
 *   - a task is charged at most once: complete or fail, once;
 *   - the honest dispatcher settles, per user, the highest authorisation
 *     whose cumulative does not exceed what completed tasks earned, so a
 *     user is never charged for work not done; a failed task is refunded by
 *     the next authorisation not growing by its price. */
#ifndef TEEX_LEDGER_H
#define TEEX_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"

/* Amounts in wei. 128 bits hold far more than all ether in existence;
 * an authorisation with a larger uint256 is refused. */
__extension__ typedef unsigned __int128 teex_amount;

/* PaymentAuthorization v1 with its signature (docs/settlement.md §2.1). */
struct teex_payment_auth {
  uint8_t user[20];
  uint8_t dispatcher[20];
  uint8_t task_id[32];
  uint8_t service_id[32];
  uint8_t image_hash[32];
  uint8_t datasets_hash[32];
  teex_amount price;
  teex_amount cumulative;
  uint8_t sig[65]; /* r || s || v */
};

struct teex_ledger;

struct teex_ledger_limits {
  uint32_t max_users; /* users with unsettled state */
  uint32_t max_tasks; /* tasks remembered (running + unsettled) */
};

struct teex_ledger *teex_ledger_new(const uint8_t dispatcher[20],
                                    const struct teex_ledger_limits *lim);
void teex_ledger_free(struct teex_ledger *l);

/* Chain state for a user: escrow balance held for this dispatcher and the
 * cumulative amount already settled (Settlement contract). Settled never
 * goes backwards (a stale read is ignored). */
int teex_ledger_set_chain(struct teex_ledger *l, const uint8_t user[20],
                          teex_amount escrow, teex_amount settled);

enum teex_ledger_accept_result {
  TEEX_LEDGER_NEW = 0,   /* reserved; run it */
  TEEX_LEDGER_RETRY = 1, /* same task, same authorisation: already known */
};

/* Accepts a verified authorisation for a task whose price the dispatcher
 * computed as `price` (service price + datasets). Returns a
 * teex_ledger_accept_result, or: TEEX_EINVAL (not for this dispatcher, or
 * price differs), TEEX_EREPLAY (task id known with another authorisation,
 * or the task already finished), TEEX_EPOLICY (cumulative too low: err says
 * the base expected), TEEX_EFUNDS (escrow too small: err says by how much),
 * TEEX_ETOOBIG (ledger full). */
int teex_ledger_accept(struct teex_ledger *l, const struct teex_payment_auth *a,
                       teex_amount price, struct teex_err *err);

/* The task ran (a valid receipt came back): its price is earned. Once.
 * TEEX_ENOTFOUND, TEEX_ESTATE (already completed or failed). */
int teex_ledger_complete(struct teex_ledger *l, const uint8_t task_id[32]);

/* The task will not run: its reservation is released, nothing is charged.
 * Once. TEEX_ENOTFOUND, TEEX_ESTATE. */
int teex_ledger_fail(struct teex_ledger *l, const uint8_t task_id[32]);

/* What a user's next authorisation must build on: prices of tasks completed
 * or running, i.e. next cumulative = base + price. */
int teex_ledger_base(const struct teex_ledger *l, const uint8_t user[20],
                     teex_amount *base);

/* For settlement: the authorisation to submit for user (the highest whose
 * cumulative <= earned and > settled) and the debit it causes. Returns 1
 * with *auth and *debit set, 0 when nothing is due, TEEX_ENOTFOUND. */
int teex_ledger_due(const struct teex_ledger *l, const uint8_t user[20],
                    struct teex_payment_auth *auth, teex_amount *debit);

/* The chain settled user up to cumulative (the batch was mined): escrow is
 * reduced by the debit and authorisations at or below it are forgotten. */
int teex_ledger_settled(struct teex_ledger *l, const uint8_t user[20],
                        teex_amount cumulative);

/* Parses a decimal amount ("1000000000000000000") strictly. TEEX_EINVAL. */
int teex_amount_parse(const char *s, teex_amount *out);
/* Formats an amount in decimal into out (at least 40 bytes). */
void teex_amount_format(teex_amount v, char out[40]);

#endif
