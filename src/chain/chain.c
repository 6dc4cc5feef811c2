/* The teex contracts from C (include/teex/chain.h): ABI-encoded calls built
 * from fixed signatures that a unit test checks against the ABI compiled
 * into libteex, sent through the eth sender or read with eth_call. */
#include "teex/chain.h"

#include "teex/abi.h"
#include "teex/contracts.h"
#include "teex/crypto.h"
#include "teex/ds_anchor.h"
#include "teex/eth_tx.h"
#include "teex/statements.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain_internal.h"

/* Call data stays under the largest transaction teex sends. */
#define CALLDATA_MAX (TEEX_ETH_TX_MAX - 1024u)

/* Function signatures, exactly as in the contracts' ABI. */
#define SIG_TUPLE "(uint8,bytes32,bytes32)"
#define F_LIST                                                                 \
  "listService(bytes32,string,uint128,uint128,address,bytes32,bytes32,"        \
  "bool," SIG_TUPLE ")"
#define F_PUBLISH                                                              \
  "publishVersion(bytes32,string,address,bytes32,bytes32," SIG_TUPLE ")"
#define F_RETIRE "retire(bytes32)"
#define F_SET_PRIVATE "setPrivate(bytes32,bool)"
#define F_SET_ALLOWED "setAllowed(bytes32,address[],bool)"
#define F_CAN_INVOKE "canInvoke(bytes32,address)"
#define F_GET_SERVICE "getService(bytes32)"
#define R_GET_SERVICE                                                          \
  "((address,uint32,bool,bool,address,uint128,uint128,bytes32,bytes32,"        \
  "string))"
#define F_REGISTER "register(address,uint8,bytes32,uint64," SIG_TUPLE ")"
#define F_REVOKE "revoke(address," SIG_TUPLE ")"
#define F_IS_ACTIVE "isActive(address,uint8)"
#define F_DEPOSIT "deposit(address)"
#define F_REQUEST_WD "requestWithdrawal(address,uint256)"
#define F_COMPLETE_WD "completeWithdrawal(address)"
#define F_CANCEL_WD "cancelWithdrawal(address)"
#define F_ESCROW "escrowOf(address,address)"
#define R_ESCROW "(uint256,uint256,uint256,uint64)"
#define F_WITHDRAW_CREDITS "withdrawCredits(address,uint256)"
#define F_CREDITS "credits(address)"
#define F_SETTLE                                                               \
  "settleBatch(bytes32,bytes32,uint32,string,(address,bytes32,bytes32,"        \
  "bytes32,bytes32,uint256,uint256,uint8,bytes32,bytes32)[],(address,"         \
  "uint256)[])"
#define F_GET_BATCH "getBatch(bytes32)"
#define R_GET_BATCH "((bytes32,address,uint64,uint32))"
#define F_VERIFY                                                               \
  "verifyReceipt(bytes32,(bytes32,bytes32,bytes32,address,address,address,"    \
  "address,bytes32,bytes32,uint256,uint256,uint256),(bytes32,address,"         \
  "uint256)[],bytes32[])"

#define E_LISTED                                                               \
  "ServiceListed(bytes32,address,uint32,string,uint128,uint128,address,"       \
  "bytes32,bytes32,bool)"
#define E_VERSION                                                              \
  "ServiceVersionPublished(bytes32,uint32,string,address,bytes32,bytes32)"
#define E_PRICE "ServicePriceChanged(bytes32,uint128,uint128)"
#define E_VISIBILITY "ServiceVisibilityChanged(bytes32,bool)"
#define E_RETIRED "ServiceRetired(bytes32)"

static const char *const function_sigs[] = {F_LIST,
                                            F_PUBLISH,
                                            F_RETIRE,
                                            F_GET_SERVICE,
                                            F_REGISTER,
                                            F_REVOKE,
                                            F_IS_ACTIVE,
                                            F_DEPOSIT,
                                            F_REQUEST_WD,
                                            F_COMPLETE_WD,
                                            F_ESCROW,
                                            F_WITHDRAW_CREDITS,
                                            F_CREDITS,
                                            F_SETTLE,
                                            F_GET_BATCH,
                                            F_VERIFY,
                                            F_CANCEL_WD,
                                            F_SET_PRIVATE,
                                            F_SET_ALLOWED,
                                            F_CAN_INVOKE,
                                            TEEX_CHAIN_F_LIST_DATASET,
                                            TEEX_CHAIN_F_APPROVE,
                                            TEEX_CHAIN_F_REMOVE_APPROVAL,
                                            TEEX_CHAIN_F_REVOKE_DATASET,
                                            TEEX_CHAIN_F_GET_DATASET,
                                            TEEX_CHAIN_F_USABLE,
                                            TEEX_CHAIN_F_DATASET_ID,
                                            TEEX_CHAIN_F_IS_APPROVED,
                                            TEEX_CHAIN_F_IS_LISTED,
                                            TEEX_CHAIN_F_DSA_CREATE,
                                            TEEX_CHAIN_F_DSA_SET,
                                            TEEX_CHAIN_F_DSA_ANCHOR,
                                            TEEX_CHAIN_F_DSA_LATEST,
                                            NULL};
/* The first five are the ServiceRegistry's, in apply_log's order. */
static const char *const event_sigs[] = {E_LISTED,
                                         E_VERSION,
                                         E_PRICE,
                                         E_VISIBILITY,
                                         E_RETIRED,
                                         TEEX_CHAIN_E_DS_LISTED,
                                         TEEX_CHAIN_E_DS_APPROVED,
                                         TEEX_CHAIN_E_DS_UNAPPROVED,
                                         TEEX_CHAIN_E_DS_PRICE,
                                         TEEX_CHAIN_E_DS_REVOKED,
                                         TEEX_CHAIN_E_DSA_ANCHORED,
                                         NULL};

