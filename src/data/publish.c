/* Publishing a dataset (include/teex/data.h). */
#include "teex/data.h"

#include "teex/buf.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PUBLISH_TIMEOUT_MS 60000

/* Reads the whole file (wiped by the caller before it is freed: it is the
 * provider's secret). Not locked memory: a dataset may be larger than the
 * memory-lock limit. */
static int read_secret_file(const char *path, uint8_t **out, size_t *len,
                            struct teex_err *err) {
  struct stat st;
  FILE *f = fopen(path, "rb");
  int rc = 0;
  *out = NULL;
  *len = 0;
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "%s: %s", path, strerror(errno));
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = teex_err_set(err, TEEX_EINVAL, "%s: not a regular file", path);
    goto out;
  }
  if ((uint64_t)st.st_size > TEEX_DATA_MAX) {
    rc = teex_err_set(err, TEEX_ETOOBIG,
                      "%s: %lld bytes, more than the %u a "
                      "dataset may have",
                      path, (long long)st.st_size, TEEX_DATA_MAX);
    goto out;
  }
  *len = (size_t)st.st_size;
  *out = malloc(*len ? *len : 1);
  if (*out == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "%s: %zu bytes", path, *len);
    goto out;
  }
  if (*len && fread(*out, 1, *len, f) != *len) {
    rc = teex_err_set(err, TEEX_EIO, "%s: short read", path);
    free(*out);
    *out = NULL;
  }
out:
  fclose(f);
  return rc;
}

static int sm_info(struct teex_rpc_sync *c, struct teex_data_published *out,
                   struct teex_err *err) {
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  int rc =
      teex_rpc_sync_call(c, "sm.Info", NULL, 0, PUBLISH_TIMEOUT_MS, &resp, err);
  if (rc == 0) {
    Teex__Sm__InfoResponse *info =
        teex__sm__info_response__unpack(NULL, resp.len, resp.data);
    if (info == NULL || info->address.len != 20 ||
        (info->dataset_registry.len != 0 && info->dataset_registry.len != 20)) {
      rc = teex_err_set(err, TEEX_EPROTO, "malformed sm.Info answer");
    } else {
      memcpy(out->sm_address, info->address.data, 20);
      out->chain_id = info->chain_id;
      if (info->dataset_registry.len == 20)
        memcpy(out->dataset_registry, info->dataset_registry.data, 20);
    }
    if (info != NULL)
      teex__sm__info_response__free_unpacked(info, NULL);
  }
  teex_buf_free(&resp);
  return rc;
}

