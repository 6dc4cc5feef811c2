/* Internal: a TEE-DS group's configuration file (STATE/group.conf):
 *
 *   [group]
 *   id = 32 hex digits
 *   [members]                   # raft id = raft address, client address
 *   1 = 127.0.0.1:7301 127.0.0.1:7401
 *   [clients]                   # label = SHA-256 of the client certificate's
 *   app = 64 hex digits app     #         SubjectPublicKeyInfo, namespace
 *   [enclaves]                  # role of an enclave client whose RA-TLS
 *   sm = sm                     # evidence passes clients-policy.conf = ns
 *   worker = *                  # "*": only the namespace of an SM grant
 * and, in [group], `sm = 0x...`: the SM address whose grants are honoured,
 * and `operators = LABEL,...`: the certificate clients (labels of
 * [clients]) that may add and remove replicas (teex ds add-replica).
 * [members] follows the raft configuration: each replica rewrites it when
 * a membership change commits.
 */
#ifndef TEEX_DS_GROUP_H
#define TEEX_DS_GROUP_H

#include "ds/transport.h"
#include "teex/ds.h"
#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_DS_GROUP_MAX_MEMBERS 7
#define TEEX_DS_GROUP_MAX_CLIENTS 64
#define TEEX_DS_GROUP_MAX_ENCLAVES 16

struct teex_ds_member {
  uint64_t id;
  char peer[TEEX_DS_ADDR_MAX + 1];
  char client[TEEX_DS_ADDR_MAX + 1];
};

struct teex_ds_client_grant {
  char label[64];
  uint8_t spki[32];
  char ns[TEEX_DS_NS_MAX + 1];
};

struct teex_ds_group {
  uint8_t id[16];
  struct teex_ds_member members[TEEX_DS_GROUP_MAX_MEMBERS];
  size_t n_members;
  struct teex_ds_client_grant clients[TEEX_DS_GROUP_MAX_CLIENTS];
  size_t n_clients;
  /* Enclave clients: label = the evidence's role, spki unused. */
  struct teex_ds_client_grant enclaves[TEEX_DS_GROUP_MAX_ENCLAVES];
  size_t n_enclaves;
  /* The SM whose signed grants (teex_ds_grant_verify) open a service's
   * namespace to an enclave whose role maps to TEEX_DS_NS_BY_GRANT. */
  int has_sm;
  uint8_t sm_address[20];
  /* Client labels allowed to change membership: "a,b" (empty: none). */
  char operators[256];
};

/* 1 if the certificate client `label` may change the membership. */
int teex_ds_group_is_operator(const struct teex_ds_group *g, const char *label);

/* An enclave role's namespace "*": none of its own, only SM grants. */
#define TEEX_DS_NS_BY_GRANT "*"

/* Parses text; TEEX_ECONFIG naming the bad line's key. */
int teex_ds_group_parse(struct teex_ds_group *g, const char *text, size_t len,
                        struct teex_err *err);
int teex_ds_group_load(struct teex_ds_group *g, const char *path,
                       struct teex_err *err);
/* Writes g as group.conf text to path (atomically). */
int teex_ds_group_save(const struct teex_ds_group *g, const char *path,
                       struct teex_err *err);
/* Parses "ID=PEER,CLIENT" into m. */
int teex_ds_member_parse(const char *s, struct teex_ds_member *m,
                         struct teex_err *err);
/* Parses "ROLE=NS" into c (an enclave grant). */
int teex_ds_enclave_parse(const char *s, struct teex_ds_client_grant *c,
                          struct teex_err *err);
/* Parses "LABEL=SPKIHEX:NS" into c. */
int teex_ds_client_parse(const char *s, struct teex_ds_client_grant *c,
                         struct teex_err *err);
const struct teex_ds_member *teex_ds_group_member(const struct teex_ds_group *g,
                                                  uint64_t id);

#endif
