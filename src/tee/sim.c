/* The `sim` backend: a software TEE modelled on SGX. The measurement is a
 * hash of the running executable and the role configuration; the platform
 * attestation key (Ed25519) and sealing secret live in DIR/tee/platform.key,
 * certified by a network root key. It proves the protocols, not the
 * hardware: whoever reads the key files (the host's root) can forge evidence.
 *
 * Sim quote body (366 bytes, big-endian; docs/attestation.md):
 *     0 mr_enclave[32]   32 mr_signer[32]  64 product_id u16  66 svn u16
 *    68 flags u16 (bit 0 debug; the rest zero)
 *    70 role_len u8     71 role[31] (zero padded)
 *   102 issued_at u64  110 report_data[64]
 *   174 root_pub[32]   206 platform_pub[32]
 *   238 platform_cert_sig[64]: root signs "teex-sim-platform-cert-v1\0"
 *       || root_pub || platform_pub
 *   302 quote_sig[64]: platform signs "teex-sim-quote-v1\0" || evidence
 *       version u16 || tee_type u16 || body[0..302)
 */
#include "tee/tee_internal.h"

#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/mem.h"
#include "tee/simkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIM_BODY_LEN 366
#define SIM_SIGNED_LEN 302
#define SIM_QUOTE_DOMAIN "teex-sim-quote-v1"
#define SIM_CERT_DOMAIN "teex-sim-platform-cert-v1"
#define SIM_MEASURE_DOMAIN "teex-sim-measure-v1"
#define SIM_SEAL_SALT "teex-seal-v1"
#define SIM_EXE_MAX (1024u * 1024 * 1024)

struct sim_state {
  struct teex_sim_platform *plat; /* locked memory */
  char role[TEEX_TEE_ROLE_MAX + 1];
  uint8_t role_config_hash[32];
  uint8_t exe_hash[32];
  uint8_t mr_signer[32];
  uint16_t product_id, svn;
  int debug;
};

void teex_tee_sim_dev_signer(uint8_t out[32]) {
  static const char s[] = "teex-sim-dev-signer-v1";
  teex_sha256(s, sizeof s - 1, out);
}

static int hash_file(const char *path, uint8_t out[32], struct teex_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "cannot open %s to measure it: %s", path,
                        strerror(errno));
  struct teex_sha256_ctx c;
  teex_sha256_init(&c);
  uint8_t buf[65536];
  size_t total = 0;
  int rc = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = teex_err_set(err, TEEX_EIO, "reading %s: %s", path, strerror(errno));
      break;
    }
    if (r == 0)
      break;
    total += (size_t)r;
    if (total > SIM_EXE_MAX) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "%s is too large to measure", path);
      break;
    }
    teex_sha256_update(&c, buf, (size_t)r);
  }
  close(fd);
  teex_sha256_final(&c, out);
  return rc;
}

static int sim_open(struct teex_tee *tee, const struct teex_tee_config *cfg,
                    struct teex_err *err) {
  if (cfg->data_dir == NULL)
    return teex_err_set(err, TEEX_EINVAL, "sim needs a data directory");
  struct sim_state *s = calloc(1, sizeof *s);
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  int rc = teex_sim_platform_load(cfg->data_dir, &s->plat, err);
  if (rc != 0)
    goto fail_after_alloc;
  rc = hash_file(cfg->exe_path ? cfg->exe_path : "/proc/self/exe", s->exe_hash,
                 err);
  if (rc != 0)
    goto fail_after_load;
  memcpy(s->role, cfg->role, strlen(cfg->role) + 1);
  teex_sha256(cfg->role_config ? (const void *)cfg->role_config : "",
              cfg->role_config ? cfg->role_config_len : 0, s->role_config_hash);
  if (cfg->has_signer)
    memcpy(s->mr_signer, cfg->mr_signer, 32);
  else
    teex_tee_sim_dev_signer(s->mr_signer);
  s->product_id = cfg->product_id;
  s->svn = cfg->svn;
  s->debug = cfg->debug != 0;
  tee->impl = s;
  return 0;
fail_after_load:
  teex_sim_platform_free(s->plat);
fail_after_alloc:
  free(s);
  return rc;
}

static void sim_close(struct teex_tee *tee) {
  struct sim_state *s = tee->impl;
  if (s == NULL)
    return;
  teex_sim_platform_free(s->plat);
  teex_wipe(s, sizeof *s);
  free(s);
  tee->impl = NULL;
}