static int escrow(struct teex_rpc_sync *c, const struct teex_sm_escrow *e,
                  struct teex_err *err) {
  Teex__Sm__EscrowDataKeyRequest m = TEEX__SM__ESCROW_DATA_KEY_REQUEST__INIT;
  struct teex_buf resp;
  uint8_t *wire;
  size_t wire_len;
  int rc;
  m.dataset_id = (ProtobufCBinaryData){32, (uint8_t *)e->dataset_id};
  m.name = (char *)e->name;
  m.provider = (ProtobufCBinaryData){20, (uint8_t *)e->provider};
  m.plaintext_hash = (ProtobufCBinaryData){32, (uint8_t *)e->plaintext_hash};
  m.plaintext_size = e->plaintext_size;
  m.ciphertext_cid = (char *)e->cid;
  m.data_key = (ProtobufCBinaryData){32, (uint8_t *)e->data_key};
  m.ciphertext =
      (ProtobufCBinaryData){e->ciphertext_len, (uint8_t *)e->ciphertext};
  m.provider_sig = (ProtobufCBinaryData){65, (uint8_t *)e->provider_sig};
  wire_len = teex__sm__escrow_data_key_request__get_packed_size(&m);
  wire = malloc(wire_len);
  if (wire == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  teex__sm__escrow_data_key_request__pack(&m, wire);
  teex_buf_init(&resp, 4096, 0);
  rc = teex_rpc_sync_call(c, "sm.EscrowDataKey", wire, wire_len,
                          PUBLISH_TIMEOUT_MS, &resp, err);
  if (rc == 0) {
    Teex__Sm__EscrowDataKeyResponse *r =
        teex__sm__escrow_data_key_response__unpack(NULL, resp.len, resp.data);
    if (r == NULL || r->dataset_id.len != 32 ||
        memcmp(r->dataset_id.data, e->dataset_id, 32) != 0)
      rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
    if (r != NULL)
      teex__sm__escrow_data_key_response__free_unpacked(r, NULL);
  }
  teex_wipe(wire, wire_len); /* it held the data key */
  free(wire);
  teex_buf_free(&resp);
  return rc;
}

int teex_data_publish(const struct teex_data_publish_req *req,
                      struct teex_data_published *out, struct teex_err *err) {
  uint8_t *pt = NULL, *ct = NULL, pub[64];
  size_t pt_len = 0, ct_len = 0;
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  struct teex_sm_escrow *e = teex_secret_alloc(sizeof *e);
  int rc;
  memset(out, 0, sizeof *out);
  if (e == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  memset(e, 0, sizeof *e);
  size_t nl = req->name ? strnlen(req->name, TEEX_DATA_NAME_MAX + 1) : 0;
  if (nl == 0 || nl > TEEX_DATA_NAME_MAX) {
    rc = teex_err_set(err, TEEX_EINVAL, "a dataset name has 1 to %d bytes",
                      TEEX_DATA_NAME_MAX);
    goto out;
  }
  if ((rc = teex_secp256k1_public(req->provider_sk, pub)) != 0) {
    teex_err_set(err, rc, "provider key invalid");
    goto out;
  }
  teex_eth_address(pub, out->provider);
  snprintf(out->name, sizeof out->name, "%s", req->name);
  teex_dataset_id(out->provider, out->name, out->dataset_id);

  if ((rc = read_secret_file(req->file, &pt, &pt_len, err)) != 0) {
    teex_err_wrap(err, rc, "read");
    goto out;
  }
  teex_sha256(pt, pt_len, out->plaintext_hash);
  out->plaintext_size = pt_len;
  teex_random(e->data_key, 32);
  rc = teex_image_encrypt(e->data_key, pt, pt_len, &ct, &ct_len, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "encrypt");
    goto out;
  }
  struct teex_cid cid;
  rc = teex_ipfs_add_buffer(req->ipfs, ct, ct_len, &cid, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "ipfs");
    goto out;
  }
  teex_cid_to_string(&cid, out->cid);

  struct teex_ratls_verifier verifier = {.policy = req->sm_policy};
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &verifier};
  if ((rc = teex_tls_ctx_new(&ctx, &tc, 0, err)) != 0 ||
      (rc = teex_rpc_sync_connect(req->sm_addr, ctx, PUBLISH_TIMEOUT_MS, &c,
                                  err)) != 0) {
    teex_err_wrap(err, rc, "connect SM");
    goto out;
  }
  if ((rc = sm_info(c, out, err)) != 0) {
    teex_err_wrap(err, rc, "SM info");
    goto out;
  }
  memcpy(e->dataset_id, out->dataset_id, 32);
  snprintf(e->name, sizeof e->name, "%s", out->name);
  memcpy(e->provider, out->provider, 20);
  memcpy(e->plaintext_hash, out->plaintext_hash, 32);
  e->plaintext_size = out->plaintext_size;
  snprintf(e->cid, sizeof e->cid, "%s", out->cid);
  e->ciphertext = ct;
  e->ciphertext_len = ct_len;
  uint8_t digest[32];
  teex_sm_escrow_digest(e, out->chain_id, out->sm_address, digest);
  if ((rc = teex_stmt_sign(req->provider_sk, digest, e->provider_sig)) != 0)
    goto out;
  rc = escrow(c, e, err);
  if (rc != 0)
    teex_err_wrap(err, rc, "SM refused");
