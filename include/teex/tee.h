/* The TEE interface: what code runs here (identity, measurement), evidence
 * that proves it to a remote verifier (a quote over 64 bytes of report data
 * that bind the component's public keys), verification of evidence against a
 * policy, and sealing keys. Callers use teex_tee_* only; a backend (the
 * software `sim`, later SGX-DCAP via Gramine or TDX) is a vtable behind it.
 * The evidence wire format is in include/teex/evidence.h and
 * docs/attestation.md. */
#ifndef TEEX_TEE_H
#define TEEX_TEE_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/tee_policy.h"

#define TEEX_TEE_HASH_LEN 32        /* mr_enclave, mr_signer, roots */
#define TEEX_TEE_REPORT_DATA_LEN 64 /* SHA-512 of the binding */
#define TEEX_TEE_NONCE_LEN 32       /* a verifier's challenge */
#define TEEX_TEE_ROLE_MAX 31        /* role names: [a-z0-9_-]{1,31} */
#define TEEX_TEE_CLOCK_SKEW 300     /* seconds evidence may lie in the future */

/* tee types on the wire (u16). The high bit marks software-simulated
 * evidence: no verifier may treat such evidence as hardware evidence. */
#define TEEX_TEE_TYPE_SIMULATED_BIT 0x8000u
#define TEEX_TEE_TYPE_SGX_DCAP 0x0001u /* reserved: not implemented */
#define TEEX_TEE_TYPE_TDX 0x0002u      /* reserved: not implemented */
#define TEEX_TEE_TYPE_SIM 0x8001u      /* the `sim` backend */

/* The public keys and context one piece of evidence binds (DESIGN.md §2).
 * report_data = SHA-512(teex_tee_binding_encode(b)); see
 * docs/attestation.md for the canonical encoding. */
struct teex_tee_binding {
  char role[TEEX_TEE_ROLE_MAX + 1];
  uint64_t issued_at; /* unix seconds */
  int has_tls;        /* SHA-256 of the TLS certificate's SPKI (DER) */
  uint8_t tls_spki_sha256[32];
  int has_secp256k1; /* secp256k1 public key (x || y); gives eth_address */
  uint8_t secp256k1_pub[64];
  uint8_t eth_address[20]; /* derived by decode/verify; ignored by encode */
  int has_x25519;
  uint8_t x25519_pub[32];
  int has_nonce; /* the verifier's challenge */
  uint8_t nonce[TEEX_TEE_NONCE_LEN];
};

/* Largest canonical binding encoding (bytes). */
#define TEEX_TEE_BINDING_MAX 512

/* What a verified piece of evidence says about the code that produced it. */
struct teex_tee_identity {
  uint16_t tee_type;
  int simulated; /* tee_type has TEEX_TEE_TYPE_SIMULATED_BIT */
  uint8_t mr_enclave[32];
  uint8_t mr_signer[32];
  uint16_t product_id;
  uint16_t svn;
  int debug;
  char role[TEEX_TEE_ROLE_MAX + 1];
  uint64_t issued_at;
  uint8_t report_data[TEEX_TEE_REPORT_DATA_LEN];
  uint8_t root[32];     /* the root of trust the evidence chains to */
  uint8_t platform[32]; /* the platform attestation key (sim: Ed25519) */
  int has_binding;      /* the evidence carried the binding below */
  struct teex_tee_binding binding;
};

/* ---- report data binding ---- */

/* 1 when s is a valid role name ([a-z0-9_-], 1..31 bytes). */
int teex_tee_role_valid(const char *s);

/* Writes the canonical encoding of b into out (at most TEEX_TEE_BINDING_MAX
 * bytes) and its length into *len. TEEX_EINVAL for a bad role. */
int teex_tee_binding_encode(const struct teex_tee_binding *b,
                            uint8_t out[TEEX_TEE_BINDING_MAX], size_t *len);

/* Strict inverse of encode: rejects unknown tags, fields out of order,
 * duplicates, wrong lengths and trailing bytes (TEEX_EFORMAT). Fills
 * eth_address when a secp256k1 key is present. */
