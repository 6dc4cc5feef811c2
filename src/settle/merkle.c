/* Receipt leaves and the sorted-pair Merkle tree of settlement v1
 * (see include/teex/settle.h and docs/settlement.md §2–§3). */
#include "teex/settle.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <stdlib.h>
#include <string.h>

static void word_bytes32(uint8_t *w, const uint8_t v[32]) {
  memcpy(w, v, 32);
}

static void word_addr(uint8_t *w, const uint8_t a[20]) {
  memset(w, 0, 12);
  memcpy(w + 12, a, 20);
}

void teex_settle_data_shares_hash(const struct teex_data_share *shares,
                                  size_t n, uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  for (size_t i = 0; i < n; i++) {
    uint8_t w[96];
    word_bytes32(w, shares[i].dataset_id);
    word_addr(w + 32, shares[i].payee);
    word_bytes32(w + 64, shares[i].amount);
    teex_keccak256_update(&c, w, sizeof w);
  }
  teex_keccak256_final(&c, out);
}

/* a += b over 256-bit big-endian words; returns the carry out. */
static int add256(uint8_t a[32], const uint8_t b[32]) {
  int carry = 0;
  for (int i = 31; i >= 0; i--) {
    int s = a[i] + b[i] + carry;
    a[i] = (uint8_t)s;
    carry = s >> 8;
  }
  return carry;
}

int teex_settle_split_ok(const struct teex_receipt *r) {
  uint8_t sum[32];
  memcpy(sum, r->worker_amount, 32);
  if (add256(sum, r->provider_amount))
    return 0;
  for (size_t i = 0; i < r->nshares; i++)
    if (add256(sum, r->shares[i].amount))
      return 0;
  return memcmp(sum, r->price, 32) == 0;
}

void teex_settle_receipt_leaf(const struct teex_receipt *r, uint8_t out[32]) {
  uint8_t w[14 * 32];
  uint8_t *p = w;
  teex_keccak256(TEEX_SETTLE_LEAF_TAG_TEXT,
                 sizeof TEEX_SETTLE_LEAF_TAG_TEXT - 1, p);
  p += 32;
  word_bytes32(p, r->task_id), p += 32;
  word_bytes32(p, r->service_id), p += 32;
  word_bytes32(p, r->image_hash), p += 32;
  word_addr(p, r->user), p += 32;
  word_addr(p, r->dispatcher), p += 32;
  word_addr(p, r->worker), p += 32;
  word_addr(p, r->provider), p += 32;
  word_bytes32(p, r->input_commitment), p += 32;
  word_bytes32(p, r->output_commitment), p += 32;
  word_bytes32(p, r->price), p += 32;
  word_bytes32(p, r->worker_amount), p += 32;
  word_bytes32(p, r->provider_amount), p += 32;
  teex_settle_data_shares_hash(r->shares, r->nshares, p);
  teex_keccak256(w, sizeof w, out);
}

void teex_settle_commit(const uint8_t salt[32], const void *data, size_t len,
                        uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  teex_keccak256_update(&c, salt, 32);
  teex_keccak256_update(&c, data, len);
  teex_keccak256_final(&c, out);
}

static void hash_pair(const uint8_t a[32], const uint8_t b[32],
                      uint8_t out[32]) {
  uint8_t buf[64];
  if (memcmp(a, b, 32) <= 0) {
    memcpy(buf, a, 32);
    memcpy(buf + 32, b, 32);
  } else {
    memcpy(buf, b, 32);
    memcpy(buf + 32, a, 32);
  }
  teex_keccak256(buf, sizeof buf, out);
}

/* Builds the tree level by level in a scratch copy; when want_proof, records
 * the sibling of the tracked node at each level that has one. */
static int build(const uint8_t *leaves, size_t n, size_t index,
                 uint8_t root[32], uint8_t *proof, size_t *nproof) {
  if (n == 0)
    return TEEX_EINVAL;
  if (n > TEEX_SETTLE_MAX_LEAVES)
    return TEEX_ETOOBIG;
  uint8_t(*level)[32] = malloc(n * sizeof *level);
  if (level == NULL)
    return TEEX_ENOMEM;
  memcpy(level, leaves, n * 32);
  size_t np = 0;
  while (n > 1) {
    if (proof != NULL) {
      size_t sib = index ^ 1;
      if (sib < n) {
        if (np == TEEX_SETTLE_MAX_PROOF) {
          free(level);
          return TEEX_ETOOBIG;
        }
        memcpy(proof + 32 * np++, level[sib], 32);
      }
    }
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
      hash_pair(level[i], level[i + 1], level[m++]);
    if (n % 2 == 1)
      memmove(level[m++], level[n - 1], 32); /* carried up unchanged */
    n = m;
    index /= 2;
  }
  memcpy(root, level[0], 32);
  free(level);
  if (nproof != NULL)
    *nproof = np;
  return 0;
}

int teex_settle_merkle_root(const uint8_t *leaves, size_t n, uint8_t root[32]) {
  return build(leaves, n, 0, root, NULL, NULL);
}

int teex_settle_merkle_proof(const uint8_t *leaves, size_t n, size_t index,
                             uint8_t *proof, size_t *nproof) {
  if (index >= n)
    return TEEX_EINVAL;
  uint8_t root[32];
  return build(leaves, n, index, root, proof, nproof);
}

int teex_settle_merkle_verify(const uint8_t leaf[32], const uint8_t *proof,
                              size_t nproof, const uint8_t root[32]) {
  if (nproof > TEEX_SETTLE_MAX_PROOF)
    return 0;
  uint8_t h[32];
  memcpy(h, leaf, 32);
  for (size_t i = 0; i < nproof; i++)
    hash_pair(h, proof + 32 * i, h);
  return teex_ct_equal(h, root, 32);
}
