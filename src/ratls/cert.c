/* RA-TLS certificates: making one, and verifying a peer's
 * (include/teex/ratls.h). */
#include "teex/ratls.h"
#include "teex/tls.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/mem.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static ASN1_OBJECT *evidence_oid;
static pthread_once_t oid_once = PTHREAD_ONCE_INIT;

static void make_oid(void) {
  evidence_oid = OBJ_txt2obj(TEEX_RATLS_OID_EVIDENCE, 1);
}

static const ASN1_OBJECT *oid(void) {
  pthread_once(&oid_once, make_oid);
  return evidence_oid;
}

int teex_ratls_ext_parse(const uint8_t *der, size_t der_len, const uint8_t **ev,
                         size_t *ev_len, struct teex_err *err) {
  *ev = NULL;
  *ev_len = 0;
  if (der_len < 2 || der[0] != 0x04)
    return teex_err_set(err, TEEX_EFORMAT,
                        "evidence extension is not an OCTET STRING");
  size_t hdr, n;
  if (der[1] < 0x80) {
    n = der[1];
    hdr = 2;
  } else if (der[1] == 0x81) {
    if (der_len < 3 || der[2] < 0x80)
      return teex_err_set(err, TEEX_EFORMAT,
                          "evidence extension length not minimal DER");
    n = der[2];
    hdr = 3;
  } else if (der[1] == 0x82) {
    if (der_len < 4 || der[2] == 0)
      return teex_err_set(err, TEEX_EFORMAT,
                          "evidence extension length not minimal DER");
    n = ((size_t)der[2] << 8) | der[3];
    hdr = 4;
  } else {
    return teex_err_set(err, TEEX_ETOOBIG,
                        "evidence extension length form 0x%02x unsupported",
                        der[1]);
  }
  if (n > TEEX_EVIDENCE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "evidence extension too large");
  if (n != der_len - hdr)
    return teex_err_set(err, TEEX_EFORMAT,
                        "evidence extension length %zu does not match %zu "
                        "bytes",
                        n, der_len - hdr);
  *ev = der + hdr;
  *ev_len = n;
  return 0;
}

/* SHA-256 of the DER SubjectPublicKeyInfo of key. */
static int spki_hash(EVP_PKEY *key, uint8_t out[32]) {
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0)
    return TEEX_ECRYPTO;
  teex_sha256(der, (size_t)n, out);
  OPENSSL_free(der);
  return 0;
}

static int add_ext(X509 *cert, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL)
    return TEEX_ECRYPTO;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : TEEX_ECRYPTO;
}

/* Wraps evidence as DER OCTET STRING and adds it as the extension. */
static int add_evidence_ext(X509 *cert, const uint8_t *ev, size_t ev_len) {
  int rc = TEEX_ECRYPTO;
  ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING *outer = ASN1_OCTET_STRING_new();
  unsigned char *der = NULL;
  X509_EXTENSION *ext = NULL;
  if (inner == NULL || outer == NULL ||
      !ASN1_OCTET_STRING_set(inner, ev, (int)ev_len))
    goto out;
  int n = i2d_ASN1_OCTET_STRING(inner, &der);
  if (n <= 0 || !ASN1_OCTET_STRING_set(outer, der, n))
    goto out;
  ext = X509_EXTENSION_create_by_OBJ(NULL, oid(), 0, outer);
  if (ext != NULL && X509_add_ext(cert, ext, -1))
    rc = 0;
out:
  X509_EXTENSION_free(ext);
  OPENSSL_free(der);
  ASN1_OCTET_STRING_free(outer);
  ASN1_OCTET_STRING_free(inner);
  return rc;
}

/* Builds and self-signs the certificate around key and evidence. */
static int build_cert(EVP_PKEY *key, const char *role, uint64_t issued_at,
                      const uint8_t *ev, size_t ev_len, X509 **out) {
  X509 *cert = X509_new();
  if (cert == NULL)
    return TEEX_ENOMEM;
  int rc = TEEX_ECRYPTO;
  uint8_t serial[16];
  teex_random(serial, sizeof serial);
  serial[0] &= 0x7f; /* positive */
  serial[0] |= 0x01; /* and of full length */
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  X509_NAME *name = X509_NAME_new();
  char cn[64];
  snprintf(cn, sizeof cn, "teex %s", role);
  if (bn == NULL || name == NULL || !X509_set_version(cert, 2) ||
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL ||
      !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                  (const unsigned char *)"teex", -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)cn, -1, -1, 0) ||
      !X509_set_subject_name(cert, name) || !X509_set_issuer_name(cert, name))
    goto out;
  time_t nb = (time_t)issued_at - 60;
  if (ASN1_TIME_set(X509_getm_notBefore(cert), nb) == NULL ||
      ASN1_TIME_adj(X509_getm_notAfter(cert), (time_t)issued_at,
                    TEEX_RATLS_CERT_DAYS, 0) == NULL ||
      !X509_set_pubkey(cert, key))
    goto out;
  if (add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
      add_ext(cert, NID_key_usage, "critical,digitalSignature") != 0 ||
      add_ext(cert, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
      add_evidence_ext(cert, ev, ev_len) != 0)
    goto out;
  if (X509_sign(cert, key, EVP_sha256()) <= 0)
    goto out;
  *out = cert;
  cert = NULL;
  rc = 0;
out:
  X509_NAME_free(name);
  BN_free(bn);
  X509_free(cert);
  return rc;
}