/* Every custom error of the contracts (checked against the ABI). */
static const char *const error_sigs[] = {
    "InvalidSignature()",
    "ZeroAddress()",
    "InvalidRole(uint8)",
    "StatementFromFuture(uint64,uint256)",
    "NotSignedByServiceManager(address)",
    "EnclaveAlreadyRegistered(address)",
    "EnclaveWasRevoked(address)",
    "EnclaveNotRegistered(address)",
    "ZeroServiceId()",
    "ServiceAlreadyListed(bytes32)",
    "ServiceNotFound(bytes32)",
    "NotServiceProvider(bytes32,address)",
    "ServiceIsRetired(bytes32)",
    "RemunerationAbovePrice(uint128,uint128)",
    "BadMetadataCid()",
    "ZeroServiceKey()",
    "ZeroAmount()",
    "AmountTooLarge(uint256)",
    "NotRegisteredDispatcher(address)",
    "NoWithdrawalPending()",
    "WithdrawalLocked(uint64,uint256)",
    "TransferFailed()",
    "InsufficientCredits(uint256,uint256)",
    "BatchAlreadySettled(bytes32)",
    "EmptyBatch()",
    "ZeroRoot()",
    "BadBatchCid()",
    "BadAuthorizationSignature(uint256,address)",
    "InsufficientEscrow(address,uint256,uint256)",
    "DebitsCreditsMismatch(uint256,uint256)",
    "DatasetAlreadyListed(bytes32)",
    "DatasetNotFound(bytes32)",
    "NotDatasetProvider(bytes32,address)",
    "DatasetIsRevoked(bytes32)",
    "BadDatasetName()",
    "BadCiphertextCid()",
    "ZeroPlaintextHash()",
    "ExpiryInPast(uint64,uint256)",
    "BadApproval(uint256)",
    "TooManyApprovals(uint256)",
    "ZeroGroupId()",
    "GroupExists(bytes32)",
    "NoSuchGroup(bytes32)",
    "NotGroupOwner(address)",
    "TooManyAnchorers()",
    "NotAnAnchorer(address)",
    "IndexNotIncreasing(uint64,uint64)",
    "TermDecreasing(uint64,uint64)",
    "BadCid()",
    "ZeroHash()",
    "CommitmentFromFuture(uint64,uint256)",
    NULL};

const char *const *teex_chain_error_sigs(void) {
  return error_sigs;
}

/* For the ABI consistency test (src/chain/chain_internal.h). */
const char *const *teex_chain__function_sigs(void) {
  return function_sigs;
}
const char *const *teex_chain__event_sigs(void) {
  return event_sigs;
}

void teex_chain_use_errors(struct teex_eth_rpc *rpc) {
  teex_eth_rpc_set_custom_errors(rpc, error_sigs);
}

static unsigned tmo(unsigned t) {
  return t ? t : TEEX_CHAIN_TX_TIMEOUT_MS;
}

/* ---- value helpers ---- */

static void v_word(struct teex_abi_value *v, const uint8_t w[32]) {
  teex_abi_fixed_bytes(v, w, 32);
}

static void v_amount(struct teex_abi_value *v, teex_amount x) {
  teex_u256 w;
  teex_amount_word(x, w);
  teex_abi_uint(v, w);
}

/* (uint8 v, bytes32 r, bytes32 s) from r || s || v. */
static int v_sig(struct teex_abi_value *v, const uint8_t sig[65]) {
  if (teex_abi_tuple(v, 3) != 0)
    return TEEX_ENOMEM;
  teex_abi_uint64(&v->items[0], sig[64]);
  v_word(&v->items[1], sig);
  v_word(&v->items[2], sig + 32);
  return 0;
}

static int w_amount(const struct teex_abi_value *v, teex_amount *out) {
  return teex_amount_from_word(v->word, out);
}

/* ---- calls ---- */

static int encode(const char *sig, const struct teex_abi_value *args,
                  struct teex_buf *data, struct teex_err *err) {
  teex_buf_init(data, CALLDATA_MAX, 0);
  int rc = teex_abi_encode_call(sig, args, data, err);
  if (rc != 0) {
    teex_buf_free(data);
    return teex_err_wrap(err, rc, "encode %.40s", sig);
  }
  return 0;
}

/* Sends a call of sig(args) to `to` with value wei, waits for its receipt. */
int teex_chain__transact(struct teex_eth_sender *s, const uint8_t to[20],
                         teex_amount value, const char *sig,
                         const struct teex_abi_value *args, unsigned timeout_ms,
                         uint64_t *gas_used, struct teex_err *err) {
  struct teex_buf data;
  struct teex_eth_receipt rc = {0};
  struct teex_eth_request req = {0};
  int r = encode(sig, args, &data, err);
  if (r != 0)
    return r;
  req.has_to = 1;
  memcpy(req.to, to, 20);
  teex_amount_word(value, req.value);
  req.data = data.data;
  req.data_len = data.len;
  r = teex_eth_sender_transact(s, &req, tmo(timeout_ms), &rc, err);
  if (r == 0 && gas_used)
    *gas_used = rc.gas_used;
  teex_eth_receipt_clear(&rc);
  teex_buf_free(&data);
  return r;
}

/* eth_call of sig(args) at `to`; decodes the return data as ret_type. */
int teex_chain__view(struct teex_eth_rpc *rpc, const uint8_t to[20],
                     const char *sig, const struct teex_abi_value *args,
                     const char *ret_type, struct teex_abi_value *ret,
                     struct teex_err *err) {
  struct teex_buf data, out;
  struct teex_abi_type *t = NULL;
  struct teex_eth_call_req c = {0};
  int r = encode(sig, args, &data, err);
  if (r != 0)
    return r;
  teex_buf_init(&out, TEEX_ETH_RPC_MAX_RESPONSE, 0);
  c.to = to;
  c.data = data.data;
  c.data_len = data.len;
  r = teex_eth_call(rpc, &c, NULL, &out, err);
  if (r == 0)
    r = teex_abi_type_parse(ret_type, &t, err);
  if (r == 0) {
    if (out.len == 0)
      r = teex_err_set(err, TEEX_ECONFIG, "no contract code answered");
    else
      r = teex_abi_decode(t, out.data, out.len, ret, err);
  }
  teex_abi_type_free(t);
  teex_buf_free(&out);
  teex_buf_free(&data);
  return r;
}

static int view_name(int rc, struct teex_err *err, const char *what) {
  return rc == 0 ? 0 : teex_err_wrap(err, rc, "%s", what);
}

/* ---- deployment ---- */