int teex_tee_binding_decode(const uint8_t *p, size_t len,
                            struct teex_tee_binding *b, struct teex_err *err);

/* report_data = SHA-512 of the canonical encoding of b. */
int teex_tee_report_data(const struct teex_tee_binding *b,
                         uint8_t out[TEEX_TEE_REPORT_DATA_LEN]);

/* Checks in constant time that rd is the report data of b. TEEX_EATTEST
 * ("report data does not match the bound keys") on mismatch. */
int teex_tee_report_data_check(const struct teex_tee_binding *b,
                               const uint8_t rd[TEEX_TEE_REPORT_DATA_LEN],
                               struct teex_err *err);

/* ---- the backend vtable ---- */

struct teex_tee;

/* How a component configures its TEE context. Every string is borrowed for
 * the duration of teex_tee_open only. */
struct teex_tee_config {
  const char *backend;        /* "sim" (NULL: "sim") */
  const char *data_dir;       /* sim: holds tee/platform.key (teex tee init) */
  const char *role;           /* sm, dispatcher, worker, ds, client, ... */
  const uint8_t *role_config; /* measured with the code (may be NULL) */
  size_t role_config_len;
  /* Declared signer identity. On hardware these come from the signed
   * enclave image; in sim the configuration declares them (and they are
   * measured into mr_enclave). has_signer 0: the sim development signer. */
  int has_signer;
  uint8_t mr_signer[32];
  uint16_t product_id;
  uint16_t svn;
  int debug;
  /* sim only: measure this file instead of /proc/self/exe (tests). */
  const char *exe_path;
  /* Harden the process on open (teex_harden_process(0)): what every
   * daemon acting as an enclave sets. */
  int harden;
};

/* Which key a sealing operation derives (see include/teex/seal.h). */
enum teex_seal_policy {
  TEEX_SEAL_ENCLAVE = 1, /* same mr_enclave only */
  TEEX_SEAL_SIGNER = 2,  /* same mr_signer + product, svn <= own svn */
};

/* A backend. Producer entry points act for the local TEE; verify_body checks
 * a quote body of this backend's tee_type produced anywhere. A new backend
 * (SGX-DCAP, TDX) adds one of these to the table in src/tee/tee.c and
 * callers do not change; see docs/attestation.md. */
struct teex_tee_backend {
  const char *name; /* "sim" */
  uint16_t tee_type;
  /* Opens the backend state for tee (tee->impl). */
  int (*open)(struct teex_tee *tee, const struct teex_tee_config *cfg,
              struct teex_err *err);
  void (*close)(struct teex_tee *tee);
  /* Computes the local identity (everything but report data, issue time,
   * root and platform). */
  int (*measure)(struct teex_tee *tee, struct teex_tee_identity *id,
                 struct teex_err *err);
  /* Appends the backend's signed quote body over (identity, issued_at,
   * report_data) to out; the signature must also cover the evidence
   * version and tee type. */
  int (*quote)(struct teex_tee *tee, uint64_t issued_at,
               const uint8_t rd[TEEX_TEE_REPORT_DATA_LEN], struct teex_buf *out,
               struct teex_err *err);
  /* Derives the 32-byte sealing key for policy, at svn (signer policy). */
  int (*seal_key)(struct teex_tee *tee, enum teex_seal_policy policy,
                  uint16_t svn, uint8_t key[32], struct teex_err *err);
  /* Verifies a quote body (signature chain up to one of policy's roots)
   * and fills id (identity, issued_at, report_data, root, platform). */
  int (*verify_body)(const uint8_t *body, size_t body_len,
                     const struct teex_tee_policy *policy,
                     struct teex_tee_identity *id, struct teex_err *err);
};

/* The backend serving tee_type or named name; NULL if none. */
const struct teex_tee_backend *teex_tee_backend_by_type(uint16_t tee_type);
const struct teex_tee_backend *teex_tee_backend_by_name(const char *name);

/* A TEE context (opaque fields for backends). */
struct teex_tee {
  const struct teex_tee_backend *backend;
  void *impl; /* backend state */
  struct teex_tee_identity self;
};

