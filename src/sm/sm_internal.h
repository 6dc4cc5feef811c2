/* Internal to the Service Manager daemon: what its dataset handlers
 * (sm_data_server.c) share with sm_server.c. */
#ifndef TEEX_SM_INTERNAL_H
#define TEEX_SM_INTERNAL_H

#include "teex/chain.h"
#include "teex/eth_rpc.h"
#include "teex/rpc.h"
#include "teex/sm.h"

#include <uv.h>

/* The chain as the dataset handlers read it (rpc NULL: no chain
 * endpoint configured, leases are refused). */
struct teex_sm_data_ctx {
  struct teex_sm *sm;
  struct teex_eth_rpc *rpc;
  struct teex_chain_addrs addrs; /* enclave and dataset registries */
};

/* Verifies the caller's fresh evidence for method (nonce = this session's
 * exporter value, bound TLS key, role); fills id. */
int teex_sm__check_caller(struct teex_sm *sm, struct teex_rpc_call *call,
                          const char *method, const uint8_t *evidence,
                          size_t len, const char *role,
                          struct teex_tee_identity *id, struct teex_err *err);

/* sm.EscrowDataKey (client endpoint) and sm.LeaseDataKey (enclave
 * endpoint); arg is a struct teex_sm_data_ctx. */
void teex_sm__on_escrow_data_key(struct teex_rpc_call *call, const uint8_t *p,
                                 size_t n, void *arg);
void teex_sm__on_lease_data_key(struct teex_rpc_call *call, const uint8_t *p,
                                size_t n, void *arg);

/* Reads what the chain says about dataset_id for the lease's assignment
 * (listing, exact pair approval, dispatcher registration). */
int teex_sm__data_terms(struct teex_sm_data_ctx *ctx,
                        const uint8_t dataset_id[32],
                        const struct teex_assignment *a,
                        struct teex_sm_data_terms *t, struct teex_err *err);

/* The chain revoker (sm_revoker.c): submits queued revocations
 * (teex_sm_chain_revocation_queue) to the EnclaveRegistry at url from the
 * SM's own account, every interval_ms (0: 5000) until confirmed. */
struct teex_sm__revoker;
int teex_sm__revoker_start(uv_loop_t *loop, struct teex_sm *sm, const char *url,
                           const struct teex_chain_addrs *a,
                           unsigned interval_ms, struct teex_sm__revoker **out,
                           struct teex_err *err);
/* Looks for pending revocations now (after a new one was queued). */
void teex_sm__revoker_kick(struct teex_sm__revoker *r);
void teex_sm__revoker_close(struct teex_sm__revoker *r); /* NULL-safe */

#endif
