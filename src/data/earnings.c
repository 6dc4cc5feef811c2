/* A dataset's uses and earnings from the chain (include/teex/data.h): the
 * Settlement contract's BatchSettled events give each batch's root and the
 * CID of its content on IPFS; the content's receipts carry the data shares.
 * A content counts only when its receipts hash to the root on chain. */
#include "teex/data.h"

#include "teex/abi.h"
#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/settle.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_SETTLED_SIG                                                      \
  "BatchSettled(bytes32,address,bytes32,uint32,uint256,string)"

/* The receipt tuple of the batch content (chain.c's T_RECEIPT): 16 fields,
 * the shares at 12. */
static int receipt_of(const struct teex_abi_value *t, struct teex_receipt *r,
                      struct teex_data_share *shares) {
  if (t->n_items != 16 || t->items[12].n_items > TEEX_SETTLE_MAX_SHARES)
    return TEEX_EFORMAT;
  memset(r, 0, sizeof *r);
  const struct teex_abi_value *f = t->items;
  memcpy(r->task_id, f[0].word, 32);
  memcpy(r->service_id, f[1].word, 32);
  memcpy(r->image_hash, f[2].word, 32);
  memcpy(r->user, f[3].word + 12, 20);
  memcpy(r->dispatcher, f[4].word + 12, 20);
  memcpy(r->worker, f[5].word + 12, 20);
  memcpy(r->provider, f[6].word + 12, 20);
  memcpy(r->input_commitment, f[7].word, 32);
  memcpy(r->output_commitment, f[8].word, 32);
  memcpy(r->price, f[9].word, 32);
  memcpy(r->worker_amount, f[10].word, 32);
  memcpy(r->provider_amount, f[11].word, 32);
  for (size_t i = 0; i < f[12].n_items; i++) {
    const struct teex_abi_value *s = &f[12].items[i];
    if (s->n_items != 3)
      return TEEX_EFORMAT;
    memcpy(shares[i].dataset_id, s->items[0].word, 32);
    memcpy(shares[i].payee, s->items[1].word + 12, 20);
    memcpy(shares[i].amount, s->items[2].word, 32);
  }
  r->shares = shares;
  r->nshares = f[12].n_items;
  return 0;
}

int teex_data_batch_uses(const uint8_t *content, size_t len,
                         const uint8_t root[32], const uint8_t dataset_id[32],
                         uint32_t *uses, teex_amount *earned,
                         struct teex_err *err) {
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v = {0};
  struct teex_data_share *shares = NULL;
  uint8_t *leaves = NULL;
  uint32_t u = 0;
  teex_amount e = 0;
  int rc = teex_abi_type_parse(teex_chain_batch_content_type, &t, err);
  if (rc == 0)
    rc = teex_abi_decode(t, content, len, &v, err);
  if (rc != 0)
    goto out;
  const struct teex_abi_value *b = &v.items[0], *rs = &b->items[6];
  if (memcmp(b->items[5].word, root, 32) != 0 || rs->n_items == 0 ||
      rs->n_items > TEEX_SETTLE_MAX_LEAVES) {
    rc = teex_err_set(err, TEEX_EAUTH, "batch content is not the batch's");
    goto out;
  }
  shares = calloc(TEEX_SETTLE_MAX_SHARES, sizeof *shares);
  leaves = malloc(32 * rs->n_items);
  if (shares == NULL || leaves == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto out;
  }
  for (size_t i = 0; i < rs->n_items && rc == 0; i++) {
    struct teex_receipt r;
    if (receipt_of(&rs->items[i], &r, shares) != 0) {
      rc = teex_err_set(err, TEEX_EFORMAT, "batch content: receipt %zu", i);
      break;
    }
    teex_settle_receipt_leaf(&r, leaves + 32 * i);
    for (size_t k = 0; k < r.nshares; k++) {
      teex_amount a;
      if (memcmp(r.shares[k].dataset_id, dataset_id, 32) != 0)
        continue;
      if (teex_amount_from_word(r.shares[k].amount, &a) != 0 || e + a < e) {
        rc = teex_err_set(err, TEEX_EFORMAT, "batch content: amount");
        break;
      }
      u++;
      e += a;
    }
  }
  uint8_t got[32];
  if (rc == 0 && (teex_settle_merkle_root(leaves, rs->n_items, got) != 0 ||
                  memcmp(got, root, 32) != 0))
    rc = teex_err_set(err, TEEX_EAUTH,
                      "batch content: receipts do not hash to the root");
  if (rc == 0) {
    *uses += u;
    *earned += e;
  }
out:
  free(leaves);
  free(shares);
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);
  return rc;
}

int teex_data_earnings(struct teex_eth_rpc *rpc,
                       const struct teex_chain_addrs *a,
                       struct teex_ipfs_backend *ipfs,
                       const uint8_t dataset_id[32],
                       struct teex_data_earnings *out, struct teex_err *err) {
  struct teex_eth_log_filter flt = {0};
  struct teex_eth_log *logs = NULL;
  size_t nlogs = 0;
  memset(out, 0, sizeof *out);
  flt.from_block = a->deploy_block;
  flt.to_block = UINT64_MAX;
  flt.has_address = 1;
  memcpy(flt.address, a->settlement, 20);
  flt.topic_mask = 1;
  int rc = teex_abi_event_topic(BATCH_SETTLED_SIG, flt.topics[0], err);
  if (rc == 0)
    rc = teex_eth_get_logs(rpc, &flt, &logs, &nlogs, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "settled batches");
  struct teex_buf content;
  teex_buf_init(&content, TEEX_CHAIN_BATCH_CONTENT_MAX, 0);
  for (size_t i = 0; i < nlogs; i++) {
    struct teex_abi_value ev = {0};
    struct teex_cid cid;
    struct teex_err e2;
    out->batches++;
    content.len = 0;
    /* batchId and dispatcher are indexed (bits 0 and 1) */
    if (teex_abi_log_decode(
            BATCH_SETTLED_SIG, 3, (const uint8_t(*)[32])logs[i].topics,
            logs[i].n_topics, logs[i].data, logs[i].data_len, &ev, &e2) != 0 ||
        ev.n_items != 6 || ev.items[5].data == NULL ||
        teex_cid_parse((const char *)ev.items[5].data, &cid, &e2) != 0 ||
        teex_ipfs_cat_buffer(ipfs, &cid, &content, &e2) != 0 ||
        teex_data_batch_uses(content.data, content.len, ev.items[2].word,
                             dataset_id, &out->uses, &out->earned, &e2) != 0)
      out->unreadable++;
    teex_abi_value_clear(&ev);
  }
  teex_buf_free(&content);
  teex_eth_logs_free(logs, nlogs);
  return 0;
}
