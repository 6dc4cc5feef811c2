/* DatasetRegistry from C (include/teex/chain.h, "datasets"): listing,
 * approvals of exact (service, image hash) pairs, revocation, reads, and the
 * listings and approvals rebuilt from the registry's events. */
#include "teex/abi.h"
#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/statements.h"

#include <stdlib.h>
#include <string.h>

#include "chain_internal.h"

static int need_registry(const struct teex_chain_addrs *a,
                         struct teex_err *err) {
  if (teex_chain_has_datasets(a))
    return 0;
  return teex_err_set(err, TEEX_ECONFIG,
                      "this network has no DatasetRegistry (dataset_registry "
                      "missing from chain.conf: redeploy the contracts)");
}

void teex_dataset_id(const uint8_t provider[20], const char *name,
                     uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  teex_keccak256_update(&c, "teex/dataset-id/v1", 18);
  teex_keccak256_update(&c, provider, 20);
  teex_keccak256_update(&c, name, strlen(name));
  teex_keccak256_final(&c, out);
}

static int bounded(const char *s, size_t max, const char *what,
                   struct teex_err *err) {
  size_t n = s ? strnlen(s, max + 1) : 0;
  if (n == 0 || n > max)
    return teex_err_set(err, TEEX_EINVAL, "%s must have 1 to %zu bytes", what,
                        max);
  return 0;
}

static void v_amount(struct teex_abi_value *v, teex_amount x) {
  teex_u256 w;
  teex_amount_word(x, w);
  teex_abi_uint(v, w);
}

int teex_chain_list_dataset(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            struct teex_chain_dataset *d, unsigned timeout_ms,
                            struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = need_registry(a, err);
  if (r == 0)
    r = bounded(d->name, TEEX_CHAIN_MAX_DATASET_NAME, "a dataset name", err);
  if (r == 0)
    r = bounded(d->ciphertext_cid, TEEX_CHAIN_MAX_CID, "a CID", err);
  if (r == 0 && (r = teex_abi_tuple(&v, 8)) == 0) {
    r = teex_abi_string(&v.items[0], d->name);
    if (r == 0)
      r = teex_abi_string(&v.items[1], d->ciphertext_cid);
    teex_abi_fixed_bytes(&v.items[2], d->plaintext_hash, 32);
    teex_abi_uint64(&v.items[3], d->plaintext_size);
    v_amount(&v.items[4], d->price);
    teex_abi_uint64(&v.items[5], d->expires_at);
    teex_abi_uint64(&v.items[6], d->max_uses);
    teex_abi_uint64(&v.items[7], d->max_output_bytes);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->dataset_registry, 0,
                             TEEX_CHAIN_F_LIST_DATASET, &v, timeout_ms, NULL,
                             err);
  if (r == 0) {
    memcpy(d->provider, teex_eth_sender_address(s), 20);
    teex_dataset_id(d->provider, d->name, d->dataset_id);
  }
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "list dataset");
}

