/* Internal to the chain module and its tests: the fixed ABI signatures the
 * bindings encode, so a test can check them against the compiled ABI. */
#ifndef TEEX_CHAIN_INTERNAL_H
#define TEEX_CHAIN_INTERNAL_H

/* NULL-terminated, static. */
const char *const *teex_chain__function_sigs(void);
const char *const *teex_chain__event_sigs(void);

/* Folds one ServiceRegistry log into the catalogue *v (n entries, cap
 * allocated; *v owned by the caller, free()). Logs of other events are
 * skipped. What teex_chain_catalogue does per log; exposed for the fuzzer. */
#include "teex/chain.h"
int teex_chain__apply_log(const struct teex_eth_log *lg,
                          struct teex_chain_service **v, size_t *n, size_t *cap,
                          struct teex_err *err);

/* The call helpers the binding files share (src/chain/chain.c). */
struct teex_abi_value;
int teex_chain__transact(struct teex_eth_sender *s, const uint8_t to[20],
                         teex_amount value, const char *sig,
                         const struct teex_abi_value *args, unsigned timeout_ms,
                         uint64_t *gas_used, struct teex_err *err);
int teex_chain__view(struct teex_eth_rpc *rpc, const uint8_t to[20],
                     const char *sig, const struct teex_abi_value *args,
                     const char *ret_type, struct teex_abi_value *ret,
                     struct teex_err *err);

/* DatasetRegistry signatures, exactly as in its ABI (src/chain/dataset.c);
 * listed in chain.c's tables for the ABI consistency test. */
#define TEEX_CHAIN_APPROVAL_TUPLE "(bytes32,bytes32)"
#define TEEX_CHAIN_F_LIST_DATASET                                              \
  "listDataset(string,string,bytes32,uint64,uint128,uint64,uint32,uint64)"
#define TEEX_CHAIN_F_APPROVE "approve(bytes32," TEEX_CHAIN_APPROVAL_TUPLE "[])"
#define TEEX_CHAIN_F_REMOVE_APPROVAL                                           \
  "removeApproval(bytes32," TEEX_CHAIN_APPROVAL_TUPLE "[])"
#define TEEX_CHAIN_F_REVOKE_DATASET "revoke(bytes32)"
#define TEEX_CHAIN_F_GET_DATASET "getDataset(bytes32)"
#define TEEX_CHAIN_R_GET_DATASET                                               \
  "((address,bool,uint64,uint64,uint32,uint64,uint128,bytes32,string,"         \
  "string))"
#define TEEX_CHAIN_F_USABLE "usable(bytes32,bytes32,bytes32)"
#define TEEX_CHAIN_F_IS_APPROVED "isApproved(bytes32,bytes32,bytes32)"
#define TEEX_CHAIN_F_IS_LISTED "isListed(bytes32)"
#define TEEX_CHAIN_F_DATASET_ID "datasetIdOf(address,string)"
#define TEEX_CHAIN_E_DS_LISTED                                                 \
  "DatasetListed(bytes32,address,string,string,bytes32,uint64,uint128,"        \
  "uint64,uint32,uint64)"
#define TEEX_CHAIN_E_DS_APPROVED "DatasetApproved(bytes32,bytes32,bytes32)"
#define TEEX_CHAIN_E_DS_UNAPPROVED                                             \
  "DatasetApprovalRemoved(bytes32,bytes32,bytes32)"
#define TEEX_CHAIN_E_DS_PRICE "DatasetPriceChanged(bytes32,uint128)"
#define TEEX_CHAIN_E_DS_REVOKED "DatasetRevoked(bytes32)"

/* Folds one DatasetRegistry log into the listings *v (n entries, cap
 * allocated; owned by the caller). Other logs are skipped. Exposed for the
 * fuzzer. */
int teex_chain__apply_dataset_log(const struct teex_eth_log *lg,
                                  struct teex_chain_dataset **v, size_t *n,
                                  size_t *cap, struct teex_err *err);

/* DsAnchor signatures, exactly as in its ABI (src/chain/ds_anchor.c);
 * listed in chain.c's tables for the ABI consistency test. */
#define TEEX_CHAIN_F_DSA_CREATE "createGroup(bytes32,address[])"
#define TEEX_CHAIN_F_DSA_SET "setAnchorer(bytes32,address,bool)"
#define TEEX_CHAIN_F_DSA_ANCHOR                                                \
  "anchor((bytes32,uint64,uint64,bytes32,bytes32,uint64,bytes32,string),"      \
  "(uint8,bytes32,bytes32))"
#define TEEX_CHAIN_F_DSA_LATEST "latest(bytes32)"
#define TEEX_CHAIN_R_DSA_LATEST                                                \
  "((uint64,uint64,uint64,uint64,bytes32,bytes32,bytes32,string,address))"
/* Decodes the return data of DsAnchor.latest into *out (group_id left as
 * it is). TEEX_EFORMAT/TEEX_ETRUNC on bad data. Exposed for the fuzzer. */
struct teex_ds_anchor;
int teex_chain__ds_anchor_decode(const uint8_t *data, size_t len,
                                 struct teex_ds_anchor *out,
                                 struct teex_err *err);
#define TEEX_CHAIN_E_DSA_ANCHORED                                              \
  "Anchored(bytes32,uint64,uint64,bytes32,bytes32,bytes32,string,address)"

#endif
