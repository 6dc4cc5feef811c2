/* Settlement batch content: abi.encode(BatchContent) exactly as
 * docs/settlement.md §4.2 lays it out, encoded by hand because the layout is
 * frozen (a head of static words and offsets, then the arrays). */
#include "teex/dispatcher.h"

#include "teex/crypto.h"

#include <string.h>

static int word(struct teex_buf *o, const uint8_t w[32]) {
  return teex_buf_append(o, w, 32);
}

static int word_u64(struct teex_buf *o, uint64_t v) {
  uint8_t w[32];
  memset(w, 0, 32);
  for (int i = 0; i < 8; i++)
    w[31 - i] = (uint8_t)(v >> (8 * i));
  return word(o, w);
}

static int word_addr(struct teex_buf *o, const uint8_t a[20]) {
  uint8_t w[32];
  memset(w, 0, 12);
  memcpy(w + 12, a, 20);
  return word(o, w);
}

static int word_amount(struct teex_buf *o, teex_amount v) {
  uint8_t w[32];
  teex_amount_word(v, w);
  return word(o, w);
}

/* r || s || v as the ABI's (uint8 v, bytes32 r, bytes32 s). */
static int sig_words(struct teex_buf *o, const uint8_t sig[65]) {
  int rc = word_u64(o, sig[64]);
  if (rc == 0)
    rc = word(o, sig);
  if (rc == 0)
    rc = word(o, sig + 32);
  return rc;
}

void teex_dispatcher_batch_id(const uint8_t dispatcher[20], uint64_t seq,
                              uint8_t out[32]) {
  uint8_t pre[64];
  memset(pre, 0, sizeof pre);
  memcpy(pre + 12, dispatcher, 20);
  for (int i = 0; i < 8; i++)
    pre[63 - i] = (uint8_t)(seq >> (8 * i));
  teex_keccak256(pre, sizeof pre, out);
}

/* Size in bytes of one SignedReceipt's encoding: 16 head words, then the
 * shares array (length word + 3 words per share). */
static size_t receipt_size(const struct teex_signed_receipt *s) {
  return 32 * (16 + 1 + 3 * s->r.nshares);
}

int teex_dispatcher_batch_content(const struct teex_domain *domain,
                                  const uint8_t dispatcher[20],
                                  const struct teex_dispatcher_batch *b,
                                  const struct teex_signed_receipt *receipts,
                                  size_t nreceipts, struct teex_buf *out) {
  int rc = 0;
  uint8_t magic[32];
  static const char tag[] = "teex/settlement/v1/batch";
  teex_keccak256(tag, sizeof tag - 1, magic);
  /* Sizes of the three arrays' encodings, for the offsets. */
  size_t rsize = 32 + 32 * nreceipts;
  for (size_t i = 0; i < nreceipts; i++)
    rsize += receipt_size(&receipts[i]);
  size_t asize = 32 + 32 * 10 * b->nauths;
  const size_t head = 32 * 9;
  /* abi.encode of one dynamic tuple: its offset, then the tuple. */
  rc |= word_u64(out, 32);
  rc |= word(out, magic);
  rc |= word_u64(out, domain->chain_id);
  rc |= word_addr(out, domain->verifying_contract);
  rc |= word_addr(out, dispatcher);
  rc |= word(out, b->batch_id);
  rc |= word(out, b->root);
  rc |= word_u64(out, head);
  rc |= word_u64(out, head + rsize);
  rc |= word_u64(out, head + rsize + asize);
  /* receipts: length, element offsets (from after the length), elements */
  rc |= word_u64(out, nreceipts);
  size_t off = 32 * nreceipts;
  for (size_t i = 0; i < nreceipts; i++) {
    rc |= word_u64(out, off);
    off += receipt_size(&receipts[i]);
  }
  for (size_t i = 0; i < nreceipts && rc == 0; i++) {
    const struct teex_receipt *r = &receipts[i].r;
    rc |= word(out, r->task_id);
    rc |= word(out, r->service_id);
    rc |= word(out, r->image_hash);
    rc |= word_addr(out, r->user);
    rc |= word_addr(out, r->dispatcher);
    rc |= word_addr(out, r->worker);
    rc |= word_addr(out, r->provider);
    rc |= word(out, r->input_commitment);
    rc |= word(out, r->output_commitment);
    rc |= word(out, r->price);
    rc |= word(out, r->worker_amount);
    rc |= word(out, r->provider_amount);
    rc |= word_u64(out, 32 * 16); /* shares follow the 16 head words */
    rc |= sig_words(out, receipts[i].sig);
    rc |= word_u64(out, r->nshares);
    for (size_t k = 0; k < r->nshares; k++) {
      rc |= word(out, r->shares[k].dataset_id);
      rc |= word_addr(out, r->shares[k].payee);
      rc |= word(out, r->shares[k].amount);
    }
  }
  /* auths: SignedAuthorization is static (10 words) */
  rc |= word_u64(out, b->nauths);
  for (size_t i = 0; i < b->nauths && rc == 0; i++) {
    const struct teex_payment_auth *a = &b->auths[i];
    rc |= word_addr(out, a->user);
    rc |= word(out, a->task_id);
    rc |= word(out, a->service_id);
    rc |= word(out, a->image_hash);
    rc |= word(out, a->datasets_hash);
    rc |= word_amount(out, a->price);
    rc |= word_amount(out, a->cumulative);
    rc |= sig_words(out, a->sig);
  }
  /* credits: (address, uint256) */
  rc |= word_u64(out, b->ncredits);
  for (size_t i = 0; i < b->ncredits && rc == 0; i++) {
    rc |= word_addr(out, b->credits[i].payee);
    rc |= word_amount(out, b->credits[i].amount);
  }
  return rc != 0 ? TEEX_ENOMEM : 0;
}
