/* What a TEE-DS client command needs to reach a replica group: the group's
 * replica addresses, the evidence policy they must satisfy, the client
 * certificate and the namespace; shared by `teex ds get|set|...|status`
 * (cmd_ds.c) and `teex ds proxy` (cmd_ds_proxy.c). */
#ifndef TEEX_CLI_DS_CONN_H
#define TEEX_CLI_DS_CONN_H

#include "ds/group.h"
#include "teex/ds_client.h"
#include "teex/ratls_channel.h"
#include "teex/tee_policy.h"
#include "teex/tls.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

struct teex_cli_ds_conn {
  /* in (NULL/0: the defaults of the local network, DATA_DIR/ds/...) */
  const char *state;  /* a replica's state dir: group.conf, policy.conf */
  const char *cert;   /* client certificate (PEM) */
  const char *key;    /* its key (PEM) */
  const char *ns;     /* NULL: the namespace group.conf grants the cert */
  const char *policy; /* evidence policy file; NULL: STATE/policy.conf */
  /* replica client addresses; none: the members of STATE/group.conf */
  const char *addrs[TEEX_DS_CLIENT_MAX_REPLICAS];
  size_t n_addrs;
  /* out */
  struct teex_ds_group group;
  struct teex_tee_policy policy_loaded;
  struct teex_ratls_verifier verifier;
  EVP_PKEY *pkey;
  X509 *x509;
  struct teex_tls_ctx *tls;
};

/* Fills the defaults, loads the group, policy, key and certificate and
 * makes the mutual RA-TLS client context. 0, or prints the reason and
 * returns an exit status. teex_cli_ds_conn_free either way. */
int teex_cli_ds_conn_open(struct teex_cli_ds_conn *o);
void teex_cli_ds_conn_free(struct teex_cli_ds_conn *o);

#endif
