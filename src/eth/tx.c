/* Legacy (EIP-155) and EIP-1559 transactions. */
#include "teex/eth_tx.h"

#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/rlp.h"

#include <string.h>

static int check_tx(const struct teex_eth_tx *tx, struct teex_err *err) {
  if (tx->type != TEEX_ETH_TX_LEGACY && tx->type != TEEX_ETH_TX_1559)
    return teex_err_set(err, TEEX_EINVAL, "transaction type %d unsupported",
                        tx->type);
  if (tx->chain_id == 0)
    return teex_err_set(err, TEEX_EINVAL, "transaction needs a chain id");
  if (tx->data_len > TEEX_ETH_TX_MAX - 1024)
    return teex_err_set(err, TEEX_ETOOBIG, "transaction data too large");
  if (tx->type == TEEX_ETH_TX_1559 &&
      teex_u256_cmp(tx->max_priority_fee, tx->max_fee) > 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "maxPriorityFeePerGas above maxFeePerGas");
  return 0;
}

/* Appends the unsigned fields shared by both forms (in their order). */
static int put_fields(struct teex_buf *b, const struct teex_eth_tx *tx) {
  int rc = 0;
  if (tx->type == TEEX_ETH_TX_1559) {
    rc |= teex_rlp_put_u64(b, tx->chain_id);
    rc |= teex_rlp_put_u64(b, tx->nonce);
    rc |= teex_rlp_put_u256(b, tx->max_priority_fee);
    rc |= teex_rlp_put_u256(b, tx->max_fee);
  } else {
    rc |= teex_rlp_put_u64(b, tx->nonce);
    rc |= teex_rlp_put_u256(b, tx->gas_price);
  }
  rc |= teex_rlp_put_u64(b, tx->gas_limit);
  rc |= teex_rlp_put_bytes(b, tx->to, tx->has_to ? 20 : 0);
  rc |= teex_rlp_put_u256(b, tx->value);
  rc |= teex_rlp_put_bytes(b, tx->data, tx->data_len);
  if (tx->type == TEEX_ETH_TX_1559) {
    size_t m;
    teex_rlp_list_begin(b, &m); /* empty access list */
    rc |= teex_rlp_list_end(b, m);
  }
  return rc ? TEEX_ETOOBIG : 0;
}

/* Appends the complete encoding; sig NULL gives the signing payload. */
static int encode(const struct teex_eth_tx *tx, const uint8_t *sig,
                  struct teex_buf *b) {
  size_t m;
  int rc = 0;
  if (tx->type == TEEX_ETH_TX_1559)
    rc |= teex_buf_putc(b, 0x02);
  teex_rlp_list_begin(b, &m);
  rc |= put_fields(b, tx);
  if (tx->type == TEEX_ETH_TX_LEGACY && !sig) {
    rc |= teex_rlp_put_u64(b, tx->chain_id);
    rc |= teex_rlp_put_u64(b, 0);
    rc |= teex_rlp_put_u64(b, 0);
  } else if (sig) {
    teex_u256 r, s;
    memcpy(r, sig, 32);
    memcpy(s, sig + 32, 32);
    if (tx->type == TEEX_ETH_TX_LEGACY) {
      /* v = recid + chain_id * 2 + 35; overflow-checked. */
      if (tx->chain_id > (UINT64_MAX - 36) / 2)
        return TEEX_EINVAL;
      rc |= teex_rlp_put_u64(b, sig[64] + tx->chain_id * 2 + 35);
    } else {
      rc |= teex_rlp_put_u64(b, sig[64]);
    }
    rc |= teex_rlp_put_u256(b, r);
    rc |= teex_rlp_put_u256(b, s);
  }
  rc |= teex_rlp_list_end(b, m);
  return rc ? TEEX_ETOOBIG : 0;
}

int teex_eth_tx_signing_hash(const struct teex_eth_tx *tx, uint8_t hash[32],
                             struct teex_err *err) {
  struct teex_buf b;
  int rc = check_tx(tx, err);
  if (rc != 0)
    return rc;
  teex_buf_init(&b, TEEX_ETH_TX_MAX, 0);
  rc = encode(tx, NULL, &b);
  if (rc == 0)
    teex_keccak256(b.data, b.len, hash);
  else
    teex_err_set(err, rc, "encode transaction: %s", teex_strerror(rc));
  teex_buf_free(&b);
  return rc;
}

int teex_eth_tx_sign(const struct teex_eth_tx *tx, const uint8_t sk[32],
                     struct teex_buf *raw, uint8_t tx_hash[32],
                     struct teex_err *err) {
  uint8_t digest[32], sig[65];
  size_t mark = raw->len;
  int rc = teex_eth_tx_signing_hash(tx, digest, err);
  if (rc != 0)
    return rc;
  if ((rc = teex_secp256k1_sign(sk, digest, sig)) != 0)
    return teex_err_set(err, rc, "sign transaction: invalid private key");
  rc = encode(tx, sig, raw);
  if (rc != 0) {
    raw->len = mark;
    return teex_err_set(err, rc, "encode signed transaction: %s",
                        teex_strerror(rc));
  }
  teex_keccak256(raw->data + mark, raw->len - mark, tx_hash);
  return 0;
}