int teex_chain_approve_dataset(struct teex_eth_sender *s,
                               const struct teex_chain_addrs *a,
                               const uint8_t dataset_id[32],
                               const struct teex_chain_approval *pairs,
                               size_t n, int approve, unsigned timeout_ms,
                               struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = need_registry(a, err);
  if (r == 0 && (n == 0 || n > TEEX_CHAIN_MAX_APPROVALS))
    r = teex_err_set(err, TEEX_EINVAL, "1 to %d approvals per call",
                     TEEX_CHAIN_MAX_APPROVALS);
  if (r == 0 && (r = teex_abi_tuple(&v, 2)) == 0) {
    teex_abi_fixed_bytes(&v.items[0], dataset_id, 32);
    r = teex_abi_array(&v.items[1], n);
    for (size_t i = 0; r == 0 && i < n; i++) {
      struct teex_abi_value *t = &v.items[1].items[i];
      if ((r = teex_abi_tuple(t, 2)) == 0) {
        teex_abi_fixed_bytes(&t->items[0], pairs[i].service_id, 32);
        teex_abi_fixed_bytes(&t->items[1], pairs[i].image_hash, 32);
      }
    }
    if (r != 0)
      r = teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  if (r == 0)
    r = teex_chain__transact(s, a->dataset_registry, 0,
                             approve ? TEEX_CHAIN_F_APPROVE
                                     : TEEX_CHAIN_F_REMOVE_APPROVAL,
                             &v, timeout_ms, NULL, err);
  teex_abi_value_clear(&v);
  return r == 0 ? 0
                : teex_err_wrap(err, r, "%s",
                                approve ? "approve" : "remove approval");
}

int teex_chain_revoke_dataset(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t dataset_id[32], unsigned timeout_ms,
                              struct teex_err *err) {
  struct teex_abi_value v = {0};
  int r = need_registry(a, err);
  if (r == 0 && (r = teex_abi_tuple(&v, 1)) == 0) {
    teex_abi_fixed_bytes(&v.items[0], dataset_id, 32);
    r = teex_chain__transact(s, a->dataset_registry, 0,
                             TEEX_CHAIN_F_REVOKE_DATASET, &v, timeout_ms, NULL,
                             err);
  }
  teex_abi_value_clear(&v);
  return r == 0 ? 0 : teex_err_wrap(err, r, "revoke dataset");
}

static int copy_str(char *dst, size_t max, const struct teex_abi_value *v,
                    const char *what, struct teex_err *err) {
  if (v->len > max || memchr(v->data, 0, v->len) != NULL)
    return teex_err_set(err, TEEX_EFORMAT, "bad %s on chain", what);
  memcpy(dst, v->data, v->len);
  dst[v->len] = 0;
  return 0;
}

static int u32_of(const struct teex_abi_value *v, uint32_t *out) {
  uint64_t u;
  int r = teex_abi_get_u64(v, &u);
  if (r == 0 && u > UINT32_MAX)
    r = TEEX_EFORMAT;
  if (r == 0)
    *out = (uint32_t)u;
  return r;
}

int teex_chain_get_dataset(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t dataset_id[32],
                           struct teex_chain_dataset *out,
                           struct teex_err *err) {
  struct teex_abi_value args = {0}, ret = {0}, listed = {0};
  int r = need_registry(a, err);
  memset(out, 0, sizeof *out);
  if (r == 0 && (r = teex_abi_tuple(&args, 1)) == 0) {
    teex_abi_fixed_bytes(&args.items[0], dataset_id, 32);
    /* Existence first, with a call that does not revert: a revert's data
     * is not always readable through every node (see the chain tests). */
    r = teex_chain__view(rpc, a->dataset_registry, TEEX_CHAIN_F_IS_LISTED,
                         &args, "(bool)", &listed, err);
    if (r == 0 && listed.items[0].word[31] == 0)
      r = teex_err_set(err, TEEX_ENOTFOUND, "no such dataset");
    if (r == 0)
      r = teex_chain__view(rpc, a->dataset_registry, TEEX_CHAIN_F_GET_DATASET,
                           &args, TEEX_CHAIN_R_GET_DATASET, &ret, err);
  }
  if (r == TEEX_ECHAIN && strstr(err->msg, "DatasetNotFound") != NULL)
    r = teex_err_set(err, TEEX_ENOTFOUND, "no such dataset");
  if (r == 0) {
    const struct teex_abi_value *f = ret.items[0].items;
    memcpy(out->dataset_id, dataset_id, 32);
    r = teex_abi_get_address(&f[0], out->provider);
    out->revoked = f[1].word[31] != 0;
    if (r == 0)
      r = teex_abi_get_u64(&f[2], &out->expires_at);
    if (r == 0)
      r = teex_abi_get_u64(&f[3], &out->plaintext_size);
    if (r == 0)
      r = u32_of(&f[4], &out->max_uses);
    if (r == 0)
      r = teex_abi_get_u64(&f[5], &out->max_output_bytes);
    if (r == 0)
      r = teex_amount_from_word(f[6].word, &out->price);
    memcpy(out->plaintext_hash, f[7].word, 32);
    if (r != 0)
      r = teex_err_set(err, TEEX_EFORMAT, "bad dataset record on chain");
    if (r == 0)
      r = copy_str(out->name, TEEX_CHAIN_MAX_DATASET_NAME, &f[8], "name", err);
    if (r == 0)
      r = copy_str(out->ciphertext_cid, TEEX_CHAIN_MAX_CID, &f[9], "CID", err);
  }
  teex_abi_value_clear(&args);
  teex_abi_value_clear(&ret);
  teex_abi_value_clear(&listed);
  return r == 0 ? 0 : teex_err_wrap(err, r, "get dataset");
}

static int pair_view(struct teex_eth_rpc *rpc, const struct teex_chain_addrs *a,
                     const char *sig, const uint8_t dataset_id[32],
                     const uint8_t service_id[32], const uint8_t image_hash[32],
                     int *yes, struct teex_err *err) {
  struct teex_abi_value v = {0}, ret = {0};
  int r = need_registry(a, err);
  *yes = 0;
  if (r == 0 && (r = teex_abi_tuple(&v, 3)) == 0) {
    teex_abi_fixed_bytes(&v.items[0], dataset_id, 32);
    teex_abi_fixed_bytes(&v.items[1], service_id, 32);
    teex_abi_fixed_bytes(&v.items[2], image_hash, 32);
    r = teex_chain__view(rpc, a->dataset_registry, sig, &v, "(bool)", &ret,
                         err);
  }
  if (r == 0)
    *yes = ret.items[0].word[31] != 0;
  teex_abi_value_clear(&v);
  teex_abi_value_clear(&ret);
  return r;
}

int teex_chain_dataset_usable(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t dataset_id[32],
                              const uint8_t service_id[32],
                              const uint8_t image_hash[32], int *usable,
                              struct teex_err *err) {
  int r = pair_view(rpc, a, TEEX_CHAIN_F_USABLE, dataset_id, service_id,
                    image_hash, usable, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "dataset usable");
}

int teex_chain_dataset_approved(struct teex_eth_rpc *rpc,
                                const struct teex_chain_addrs *a,
                                const uint8_t dataset_id[32],
                                const uint8_t service_id[32],
                                const uint8_t image_hash[32], int *approved,
                                struct teex_err *err) {
  int r = pair_view(rpc, a, TEEX_CHAIN_F_IS_APPROVED, dataset_id, service_id,
                    image_hash, approved, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "dataset approval");
}

/* ---- listings and approvals from events ---- */

enum { EV_LISTED, EV_APPROVED, EV_UNAPPROVED, EV_PRICE, EV_REVOKED, EV_N };

static const char *const ds_events[EV_N] = {
    TEEX_CHAIN_E_DS_LISTED, TEEX_CHAIN_E_DS_APPROVED,
    TEEX_CHAIN_E_DS_UNAPPROVED, TEEX_CHAIN_E_DS_PRICE, TEEX_CHAIN_E_DS_REVOKED};
/* Which parameters are indexed (bit i: parameter i). */
static const uint32_t ds_masks[EV_N] = {3, 3, 3, 1, 1};

static int topics_init(uint8_t topics[EV_N][32], struct teex_err *err) {
  for (int i = 0; i < EV_N; i++) {
    int r = teex_abi_event_topic(ds_events[i], topics[i], err);
    if (r != 0)
      return r;
  }
  return 0;
}

/* Decodes lg when it is one of the registry's events; *which = -1 else. */
static int decode(const struct teex_eth_log *lg, const uint8_t topics[EV_N][32],
                  int *which, struct teex_abi_value *ev, struct teex_err *err) {
  *which = -1;
  if (lg->n_topics == 0)
    return 0;
  for (int i = 0; i < EV_N; i++)
    if (memcmp(lg->topics[0], topics[i], 32) == 0)
      *which = i;
  if (*which < 0)
    return 0;
  int r = teex_abi_log_decode(ds_events[*which], ds_masks[*which], lg->topics,
                              lg->n_topics, lg->data, lg->data_len, ev, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "dataset registry log");
}

static int apply_dataset(const struct teex_eth_log *lg,
                         const uint8_t topics[EV_N][32],
                         struct teex_chain_dataset **v, size_t *n, size_t *cap,
                         struct teex_err *err) {
  struct teex_abi_value ev = {0};
  struct teex_chain_dataset *d = NULL;
  const struct teex_abi_value *f;
  int which, r = decode(lg, topics, &which, &ev, err);
  if (r != 0 || which < 0 || which == EV_APPROVED || which == EV_UNAPPROVED)
    goto done;
  f = ev.items;
  if (which == EV_LISTED) {
    if (*n == TEEX_CHAIN_MAX_DATASETS) {
      r = teex_err_set(err, TEEX_ETOOBIG, "more than %d datasets",
                       TEEX_CHAIN_MAX_DATASETS);
      goto done;
    }
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 16;
      struct teex_chain_dataset *nv = realloc(*v, nc * sizeof *nv);
      if (nv == NULL) {
        r = teex_err_set(err, TEEX_ENOMEM, NULL);
        goto done;
      }
      *v = nv;
      *cap = nc;
    }
    d = &(*v)[*n];
    memset(d, 0, sizeof *d);
    memcpy(d->dataset_id, f[0].word, 32);
    r = teex_abi_get_address(&f[1], d->provider);
    if (r == 0)
      r = copy_str(d->name, TEEX_CHAIN_MAX_DATASET_NAME, &f[2], "name", err);
    if (r == 0)
      r = copy_str(d->ciphertext_cid, TEEX_CHAIN_MAX_CID, &f[3], "CID", err);
    memcpy(d->plaintext_hash, f[4].word, 32);
    if (r == 0 && (teex_abi_get_u64(&f[5], &d->plaintext_size) != 0 ||
                   teex_amount_from_word(f[6].word, &d->price) != 0 ||
                   teex_abi_get_u64(&f[7], &d->expires_at) != 0 ||
                   u32_of(&f[8], &d->max_uses) != 0 ||
                   teex_abi_get_u64(&f[9], &d->max_output_bytes) != 0))
      r = teex_err_set(err, TEEX_EFORMAT, "bad DatasetListed event");
    if (r == 0)
      (*n)++;
    goto done;
  }
  for (size_t i = *n; i-- > 0;)
    if (memcmp((*v)[i].dataset_id, f[0].word, 32) == 0) {
      d = &(*v)[i];
      break;
    }
  if (d == NULL) /* an event for a listing we did not see: ignore */
    goto done;
  if (which == EV_PRICE) {
    if (teex_amount_from_word(f[1].word, &d->price) != 0)
      r = teex_err_set(err, TEEX_EFORMAT, "bad DatasetPriceChanged event");
  } else {
    d->revoked = 1;
  }
done:
  teex_abi_value_clear(&ev);
  return r;
}