/* ---- the TEE context ---- */

/* Opens a TEE context: hardens the process when cfg->harden, loads the
 * backend's platform state and measures the running code. A context may be
 * used from several threads for quote, seal_key and self (read-only). Returns a
 * new context in *out (owned by the caller, free with teex_tee_close).
 * TEEX_ENOTFOUND when the sim platform key is missing (run `teex tee init`),
 * TEEX_EINVAL for a bad role. */
int teex_tee_open(const struct teex_tee_config *cfg, struct teex_tee **out,
                  struct teex_err *err);
void teex_tee_close(struct teex_tee *tee); /* NULL-safe; wipes secrets */

/* The local identity (report data zero, issued_at 0). Borrowed. */
const struct teex_tee_identity *teex_tee_self(const struct teex_tee *tee);

/* Produces evidence (the format of include/teex/evidence.h) over rd, issued
 * now. When binding is not NULL its encoding is carried in the evidence and
 * rd must be its report data (the binding's role and issued_at must equal
 * the context's role and issued_at; use teex_tee_quote_binding). The bytes
 * are appended to out (init it with TEEX_EVIDENCE_MAX). */
int teex_tee_quote(struct teex_tee *tee, const uint8_t rd[64],
                   uint64_t issued_at, const struct teex_tee_binding *binding,
                   struct teex_buf *out, struct teex_err *err);

/* Convenience: fills b->role and b->issued_at (now) from the context,
 * computes the report data and produces evidence carrying the binding. */
int teex_tee_quote_binding(struct teex_tee *tee, struct teex_tee_binding *b,
                           struct teex_buf *out, struct teex_err *err);

/* Verifies evidence against policy at time now (unix seconds): parses it,
 * checks the signature chain to one of the policy's roots, the binding (when
 * present) against the report data, then the policy (simulated, measurement,
 * signer/svn, debug, role, age, nonce). nonce may be NULL; when given, the
 * evidence must carry a binding with exactly that nonce. Fills out (may be
 * NULL). On failure returns TEEX_EFORMAT/TEEX_EATTEST/TEEX_EPOLICY/
 * TEEX_EEXPIRED with a one-line reason in err ("wrong measurement ...").
 * Pure: no I/O, no clock. */
int teex_tee_verify(const uint8_t *ev, size_t ev_len,
                    const struct teex_tee_policy *policy, const uint8_t *nonce,
                    uint64_t now, struct teex_tee_identity *out,
                    struct teex_err *err);

/* The 32-byte sealing key for policy (signer policy: derived at svn, which
 * must be <= the context's svn: TEEX_EPERM otherwise). Caller wipes it. */
int teex_tee_seal_key(struct teex_tee *tee, enum teex_seal_policy policy,
                      uint16_t svn, uint8_t key[32], struct teex_err *err);

/* ---- sim backend files ----
 * DIR/tee/root.key (0600): the network root's Ed25519 key; DIR/tee/root.pub
 * (its public key in hex, for policy files); DIR/tee/platform.key (0600):
 * the platform attestation key, the platform sealing secret and the root's
 * certificate of the platform key. Anyone who can read these files (the
 * host's root user) can forge sim evidence and unseal sim blobs. */

/* Creates DIR (0700), DIR/tee, a root key (unless root.key exists: an
 * existing network root is reused) and a new platform key certified by the
 * root. TEEX_EEXIST when platform.key already exists. Writes the root public
 * key to root_pub (may be NULL). */
int teex_tee_sim_init(const char *data_dir, uint8_t root_pub[32],
                      struct teex_err *err);

/* Reads the root public key that certified DIR's platform key. */
int teex_tee_sim_root(const char *data_dir, uint8_t root_pub[32],
                      struct teex_err *err);

/* The sim development signer (SHA-256 of "teex-sim-dev-signer-v1"). */
void teex_tee_sim_dev_signer(uint8_t out[32]);

/* Short names for printing. */
const char *teex_tee_type_name(uint16_t tee_type);

#endif
