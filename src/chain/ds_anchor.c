/* DsAnchor from C (include/teex/ds_anchor.h): the TEE-DS freshness anchors,
 * their EIP-712 digest, and the comparison a replica makes at restart. */
#include "teex/ds_anchor.h"

#include "teex/abi.h"
#include "teex/crypto.h"
#include "teex/eip712.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chain_internal.h"

#define T_ANCHOR                                                               \
  "DsAnchor(bytes32 groupId,uint64 index,uint64 term,bytes32 appliedChain,"    \
  "bytes32 stateDigest,uint64 time,bytes32 commitmentHash,string cid)"

static int need_contract(const struct teex_chain_addrs *a,
                         struct teex_err *err) {
  if (teex_chain_has_ds_anchor(a))
    return 0;
  return teex_err_set(err, TEEX_ECONFIG,
                      "this network has no DsAnchor contract (ds_anchor "
                      "missing from chain.conf: redeploy the contracts)");
}

int teex_chain_has_ds_anchor(const struct teex_chain_addrs *a) {
  static const uint8_t zero[20];
  return memcmp(a->ds_anchor, zero, 20) != 0;
}

int teex_ds_anchor_document(const struct teex_ds_anchor *c, char *out,
                            size_t cap) {
  char g[65], ch[65], dg[65];
  teex_hex_encode(c->group_id, 32, g);
  teex_hex_encode(c->applied_chain, 32, ch);
  teex_hex_encode(c->state_digest, 32, dg);
  int n = snprintf(out, cap,
                   "teex/ds-anchor/v1\ngroup %s\nindex %" PRIu64
                   "\nterm %" PRIu64 "\napplied_chain %s\nstate_digest %s\n"
                   "time_ms %" PRIu64 "\n",
                   g, c->index, c->term, ch, dg, c->time_ms);
  return n > 0 && (size_t)n < cap ? n : -1;
}

void teex_ds_anchor_group_id(const uint8_t ds_group_id[16], uint8_t out[32]) {
  memset(out, 0, 32);
  memcpy(out, ds_group_id, 16);
}

static void put_u64(uint8_t w[32], uint64_t v) {
  memset(w, 0, 32);
  for (int i = 0; i < 8; i++)
    w[31 - i] = (uint8_t)(v >> (8 * i));
}

void teex_ds_anchor_digest(const struct teex_domain *d,
                           const struct teex_ds_anchor *c, uint8_t out[32]) {
  uint8_t w[9 * 32], sep[32], h[32];
  teex_keccak256(T_ANCHOR, strlen(T_ANCHOR), w);
  memcpy(w + 32, c->group_id, 32);
  put_u64(w + 64, c->index);
  put_u64(w + 96, c->term);
  memcpy(w + 128, c->applied_chain, 32);
  memcpy(w + 160, c->state_digest, 32);
  put_u64(w + 192, c->time_ms);
  memcpy(w + 224, c->commitment_hash, 32);
  teex_keccak256(c->cid, strnlen(c->cid, sizeof c->cid), w + 256);
  teex_keccak256(w, sizeof w, h);
  teex_domain_separator(d, sep);
  teex_eip712_digest(sep, h, out);
}

int teex_chain_ds_anchor_create_group(struct teex_eth_sender *s,
                                      const struct teex_chain_addrs *a,
                                      const uint8_t group_id[32],
                                      const uint8_t (*anchorers)[20], size_t n,
                                      unsigned timeout_ms,
                                      struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = need_contract(a, err);
  if (r != 0)
    return r;
  if (n > TEEX_DS_ANCHOR_MAX_ANCHORERS)
    return teex_err_set(err, TEEX_EINVAL, "%zu anchorers (at most %d)", n,
                        TEEX_DS_ANCHOR_MAX_ANCHORERS);
  r = teex_abi_tuple(&v, 2);
  if (r == 0) {
    teex_abi_fixed_bytes(&v.items[0], group_id, 32);
    r = teex_abi_array(&v.items[1], n);
  }
  for (size_t i = 0; r == 0 && i < n; i++)
    teex_abi_address(&v.items[1].items[i], anchorers[i]);
  if (r == 0)
    r = teex_chain__transact(s, a->ds_anchor, 0, TEEX_CHAIN_F_DSA_CREATE, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "create anchor group");
}

int teex_chain_ds_anchor_set(struct teex_eth_sender *s,
                             const struct teex_chain_addrs *a,
                             const uint8_t group_id[32],
                             const uint8_t enclave[20], int allowed,
                             unsigned timeout_ms, struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = need_contract(a, err);
  if (r == 0 && (r = teex_abi_tuple(&v, 3)) == 0) {
    teex_abi_fixed_bytes(&v.items[0], group_id, 32);
    teex_abi_address(&v.items[1], enclave);
    teex_abi_bool(&v.items[2], allowed != 0);
    r = teex_chain__transact(s, a->ds_anchor, 0, TEEX_CHAIN_F_DSA_SET, &v,
                             timeout_ms, NULL, err);
  }
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "set anchorer");
}

