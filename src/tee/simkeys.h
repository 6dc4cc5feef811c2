/* The sim backend's key files (internal): the network root key and the
 * platform key file, their strict parsers and the directory setup.
 *
 *   root.key     (72 bytes, 0600): "TXRK" | u16 version 1 | u16 0 | sk[64]
 *   platform.key (200 bytes, 0600): "TXPK" | u16 version 1 | u16 0
 *                | sk[64] | seal_secret[32] | root_pub[32] | cert_sig[64]
 *   root.pub     64 hex digits and a newline
 * (sk is libsodium's Ed25519 secret key: seed || public key.) */
#ifndef TEEX_TEE_SIMKEYS_H
#define TEEX_TEE_SIMKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"

#define TEEX_SIM_ROOT_FILE_LEN 72
#define TEEX_SIM_PLATFORM_FILE_LEN 200
#define TEEX_SIM_CERT_MSG_LEN (sizeof "teex-sim-platform-cert-v1" + 64)

/* Lives in locked memory (teex_secret_alloc). */
struct teex_sim_platform {
  uint8_t sk[64];
  uint8_t pub[32];
  uint8_t seal_secret[32];
  uint8_t root_pub[32];
  uint8_t cert_sig[64];
};

/* The message a root signs to certify a platform key. */
void teex_sim_cert_message(const uint8_t root_pub[32],
                           const uint8_t platform_pub[32],
                           uint8_t msg[TEEX_SIM_CERT_MSG_LEN]);

/* Strict parsers of the file contents (exact length, magic, version,
 * reserved bytes, key consistency, certificate signature). Fill out. */
int teex_sim_platform_parse(const uint8_t *p, size_t len,
                            struct teex_sim_platform *out,
                            struct teex_err *err);
int teex_sim_root_parse(const uint8_t *p, size_t len, uint8_t sk[64],
                        struct teex_err *err);

/* Loads DIR/tee/platform.key into new locked memory (*out, free with
 * teex_sim_platform_free). Refuses a file others can read. */
int teex_sim_platform_load(const char *data_dir, struct teex_sim_platform **out,
                           struct teex_err *err);
void teex_sim_platform_free(struct teex_sim_platform *p);

#endif