static int deploy_one(struct teex_eth_sender *s, const char *name,
                      const char *ctor_type, const struct teex_abi_value *args,
                      unsigned timeout_ms, uint8_t addr[20], uint64_t *block,
                      struct teex_err *err) {
  const struct teex_contract_artifact *art = teex_contract_find(name);
  struct teex_abi_type *t = NULL;
  struct teex_buf code;
  struct teex_eth_receipt rc = {0};
  struct teex_eth_request req = {0};
  int r;
  if (art == NULL)
    return teex_err_set(err, TEEX_EINTERNAL, "%s: not compiled in", name);
  teex_buf_init(&code, CALLDATA_MAX, 0);
  r = teex_buf_append(&code, art->bytecode, art->bytecode_len);
  if (r == 0 && ctor_type != NULL) /* NULL: a constructor without arguments */
    r = teex_abi_type_parse(ctor_type, &t, err);
  if (r == 0 && ctor_type != NULL)
    r = teex_abi_encode(t, args, &code, err);
  if (r == 0) {
    req.has_to = 0;
    req.data = code.data;
    req.data_len = code.len;
    r = teex_eth_sender_transact(s, &req, tmo(timeout_ms), &rc, err);
  }
  if (r == 0 && !rc.has_contract)
    r = teex_err_set(err, TEEX_ECHAIN, "no contract address in the receipt");
  if (r == 0) {
    memcpy(addr, rc.contract_address, 20);
    *block = rc.block_number;
  }
  teex_eth_receipt_clear(&rc);
  teex_abi_type_free(t);
  teex_buf_free(&code);
  return r == 0 ? 0 : teex_err_wrap(err, r, "deploy %s", name);
}

int teex_chain_deploy(struct teex_eth_sender *s,
                      const struct teex_chain_deploy_opts *o,
                      struct teex_chain_addrs *out, struct teex_err *err) {
  struct teex_abi_value sm = {0}, st = {0};
  uint64_t b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0;
  int r;
  static const uint8_t zero[20];
  if (memcmp(o->service_manager, zero, 20) == 0)
    return teex_err_set(err, TEEX_EINVAL, "deploy: no Service Manager address");
  memset(out, 0, sizeof *out);
  out->chain_id = teex_eth_sender_chain_id(s);
  if ((r = teex_abi_tuple(&sm, 1)) != 0)
    goto done;
  teex_abi_address(&sm.items[0], o->service_manager);
  r = deploy_one(s, "EnclaveRegistry", "(address)", &sm, o->timeout_ms,
                 out->enclave_registry, &b1, err);
  if (r == 0)
    r = deploy_one(s, "ServiceRegistry", "(address)", &sm, o->timeout_ms,
                   out->service_registry, &b2, err);
  if (r == 0 && (r = teex_abi_tuple(&st, 2)) == 0) {
    teex_abi_address(&st.items[0], out->enclave_registry);
    teex_abi_uint64(&st.items[1], o->withdrawal_delay);
    r = deploy_one(s, "Settlement", "(address,uint64)", &st, o->timeout_ms,
                   out->settlement, &b3, err);
  }
  if (r == 0)
    r = deploy_one(s, "DatasetRegistry", NULL, NULL, o->timeout_ms,
                   out->dataset_registry, &b4, err);
  if (r == 0)
    r = deploy_one(s, "DsAnchor", NULL, NULL, o->timeout_ms, out->ds_anchor,
                   &b5, err);
  out->deploy_block = b1 < b2 ? b1 : b2;
  if (b3 < out->deploy_block)
    out->deploy_block = b3;
  if (b4 < out->deploy_block)
    out->deploy_block = b4;
  if (b5 < out->deploy_block)
    out->deploy_block = b5;
done:
  teex_abi_value_clear(&sm);
  teex_abi_value_clear(&st);
  return r;
}

/* ---- configuration ---- */

static int cfg_addr(const struct teex_config *c, const char *key,
                    uint8_t out[20], struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  if (v == NULL)
    return teex_err_set(err, TEEX_ECONFIG, "%s is not set (teex chain deploy)",
                        key);
  if (teex_eth_address_parse(v, out) != 0)
    return teex_err_set(err, TEEX_ECONFIG, "%s: not an address: %.60s", key, v);
  return 0;
}

int teex_chain_addrs_from_config(const struct teex_config *c,
                                 struct teex_chain_addrs *out,
                                 struct teex_err *err) {
  int r;
  memset(out, 0, sizeof *out);
  if (teex_config_get(c, "chain_id", NULL) == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "chain_id is not set (teex chain deploy)");
  if (teex_config_get_u64(c, "chain_id", 0, &out->chain_id, err) != 0 ||
      teex_config_get_u64(c, "deploy_block", 0, &out->deploy_block, err) != 0)
    return teex_err_wrap(err, TEEX_ECONFIG, "chain.conf");
  if ((r = cfg_addr(c, "enclave_registry", out->enclave_registry, err)) != 0 ||
      (r = cfg_addr(c, "service_registry", out->service_registry, err)) != 0 ||
      (r = cfg_addr(c, "settlement", out->settlement, err)) != 0)
    return r;
  /* Optional: a network deployed before datasets existed has none (the
   * dataset functions then say so). */
  if (teex_config_get(c, "dataset_registry", NULL) != NULL &&
      (r = cfg_addr(c, "dataset_registry", out->dataset_registry, err)) != 0)
    return r;
  if (teex_config_get(c, "ds_anchor", NULL) != NULL &&
      (r = cfg_addr(c, "ds_anchor", out->ds_anchor, err)) != 0)
    return r;
  return 0;
}

int teex_chain_conf_save(const char *path, const char *rpc_url,
                         uint64_t chain_id, const struct teex_chain_addrs *a,
                         struct teex_err *err) {
  struct teex_buf text;
  char tmp[4096], hex[43];
  FILE *f;
  int r = 0;
  if (rpc_url != NULL && strpbrk(rpc_url, "\"\n\r\\") != NULL)
    return teex_err_set(err, TEEX_EINVAL, "bad RPC URL");
  teex_buf_init(&text, TEEX_CONFIG_FILE_MAX, 0);
  r = teex_buf_printf(&text,
                      "# The network's chain, written by teex chain up/deploy."
                      "\n");
  if (r == 0 && rpc_url != NULL)
    r = teex_buf_printf(&text, "rpc_url = \"%s\"\n", rpc_url);
  if (r == 0)
    r = teex_buf_printf(&text, "chain_id = %llu\n",
                        (unsigned long long)chain_id);
  if (r == 0 && a != NULL) {
    teex_eth_address_hex(a->enclave_registry, hex);
    r = teex_buf_printf(&text, "enclave_registry = %s\n", hex);
    teex_eth_address_hex(a->service_registry, hex);
    if (r == 0)
      r = teex_buf_printf(&text, "service_registry = %s\n", hex);
    teex_eth_address_hex(a->settlement, hex);
    if (r == 0)
      r = teex_buf_printf(&text, "settlement = %s\ndeploy_block = %llu\n", hex,
                          (unsigned long long)a->deploy_block);
    if (r == 0 && teex_chain_has_datasets(a)) {
      teex_eth_address_hex(a->dataset_registry, hex);
      r = teex_buf_printf(&text, "dataset_registry = %s\n", hex);
    }
    if (r == 0 && teex_chain_has_ds_anchor(a)) {
      teex_eth_address_hex(a->ds_anchor, hex);
      r = teex_buf_printf(&text, "ds_anchor = %s\n", hex);
    }
  }
  if (r != 0) {
    r = teex_err_set(err, r, "%s: too large", path);
    goto done;
  }
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    r = teex_err_set(err, TEEX_EINVAL, "path too long");
    goto done;
  }
  f = fopen(tmp, "wb");
  if (f == NULL) {
    r = teex_err_set(err, TEEX_EIO, "%s: %s", tmp, strerror(errno));
    goto done;
  }
  if (fwrite(text.data, 1, text.len, f) != text.len || fflush(f) != 0 ||
      fsync(fileno(f)) != 0) {
    fclose(f);
    unlink(tmp);
    r = teex_err_set(err, TEEX_EIO, "%s: write failed", tmp);
    goto done;
  }
  fclose(f);
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    r = teex_err_set(err, TEEX_EIO, "%s: %s", path, strerror(errno));
  }