int teex_ratls_identity_new(struct teex_tee *tee,
                            const struct teex_ratls_keys *keys,
                            EVP_PKEY **key_out, X509 **cert_out,
                            struct teex_err *err) {
  *key_out = NULL;
  *cert_out = NULL;
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  struct teex_buf ev;
  teex_buf_init(&ev, TEEX_EVIDENCE_MAX, 0);
  int rc;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  if (key == NULL) {
    rc = teex_err_set(err, TEEX_ECRYPTO, "ra-tls: P-256 key generation failed");
    goto out;
  }
  if ((rc = spki_hash(key, b.tls_spki_sha256)) != 0) {
    teex_err_set(err, rc, "ra-tls: encoding the public key failed");
    goto out;
  }
  b.has_tls = 1;
  if (keys != NULL && keys->secp256k1_pub != NULL) {
    b.has_secp256k1 = 1;
    memcpy(b.secp256k1_pub, keys->secp256k1_pub, 64);
  }
  if (keys != NULL && keys->x25519_pub != NULL) {
    b.has_x25519 = 1;
    memcpy(b.x25519_pub, keys->x25519_pub, 32);
  }
  if (keys != NULL && keys->nonce != NULL) {
    b.has_nonce = 1;
    memcpy(b.nonce, keys->nonce, TEEX_TEE_NONCE_LEN);
  }
  if ((rc = teex_tee_quote_binding(tee, &b, &ev, err)) != 0) {
    teex_err_wrap(err, 0, "ra-tls");
    goto out;
  }
  if ((rc = build_cert(key, b.role, b.issued_at, ev.data, ev.len, cert_out)) !=
      0) {
    teex_err_set(err, rc, "ra-tls: building the certificate failed");
    goto out;
  }
  *key_out = key;
  key = NULL;
out:
  EVP_PKEY_free(key);
  teex_buf_free(&ev);
  return rc;
}

int teex_ratls_verify_cert(X509 *peer, const struct teex_tee_policy *policy,
                           const uint8_t *nonce, struct teex_tee_identity *out,
                           struct teex_err *err) {
  if (peer == NULL)
    return teex_err_set(err, TEEX_EATTEST, "peer presented no certificate");
  if (oid() == NULL)
    return teex_err_set(err, TEEX_ECRYPTO, "ra-tls: OID unavailable");
  int idx = X509_get_ext_by_OBJ(peer, oid(), -1);
  if (idx < 0)
    return teex_err_set(err, TEEX_EATTEST,
                        "peer certificate carries no teex evidence");
  if (X509_get_ext_by_OBJ(peer, oid(), idx) >= 0)
    return teex_err_set(err, TEEX_EATTEST,
                        "peer certificate carries two evidence extensions");
  ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(X509_get_ext(peer, idx));
  const uint8_t *ev;
  size_t ev_len;
  int rc =
      teex_ratls_ext_parse(ASN1_STRING_get0_data(val),
                           (size_t)ASN1_STRING_length(val), &ev, &ev_len, err);
  if (rc != 0)
    return rc;
  struct teex_tee_identity id;
  rc = teex_tee_verify(ev, ev_len, policy, nonce, (uint64_t)time(NULL), &id,
                       err);
  if (rc != 0)
    return rc;
  uint8_t h[32];
  EVP_PKEY *pk = X509_get0_pubkey(peer);
  if (pk == NULL || teex_tls_cert_spki_sha256(peer, h) != 0)
    return teex_err_set(err, TEEX_EATTEST, "peer certificate key unreadable");
  if (!id.has_binding || !id.binding.has_tls ||
      !teex_ct_equal(h, id.binding.tls_spki_sha256, 32))
    return teex_err_set(err, TEEX_EATTEST,
                        "certificate key does not match the evidence (the "
                        "report data binds another key)");
  if (X509_verify(peer, pk) != 1)
    return teex_err_set(err, TEEX_EATTEST,
                        "certificate self-signature invalid");
  if (out != NULL)
    *out = id;
  return 0;
}