static int sim_measure(struct teex_tee *tee, struct teex_tee_identity *id,
                       struct teex_err *err) {
  (void)err;
  struct sim_state *s = tee->impl;
  memset(id, 0, sizeof *id);
  id->tee_type = TEEX_TEE_TYPE_SIM;
  id->simulated = 1;
  memcpy(id->mr_signer, s->mr_signer, 32);
  id->product_id = s->product_id;
  id->svn = s->svn;
  id->debug = s->debug;
  memcpy(id->role, s->role, sizeof id->role);
  memcpy(id->root, s->plat->root_pub, 32);
  memcpy(id->platform, s->plat->pub, 32);
  /* Everything that defines the identity is measured, so that no two
   * configurations share an mr_enclave. */
  uint8_t
      m[sizeof SIM_MEASURE_DOMAIN + 32 + 1 + TEEX_TEE_ROLE_MAX + 32 + 32 + 5];
  size_t off = 0, rl = strlen(s->role);
  memcpy(m, SIM_MEASURE_DOMAIN, sizeof SIM_MEASURE_DOMAIN);
  off += sizeof SIM_MEASURE_DOMAIN;
  memcpy(m + off, s->exe_hash, 32);
  off += 32;
  m[off++] = (uint8_t)rl;
  memcpy(m + off, s->role, rl);
  off += rl;
  memcpy(m + off, s->role_config_hash, 32);
  off += 32;
  memcpy(m + off, s->mr_signer, 32);
  off += 32;
  tee_put16(m + off, s->product_id);
  tee_put16(m + off + 2, s->svn);
  m[off + 4] = (uint8_t)s->debug;
  off += 5;
  teex_sha256(m, off, id->mr_enclave);
  return 0;
}

static void
quote_message(const uint8_t body[SIM_SIGNED_LEN],
              uint8_t msg[sizeof SIM_QUOTE_DOMAIN + 4 + SIM_SIGNED_LEN]) {
  memcpy(msg, SIM_QUOTE_DOMAIN, sizeof SIM_QUOTE_DOMAIN);
  tee_put16(msg + sizeof SIM_QUOTE_DOMAIN, TEEX_EVIDENCE_VERSION);
  tee_put16(msg + sizeof SIM_QUOTE_DOMAIN + 2, TEEX_TEE_TYPE_SIM);
  memcpy(msg + sizeof SIM_QUOTE_DOMAIN + 4, body, SIM_SIGNED_LEN);
}

void teex_sim_cert_message(const uint8_t root_pub[32],
                           const uint8_t platform_pub[32],
                           uint8_t msg[TEEX_SIM_CERT_MSG_LEN]) {
  memcpy(msg, SIM_CERT_DOMAIN, sizeof SIM_CERT_DOMAIN);
  memcpy(msg + sizeof SIM_CERT_DOMAIN, root_pub, 32);
  memcpy(msg + sizeof SIM_CERT_DOMAIN + 32, platform_pub, 32);
}

static int sim_quote(struct teex_tee *tee, uint64_t issued_at,
                     const uint8_t rd[TEEX_TEE_REPORT_DATA_LEN],
                     struct teex_buf *out, struct teex_err *err) {
  struct sim_state *s = tee->impl;
  const struct teex_tee_identity *id = &tee->self;
  uint8_t b[SIM_BODY_LEN];
  memset(b, 0, sizeof b);
  memcpy(b, id->mr_enclave, 32);
  memcpy(b + 32, id->mr_signer, 32);
  tee_put16(b + 64, id->product_id);
  tee_put16(b + 66, id->svn);
  tee_put16(b + 68, id->debug ? 1 : 0);
  size_t rl = strlen(id->role);
  b[70] = (uint8_t)rl;
  memcpy(b + 71, id->role, rl);
  tee_put64(b + 102, issued_at);
  memcpy(b + 110, rd, TEEX_TEE_REPORT_DATA_LEN);
  memcpy(b + 174, s->plat->root_pub, 32);
  memcpy(b + 206, s->plat->pub, 32);
  memcpy(b + 238, s->plat->cert_sig, 64);
  uint8_t msg[sizeof SIM_QUOTE_DOMAIN + 4 + SIM_SIGNED_LEN];
  quote_message(b, msg);
  if (teex_ed25519_sign(s->plat->sk, msg, sizeof msg, b + SIM_SIGNED_LEN) != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "sim: signing the quote failed");
  int rc = teex_buf_append(out, b, sizeof b);
  if (rc != 0)
    return teex_err_set(err, rc, "sim: quote buffer");
  return 0;
}