done:
  teex_buf_free(&text);
  return r;
}

int teex_chain_has_datasets(const struct teex_chain_addrs *a) {
  static const uint8_t zero[20];
  return memcmp(a->dataset_registry, zero, 20) != 0;
}

int teex_chain_check(struct teex_eth_rpc *rpc, const struct teex_chain_addrs *a,
                     struct teex_err *err) {
  const uint8_t *addrs[5] = {a->enclave_registry, a->service_registry,
                             a->settlement, a->dataset_registry};
  const char *names[5] = {"EnclaveRegistry", "ServiceRegistry", "Settlement",
                          "DatasetRegistry"};
  int ncontracts = teex_chain_has_datasets(a) ? 4 : 3;
  if (teex_chain_has_ds_anchor(a)) { /* optional, like the dataset registry */
    addrs[ncontracts] = a->ds_anchor;
    names[ncontracts++] = "DsAnchor";
  }
  uint64_t id;
  int r = teex_eth_chain_id(rpc, &id, err);
  if (r != 0)
    return teex_err_wrap(err, r, "chain id");
  if (id != a->chain_id)
    return teex_err_set(
        err, TEEX_ECONFIG, "the node is on chain %llu, the contracts on %llu",
        (unsigned long long)id, (unsigned long long)a->chain_id);
  for (int i = 0; i < ncontracts; i++) {
    struct teex_buf code;
    char hex[43];
    teex_buf_init(&code, 1u << 20, 0);
    r = teex_eth_get_code(rpc, addrs[i], NULL, &code, err);
    size_t n = code.len;
    teex_buf_free(&code);
    if (r != 0)
      return teex_err_wrap(err, r, "%s code", names[i]);
    if (n == 0) {
      teex_eth_address_hex(addrs[i], hex);
      return teex_err_set(err, TEEX_ECONFIG, "no %s contract at %s", names[i],
                          hex);
    }
  }
  return 0;
}

/* ---- services ---- */

static int cid_ok(const char *cid, struct teex_err *err) {
  size_t n = cid ? strnlen(cid, TEEX_CHAIN_MAX_CID + 1) : 0;
  if (n == 0 || n > TEEX_CHAIN_MAX_CID)
    return teex_err_set(err, TEEX_EINVAL, "a CID must have 1 to %d bytes",
                        TEEX_CHAIN_MAX_CID);
  return 0;
}

int teex_chain_list_service(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            const struct teex_chain_service *svc,
                            const uint8_t sm_sig[65], unsigned timeout_ms,
                            struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = cid_ok(svc->metadata_cid, err);
  if (r == 0 && (r = teex_abi_tuple(&v, 9)) == 0) {
    v_word(&v.items[0], svc->service_id);
    r = teex_abi_string(&v.items[1], svc->metadata_cid);
    v_amount(&v.items[2], svc->price);
    v_amount(&v.items[3], svc->remuneration);
    teex_abi_address(&v.items[4], svc->signing_key);
    v_word(&v.items[5], svc->encryption_key);
    v_word(&v.items[6], svc->image_hash);
    teex_abi_bool(&v.items[7], svc->is_private);
    if (r == 0)
      r = v_sig(&v.items[8], sm_sig);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->service_registry, 0, F_LIST, &v, timeout_ms,
                             NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "list service");
}

int teex_chain_publish_version(struct teex_eth_sender *s,
                               const struct teex_chain_addrs *a,
                               const struct teex_chain_service *svc,
                               const uint8_t sm_sig[65], unsigned timeout_ms,
                               struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = cid_ok(svc->metadata_cid, err);
  if (r == 0 && (r = teex_abi_tuple(&v, 6)) == 0) {
    v_word(&v.items[0], svc->service_id);
    r = teex_abi_string(&v.items[1], svc->metadata_cid);
    teex_abi_address(&v.items[2], svc->signing_key);
    v_word(&v.items[3], svc->encryption_key);
    v_word(&v.items[4], svc->image_hash);
    if (r == 0)
      r = v_sig(&v.items[5], sm_sig);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->service_registry, 0, F_PUBLISH, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "publish version");
}

int teex_chain_retire_service(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t service_id[32], unsigned timeout_ms,
                              struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = teex_abi_tuple(&v, 1);
  if (r == 0) {
    v_word(&v.items[0], service_id);
    r = teex_chain__transact(s, a->service_registry, 0, F_RETIRE, &v,
                             timeout_ms, NULL, err);
  }
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "retire service");
}

int teex_chain_set_private(struct teex_eth_sender *s,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32], int is_private,
                           unsigned timeout_ms, struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = teex_abi_tuple(&v, 2);
  if (r == 0) {
    v_word(&v.items[0], service_id);
    teex_abi_bool(&v.items[1], is_private);
    r = teex_chain__transact(s, a->service_registry, 0, F_SET_PRIVATE, &v,
                             timeout_ms, NULL, err);
  }
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "set visibility");
}

