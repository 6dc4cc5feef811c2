/* Settlement v1 EIP-712 statements with fixed layouts
 * (see include/teex/statements.h). */
#include "teex/statements.h"

#include "teex/crypto.h"
#include "teex/error.h"

#include <string.h>

#define T_DOMAIN                                                               \
  "EIP712Domain(string name,string version,uint256 chainId,address "           \
  "verifyingContract)"
#define T_PAYMENT                                                              \
  "PaymentAuthorization(address user,address dispatcher,bytes32 taskId,"       \
  "bytes32 serviceId,bytes32 imageHash,bytes32 datasetsHash,uint256 price,"    \
  "uint256 cumulative)"
#define T_RECEIPT                                                              \
  "Receipt(bytes32 taskId,bytes32 serviceId,bytes32 imageHash,address user,"   \
  "address dispatcher,address worker,address provider,bytes32 "                \
  "inputCommitment,bytes32 outputCommitment,uint256 price,uint256 "            \
  "workerAmount,uint256 providerAmount,bytes32 dataSharesHash)"
#define T_LISTING                                                              \
  "ServiceListing(bytes32 serviceId,address provider,uint32 version,address "  \
  "signingKey,bytes32 encryptionKey,bytes32 imageHash)"
#define T_REGISTRATION                                                         \
  "EnclaveRegistration(address enclave,uint8 role,bytes32 measurement,uint64 " \
  "issuedAt)"
#define T_REVOCATION "EnclaveRevocation(address enclave)"

/* A struct hash is keccak256(typeHash || words); words are appended here. */
struct words {
  uint8_t w[16 * 32];
  size_t n;
};

static void start(struct words *s, const char *type) {
  teex_keccak256(type, strlen(type), s->w);
  s->n = 1;
}

static void put32(struct words *s, const uint8_t v[32]) {
  memcpy(s->w + 32 * s->n++, v, 32);
}

static void put_addr(struct words *s, const uint8_t a[20]) {
  uint8_t *w = s->w + 32 * s->n++;
  memset(w, 0, 12);
  memcpy(w + 12, a, 20);
}

static void put_u64(struct words *s, uint64_t v) {
  uint8_t *w = s->w + 32 * s->n++;
  memset(w, 0, 32);
  for (int i = 0; i < 8; i++)
    w[31 - i] = (uint8_t)(v >> (8 * i));
}

static void put_amount(struct words *s, teex_amount v) {
  teex_amount_word(v, s->w + 32 * s->n++);
}

void teex_amount_word(teex_amount v, uint8_t w[32]) {
  memset(w, 0, 16);
  for (int i = 0; i < 16; i++)
    w[31 - i] = (uint8_t)(v >> (8 * i));
}

int teex_amount_from_word(const uint8_t w[32], teex_amount *v) {
  for (int i = 0; i < 16; i++)
    if (w[i] != 0)
      return TEEX_ETOOBIG;
  teex_amount x = 0;
  for (int i = 16; i < 32; i++)
    x = x << 8 | w[i];
  *v = x;
  return 0;
}

void teex_domain_separator(const struct teex_domain *d, uint8_t out[32]) {
  struct words s;
  uint8_t h[32];
  start(&s, T_DOMAIN);
  teex_keccak256("teex", 4, h);
  put32(&s, h);
  teex_keccak256("1", 1, h);
  put32(&s, h);
  put_u64(&s, d->chain_id);
  put_addr(&s, d->verifying_contract);
  teex_keccak256(s.w, 32 * s.n, out);
}

static void digest(const struct teex_domain *d, const struct words *s,
                   uint8_t out[32]) {
  uint8_t buf[66];
  buf[0] = 0x19;
  buf[1] = 0x01;
  teex_domain_separator(d, buf + 2);
  teex_keccak256(s->w, 32 * s->n, buf + 34);
  teex_keccak256(buf, sizeof buf, out);
}

void teex_stmt_payment_auth_digest(const struct teex_domain *d,
                                   const struct teex_payment_auth *a,
                                   uint8_t out[32]) {
  struct words s;
  start(&s, T_PAYMENT);
  put_addr(&s, a->user);
  put_addr(&s, a->dispatcher);
  put32(&s, a->task_id);
  put32(&s, a->service_id);
  put32(&s, a->image_hash);
  put32(&s, a->datasets_hash);
  put_amount(&s, a->price);
  put_amount(&s, a->cumulative);
  digest(d, &s, out);
}

void teex_stmt_receipt_digest(const struct teex_domain *d,
                              const struct teex_receipt *r, uint8_t out[32]) {
  struct words s;
  uint8_t shares[32];
  start(&s, T_RECEIPT);
  put32(&s, r->task_id);
  put32(&s, r->service_id);
  put32(&s, r->image_hash);
  put_addr(&s, r->user);
  put_addr(&s, r->dispatcher);
  put_addr(&s, r->worker);
  put_addr(&s, r->provider);
  put32(&s, r->input_commitment);
  put32(&s, r->output_commitment);
  put32(&s, r->price);
  put32(&s, r->worker_amount);
  put32(&s, r->provider_amount);
  teex_settle_data_shares_hash(r->shares, r->nshares, shares);
  put32(&s, shares);
  digest(d, &s, out);
}

