/* Transaction sender with local nonce management. */
#include "teex/eth_sender.h"

#include "teex/crypto.h"
#include "teex/eth_tx.h"
#include "teex/mem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FEE_CACHE_MS 1000

struct teex_eth_sender {
  struct teex_eth_rpc *rpc;
  uint8_t *sk; /* 32 bytes of locked memory */
  uint8_t addr[20];
  uint64_t chain_id;
  uint64_t next_nonce;
  struct teex_eth_sender_opts opts;
  /* fee cache */
  uint64_t fee_at_ms;
  teex_u256 max_fee, tip, gas_price;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int teex_eth_sender_new(struct teex_eth_rpc *rpc, const uint8_t sk[32],
                        const struct teex_eth_sender_opts *opts,
                        struct teex_eth_sender **out, struct teex_err *err) {
  struct teex_eth_sender *s;
  uint8_t pub[64];
  int rc;
  *out = NULL;
  if (teex_secp256k1_public(sk, pub) != 0)
    return teex_err_set(err, TEEX_EINVAL, "sender: invalid private key");
  if (!(s = calloc(1, sizeof *s)))
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (!(s->sk = teex_secret_alloc(32))) {
    free(s);
    return teex_err_set(err, TEEX_ENOMEM, "sender: no locked memory");
  }
  memcpy(s->sk, sk, 32);
  teex_eth_address(pub, s->addr);
  s->rpc = rpc;
  if (opts)
    s->opts = *opts;
  if (!s->opts.gas_margin_pct)
    s->opts.gas_margin_pct = 20;
  if (!s->opts.poll_ms)
    s->opts.poll_ms = 100;
  if ((rc = teex_eth_chain_id(rpc, &s->chain_id, err)) != 0 ||
      (rc = teex_eth_sender_resync(s, err)) != 0) {
    teex_eth_sender_free(s);
    return teex_err_wrap(err, rc, "sender");
  }
  *out = s;
  return 0;
}

void teex_eth_sender_free(struct teex_eth_sender *s) {
  if (!s)
    return;
  teex_secret_free(s->sk);
  free(s);
}

const uint8_t *teex_eth_sender_address(const struct teex_eth_sender *s) {
  return s->addr;
}
uint64_t teex_eth_sender_chain_id(const struct teex_eth_sender *s) {
  return s->chain_id;
}
uint64_t teex_eth_sender_next_nonce(const struct teex_eth_sender *s) {
  return s->next_nonce;
}

int teex_eth_sender_resync(struct teex_eth_sender *s, struct teex_err *err) {
  uint64_t n;
  int rc = teex_eth_get_nonce(s->rpc, s->addr, "pending", &n, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "read pending nonce");
  s->next_nonce = n;
  return 0;
}

void teex_eth_pending_clear(struct teex_eth_pending *p) {
  if (!p)
    return;
  free(p->data);
  free(p->raw);
  memset(p, 0, sizeof *p);
}

static int refresh_fees(struct teex_eth_sender *s, struct teex_err *err) {
  uint64_t t = now_ms();
  int rc;
  if (s->fee_at_ms && t - s->fee_at_ms < FEE_CACHE_MS)
    return 0;
  if (s->opts.legacy) {
    if ((rc = teex_eth_gas_price(s->rpc, s->gas_price, err)) != 0)
      return rc;
  } else {
    teex_u256 base;
    if ((rc = teex_eth_base_fee(s->rpc, base, err)) != 0)
      return rc;
    if (teex_eth_max_priority_fee(s->rpc, s->tip, err) != 0) {
      teex_err_clear(err); /* not every node has it: 1 gwei */
      teex_u256_from_u64(s->tip, 1000000000u);
    }
    /* Room for the base fee to double before the transaction is stuck. */
    if ((rc = teex_u256_mul_u64(s->max_fee, base, 2)) != 0 ||
        (rc = teex_u256_add(s->max_fee, s->max_fee, s->tip)) != 0)
      return teex_err_set(err, TEEX_ECHAIN, "fee overflow");
  }
  if (!teex_u256_is_zero(s->opts.max_fee_cap)) {
    const uint8_t *fee = s->opts.legacy ? s->gas_price : s->max_fee;
    char a[TEEX_U256_DEC_MAX], b[TEEX_U256_DEC_MAX];
    if (teex_u256_cmp(fee, s->opts.max_fee_cap) > 0) {
      teex_u256_format_dec(fee, a);
      teex_u256_format_dec(s->opts.max_fee_cap, b);
      return teex_err_set(err, TEEX_EPOLICY,
                          "fee %s wei/gas above the cap of %s", a, b);
    }
  }
  s->fee_at_ms = t;
  return 0;
}

static int build_and_sign(struct teex_eth_sender *s, struct teex_eth_pending *p,
                          struct teex_err *err) {
  struct teex_eth_tx tx;
  struct teex_buf raw;
  int rc;
  memset(&tx, 0, sizeof tx);
  tx.type = s->opts.legacy ? TEEX_ETH_TX_LEGACY : TEEX_ETH_TX_1559;
  tx.chain_id = s->chain_id;
  tx.nonce = p->nonce;
  tx.gas_limit = p->gas_limit;
  memcpy(tx.gas_price, s->gas_price, 32);
  memcpy(tx.max_fee, s->max_fee, 32);
  memcpy(tx.max_priority_fee, s->tip, 32);
  tx.has_to = p->has_to;
  memcpy(tx.to, p->to, 20);
  memcpy(tx.value, p->value, 32);
  tx.data = p->data;
  tx.data_len = p->data_len;
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  rc = teex_eth_tx_sign(&tx, s->sk, &raw, p->hash, err);
  if (rc != 0) {
    teex_buf_free(&raw);
    return rc;
  }
  free(p->raw);
  p->raw_len = raw.len;
  p->raw = teex_buf_steal(&raw, &p->raw_len);
  return 0;
}

static int msg_has(const struct teex_eth_rpc *rpc, const char *needle) {
  const struct teex_eth_rpc_error *e = teex_eth_rpc_last_error(rpc);
  return e->present && strstr(e->message, needle) != NULL;
}

int teex_eth_sender_send(struct teex_eth_sender *s,
                         const struct teex_eth_request *req,
                         struct teex_eth_pending *p, struct teex_err *err) {
  int rc;
  memset(p, 0, sizeof *p);
  p->has_to = req->has_to;
  memcpy(p->to, req->to, 20);
  memcpy(p->value, req->value, 32);
  p->gas_limit = req->gas_limit;
  if (req->data_len) {
    if (!(p->data = malloc(req->data_len)))
      return teex_err_set(err, TEEX_ENOMEM, NULL);
    memcpy(p->data, req->data, req->data_len);
    p->data_len = req->data_len;
  }
  if (!p->gas_limit) {
    struct teex_eth_call_req c = {s->addr,       req->has_to ? req->to : NULL,
                                  req->value,    req->data,
                                  req->data_len, 0};
    uint64_t est;
    if ((rc = teex_eth_estimate_gas(s->rpc, &c, &est, err)) != 0) {
      teex_eth_pending_clear(p);
      return teex_err_wrap(err, rc, "estimate gas");
    }
    p->gas_limit = est + est * s->opts.gas_margin_pct / 100;
  }
  if ((rc = refresh_fees(s, err)) != 0) {
    teex_eth_pending_clear(p);
    return teex_err_wrap(err, rc, "fees");
  }
  for (int attempt = 0;; attempt++) {
    p->nonce = s->next_nonce;
    if ((rc = build_and_sign(s, p, err)) != 0) {
      teex_eth_pending_clear(p);
      return rc;
    }
    uint8_t h[32];
    rc = teex_eth_send_raw(s->rpc, p->raw, p->raw_len, h, err);
    if (rc == 0) {
      p->submitted = 1;
      s->next_nonce++;
      return 0;
    }
    if (rc == TEEX_ECONN || rc == TEEX_ETIMEDOUT) {
      /* Unknown whether the node took it. The nonce stays reserved for
       * these exact bytes: waiting on p (or rebroadcasting it) delivers
       * them, and nothing else is ever signed with this nonce by us. */
      s->next_nonce++;
      return teex_err_wrap(err, rc,
                           "send transaction (nonce %llu kept for a resend)",
                           (unsigned long long)p->nonce);
    }
    /* Read the node's verdict before any further call overwrites it. */
    int too_low = rc == TEEX_EREMOTE && msg_has(s->rpc, "nonce too low");
    int conflict = too_low || (rc == TEEX_EREMOTE &&
                               (msg_has(s->rpc, "nonce too high") ||
                                msg_has(s->rpc, "replacement transaction "
                                                "underpriced")));
    int no_funds = rc == TEEX_EREMOTE && msg_has(s->rpc, "insufficient funds");
    if (too_low) {
      /* A transport-level retry inside send_raw may have delivered these
       * bytes already and seen them mined: then this is our transaction and
       * re-signing would send it twice. */
      int known = 0;
      struct teex_err e2 = {0};
      if (teex_eth_tx_known(s->rpc, p->hash, &known, &e2) == 0 && known) {
        teex_err_clear(err);
        p->submitted = 1;
        s->next_nonce++;
        return 0;
      }
    }
    if (conflict && attempt == 0) {
      /* Our counter is behind or ahead of the node (another process used
       * the account, or transactions were dropped): this signed
       * transaction was refused, so re-signing with the node's nonce cannot
       * duplicate it. */
      if ((rc = teex_eth_sender_resync(s, err)) != 0)
        break;
      continue;
    }
    if (no_funds)
      rc = TEEX_EFUNDS;
    break;
  }
  teex_eth_pending_clear(p);
  return teex_err_wrap(err, rc, "send transaction");
}

int teex_eth_sender_rebroadcast(struct teex_eth_sender *s,
                                struct teex_eth_pending *p,
                                struct teex_err *err) {
  uint8_t h[32];
  int rc;
  if (!p->raw)
    return teex_err_set(err, TEEX_EINVAL, "nothing to rebroadcast");
  rc = teex_eth_send_raw(s->rpc, p->raw, p->raw_len, h, err);
  if (rc == TEEX_EREMOTE && msg_has(s->rpc, "nonce too low")) {
    /* Either ours was mined (fine) or another transaction took the nonce:
     * the receipt lookup tells which. */
    int known = 0;
    teex_err_clear(err);
    if ((rc = teex_eth_tx_known(s->rpc, p->hash, &known, err)) != 0)
      return rc;
    if (!known)
      return teex_err_set(err, TEEX_ESTATE,
                          "nonce %llu was used by another transaction",
                          (unsigned long long)p->nonce);
  }
  if (rc == 0)
    p->submitted = 1;
  return rc;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Replays a failed transaction as a call at its block to learn why. */
static void revert_reason(struct teex_eth_sender *s,
                          const struct teex_eth_pending *p,
                          const struct teex_eth_receipt *r, char *why,
                          size_t cap) {
  struct teex_eth_call_req c = {s->addr,     p->has_to ? p->to : NULL,
                                p->value,    p->data,
                                p->data_len, p->gas_limit};
  struct teex_buf out;
  struct teex_err e = {0};
  char blk[67];
  teex_u256 b;
  teex_u256_from_u64(b, r->block_number);
  teex_u256_format_hex(b, blk);
  teex_buf_init(&out, 1 << 20, 0);
  int rc = teex_eth_call(s->rpc, &c, blk, &out, &e);
  if (rc == TEEX_ECHAIN)
    snprintf(why, cap, "%s", e.msg);
  else if (rc == 0 && r->gas_used >= p->gas_limit)
    snprintf(why, cap, "out of gas (limit %llu)",
             (unsigned long long)p->gas_limit);
  else if (rc == 0)
    snprintf(why, cap, "reason unknown (the replayed call succeeds)");
  else
    snprintf(why, cap, "reason unavailable: %s", teex_err_msg(&e));
  teex_buf_free(&out);
}

int teex_eth_sender_wait(struct teex_eth_sender *s, struct teex_eth_pending *p,
                         unsigned timeout_ms, struct teex_eth_receipt *r,
                         struct teex_err *err) {
  uint64_t start = now_ms(), polls = 0;
  char hx[67] = "0x";
  int rc;
  teex_hex_encode(p->hash, 32, hx + 2);
  memset(r, 0, sizeof *r);
  for (;;) {
    rc = teex_eth_get_receipt(s->rpc, p->hash, r, err);
    if (rc == 0)
      break;
    if (rc != TEEX_ENOTFOUND && rc != TEEX_ECONN && rc != TEEX_ETIMEDOUT)
      return teex_err_wrap(err, rc, "receipt of %s", hx);
    if (now_ms() - start >= timeout_ms) {
      uint64_t latest = 0;
      struct teex_err e2 = {0};
      if (teex_eth_get_nonce(s->rpc, s->addr, "latest", &latest, &e2) == 0 &&
          latest < p->nonce)
        return teex_err_set(err, TEEX_ETIMEDOUT,
                            "no receipt for %s after %u ms: nonce %llu waits "
                            "behind a gap (the account's next nonce on chain "
                            "is %llu; an earlier transaction was dropped or "
                            "never sent: wait on it or resynchronise)",
                            hx, timeout_ms, (unsigned long long)p->nonce,
                            (unsigned long long)latest);
      return teex_err_set(err, TEEX_ETIMEDOUT,
                          "no receipt for %s (nonce %llu) after %u ms", hx,
                          (unsigned long long)p->nonce, timeout_ms);
    }
    /* Every 20 polls (or when the first send never got through) make sure
     * the node still has it; if not, resend the very same bytes. */
    if (!p->submitted || (++polls % 20) == 0) {
      int known = 1;
      struct teex_err e2 = {0};
      if (teex_eth_tx_known(s->rpc, p->hash, &known, &e2) == 0 && !known)
        teex_eth_sender_rebroadcast(s, p, &e2);
    }
    sleep_ms(s->opts.poll_ms);
  }
  if (r->status == 1)
    return 0;
  char why[600];
  revert_reason(s, p, r, why, sizeof why);
  return teex_err_set(err, TEEX_ECHAIN,
                      "transaction %s reverted in block %llu (gas used %llu): "
                      "%s",
                      hx, (unsigned long long)r->block_number,
                      (unsigned long long)r->gas_used, why);
}

int teex_eth_sender_transact(struct teex_eth_sender *s,
                             const struct teex_eth_request *req,
                             unsigned timeout_ms, struct teex_eth_receipt *r,
                             struct teex_err *err) {
  struct teex_eth_pending p;
  int rc = teex_eth_sender_send(s, req, &p, err);
  if (rc == 0)
    rc = teex_eth_sender_wait(s, &p, timeout_ms, r, err);
  teex_eth_pending_clear(&p);
  return rc;
}