int teex_chain_set_allowed(struct teex_eth_sender *s,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32],
                           const uint8_t (*callers)[20], size_t n, int allowed,
                           unsigned timeout_ms, struct teex_err *err) {
  struct teex_abi_value v = {0};
  if (n == 0 || n > TEEX_CHAIN_MAX_ACCESS_LIST)
    return teex_err_set(err, TEEX_EINVAL,
                        "an access change names 1 to %d addresses",
                        TEEX_CHAIN_MAX_ACCESS_LIST);
  int r = teex_abi_tuple(&v, 3);
  if (r == 0) {
    v_word(&v.items[0], service_id);
    r = teex_abi_array(&v.items[1], n);
    for (size_t i = 0; r == 0 && i < n; i++)
      teex_abi_address(&v.items[1].items[i], callers[i]);
    teex_abi_bool(&v.items[2], allowed);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->service_registry, 0, F_SET_ALLOWED, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, allowed ? "allow" : "deny");
}

int teex_chain_can_invoke(struct teex_eth_rpc *rpc,
                          const struct teex_chain_addrs *a,
                          const uint8_t service_id[32],
                          const uint8_t caller[20], int *allowed,
                          struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  int r = teex_abi_tuple(&v, 2);
  if (r == 0) {
    v_word(&v.items[0], service_id);
    teex_abi_address(&v.items[1], caller);
    r = teex_chain__view(rpc, a->service_registry, F_CAN_INVOKE, &v, "(bool)",
                         &ret, err);
  }
  if (r == 0)
    *allowed = ret.items[0].word[31] != 0;
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "may invoke");
}

static int copy_cid(char dst[TEEX_CHAIN_MAX_CID + 1],
                    const struct teex_abi_value *v, struct teex_err *err) {
  if (v->len > TEEX_CHAIN_MAX_CID || memchr(v->data, 0, v->len) != NULL)
    return teex_err_set(err, TEEX_EFORMAT, "bad metadata CID on chain");
  memcpy(dst, v->data, v->len);
  dst[v->len] = 0;
  return 0;
}

int teex_chain_get_service(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32],
                           struct teex_chain_service *out,
                           struct teex_err *err) {
  struct teex_abi_value args = {0}, ret = {0};
  int r = teex_abi_tuple(&args, 1);
  uint64_t u;
  memset(out, 0, sizeof *out);
  if (r == 0) {
    v_word(&args.items[0], service_id);
    r = teex_chain__view(rpc, a->service_registry, F_GET_SERVICE, &args,
                         R_GET_SERVICE, &ret, err);
  }
  if (r == TEEX_ECHAIN && strstr(err->msg, "ServiceNotFound") != NULL)
    r = teex_err_set(err, TEEX_ENOTFOUND, "no such service");
  if (r == 0) {
    const struct teex_abi_value *f = ret.items[0].items;
    memcpy(out->service_id, service_id, 32);
    r = teex_abi_get_address(&f[0], out->provider);
    if (r == 0 && (r = teex_abi_get_u64(&f[1], &u)) == 0)
      out->version = (uint32_t)u;
    out->is_private = f[2].word[31] != 0;
    out->retired = f[3].word[31] != 0;
    if (r == 0)
      r = teex_abi_get_address(&f[4], out->signing_key);
    if (r == 0)
      r = w_amount(&f[5], &out->price);
    if (r == 0)
      r = w_amount(&f[6], &out->remuneration);
    memcpy(out->encryption_key, f[7].word, 32);
    memcpy(out->image_hash, f[8].word, 32);
    if (r == 0)
      r = copy_cid(out->metadata_cid, &f[9], err);
  }
  teex_abi_value_clear(&args);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "get service");
}

/* ---- the catalogue from events ---- */

static struct teex_chain_service *find_svc(struct teex_chain_service *v,
                                           size_t n, const uint8_t id[32]) {
  for (size_t i = n; i-- > 0;)
    if (memcmp(v[i].service_id, id, 32) == 0)
      return &v[i];
  return NULL;
}

/* Applies one registry log to the catalogue. Logs of other events are
 * skipped. */
static int apply_log(const struct teex_eth_log *lg, const uint8_t topics[5][32],
                     struct teex_chain_service **v, size_t *n, size_t *cap,
                     struct teex_err *err) {
  struct teex_abi_value ev = {0};
  const struct teex_abi_value *f;
  struct teex_chain_service *s;
  uint64_t u;
  int r, which = -1;
  static const uint32_t masks[5] = {3, 1, 1, 1, 1};
  if (lg->n_topics == 0)
    return 0;
  for (int i = 0; i < 5; i++)
    if (memcmp(lg->topics[0], topics[i], 32) == 0)
      which = i;
  if (which < 0)
    return 0;
  r = teex_abi_log_decode(event_sigs[which], masks[which], lg->topics,
                          lg->n_topics, lg->data, lg->data_len, &ev, err);
  if (r != 0)
    return teex_err_wrap(err, r, "registry log");
  f = ev.items;
  if (which == 0) {
    if (*n == TEEX_CHAIN_MAX_CATALOGUE) {
      r = teex_err_set(err, TEEX_ETOOBIG, "more than %d services",
                       TEEX_CHAIN_MAX_CATALOGUE);
      goto done;
    }
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 16;
      struct teex_chain_service *nv = realloc(*v, nc * sizeof *nv);
      if (nv == NULL) {
        r = teex_err_set(err, TEEX_ENOMEM, NULL);
        goto done;
      }
      *v = nv;
      *cap = nc;
    }
    s = &(*v)[(*n)++];
    memset(s, 0, sizeof *s);
    memcpy(s->service_id, f[0].word, 32);
    r = teex_abi_get_address(&f[1], s->provider);
    if (r == 0 && (r = teex_abi_get_u64(&f[2], &u)) == 0)
      s->version = (uint32_t)u;
    if (r == 0)
      r = copy_cid(s->metadata_cid, &f[3], err);
    if (r == 0)
      r = w_amount(&f[4], &s->price);
    if (r == 0)
      r = w_amount(&f[5], &s->remuneration);
    if (r == 0)
      r = teex_abi_get_address(&f[6], s->signing_key);
    memcpy(s->encryption_key, f[7].word, 32);
    memcpy(s->image_hash, f[8].word, 32);
    s->is_private = f[9].word[31] != 0;
    goto done;
  }
  s = find_svc(*v, *n, f[0].word);
  if (s == NULL) /* an event for a listing we did not see: ignore */
    goto done;
  if (which == 1) {
    if ((r = teex_abi_get_u64(&f[1], &u)) == 0)
      s->version = (uint32_t)u;
    if (r == 0)
      r = copy_cid(s->metadata_cid, &f[2], err);
    if (r == 0)
      r = teex_abi_get_address(&f[3], s->signing_key);
    memcpy(s->encryption_key, f[4].word, 32);
    memcpy(s->image_hash, f[5].word, 32);
  } else if (which == 2) {
    r = w_amount(&f[1], &s->price);
    if (r == 0)
      r = w_amount(&f[2], &s->remuneration);
  } else if (which == 3) {
    s->is_private = f[1].word[31] != 0;
  } else {
    s->retired = 1;
  }
