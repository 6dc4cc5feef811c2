/* The Service Manager daemon (`teex sm`): the SM core behind RA-TLS RPC
 * endpoints (docs/network.md). */
#ifndef TEEX_SM_SERVER_H
#define TEEX_SM_SERVER_H

#include <stdint.h>

#include "teex/error.h"
#include "teex/sm.h"
#include "teex/tls.h"

/* The TLS exporter label whose value (32 bytes, context = method name) an
 * enclave binds as its evidence nonce to prove freshness. */
#define TEEX_SM_FRESH_LABEL "EXPORTER-teex-fresh-evidence"

struct teex_sm_server_config {
  struct teex_tee *tee;       /* role "sm"; borrowed */
  struct teex_sm_config sm;   /* state dir, chain domains, enclave policy */
  const char *enclave_listen; /* mutual RA-TLS, e.g. "127.0.0.1:0" */
  const char *client_listen;  /* server-only RA-TLS */
  const char *ready_file;     /* written once listening (ports, address);
                                 may be NULL */
  unsigned cert_refresh_s;    /* renew the RA-TLS certificate this often
                                (0: TEEX_RATLS_REFRESH_DEFAULT_S) */
  /* Datasets: the chain's JSON-RPC endpoint and the DatasetRegistry the SM
   * reads at each data-key lease (NULL / all zero: leases are refused;
   * escrow still works). The enclave registry is sm.registration's. */
  const char *chain_rpc;
  uint8_t dataset_registry[20]; /* Where the daemon writes, at every start, the
                                 * operator token (64 hex digits, mode 0600)
                                 * that sm.Revoke and sm.Status require; NULL:
                                 * STATE_DIR/operator.token. Whoever can read it
                                 * is the SM's operator. */
  const char *operator_token_file;
  /* State in TEE-DS (docs/internals/sm.md, "State"): the client addresses
   * of the group's replicas (n_ds_replicas 0: the sealed local store
   * only), what their evidence must satisfy (role ds), and the namespace
   * the group maps the SM's role to (NULL: "sm"). The SM connects with
   * its own RA-TLS certificate. */
  const char *const *ds_replicas;
  size_t n_ds_replicas;
  const struct teex_tee_policy *ds_policy;
  const char *ds_ns;
  uint32_t ds_timeout_ms; /* per state operation; 0: 3000 */
};

#define TEEX_SM_OPERATOR_TOKEN_FILE "operator.token"

/* Runs the daemon until SIGTERM or SIGINT. 0 on a clean stop. */
int teex_sm_serve(const struct teex_sm_server_config *cfg,
                  struct teex_err *err);

/* The nonce an enclave binds for method on connection c (both sides). */
int teex_sm_fresh_nonce(struct teex_tls_conn *c, const char *method,
                        uint8_t nonce[32], struct teex_err *err);

/* SHA-256 of the peer certificate's SubjectPublicKeyInfo (DER). */
int teex_tls_peer_spki_sha256(struct teex_tls_conn *c, uint8_t out[32]);

#endif