int teex_chain__apply_dataset_log(const struct teex_eth_log *lg,
                                  struct teex_chain_dataset **v, size_t *n,
                                  size_t *cap, struct teex_err *err) {
  uint8_t topics[EV_N][32];
  int r = topics_init(topics, err);
  return r != 0
             ? r
             : apply_dataset(lg, (const uint8_t(*)[32])topics, v, n, cap, err);
}

/* Reads the registry's logs (only dataset_id's when not NULL). */
static int read_logs(struct teex_eth_rpc *rpc, const struct teex_chain_addrs *a,
                     const uint8_t *dataset_id, struct teex_eth_log **logs,
                     size_t *nlogs, struct teex_err *err) {
  struct teex_eth_log_filter flt = {0};
  flt.from_block = a->deploy_block;
  flt.to_block = UINT64_MAX;
  flt.has_address = 1;
  memcpy(flt.address, a->dataset_registry, 20);
  if (dataset_id != NULL) {
    flt.topic_mask = 2;
    memcpy(flt.topics[1], dataset_id, 32);
  }
  int r = teex_eth_get_logs(rpc, &flt, logs, nlogs, err);
  return r == 0 ? 0 : teex_err_wrap(err, r, "read dataset events");
}

int teex_chain_datasets(struct teex_eth_rpc *rpc,
                        const struct teex_chain_addrs *a,
                        struct teex_chain_dataset **out, size_t *n,
                        struct teex_err *err) {
  struct teex_eth_log *logs = NULL;
  struct teex_chain_dataset *v = NULL;
  size_t nlogs = 0, count = 0, cap = 0;
  uint8_t topics[EV_N][32];
  int r = need_registry(a, err);
  *out = NULL;
  *n = 0;
  if (r == 0)
    r = topics_init(topics, err);
  if (r == 0)
    r = read_logs(rpc, a, NULL, &logs, &nlogs, err);
  for (size_t i = 0; i < nlogs && r == 0; i++)
    r = apply_dataset(&logs[i], (const uint8_t(*)[32])topics, &v, &count, &cap,
                      err);
  teex_eth_logs_free(logs, nlogs);
  if (r != 0) {
    free(v);
    return teex_err_wrap(err, r, "datasets");
  }
  *out = v;
  *n = count;
  return 0;
}