done:
  teex_abi_value_clear(&ev);
  return r;
}

int teex_chain__apply_log(const struct teex_eth_log *lg,
                          struct teex_chain_service **v, size_t *n, size_t *cap,
                          struct teex_err *err) {
  uint8_t topics[5][32];
  for (int i = 0; i < 5; i++) {
    int r = teex_abi_event_topic(event_sigs[i], topics[i], err);
    if (r != 0)
      return r;
  }
  return apply_log(lg, (const uint8_t(*)[32])topics, v, n, cap, err);
}

int teex_chain_catalogue(struct teex_eth_rpc *rpc,
                         const struct teex_chain_addrs *a,
                         struct teex_chain_service **out, size_t *n,
                         struct teex_err *err) {
  struct teex_eth_log_filter flt = {0};
  struct teex_eth_log *logs = NULL;
  struct teex_chain_service *v = NULL;
  size_t nlogs = 0, count = 0, cap = 0;
  uint8_t topics[5][32];
  int r = 0;
  *out = NULL;
  *n = 0;
  for (int i = 0; i < 5 && r == 0; i++)
    r = teex_abi_event_topic(event_sigs[i], topics[i], err);
  if (r != 0)
    return r;
  flt.from_block = a->deploy_block;
  flt.to_block = UINT64_MAX;
  flt.has_address = 1;
  memcpy(flt.address, a->service_registry, 20);
  r = teex_eth_get_logs(rpc, &flt, &logs, &nlogs, err);
  if (r != 0)
    return teex_err_wrap(err, r, "catalogue: read events");
  for (size_t i = 0; i < nlogs && r == 0; i++)
    r = apply_log(&logs[i], (const uint8_t(*)[32])topics, &v, &count, &cap,
                  err);
  teex_eth_logs_free(logs, nlogs);
  if (r != 0) {
    free(v);
    return teex_err_wrap(err, r, "catalogue");
  }
  *out = v;
  *n = count;
  return 0;
}

/* ---- enclaves ---- */

int teex_chain_register_enclave(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const uint8_t enclave[20], uint8_t role,
                                const uint8_t measurement[32],
                                uint64_t issued_at, const uint8_t sm_sig[65],
                                unsigned timeout_ms, struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = teex_abi_tuple(&v, 5);
  if (r == 0) {
    teex_abi_address(&v.items[0], enclave);
    teex_abi_uint64(&v.items[1], role);
    v_word(&v.items[2], measurement);
    teex_abi_uint64(&v.items[3], issued_at);
    r = v_sig(&v.items[4], sm_sig);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->enclave_registry, 0, F_REGISTER, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "register enclave");
}

int teex_chain_revoke_enclave(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t enclave[20],
                              const uint8_t sm_sig[65], unsigned timeout_ms,
                              struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = teex_abi_tuple(&v, 2);
  if (r == 0) {
    teex_abi_address(&v.items[0], enclave);
    r = v_sig(&v.items[1], sm_sig);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->enclave_registry, 0, F_REVOKE, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "revoke enclave");
}

int teex_chain_enclave_active(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t enclave[20], uint8_t role,
                              int *active, struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  int r = teex_abi_tuple(&v, 2);
  if (r == 0) {
    teex_abi_address(&v.items[0], enclave);
    teex_abi_uint64(&v.items[1], role);
    r = teex_chain__view(rpc, a->enclave_registry, F_IS_ACTIVE, &v, "(bool)",
                         &ret, err);
  }
  if (r == 0)
    *active = ret.items[0].word[31] != 0;
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "enclave status");
}

/* ---- escrow ---- */

static int addr_call(struct teex_eth_sender *s, const uint8_t to[20],
                     teex_amount value, const char *sig, const uint8_t x[20],
                     const teex_amount *amount, unsigned timeout_ms,
                     struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = teex_abi_tuple(&v, amount ? 2 : 1);
  if (r == 0) {
    teex_abi_address(&v.items[0], x);
    if (amount)
      v_amount(&v.items[1], *amount);
    r = teex_chain__transact(s, to, value, sig, &v, timeout_ms, NULL, err);
  }
  teex_abi_value_clear(&v);
  return r;
}

int teex_chain_deposit(struct teex_eth_sender *s,
                       const struct teex_chain_addrs *a,
                       const uint8_t dispatcher[20], teex_amount amount,
                       unsigned timeout_ms, struct teex_err *err) {
  int r = addr_call(s, a->settlement, amount, F_DEPOSIT, dispatcher, NULL,
                    timeout_ms, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "deposit");
}

int teex_chain_request_withdrawal(struct teex_eth_sender *s,
                                  const struct teex_chain_addrs *a,
                                  const uint8_t dispatcher[20],
                                  teex_amount amount, unsigned timeout_ms,
                                  struct teex_err *err) {
  int r = addr_call(s, a->settlement, 0, F_REQUEST_WD, dispatcher, &amount,
                    timeout_ms, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "request withdrawal");
}

int teex_chain_complete_withdrawal(struct teex_eth_sender *s,
                                   const struct teex_chain_addrs *a,
                                   const uint8_t dispatcher[20],
                                   unsigned timeout_ms, struct teex_err *err) {
  int r = addr_call(s, a->settlement, 0, F_COMPLETE_WD, dispatcher, NULL,
                    timeout_ms, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "complete withdrawal");
}

int teex_chain_cancel_withdrawal(struct teex_eth_sender *s,
                                 const struct teex_chain_addrs *a,
                                 const uint8_t dispatcher[20],
                                 unsigned timeout_ms, struct teex_err *err) {
  int r = addr_call(s, a->settlement, 0, F_CANCEL_WD, dispatcher, NULL,
                    timeout_ms, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "cancel withdrawal");
}

int teex_chain_withdraw_credits(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const uint8_t to[20], teex_amount amount,
                                unsigned timeout_ms, struct teex_err *err) {
  int r = addr_call(s, a->settlement, 0, F_WITHDRAW_CREDITS, to, &amount,
                    timeout_ms, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "withdraw credits");
}