void teex_stmt_service_listing_digest(const struct teex_domain *d,
                                      const struct teex_service_listing *l,
                                      uint8_t out[32]) {
  struct words s;
  start(&s, T_LISTING);
  put32(&s, l->service_id);
  put_addr(&s, l->provider);
  put_u64(&s, l->version);
  put_addr(&s, l->signing_key);
  put32(&s, l->encryption_key);
  put32(&s, l->image_hash);
  digest(d, &s, out);
}

void teex_stmt_enclave_registration_digest(
    const struct teex_domain *d, const uint8_t enclave[20], uint8_t role,
    const uint8_t measurement[32], uint64_t issued_at, uint8_t out[32]) {
  struct words s;
  start(&s, T_REGISTRATION);
  put_addr(&s, enclave);
  put_u64(&s, role);
  put32(&s, measurement);
  put_u64(&s, issued_at);
  digest(d, &s, out);
}

void teex_stmt_enclave_revocation_digest(const struct teex_domain *d,
                                         const uint8_t enclave[20],
                                         uint8_t out[32]) {
  struct words s;
  start(&s, T_REVOCATION);
  put_addr(&s, enclave);
  digest(d, &s, out);
}

int teex_stmt_sign(const uint8_t sk[32], const uint8_t digest_[32],
                   uint8_t sig[65]) {
  int rc = teex_secp256k1_sign(sk, digest_, sig);
  if (rc != 0)
    return rc;
  sig[64] = (uint8_t)(sig[64] + 27);
  return 0;
}

int teex_stmt_recover(const uint8_t digest_[32], const uint8_t sig[65],
                      uint8_t addr[20]) {
  if (sig[64] != 27 && sig[64] != 28)
    return TEEX_EBADSIG;
  int rc = teex_eth_recover_address(digest_, sig, addr);
  if (rc != 0)
    return TEEX_EBADSIG;
  static const uint8_t zero[20];
  if (memcmp(addr, zero, 20) == 0)
    return TEEX_EBADSIG;
  return 0;
}

void teex_stmt_assignment_digest(const struct teex_assignment *a,
                                 uint8_t out[32]) {
  static const char tag[] = "teex/assignment/v1";
  static const uint8_t none[32];
  uint8_t buf[sizeof tag - 1 + 8 + 20 * 3 + 32 * 3 + 32 + 8 + 32];
  uint8_t *p = buf;
  memcpy(p, tag, sizeof tag - 1);
  p += sizeof tag - 1;
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(a->chain_id >> (8 * i));
  memcpy(p, a->dispatcher, 20), p += 20;
  memcpy(p, a->worker, 20), p += 20;
  memcpy(p, a->user, 20), p += 20;
  memcpy(p, a->task_id, 32), p += 32;
  memcpy(p, a->service_id, 32), p += 32;
  memcpy(p, a->image_hash, 32), p += 32;
  teex_amount_word(a->price, p), p += 32;
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(a->expires_at >> (8 * i));
  if (memcmp(a->datasets_hash, none, 32) != 0)
    memcpy(p, a->datasets_hash, 32), p += 32;
  teex_keccak256(buf, (size_t)(p - buf), out);
}

void teex_stmt_datasets_hash(const uint8_t *ids, size_t n, uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  for (size_t i = 0; i < n; i++)
    teex_keccak256_update(&c, ids + 32 * i, 32);
  teex_keccak256_final(&c, out);
}

void teex_stmt_result_digest(const uint8_t task_id[32],
                             const uint8_t service_id[32],
                             const uint8_t image_hash[32],
                             const uint8_t input_commitment[32],
                             const uint8_t output_commitment[32],
                             uint8_t out[32]) {
  static const char tag[] = "teex/result/v1";
  uint8_t buf[sizeof tag - 1 + 5 * 32];
  memcpy(buf, tag, sizeof tag - 1);
  uint8_t *p = buf + sizeof tag - 1;
  memcpy(p, task_id, 32);
  memcpy(p + 32, service_id, 32);
  memcpy(p + 64, image_hash, 32);
  memcpy(p + 96, input_commitment, 32);
  memcpy(p + 128, output_commitment, 32);
  teex_keccak256(buf, sizeof buf, out);
}

void teex_stmt_service_proof_digest(const uint8_t service_id[32],
                                    const uint8_t exporter[32],
                                    uint8_t out[32]) {
  static const char tag[] = "teex/service-proof/v1";
  uint8_t buf[sizeof tag - 1 + 64];
  memcpy(buf, tag, sizeof tag - 1);
  memcpy(buf + sizeof tag - 1, service_id, 32);
  memcpy(buf + sizeof tag - 1 + 32, exporter, 32);
  teex_keccak256(buf, sizeof buf, out);
}