/* Reads the next list element into it; EFORMAT when missing. */
static int next(const struct teex_rlp_item *l, size_t *pos,
                struct teex_rlp_item *it) {
  int rc = teex_rlp_next(l, pos, it);
  return rc == 1 ? 0 : rc < 0 ? rc : TEEX_EFORMAT;
}

static int str_item(const struct teex_rlp_item *it) {
  return it->is_list ? TEEX_EFORMAT : 0;
}

int teex_eth_tx_decode(const uint8_t *raw, size_t len, struct teex_eth_tx *tx,
                       uint8_t from[20], struct teex_err *err) {
  struct teex_rlp_item list, it;
  size_t pos = 0, cnt = 0;
  uint8_t sig[65], digest[32];
  uint64_t v = 0;
  int rc;
  memset(tx, 0, sizeof *tx);
  if (len == 0 || len > TEEX_ETH_TX_MAX)
    return teex_err_set(err, TEEX_EFORMAT, "raw transaction size %zu", len);
  if (raw[0] == 0x02) {
    tx->type = TEEX_ETH_TX_1559;
    raw++;
    len--;
  } else if (raw[0] < 0xc0) {
    return teex_err_set(err, TEEX_EUNSUPPORTED, "transaction type 0x%02x",
                        raw[0]);
  }
  if ((rc = teex_rlp_decode_all(raw, len, &list)) != 0 || !list.is_list ||
      (rc = teex_rlp_count(&list, &cnt)) != 0)
    goto bad;
  rc = TEEX_EFORMAT;
  if (cnt != (tx->type == TEEX_ETH_TX_1559 ? 12u : 9u))
    goto bad;
  if (tx->type == TEEX_ETH_TX_1559) {
    if (next(&list, &pos, &it) || teex_rlp_to_u64(&it, &tx->chain_id) ||
        next(&list, &pos, &it) || teex_rlp_to_u64(&it, &tx->nonce) ||
        next(&list, &pos, &it) || teex_rlp_to_u256(&it, tx->max_priority_fee) ||
        next(&list, &pos, &it) || teex_rlp_to_u256(&it, tx->max_fee))
      goto bad;
  } else {
    if (next(&list, &pos, &it) || teex_rlp_to_u64(&it, &tx->nonce) ||
        next(&list, &pos, &it) || teex_rlp_to_u256(&it, tx->gas_price))
      goto bad;
  }
  if (next(&list, &pos, &it) || teex_rlp_to_u64(&it, &tx->gas_limit))
    goto bad;
  if (next(&list, &pos, &it) || str_item(&it) || (it.len != 0 && it.len != 20))
    goto bad;
  tx->has_to = it.len == 20;
  if (tx->has_to)
    memcpy(tx->to, it.data, 20);
  if (next(&list, &pos, &it) || teex_rlp_to_u256(&it, tx->value))
    goto bad;
  if (next(&list, &pos, &it) || str_item(&it))
    goto bad;
  tx->data = it.data;
  tx->data_len = it.len;
  if (tx->type == TEEX_ETH_TX_1559) {
    size_t n_access = 0;
    if (next(&list, &pos, &it) || !it.is_list ||
        teex_rlp_count(&it, &n_access) || n_access != 0) {
      rc = TEEX_EUNSUPPORTED;
      goto bad;
    }
  }
  teex_u256 r, s;
  if (next(&list, &pos, &it) || teex_rlp_to_u64(&it, &v) ||
      next(&list, &pos, &it) || teex_rlp_to_u256(&it, r) ||
      next(&list, &pos, &it) || teex_rlp_to_u256(&it, s))
    goto bad;
  if (tx->type == TEEX_ETH_TX_1559) {
    if (v > 1)
      goto bad;
  } else {
    if (v < 37) {
      rc = TEEX_EUNSUPPORTED; /* pre-EIP-155, replayable on any chain */
      goto bad;
    }
    tx->chain_id = (v - 35) / 2;
    v = (v - 35) % 2;
  }
  memcpy(sig, r, 32);
  memcpy(sig + 32, s, 32);
  sig[64] = (uint8_t)v;
  if ((rc = teex_eth_tx_signing_hash(tx, digest, err)) != 0)
    return rc;
  if ((rc = teex_eth_recover_address(digest, sig, from)) != 0)
    return teex_err_set(err, TEEX_EBADSIG, "transaction signature invalid");
  return 0;
bad:
  return teex_err_set(err, rc ? rc : TEEX_EFORMAT, "malformed raw transaction");
}
