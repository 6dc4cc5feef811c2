/* An enclave's side of the Service Manager (docs/network.md): connect over
 * mutual RA-TLS with the enclave's own certificate, prove fresh evidence,
 * and get the SM-signed EnclaveRegistration statement that the operator
 * submits to the EnclaveRegistry. Also the statement's file format, which
 * `teex up` reads to register enclaves on chain. */
#ifndef TEEX_SM_CLIENT_H
#define TEEX_SM_CLIENT_H

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "teex/error.h"
#include "teex/sm.h"
#include "teex/statements.h"
#include "teex/tee.h"

struct teex_enclave_registration {
  uint8_t enclave[20];
  uint8_t role; /* 1 worker, 2 dispatcher */
  uint8_t measurement[32];
  uint64_t issued_at;
  uint8_t signature[65]; /* the SM's EIP-712 signature */
};

/* Asks the SM at sm_addr (its enclave endpoint) to sign this enclave's
 * registration. cert/key: the enclave's RA-TLS identity (its evidence binds
 * secp256k1_pub); sm_policy: what the SM must prove. */
int teex_sm_client_register(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                            const uint8_t secp256k1_pub[64],
                            const char *sm_addr,
                            const struct teex_tee_policy *sm_policy,
                            struct teex_enclave_registration *out,
                            struct teex_err *err);

/* Asks the SM at sm_addr for the key of TEE-DS group group_id (a replica:
 * tee's role must be ds and the SM's policy must allow it). cert/key: the
 * replica's RA-TLS identity. The caller wipes group_key. */
int teex_sm_client_ds_group_key(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                                const char *sm_addr,
                                const struct teex_tee_policy *sm_policy,
                                const uint8_t group_id[16],
                                uint8_t group_key[32], struct teex_err *err);

/* Re-attests this enclave with the SM (sm.Attest): fresh evidence over a
 * new session, which renews the enclave's validity window. *valid_until
 * gets its end (keys and leases are refused from then until the next
 * attestation). The SM's refusal (revoked, not in its policy) comes back
 * with its code and reason. */
int teex_sm_client_attest(struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
                          const uint8_t secp256k1_pub[64], const char *sm_addr,
                          const struct teex_tee_policy *sm_policy,
                          uint64_t *valid_until, struct teex_err *err);

/* The statement file (key = value lines: enclave, role, measurement,
 * issued_at, signature), written atomically. */
int teex_enclave_registration_write(const struct teex_enclave_registration *r,
                                    const char *path, struct teex_err *err);
int teex_enclave_registration_read(const char *path,
                                   struct teex_enclave_registration *r,
                                   struct teex_err *err);

/* A worker's lease of one dataset key for a task (sm.LeaseDataKey,
 * src/sm/sm_data_client.c): connects like teex_sm_client_register, binds
 * the session's freshness nonce into new evidence and sends the task's
 * assignment a with the dispatcher's signature, the task's dataset ids (32
 * bytes each, in order; they must hash to a->datasets_hash) and which one
 * to lease. The SM's refusal comes back with its code and reason. The
 * caller wipes out once the key is used. */
int teex_sm_client_lease_data(
    struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
    const uint8_t secp256k1_pub[64], const char *sm_addr,
    const struct teex_tee_policy *sm_policy, const struct teex_assignment *a,
    const uint8_t dispatcher_sig[65], const uint8_t *dataset_ids, size_t n,
    size_t index, struct teex_sm_data_lease *out, struct teex_err *err);

#endif