int teex_chain_ds_anchor_submit(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const struct teex_ds_anchor *c,
                                const uint8_t sig[65], unsigned timeout_ms,
                                struct teex_err *err) {
  struct teex_abi_value v = {0};
  size_t cid_len = strnlen(c->cid, sizeof c->cid);
  int r = need_contract(a, err);
  if (r != 0)
    return r;
  if (cid_len == 0 || cid_len > TEEX_CHAIN_MAX_CID)
    return teex_err_set(err, TEEX_EINVAL, "anchor: bad CID (1..%d bytes)",
                        TEEX_CHAIN_MAX_CID);
  r = teex_abi_tuple(&v, 2);
  if (r == 0)
    r = teex_abi_tuple(&v.items[0], 8);
  if (r == 0) {
    struct teex_abi_value *f = v.items[0].items;
    teex_abi_fixed_bytes(&f[0], c->group_id, 32);
    teex_abi_uint64(&f[1], c->index);
    teex_abi_uint64(&f[2], c->term);
    teex_abi_fixed_bytes(&f[3], c->applied_chain, 32);
    teex_abi_fixed_bytes(&f[4], c->state_digest, 32);
    teex_abi_uint64(&f[5], c->time_ms);
    teex_abi_fixed_bytes(&f[6], c->commitment_hash, 32);
    r = teex_abi_string(&f[7], c->cid);
  }
  if (r == 0 && (r = teex_abi_tuple(&v.items[1], 3)) == 0) {
    teex_abi_uint64(&v.items[1].items[0], sig[64]);
    teex_abi_fixed_bytes(&v.items[1].items[1], sig, 32);
    teex_abi_fixed_bytes(&v.items[1].items[2], sig + 32, 32);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->ds_anchor, 0, TEEX_CHAIN_F_DSA_ANCHOR, &v,
                             timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0
                : teex_err_wrap(err, r, "anchor index %llu",
                                (unsigned long long)c->index);
}

/* The fields of a decoded latest() record into out (group_id untouched). */
static int record_fields(const struct teex_abi_value *ret,
                         struct teex_ds_anchor *out, struct teex_err *err) {
  const struct teex_abi_value *f = ret->items[0].items;
  int r = teex_abi_get_u64(&f[0], &out->index);
  if (r == 0)
    r = teex_abi_get_u64(&f[1], &out->term);
  if (r == 0)
    r = teex_abi_get_u64(&f[2], &out->time_ms);
  if (r == 0)
    r = teex_abi_get_u64(&f[3], &out->anchored_at);
  memcpy(out->applied_chain, f[4].word, 32);
  memcpy(out->state_digest, f[5].word, 32);
  memcpy(out->commitment_hash, f[6].word, 32);
  if (r == 0 && (f[7].len > TEEX_CHAIN_MAX_CID ||
                 (f[7].len > 0 && memchr(f[7].data, 0, f[7].len) != NULL)))
    r = TEEX_EFORMAT;
  if (r == 0) {
    if (f[7].len > 0)
      memcpy(out->cid, f[7].data, f[7].len);
    out->cid[f[7].len] = 0;
    r = teex_abi_get_address(&f[8], out->signer);
  }
  if (r != 0)
    r = teex_err_set(err, TEEX_EFORMAT, "bad anchor record on chain");
  return r;
}

int teex_chain__ds_anchor_decode(const uint8_t *data, size_t len,
                                 struct teex_ds_anchor *out,
                                 struct teex_err *err) {
  struct teex_abi_type *t = NULL;
  struct teex_abi_value ret = {0};
  int r = teex_abi_type_parse(TEEX_CHAIN_R_DSA_LATEST, &t, err);
  if (r == 0)
    r = teex_abi_decode(t, data, len, &ret, err);
  if (r == 0)
    r = record_fields(&ret, out, err);
  teex_abi_value_clear(&ret);
  teex_abi_type_free(t);
  return r;
}

int teex_chain_ds_anchor_latest(struct teex_eth_rpc *rpc,
                                const struct teex_chain_addrs *a,
                                const uint8_t group_id[32],
                                struct teex_ds_anchor *out,
                                struct teex_err *err) {
  struct teex_abi_value args = {0}, ret = {0};
  int r = need_contract(a, err);
  memset(out, 0, sizeof *out);
  if (r == 0 && (r = teex_abi_tuple(&args, 1)) == 0) {
    teex_abi_fixed_bytes(&args.items[0], group_id, 32);
    r = teex_chain__view(rpc, a->ds_anchor, TEEX_CHAIN_F_DSA_LATEST, &args,
                         TEEX_CHAIN_R_DSA_LATEST, &ret, err);
  }
  if (r == 0) {
    memcpy(out->group_id, group_id, 32);
    r = record_fields(&ret, out, err);
  }
  teex_abi_value_clear(&args);
  teex_abi_value_clear(&ret);
  return r == 0 ? 0 : teex_err_wrap(err, r, "latest anchor");
}
