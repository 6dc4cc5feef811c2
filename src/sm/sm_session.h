/* An enclave's attested session with the Service Manager, shared by the
 * enclave-side clients (sm_client.c, sm_data_client.c): mutual RA-TLS to
 * the SM, and fresh evidence for one method bound to this session's TLS
 * key, the enclave's secp256k1 key and a nonce the SM issued on this very
 * connection (sm.Challenge), which is what the SM's freshness rule asks. */
#ifndef TEEX_SM_SESSION_H
#define TEEX_SM_SESSION_H

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <openssl/x509.h>

struct teex_sm__session {
  struct teex_ratls_verifier v; /* must outlive ctx: keep s in place */
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
};

/* Connects to sm_addr with the RA-TLS identity cert/key (the SM must
 * satisfy policy) and fills ev (caller-initialised) with fresh evidence
 * for `method`, bound to cert's key, secp256k1_pub (NULL: a throwaway key,
 * for an enclave without an address of its own) and the SM's nonce. On
 * failure the session is closed. Errors: the TLS/RPC ones (wrapped "connect
 * to the SM at ADDR"), TEEX_ECRYPTO, the nonce's and the quote's. */
int teex_sm__session_open(struct teex_sm__session *s, struct teex_tee *tee,
                          X509 *cert, EVP_PKEY *key,
                          const uint8_t *secp256k1_pub, const char *sm_addr,
                          const struct teex_tee_policy *policy,
                          const char *method, uint32_t timeout_ms,
                          struct teex_buf *ev, struct teex_err *err);

/* Sends req (packed here) as `method` and waits for the answer into resp.
 * A refusal is wrapped with `refused` ("the SM refused the group key").
 * Errors: TEEX_ENOMEM, the RPC's and the SM's. */
int teex_sm__session_call(struct teex_sm__session *s, const char *method,
                          const ProtobufCMessage *req, uint32_t timeout_ms,
                          const char *refused, struct teex_buf *resp,
                          struct teex_err *err);

/* Closes the connection and frees the context. Safe on a closed session. */
void teex_sm__session_close(struct teex_sm__session *s);

#endif