int teex_chain_get_escrow(struct teex_eth_rpc *rpc,
                          const struct teex_chain_addrs *a,
                          const uint8_t user[20], const uint8_t dispatcher[20],
                          struct teex_chain_escrow *out, struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  int r = teex_abi_tuple(&v, 2);
  memset(out, 0, sizeof *out);
  if (r == 0) {
    teex_abi_address(&v.items[0], user);
    teex_abi_address(&v.items[1], dispatcher);
    r = teex_chain__view(rpc, a->settlement, F_ESCROW, &v, R_ESCROW, &ret, err);
  }
  if (r == 0)
    r = w_amount(&ret.items[0], &out->balance);
  if (r == 0)
    r = w_amount(&ret.items[1], &out->settled);
  if (r == 0)
    r = w_amount(&ret.items[2], &out->pending_withdrawal);
  if (r == 0)
    r = teex_abi_get_u64(&ret.items[3], &out->unlock_at);
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "escrow");
}

int teex_chain_get_credits(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t payee[20], teex_amount *out,
                           struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  int r = teex_abi_tuple(&v, 1);
  if (r == 0) {
    teex_abi_address(&v.items[0], payee);
    r = teex_chain__view(rpc, a->settlement, F_CREDITS, &v, "(uint256)", &ret,
                         err);
  }
  if (r == 0)
    r = w_amount(&ret.items[0], out);
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "credits");
}

/* ---- settlement ---- */

int teex_chain_settle_batch(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            const struct teex_chain_batch *b,
                            unsigned timeout_ms, uint64_t *gas_used,
                            struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = cid_ok(b->cid, err);
  if (r != 0)
    return teex_err_wrap(err, r, "settle batch");
  if ((r = teex_abi_tuple(&v, 6)) != 0)
    goto done;
  v_word(&v.items[0], b->batch_id);
  v_word(&v.items[1], b->root);
  teex_abi_uint64(&v.items[2], b->task_count);
  if ((r = teex_abi_string(&v.items[3], b->cid)) != 0 ||
      (r = teex_abi_array(&v.items[4], b->n_auths)) != 0 ||
      (r = teex_abi_array(&v.items[5], b->n_credits)) != 0)
    goto done;
  for (size_t i = 0; i < b->n_auths; i++) {
    const struct teex_payment_auth *p = &b->auths[i];
    struct teex_abi_value *t = &v.items[4].items[i];
    if ((r = teex_abi_tuple(t, 10)) != 0)
      goto done;
    teex_abi_address(&t->items[0], p->user);
    v_word(&t->items[1], p->task_id);
    v_word(&t->items[2], p->service_id);
    v_word(&t->items[3], p->image_hash);
    v_word(&t->items[4], p->datasets_hash);
    v_amount(&t->items[5], p->price);
    v_amount(&t->items[6], p->cumulative);
    teex_abi_uint64(&t->items[7], p->sig[64]);
    v_word(&t->items[8], p->sig);
    v_word(&t->items[9], p->sig + 32);
  }
  for (size_t i = 0; i < b->n_credits; i++) {
    struct teex_abi_value *t = &v.items[5].items[i];
    if ((r = teex_abi_tuple(t, 2)) != 0)
      goto done;
    teex_abi_address(&t->items[0], b->credits[i].payee);
    v_amount(&t->items[1], b->credits[i].amount);
  }
  r = teex_chain__transact(s, a->settlement, 0, F_SETTLE, &v, timeout_ms,
                           gas_used, err);
done:
  teex_abi_value_clear(&v);
  if (r == TEEX_ENOMEM)
    teex_err_set(err, r, NULL);
  return r == 0 ? 0 : teex_err_wrap(err, r, "settle batch");
}

int teex_chain_get_batch(struct teex_eth_rpc *rpc,
                         const struct teex_chain_addrs *a,
                         const uint8_t batch_id[32],
                         struct teex_chain_batch_record *out,
                         struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  uint64_t u = 0;
  int r = teex_abi_tuple(&v, 1);
  memset(out, 0, sizeof *out);
  if (r == 0) {
    v_word(&v.items[0], batch_id);
    r = teex_chain__view(rpc, a->settlement, F_GET_BATCH, &v, R_GET_BATCH, &ret,
                         err);
  }
  if (r == 0) {
    const struct teex_abi_value *f = ret.items[0].items;
    memcpy(out->root, f[0].word, 32);
    r = teex_abi_get_address(&f[1], out->dispatcher);
    if (r == 0)
      r = teex_abi_get_u64(&f[2], &out->settled_at);
    if (r == 0 && (r = teex_abi_get_u64(&f[3], &u)) == 0)
      out->task_count = (uint32_t)u;
  }
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "get batch");
}

int teex_chain_verify_receipt(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t batch_id[32],
                              const struct teex_receipt *rc,
                              const uint8_t *proof, size_t nproof,
                              int *included, struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  struct teex_abi_value *t;
  int r;
  *included = 0;
  if (nproof > TEEX_SETTLE_MAX_PROOF || rc->nshares > TEEX_SETTLE_MAX_SHARES)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "verify receipt: proof or shares "
                        "too long");
  if ((r = teex_abi_tuple(&v, 4)) != 0)
    goto done;
  v_word(&v.items[0], batch_id);
  t = &v.items[1];
  if ((r = teex_abi_tuple(t, 12)) != 0)
    goto done;
  v_word(&t->items[0], rc->task_id);
  v_word(&t->items[1], rc->service_id);
  v_word(&t->items[2], rc->image_hash);
  teex_abi_address(&t->items[3], rc->user);
  teex_abi_address(&t->items[4], rc->dispatcher);
  teex_abi_address(&t->items[5], rc->worker);
  teex_abi_address(&t->items[6], rc->provider);
  v_word(&t->items[7], rc->input_commitment);
  v_word(&t->items[8], rc->output_commitment);
  teex_abi_uint(&t->items[9], rc->price);
  teex_abi_uint(&t->items[10], rc->worker_amount);
  teex_abi_uint(&t->items[11], rc->provider_amount);
  if ((r = teex_abi_array(&v.items[2], rc->nshares)) != 0)
    goto done;
  for (size_t i = 0; i < rc->nshares; i++) {
    struct teex_abi_value *d = &v.items[2].items[i];
    if ((r = teex_abi_tuple(d, 3)) != 0)
      goto done;
    v_word(&d->items[0], rc->shares[i].dataset_id);
    teex_abi_address(&d->items[1], rc->shares[i].payee);
    teex_abi_uint(&d->items[2], rc->shares[i].amount);
  }
  if ((r = teex_abi_array(&v.items[3], nproof)) != 0)
    goto done;
  for (size_t i = 0; i < nproof; i++)
    v_word(&v.items[3].items[i], proof + 32 * i);
  r = teex_chain__view(rpc, a->settlement, F_VERIFY, &v, "(bool)", &ret, err);
  if (r == 0)
    *included = ret.items[0].word[31] != 0;
