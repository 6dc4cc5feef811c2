/* RA-TLS certificates: a self-signed X.509 certificate whose key (ECDSA
 * P-256) is made inside the process and whose private extension carries
 * teex evidence binding the SHA-256 of the certificate's SubjectPublicKeyInfo
 * (plus the component's other public keys, its role and the issue time).
 * A peer checks the evidence against its policy inside OpenSSL's verify
 * callback, so a wrong measurement never completes a handshake.
 *
 * Extension: OID TEEX_RATLS_OID_EVIDENCE (under the UUID arc 2.25, which
 * needs no registration), non-critical; extnValue holds the DER of one
 * OCTET STRING whose content is the evidence (include/teex/evidence.h). */
#ifndef TEEX_RATLS_H
#define TEEX_RATLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "teex/error.h"
#include "teex/tee.h"

/* teex's private arc: 2.25.<UUID a22f53ce-ad28-4895-9a6a-e7aad7fc5399>. */
#define TEEX_OID_ARC "2.25.215580673084095695838012285188679947161"
#define TEEX_RATLS_OID_EVIDENCE TEEX_OID_ARC ".1"
#define TEEX_RATLS_CERT_DAYS 30 /* X.509 validity; evidence age governs */

/* The component's other public keys the certificate's evidence binds. */
struct teex_ratls_keys {
  const uint8_t *secp256k1_pub; /* 64 bytes (x || y) or NULL */
  const uint8_t *x25519_pub;    /* 32 bytes or NULL */
  const uint8_t *nonce;         /* TEEX_TEE_NONCE_LEN bytes or NULL */
};

/* Makes an RA-TLS identity for the component behind tee (its role is the
 * context's role): a new P-256 key and a self-signed certificate carrying
 * evidence issued now. keys may be NULL. On success *key_out and *cert_out
 * are new references owned by the caller (EVP_PKEY_free / X509_free). */
int teex_ratls_identity_new(struct teex_tee *tee,
                            const struct teex_ratls_keys *keys,
                            EVP_PKEY **key_out, X509 **cert_out,
                            struct teex_err *err);

/* Extracts the evidence from peer's extension, verifies it against policy
 * (teex_tee_verify, at the current time) and checks that it binds peer's
 * public key and that the certificate's self-signature holds. nonce
 * (TEEX_TEE_NONCE_LEN bytes) may be NULL. out may be NULL. Returns 0 or a
 * TEEX_E* code with a one-line reason in err. Usable from any thread. */
int teex_ratls_verify_cert(X509 *peer, const struct teex_tee_policy *policy,
                           const uint8_t *nonce, struct teex_tee_identity *out,
                           struct teex_err *err);

/* Finds the evidence extension's content in a certificate's extension
 * value (the DER of one OCTET STRING): strict, no trailing bytes. *ev
 * points into der. TEEX_EFORMAT / TEEX_ETOOBIG. */
int teex_ratls_ext_parse(const uint8_t *der, size_t der_len, const uint8_t **ev,
                         size_t *ev_len, struct teex_err *err);

/* Flags for teex_ratls_ssl_ctx_set_verify. */
#define TEEX_RATLS_MUTUAL 1u /* server side: require a client certificate */

/* Installs the RA-TLS verify callback on ctx: self-signed peer certificates
 * are accepted only if teex_ratls_verify_cert passes on the leaf (a chain
 * of more than one certificate is refused). A client ctx verifies the
 * server; a server ctx with TEEX_RATLS_MUTUAL verifies clients (server-only
 * mode: do not call this on the server). policy is borrowed and must
 * outlive ctx and its connections. */
int teex_ratls_ssl_ctx_set_verify(SSL_CTX *ctx,
                                  const struct teex_tee_policy *policy,
                                  unsigned flags, struct teex_err *err);

/* Loads key and cert into ctx (SSL_CTX_use_certificate/PrivateKey + a
 * consistency check). The ctx takes its own references. */
int teex_ratls_ssl_ctx_use_identity(SSL_CTX *ctx, EVP_PKEY *key, X509 *cert,
                                    struct teex_err *err);

/* After a handshake: the peer's verified identity (0), or TEEX_ESTATE when
 * no peer evidence was verified on ssl. */
int teex_ratls_peer_identity(const SSL *ssl, struct teex_tee_identity *out);

/* Why the verify callback refused the peer on ssl ("wrong measurement:
 * ..."), or NULL when it did not. Borrowed; valid while ssl lives. */
const char *teex_ratls_peer_error(const SSL *ssl);

#endif
