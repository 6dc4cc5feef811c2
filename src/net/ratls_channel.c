/* RA-TLS verification for TLS channels (include/teex/ratls_channel.h). */
#include "teex/ratls_channel.h"

#include "teex/ratls.h"

#include <stdlib.h>

/* Marks identities we attached, so teex_ratls_channel_peer never
 * misreads another verifier's peer info. */
struct peer_identity {
  uint32_t magic;
  struct teex_tee_identity id;
};
#define PEER_IDENTITY_MAGIC 0x52415453u /* "RATS" */

int teex_ratls_channel_verify(void *verifier, struct teex_tls_conn *c,
                              X509 *peer, struct teex_err *err) {
  const struct teex_ratls_verifier *v = verifier;
  if (v == NULL || v->policy == NULL)
    return teex_err_set(err, TEEX_EINVAL, "RA-TLS: no policy");
  struct peer_identity *pi = calloc(1, sizeof *pi);
  if (pi == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "RA-TLS: out of memory");
  int r = teex_ratls_verify_cert(peer, v->policy, NULL, &pi->id, err);
  if (r != 0) {
    free(pi);
    return teex_err_wrap(err, 0, "RA-TLS peer");
  }
  pi->magic = PEER_IDENTITY_MAGIC;
  teex_tls_set_peer_info(c, pi, free);
  return 0;
}

const struct teex_tee_identity *
teex_ratls_channel_peer(const struct teex_tls_conn *c) {
  const struct peer_identity *pi = teex_tls_peer_info(c);
  if (pi == NULL || pi->magic != PEER_IDENTITY_MAGIC)
    return NULL;
  return &pi->id;
}