int teex_chain_dataset_approvals(struct teex_eth_rpc *rpc,
                                 const struct teex_chain_addrs *a,
                                 const uint8_t dataset_id[32],
                                 struct teex_chain_approval **out, size_t *n,
                                 struct teex_err *err) {
  struct teex_eth_log *logs = NULL;
  struct teex_chain_approval *v = NULL;
  size_t nlogs = 0, count = 0;
  uint8_t topics[EV_N][32];
  int r = need_registry(a, err);
  *out = NULL;
  *n = 0;
  if (r == 0)
    r = topics_init(topics, err);
  if (r == 0)
    r = read_logs(rpc, a, dataset_id, &logs, &nlogs, err);
  for (size_t i = 0; i < nlogs && r == 0; i++) {
    struct teex_abi_value ev = {0};
    int which;
    size_t k;
    r = decode(&logs[i], (const uint8_t(*)[32])topics, &which, &ev, err);
    if (r != 0 || (which != EV_APPROVED && which != EV_UNAPPROVED) ||
        memcmp(ev.items[0].word, dataset_id, 32) != 0) {
      teex_abi_value_clear(&ev);
      continue;
    }
    const uint8_t *svc = ev.items[1].word, *img = ev.items[2].word;
    for (k = 0; k < count; k++)
      if (memcmp(v[k].service_id, svc, 32) == 0 &&
          memcmp(v[k].image_hash, img, 32) == 0)
        break;
    if (which == EV_APPROVED && k == count) {
      if (count == TEEX_CHAIN_MAX_DATASET_APPROVALS) {
        r = teex_err_set(err, TEEX_ETOOBIG, "more than %d approvals",
                         TEEX_CHAIN_MAX_DATASET_APPROVALS);
      } else {
        struct teex_chain_approval *nv = realloc(v, (count + 1) * sizeof *nv);
        if (nv == NULL) {
          r = teex_err_set(err, TEEX_ENOMEM, NULL);
        } else {
          v = nv;
          memcpy(v[count].service_id, svc, 32);
          memcpy(v[count].image_hash, img, 32);
          count++;
        }
      }
    } else if (which == EV_UNAPPROVED && k < count) {
      memmove(&v[k], &v[k + 1], (count - k - 1) * sizeof *v);
      count--;
    }
    teex_abi_value_clear(&ev);
  }
  teex_eth_logs_free(logs, nlogs);
  if (r != 0) {
    free(v);
    return teex_err_wrap(err, r, "dataset approvals");
  }
  *out = v;
  *n = count;
  return 0;
}
