/* Internal: the TEE-DS client RPC payloads (proto/ds.proto) — requests
 * carrying an encoded command, and results carrying every field of struct
 * teex_ds_result. Shared by the replica daemon (src/ds/server.c) and the
 * client library (src/ds/client.c); both decoders are fuzzed
 * (fuzz/fuzz_ds_wire.c). */
#ifndef TEEX_DS_WIRE_H
#define TEEX_DS_WIRE_H

#include "teex/ds.h"

#include <stddef.h>
#include <stdint.h>

/* The largest ds.Exec request / response payload: a full command or a full
 * scan page plus framing. The RPC layer refuses larger messages. */
#define TEEX_DS_WIRE_MAX                                                       \
  (TEEX_DS_CMD_MAX + TEEX_DS_SCAN_MAX * (16 + TEEX_DS_KEY_MAX) + 4096)

#define TEEX_DS_METHOD_EXEC "ds.Exec"
#define TEEX_DS_METHOD_STATUS "ds.Status"

/* A decoded ds.Exec request: the command (pointers into `owned`), the
 * namespace asked for and the read mode. */
struct teex_ds_wire_request {
  struct teex_ds_cmd_view view;
  char ns[TEEX_DS_NS_MAX + 1];
  uint32_t read_mode;
  const uint8_t *grant; /* an SM grant (into owned), or NULL */
  size_t grant_len;
  void *owned; /* the unpacked message; teex_ds_wire_request_free */
};

/* Encodes a request (malloc'd *out; the caller frees). cmd->grant is
 * replaced by ns in the encoded command. TEEX_EINVAL/ETOOBIG/ENOMEM. */
int teex_ds_wire_request_encode(const struct teex_ds_cmd *cmd, const char *ns,
                                uint32_t read_mode, uint8_t **out,
                                size_t *out_len, struct teex_err *err);

/* The same with an SM grant (at most TEEX_DS_GRANT_MAX bytes; NULL: none)
 * sent beside the command. */
int teex_ds_wire_request_encode_granted(const struct teex_ds_cmd *cmd,
                                        const char *ns, const uint8_t *grant,
                                        size_t grant_len, uint32_t read_mode,
                                        uint8_t **out, size_t *out_len,
                                        struct teex_err *err);

/* Decodes and validates a request: TEEX_EFORMAT (not a message, bad
 * namespace, unknown read mode) or the command decoder's errors. On success
 * release with teex_ds_wire_request_free. */
int teex_ds_wire_request_decode(const uint8_t *p, size_t len,
                                struct teex_ds_wire_request *req,
                                struct teex_err *err);
void teex_ds_wire_request_free(struct teex_ds_wire_request *req);

/* Encodes an ExecResponse: res (may be NULL) or a not-leader redirect. */
int teex_ds_wire_response_encode(const struct teex_ds_result *res,
                                 int not_leader, uint64_t leader_id,
                                 const char *leader_addr, uint8_t **out,
                                 size_t *out_len, struct teex_err *err);

/* A decoded ExecResponse. res is filled only when has_result (its buffers
 * are malloc'd: teex_ds_result_free). */
struct teex_ds_wire_response {
  int has_result;
  struct teex_ds_result res;
  int not_leader;
  uint64_t leader_id;
  char leader_addr[128];
};

/* Decodes and validates a response against the limits of ds.h (value and
 * key sizes, items per page, status codes). TEEX_EFORMAT / TEEX_ETOOBIG. */
int teex_ds_wire_response_decode(const uint8_t *p, size_t len,
                                 struct teex_ds_wire_response *r,
                                 struct teex_err *err);

#endif