done:
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return view_name(r, err, "verify receipt");
}

/* ---- batch content ---- */

#define T_SHARE "(bytes32,address,uint256)"
#define T_RECEIPT                                                              \
  "(bytes32,bytes32,bytes32,address,address,address,address,bytes32,bytes32,"  \
  "uint256,uint256,uint256," T_SHARE "[],uint8,bytes32,bytes32)"
#define T_AUTH                                                                 \
  "(address,bytes32,bytes32,bytes32,bytes32,uint256,uint256,uint8,bytes32,"    \
  "bytes32)"
const char teex_chain_batch_content_type[] =
    "((bytes32,uint256,address,address,bytes32,bytes32," T_RECEIPT "[]," T_AUTH
    "[],(address,uint256)[]))";

static int auth_value(struct teex_abi_value *t,
                      const struct teex_payment_auth *p) {
  if (teex_abi_tuple(t, 10) != 0)
    return TEEX_ENOMEM;
  teex_abi_address(&t->items[0], p->user);
  v_word(&t->items[1], p->task_id);
  v_word(&t->items[2], p->service_id);
  v_word(&t->items[3], p->image_hash);
  v_word(&t->items[4], p->datasets_hash);
  v_amount(&t->items[5], p->price);
  v_amount(&t->items[6], p->cumulative);
  teex_abi_uint64(&t->items[7], p->sig[64]);
  v_word(&t->items[8], p->sig);
  v_word(&t->items[9], p->sig + 32);
  return 0;
}

static int receipt_value(struct teex_abi_value *t,
                         const struct teex_receipt *rc, const uint8_t sig[65]) {
  if (teex_abi_tuple(t, 16) != 0)
    return TEEX_ENOMEM;
  v_word(&t->items[0], rc->task_id);
  v_word(&t->items[1], rc->service_id);
  v_word(&t->items[2], rc->image_hash);
  teex_abi_address(&t->items[3], rc->user);
  teex_abi_address(&t->items[4], rc->dispatcher);
  teex_abi_address(&t->items[5], rc->worker);
  teex_abi_address(&t->items[6], rc->provider);
  v_word(&t->items[7], rc->input_commitment);
  v_word(&t->items[8], rc->output_commitment);
  teex_abi_uint(&t->items[9], rc->price);
  teex_abi_uint(&t->items[10], rc->worker_amount);
  teex_abi_uint(&t->items[11], rc->provider_amount);
  if (teex_abi_array(&t->items[12], rc->nshares) != 0)
    return TEEX_ENOMEM;
  for (size_t i = 0; i < rc->nshares; i++) {
    struct teex_abi_value *d = &t->items[12].items[i];
    if (teex_abi_tuple(d, 3) != 0)
      return TEEX_ENOMEM;
    v_word(&d->items[0], rc->shares[i].dataset_id);
    teex_abi_address(&d->items[1], rc->shares[i].payee);
    teex_abi_uint(&d->items[2], rc->shares[i].amount);
  }
  teex_abi_uint64(&t->items[13], sig[64]);
  v_word(&t->items[14], sig);
  v_word(&t->items[15], sig + 32);
  return 0;
}

int teex_chain_batch_content_encode(const struct teex_chain_batch_content *c,
                                    struct teex_buf *out,
                                    struct teex_err *err) {
  const struct teex_chain_batch *b = c->batch;
  struct teex_abi_value top = {0}, *v;
  struct teex_abi_type *t = NULL;
  uint8_t magic[32];
  teex_u256 id;
  int r;
  if (c->n_receipts != b->task_count || c->n_receipts == 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "batch content: %zu receipts for %u tasks",
                        c->n_receipts, (unsigned)b->task_count);
  for (size_t i = 0; i < c->n_receipts; i++)
    if (c->receipts[i].nshares > TEEX_SETTLE_MAX_SHARES)
      return teex_err_set(err, TEEX_ETOOBIG, "receipt %zu: too many shares", i);
  teex_keccak256(TEEX_CHAIN_BATCH_MAGIC_TEXT,
                 sizeof TEEX_CHAIN_BATCH_MAGIC_TEXT - 1, magic);
  if ((r = teex_abi_tuple(&top, 1)) != 0 ||
      (r = teex_abi_tuple(&top.items[0], 9)) != 0)
    goto done;
  v = &top.items[0];
  v_word(&v->items[0], magic);
  teex_u256_from_u64(id, c->chain_id);
  teex_abi_uint(&v->items[1], id);
  teex_abi_address(&v->items[2], c->settlement);
  teex_abi_address(&v->items[3], c->dispatcher);
  v_word(&v->items[4], b->batch_id);
  v_word(&v->items[5], b->root);
  if ((r = teex_abi_array(&v->items[6], c->n_receipts)) != 0 ||
      (r = teex_abi_array(&v->items[7], b->n_auths)) != 0 ||
      (r = teex_abi_array(&v->items[8], b->n_credits)) != 0)
    goto done;
  for (size_t i = 0; i < c->n_receipts && r == 0; i++)
    r = receipt_value(&v->items[6].items[i], &c->receipts[i],
                      c->receipt_sigs[i]);
  for (size_t i = 0; i < b->n_auths && r == 0; i++)
    r = auth_value(&v->items[7].items[i], &b->auths[i]);
  for (size_t i = 0; i < b->n_credits && r == 0; i++) {
    struct teex_abi_value *cr = &v->items[8].items[i];
    if ((r = teex_abi_tuple(cr, 2)) != 0)
      break;
    teex_abi_address(&cr->items[0], b->credits[i].payee);
    v_amount(&cr->items[1], b->credits[i].amount);
  }
  if (r != 0)
    goto done;
  if ((r = teex_abi_type_parse(teex_chain_batch_content_type, &t, err)) == 0)
    r = teex_abi_encode(t, &top, out, err);
done:
  if (r == TEEX_ENOMEM)
    teex_err_set(err, r, NULL);
  teex_abi_type_free(t);
  teex_abi_value_clear(&top);
  return r == 0 ? 0 : teex_err_wrap(err, r, "batch content");
}