static int sim_seal_key(struct teex_tee *tee, enum teex_seal_policy policy,
                        uint16_t svn, uint8_t key[32], struct teex_err *err) {
  struct sim_state *s = tee->impl;
  uint8_t info[8 + 32 + 4];
  size_t n;
  if (policy == TEEX_SEAL_ENCLAVE) {
    memcpy(info, "enclave", 8);
    memcpy(info + 8, tee->self.mr_enclave, 32);
    n = 40;
  } else {
    memcpy(info, "signer\0", 8);
    memcpy(info + 8, tee->self.mr_signer, 32);
    tee_put16(info + 40, tee->self.product_id);
    tee_put16(info + 42, svn);
    n = 44;
  }
  if (teex_hkdf_sha256((const uint8_t *)SIM_SEAL_SALT, sizeof SIM_SEAL_SALT - 1,
                       s->plat->seal_secret, 32, info, n, key, 32) != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "sim: key derivation failed");
  return 0;
}

static int sim_verify_body(const uint8_t *b, size_t len,
                           const struct teex_tee_policy *policy,
                           struct teex_tee_identity *id, struct teex_err *err) {
  if (len != SIM_BODY_LEN)
    return teex_err_set(err, TEEX_EFORMAT,
                        "malformed evidence: sim body is %zu bytes, not %d",
                        len, SIM_BODY_LEN);
  uint16_t flags = tee_get16(b + 68);
  if (flags & ~1u)
    return teex_err_set(err, TEEX_EFORMAT,
                        "malformed evidence: unknown flags 0x%04x", flags);
  size_t rl = b[70];
  if (rl == 0 || rl > TEEX_TEE_ROLE_MAX)
    return teex_err_set(err, TEEX_EFORMAT,
                        "malformed evidence: role length %zu", rl);
  for (size_t i = rl; i < TEEX_TEE_ROLE_MAX; i++)
    if (b[71 + i] != 0)
      return teex_err_set(err, TEEX_EFORMAT,
                          "malformed evidence: role padding not zero");
  memcpy(id->role, b + 71, rl);
  id->role[rl] = '\0';
  if (!teex_tee_role_valid(id->role) || strlen(id->role) != rl)
    return teex_err_set(err, TEEX_EFORMAT,
                        "malformed evidence: role is not a name");
  const uint8_t *root = b + 174, *plat = b + 206;
  int trusted = 0;
  for (size_t i = 0; i < policy->n_roots && !trusted; i++)
    trusted = memcmp(policy->roots[i], root, 32) == 0;
  if (!trusted) {
    char hx[17];
    teex_hex_encode(root, 8, hx);
    return teex_err_set(err, TEEX_EATTEST,
                        "evidence chains to an untrusted root %s... (another "
                        "network?)",
                        hx);
  }
  uint8_t cmsg[TEEX_SIM_CERT_MSG_LEN];
  teex_sim_cert_message(root, plat, cmsg);
  if (teex_ed25519_verify(root, cmsg, sizeof cmsg, b + 238) != 0)
    return teex_err_set(err, TEEX_EATTEST,
                        "platform key not certified by the root (bad "
                        "certificate signature)");
  uint8_t msg[sizeof SIM_QUOTE_DOMAIN + 4 + SIM_SIGNED_LEN];
  quote_message(b, msg);
  if (teex_ed25519_verify(plat, msg, sizeof msg, b + SIM_SIGNED_LEN) != 0)
    return teex_err_set(err, TEEX_EATTEST,
                        "evidence signature invalid (tampered or forged)");
  memcpy(id->mr_enclave, b, 32);
  memcpy(id->mr_signer, b + 32, 32);
  id->product_id = tee_get16(b + 64);
  id->svn = tee_get16(b + 66);
  id->debug = flags & 1u;
  id->issued_at = tee_get64(b + 102);
  memcpy(id->report_data, b + 110, TEEX_TEE_REPORT_DATA_LEN);
  memcpy(id->root, root, 32);
  memcpy(id->platform, plat, 32);
  return 0;
}

const struct teex_tee_backend teex_tee_sim_backend = {
    .name = "sim",
    .tee_type = TEEX_TEE_TYPE_SIM,
    .open = sim_open,
    .close = sim_close,
    .measure = sim_measure,
    .quote = sim_quote,
    .seal_key = sim_seal_key,
    .verify_body = sim_verify_body,
};
