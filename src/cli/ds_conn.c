/* Loading a TEE-DS client's group, policy and certificate (ds_conn.h). */
#include "cli/ds_conn.h"

#include "cli/cli.h"
#include "teex/ds_server.h"

#include <limits.h>

/* Bound on one replica's connect + RA-TLS handshake. The TLS default (10 s)
 * is as long as a whole operation: a replica cut off by the network (its
 * packets dropped, not refused) would then use up the operation's time
 * before the client tried the next replica. */
#define DS_HANDSHAKE_TIMEOUT_MS 2000u
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

int teex_cli_ds_conn_open(struct teex_cli_ds_conn *o) {
  /* Defaults: the group `teex up` made in the data directory. */
  static char dstate[PATH_MAX], dcert[PATH_MAX], dkey[PATH_MAX];
  char data_dir[PATH_MAX];
  teex_cli_data_dir(data_dir, sizeof data_dir);
  snprintf(dstate, sizeof dstate, "%s/ds/ds-1", data_dir);
  snprintf(dcert, sizeof dcert, "%s/ds/client/client.pem", data_dir);
  snprintf(dkey, sizeof dkey, "%s/ds/client/client.key", data_dir);
  /* Replicas and policy named explicitly need no state directory. */
  int need_state = o->n_addrs == 0 || o->policy == NULL;
  if (o->state == NULL)
    o->state = dstate;
  if (o->cert == NULL)
    o->cert = dcert;
  if (o->key == NULL)
    o->key = dkey;
  struct teex_err err;
  teex_err_clear(&err);
  char path[PATH_MAX];
  if (need_state || o->ns == NULL) {
    snprintf(path, sizeof path, "%s/%s", o->state, TEEX_DS_GROUP_FILE);
    if (teex_ds_group_load(&o->group, path, &err) != 0)
      return teex_cli_fail("%s%s", err.msg,
                           need_state ? ""
                                      : " (or give --ns with --replica and "
                                        "--policy)");
  }
  const char *pol = o->policy;
  if (pol == NULL) {
    snprintf(path, sizeof path, "%s/%s", o->state, TEEX_DS_POLICY_FILE);
    pol = path;
  }
  teex_tee_policy_init(&o->policy_loaded);
  if (teex_tee_policy_load(&o->policy_loaded, pol, &err) != 0)
    return teex_cli_fail("policy: %s", err.msg);
  FILE *f = fopen(o->key, "r");
  o->pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  f = fopen(o->cert, "r");
  o->x509 = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  if (o->pkey == NULL || o->x509 == NULL)
    return teex_cli_fail("cannot read the client key/certificate (%s, %s)",
                         o->key, o->cert);
  if (o->ns == NULL) {
    uint8_t spki[32];
    teex_tls_cert_spki_sha256(o->x509, spki);
    for (size_t i = 0; i < o->group.n_clients; i++)
      if (memcmp(o->group.clients[i].spki, spki, 32) == 0)
        o->ns = o->group.clients[i].ns;
    if (o->ns == NULL)
      return teex_cli_fail("this certificate is not in the group config: "
                           "give --ns");
  }
  o->verifier.policy = &o->policy_loaded;
  struct teex_tls_config tc = {.cert = o->x509,
                               .key = o->pkey,
                               .mutual = 1,
                               .handshake_timeout_ms = DS_HANDSHAKE_TIMEOUT_MS,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &o->verifier};
  if (teex_tls_ctx_new(&o->tls, &tc, 0, &err) != 0)
    return teex_cli_fail("tls: %s", err.msg);
  if (o->n_addrs == 0) {
    for (size_t i = 0;
         i < o->group.n_members && i < TEEX_DS_CLIENT_MAX_REPLICAS; i++)
      o->addrs[i] = o->group.members[i].client;
    o->n_addrs = o->group.n_members < TEEX_DS_CLIENT_MAX_REPLICAS
                     ? o->group.n_members
                     : TEEX_DS_CLIENT_MAX_REPLICAS;
  }
  return 0;
}

void teex_cli_ds_conn_free(struct teex_cli_ds_conn *o) {
  teex_tls_ctx_free(o->tls);
  EVP_PKEY_free(o->pkey);
  X509_free(o->x509);
  o->tls = NULL;
  o->pkey = NULL;
  o->x509 = NULL;
}