out:
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  if (ct != NULL)
    teex_image_bytes_free(ct, ct_len);
  if (pt != NULL) {
    teex_wipe(pt, pt_len);
    free(pt);
  }
  teex_wipe(e, sizeof *e);
  teex_secret_free(e);
  return rc;
}

int teex_data_list_on_chain(const struct teex_data_published *p,
                            const uint8_t provider_sk[32],
                            const char *chain_conf,
                            const struct teex_data_terms *t,
                            struct teex_err *err) {
  struct teex_config c;
  struct teex_chain_addrs addrs;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *sender = NULL;
  struct teex_chain_dataset d;
  static const uint8_t zero[20];
  memset(&d, 0, sizeof d);
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, &addrs, err);
  if (rc != 0)
    goto out;
  if (addrs.chain_id != p->chain_id ||
      (memcmp(p->dataset_registry, zero, 20) != 0 &&
       memcmp(p->dataset_registry, addrs.dataset_registry, 20) != 0)) {
    rc = teex_err_set(err, TEEX_ECONFIG,
                      "the SM serves another chain or dataset registry than "
                      "%s",
                      chain_conf);
    goto out;
  }
  snprintf(d.name, sizeof d.name, "%s", p->name);
  snprintf(d.ciphertext_cid, sizeof d.ciphertext_cid, "%s", p->cid);
  memcpy(d.plaintext_hash, p->plaintext_hash, 32);
  d.plaintext_size = p->plaintext_size;
  d.price = t->price;
  d.expires_at = t->expires_at;
  d.max_uses = t->max_uses;
  d.max_output_bytes = t->max_output_bytes;
  const char *url = teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
  if ((rc = teex_eth_rpc_open(url, NULL, &rpc, err)) != 0 ||
      (rc = teex_eth_sender_new(rpc, provider_sk, NULL, &sender, err)) != 0)
    goto out;
  teex_chain_use_errors(rpc);
  rc = teex_chain_list_dataset(sender, &addrs, &d, 0, err);
  if (rc == 0 && memcmp(d.dataset_id, p->dataset_id, 32) != 0)
    rc = teex_err_set(err, TEEX_EINTERNAL, "dataset id differs on chain");
  if (rc == 0 && t->n_allow > 0)
    rc = teex_chain_approve_dataset(sender, &addrs, p->dataset_id, t->allow,
                                    t->n_allow, 1, 0, err);
out:
  if (rc != 0)
    teex_err_wrap(err, rc, "list on chain");
  teex_eth_sender_free(sender);
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  return rc;
}

int teex_data_parse_allow(const char *s, struct teex_chain_approval *out,
                          struct teex_err *err) {
  const char *at = strchr(s, '@');
  char svc[80], img[80];
  size_t n;
  if (at == NULL || (size_t)(at - s) >= sizeof svc ||
      strlen(at + 1) >= sizeof img)
    return teex_err_set(err, TEEX_EINVAL,
                        "--allow %.80s: expected SERVICE_ID@IMAGE_HASH", s);
  memcpy(svc, s, (size_t)(at - s));
  svc[at - s] = 0;
  snprintf(img, sizeof img, "%s", at + 1);
  const char *sv = strncmp(svc, "0x", 2) == 0 ? svc + 2 : svc;
  const char *im = strncmp(img, "0x", 2) == 0 ? img + 2 : img;
  if (strlen(sv) != 64 || teex_hex_decode(sv, out->service_id, 32, &n) != 0 ||
      n != 32 || strlen(im) != 64 ||
      teex_hex_decode(im, out->image_hash, 32, &n) != 0 || n != 32)
    return teex_err_set(err, TEEX_EINVAL,
                        "--allow %.80s: service id and image hash are 32-byte "
                        "hex words",
                        s);
  return 0;
}
