/* JSON-RPC over HTTP with libcurl (keep-alive) and jansson. */
#include "teex/eth_rpc.h"

#include "teex/abi.h"
#include "teex/crypto.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct teex_eth_rpc {
  CURL *curl;
  struct curl_slist *headers;
  char url[TEEX_ETH_RPC_MAX_URL];
  long timeout_ms, connect_ms;
  size_t max_response;
  int retries;
  uint64_t next_id;
  struct teex_buf body;
  struct teex_eth_rpc_error last;
  const char *const *custom_errors;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_write(char *p, size_t size, size_t n, void *arg) {
  struct teex_buf *b = arg;
  size_t len = size * n;
  /* Returning less than len makes curl abort with CURLE_WRITE_ERROR. */
  return teex_buf_append(b, p, len) == 0 ? len : 0;
}

int teex_eth_rpc_open(const char *url, const struct teex_eth_rpc_opts *opts,
                      struct teex_eth_rpc **out, struct teex_err *err) {
  struct teex_eth_rpc *r;
  *out = NULL;
  if (!url ||
      (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
    return teex_err_set(err, TEEX_EINVAL,
                        "JSON-RPC endpoint must be an http(s) URL");
  if (strlen(url) >= TEEX_ETH_RPC_MAX_URL)
    return teex_err_set(err, TEEX_EINVAL, "JSON-RPC URL too long");
  pthread_once(&curl_once, curl_init_once);
  if (!(r = calloc(1, sizeof *r)))
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  snprintf(r->url, sizeof r->url, "%s", url);
  r->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 30000;
  r->connect_ms = opts && opts->connect_ms ? opts->connect_ms : 5000;
  r->max_response = opts && opts->max_response ? opts->max_response
                                               : TEEX_ETH_RPC_MAX_RESPONSE;
  r->retries = !opts || opts->retries == 0 ? 2
               : opts->retries < 0         ? 0
                                           : opts->retries;
  r->next_id = 1;
  teex_buf_init(&r->body, r->max_response, 0);
  r->curl = curl_easy_init();
  r->headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (!r->curl || !r->headers) {
    teex_eth_rpc_close(r);
    return teex_err_set(err, TEEX_ENOMEM, "JSON-RPC: curl init failed");
  }
  CURL *c = r->curl;
  curl_easy_setopt(c, CURLOPT_URL, r->url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
  *out = r;
  return 0;
}

void teex_eth_rpc_close(struct teex_eth_rpc *rpc) {
  if (!rpc)
    return;
  if (rpc->curl)
    curl_easy_cleanup(rpc->curl);
  curl_slist_free_all(rpc->headers);
  teex_buf_free(&rpc->body);
  free(rpc);
}

const char *teex_eth_rpc_url(const struct teex_eth_rpc *rpc) {
  return rpc->url;
}

const struct teex_eth_rpc_error *
teex_eth_rpc_last_error(const struct teex_eth_rpc *rpc) {
  return &rpc->last;
}

void teex_eth_rpc_set_custom_errors(struct teex_eth_rpc *rpc,
                                    const char *const *sigs) {
  rpc->custom_errors = sigs;
}

static void clean_text(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < cap; i++) {
    unsigned char ch = (unsigned char)src[i];
    dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
  }
  if (cap)
    dst[i] = 0;
}

int teex_eth_rpc_parse_response(const char *body, size_t len, uint64_t id,
                                json_t **result,
                                struct teex_eth_rpc_error *rerr,
                                struct teex_err *err) {
  json_error_t je;
  json_t *doc, *v, *res, *eobj;
  int rc;
  *result = NULL;
  if (rerr)
    memset(rerr, 0, sizeof *rerr);
  doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (!doc)
    return teex_err_set(err, TEEX_EPROTO, "JSON-RPC: response is not JSON (%s)",
                        je.text);
  if (!json_is_object(doc)) {
    rc = teex_err_set(err, TEEX_EPROTO, "JSON-RPC: response is not an object");
    goto done;
  }
  v = json_object_get(doc, "jsonrpc");
  if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
    rc = teex_err_set(err, TEEX_EPROTO, "JSON-RPC: response is not 2.0");
    goto done;
  }
  v = json_object_get(doc, "id");
  if (!json_is_integer(v) || (uint64_t)json_integer_value(v) != id) {
    rc = teex_err_set(err, TEEX_EPROTO,
                      "JSON-RPC: response id does not match the request");
    goto done;
  }
  res = json_object_get(doc, "result");
  eobj = json_object_get(doc, "error");
  if ((res != NULL) == (eobj != NULL)) {
    rc = teex_err_set(err, TEEX_EPROTO,
                      "JSON-RPC: response needs exactly one of result/error");
    goto done;
  }
  if (eobj) {
    json_t *code = json_object_get(eobj, "code");
    json_t *msg = json_object_get(eobj, "message");
    json_t *data = json_object_get(eobj, "data");
    char m[256];
    if (!json_is_object(eobj) || !json_is_integer(code) ||
        !json_is_string(msg)) {
      rc = teex_err_set(err, TEEX_EPROTO, "JSON-RPC: malformed error object");
      goto done;
    }
    clean_text(m, sizeof m, json_string_value(msg));
    if (rerr) {
      rerr->present = 1;
      rerr->code = json_integer_value(code);
      snprintf(rerr->message, sizeof rerr->message, "%s", m);
      if (json_is_string(data) &&
          teex_hex_decode(json_string_value(data), rerr->data,
                          sizeof rerr->data, &rerr->data_len) == 0 &&
          strncmp(json_string_value(data), "0x", 2) == 0)
        rerr->has_data = 1;
      else
        rerr->data_len = 0;
    }
    rc = teex_err_set(err, TEEX_EREMOTE, "node error %lld: %s",
                      (long long)json_integer_value(code), m);
    goto done;
  }
  *result = json_incref(res);
  rc = 0;
done:
  json_decref(doc);
  return rc;
}

static int retryable_curl(CURLcode cc) {
  return cc == CURLE_COULDNT_CONNECT || cc == CURLE_SEND_ERROR ||
         cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING ||
         cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_PARTIAL_FILE;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int teex_eth_rpc_call(struct teex_eth_rpc *rpc, const char *method,
                      json_t *params, int idempotent, json_t **result,
                      struct teex_err *err) {
  char *req = NULL;
  json_t *doc;
  uint64_t id = rpc->next_id++;
  int rc = 0;
  *result = NULL;
  memset(&rpc->last, 0, sizeof rpc->last);
  if (!params)
    params = json_array();
  doc = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)id,
                  "method", method, "params", params);
  if (!doc || !(req = json_dumps(doc, JSON_COMPACT))) {
    json_decref(doc);
    return teex_err_set(err, TEEX_ENOMEM, "JSON-RPC %s: out of memory", method);
  }
  json_decref(doc);
  curl_easy_setopt(rpc->curl, CURLOPT_POSTFIELDS, req);
  for (int attempt = 0;; attempt++) {
    long status = 0;
    CURLcode cc;
    teex_buf_reset(&rpc->body);
    cc = curl_easy_perform(rpc->curl);
    curl_easy_getinfo(rpc->curl, CURLINFO_RESPONSE_CODE, &status);
    int may_retry =
        attempt < rpc->retries && (idempotent || cc == CURLE_COULDNT_CONNECT);
    if (cc != CURLE_OK) {
      if (may_retry && retryable_curl(cc)) {
        sleep_ms(100L * (attempt + 1));
        continue;
      }
      if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED)
        rc = teex_err_set(err, TEEX_ETOOBIG,
                          "JSON-RPC %s at %s: response larger than %zu bytes",
                          method, rpc->url, rpc->max_response);
      else
        rc = teex_err_set(
            err, cc == CURLE_OPERATION_TIMEDOUT ? TEEX_ETIMEDOUT : TEEX_ECONN,
            "JSON-RPC %s at %s: %s", method, rpc->url, curl_easy_strerror(cc));
      break;
    }
    if ((status == 502 || status == 503 || status == 504) && may_retry) {
      sleep_ms(100L * (attempt + 1));
      continue;
    }
    rc =
        teex_eth_rpc_parse_response((const char *)rpc->body.data, rpc->body.len,
                                    id, result, &rpc->last, err);
    if (rc != 0 && rc != TEEX_EREMOTE && status != 200)
      rc = teex_err_set(err, TEEX_EPROTO, "HTTP status %ld", status);
    if (rc != 0)
      teex_err_wrap(err, 0, "JSON-RPC %s at %s", method, rpc->url);
    break;
  }
  curl_easy_setopt(rpc->curl, CURLOPT_POSTFIELDS, NULL);
  free(req);
  return rc;
}

/* ---- helpers for typed results ---- */

static int want_quantity(json_t *res, teex_u256 out, const char *what,
                         struct teex_err *err) {
  const char *s = json_string_value(res);
  int rc = s ? teex_u256_parse_quantity(s, out) : TEEX_EPROTO;
  if (rc != 0)
    return teex_err_set(err, TEEX_EPROTO, "%s: not a hex quantity", what);
  return 0;
}

static int want_u64(json_t *res, uint64_t *out, const char *what,
                    struct teex_err *err) {
  teex_u256 v;
  int rc = want_quantity(res, v, what, err);
  if (rc == 0 && teex_u256_to_u64(v, out) != 0)
    rc = teex_err_set(err, TEEX_EPROTO, "%s: quantity out of range", what);
  return rc;
}

static int want_fixed(json_t *j, uint8_t *out, size_t n) {
  const char *s = json_string_value(j);
  size_t got = 0;
  if (!s || strncmp(s, "0x", 2) != 0 || teex_hex_decode(s, out, n, &got) != 0 ||
      got != n)
    return TEEX_EPROTO;
  return 0;
}

static int want_data(json_t *j, struct teex_buf *out) {
  const char *s = json_string_value(j);
  size_t n, got = 0;
  int rc;
  if (!s || strncmp(s, "0x", 2) != 0)
    return TEEX_EPROTO;
  n = strlen(s + 2);
  if (n % 2)
    return TEEX_EPROTO;
  if ((rc = teex_buf_reserve(out, n / 2)) != 0)
    return rc;
  if (teex_hex_decode(s, out->data + out->len, n / 2, &got) != 0)
    return TEEX_EPROTO;
  out->len += got;
  return 0;
}

static const char *block_tag(const char *b) {
  return b ? b : "latest";
}

static json_t *addr_json(const uint8_t a[20]) {
  char hx[43];
  teex_eth_address_hex(a, hx);
  return json_string(hx);
}

static int simple(struct teex_eth_rpc *rpc, const char *method, json_t *params,
                  json_t **res, struct teex_err *err) {
  return teex_eth_rpc_call(rpc, method, params, 1, res, err);
}

int teex_eth_chain_id(struct teex_eth_rpc *rpc, uint64_t *out,
                      struct teex_err *err) {
  json_t *res;
  int rc = simple(rpc, "eth_chainId", json_array(), &res, err);
  if (rc == 0)
    rc = want_u64(res, out, "eth_chainId", err);
  json_decref(res);
  return rc;
}

int teex_eth_block_number(struct teex_eth_rpc *rpc, uint64_t *out,
                          struct teex_err *err) {
  json_t *res;
  int rc = simple(rpc, "eth_blockNumber", json_array(), &res, err);
  if (rc == 0)
    rc = want_u64(res, out, "eth_blockNumber", err);
  json_decref(res);
  return rc;
}

int teex_eth_get_balance(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                         const char *block, teex_u256 out,
                         struct teex_err *err) {
  json_t *res;
  int rc =
      simple(rpc, "eth_getBalance",
             json_pack("[o,s]", addr_json(addr), block_tag(block)), &res, err);
  if (rc == 0)
    rc = want_quantity(res, out, "eth_getBalance", err);
  json_decref(res);
  return rc;
}

int teex_eth_get_nonce(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                       const char *block, uint64_t *out, struct teex_err *err) {
  json_t *res;
  int rc =
      simple(rpc, "eth_getTransactionCount",
             json_pack("[o,s]", addr_json(addr), block_tag(block)), &res, err);
  if (rc == 0)
    rc = want_u64(res, out, "eth_getTransactionCount", err);
  json_decref(res);
  return rc;
}

int teex_eth_gas_price(struct teex_eth_rpc *rpc, teex_u256 out,
                       struct teex_err *err) {
  json_t *res;
  int rc = simple(rpc, "eth_gasPrice", json_array(), &res, err);
  if (rc == 0)
    rc = want_quantity(res, out, "eth_gasPrice", err);
  json_decref(res);
  return rc;
}

int teex_eth_max_priority_fee(struct teex_eth_rpc *rpc, teex_u256 out,
                              struct teex_err *err) {
  json_t *res;
  int rc = simple(rpc, "eth_maxPriorityFeePerGas", json_array(), &res, err);
  if (rc == 0)
    rc = want_quantity(res, out, "eth_maxPriorityFeePerGas", err);
  json_decref(res);
  return rc;
}

int teex_eth_get_block(struct teex_eth_rpc *rpc, const char *block,
                       struct teex_eth_block *out, struct teex_err *err) {
  json_t *res;
  int rc = simple(rpc, "eth_getBlockByNumber",
                  json_pack("[s,b]", block_tag(block), 0), &res, err);
  memset(out, 0, sizeof *out);
  if (rc != 0)
    return rc;
  if (json_is_null(res)) {
    rc = teex_err_set(err, TEEX_ENOTFOUND, "block %s not found",
                      block_tag(block));
  } else if (!json_is_object(res) ||
             want_fixed(json_object_get(res, "hash"), out->hash, 32) != 0) {
    rc = teex_err_set(err, TEEX_EPROTO, "eth_getBlockByNumber: bad block");
  } else if ((rc = want_u64(json_object_get(res, "number"), &out->number,
                            "block number", err)) == 0 &&
             (rc = want_u64(json_object_get(res, "timestamp"), &out->timestamp,
                            "block timestamp", err)) == 0 &&
             (rc = want_u64(json_object_get(res, "gasLimit"), &out->gas_limit,
                            "block gasLimit", err)) == 0 &&
             (rc = want_u64(json_object_get(res, "gasUsed"), &out->gas_used,
                            "block gasUsed", err)) == 0) {
    json_t *bf = json_object_get(res, "baseFeePerGas");
    if (bf && !json_is_null(bf)) {
      rc = want_quantity(bf, out->base_fee, "baseFeePerGas", err);
      out->has_base_fee = rc == 0;
    }
  }
  json_decref(res);
  return rc;
}

int teex_eth_base_fee(struct teex_eth_rpc *rpc, teex_u256 out,
                      struct teex_err *err) {
  struct teex_eth_block b;
  int rc = teex_eth_get_block(rpc, "latest", &b, err);
  if (rc != 0)
    return rc;
  if (!b.has_base_fee)
    return teex_err_set(err, TEEX_EUNSUPPORTED,
                        "chain has no base fee (pre-London)");
  memcpy(out, b.base_fee, 32);
  return 0;
}

int teex_eth_get_code(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                      const char *block, struct teex_buf *out,
                      struct teex_err *err) {
  json_t *res;
  int rc =
      simple(rpc, "eth_getCode",
             json_pack("[o,s]", addr_json(addr), block_tag(block)), &res, err);
  if (rc == 0 && (rc = want_data(res, out)) != 0)
    teex_err_set(err, rc, "eth_getCode: malformed code");
  json_decref(res);
  return rc;
}

static json_t *call_json(const struct teex_eth_call_req *c) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  if (c->from)
    json_object_set_new(o, "from", addr_json(c->from));
  if (c->to)
    json_object_set_new(o, "to", addr_json(c->to));
  if (c->value) {
    char q[67];
    teex_u256_format_hex(c->value, q);
    json_object_set_new(o, "value", json_string(q));
  }
  if (c->gas) {
    char q[67];
    teex_u256 g;
    teex_u256_from_u64(g, c->gas);
    teex_u256_format_hex(g, q);
    json_object_set_new(o, "gas", json_string(q));
  }
  if (c->data_len) {
    char *hx = malloc(2 * c->data_len + 3);
    if (!hx) {
      json_decref(o);
      return NULL;
    }
    hx[0] = '0';
    hx[1] = 'x';
    teex_hex_encode(c->data, c->data_len, hx + 2);
    json_object_set_new(o, "input", json_string(hx));
    free(hx);
  }
  return o;
}

/* Turns a node error on a call into a revert description when it carries
 * revert data (or says it reverted). */
static int revert_error(struct teex_eth_rpc *rpc, int rc,
                        struct teex_err *err) {
  const struct teex_eth_rpc_error *e = &rpc->last;
  if (rc != TEEX_EREMOTE || !e->present)
    return rc;
  if (e->has_data || strstr(e->message, "revert")) {
    char why[600];
    teex_abi_revert_describe(e->data, e->has_data ? e->data_len : 0,
                             rpc->custom_errors, why, sizeof why);
    if (!e->has_data && strstr(e->message, "reverted:"))
      snprintf(why, sizeof why, "%s", e->message);
    return teex_err_set(err, TEEX_ECHAIN, "execution reverted: %s", why);
  }
  return rc;
}

int teex_eth_call(struct teex_eth_rpc *rpc, const struct teex_eth_call_req *c,
                  const char *block, struct teex_buf *out,
                  struct teex_err *err) {
  json_t *res, *cj = call_json(c);
  int rc;
  if (!cj)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  rc = simple(rpc, "eth_call", json_pack("[o,s]", cj, block_tag(block)), &res,
              err);
  if (rc != 0)
    rc = revert_error(rpc, rc, err);
  else if ((rc = want_data(res, out)) != 0)
    teex_err_set(err, rc, "eth_call: malformed return data");
  json_decref(res);
  return rc;
}

int teex_eth_call_fn(struct teex_eth_rpc *rpc, const uint8_t *from,
                     const uint8_t to[20], const char *sig,
                     const struct teex_abi_value *args, const char *returns,
                     const char *block, struct teex_abi_value *out,
                     struct teex_err *err) {
  struct teex_buf cd, ret;
  struct teex_abi_type *rt = NULL;
  int rc;
  memset(out, 0, sizeof *out);
  if ((rc = teex_abi_type_parse(returns, &rt, err)) != 0)
    return teex_err_wrap(err, rc, "call %s", sig);
  teex_buf_init(&cd, TEEX_ETH_RPC_MAX_RESPONSE, 0);
  teex_buf_init(&ret, rpc->max_response, 0);
  if ((rc = teex_abi_encode_call(sig, args, &cd, err)) == 0) {
    struct teex_eth_call_req c = {from, to, NULL, cd.data, cd.len, 0};
    rc = teex_eth_call(rpc, &c, block, &ret, err);
  }
  if (rc == 0 && (rc = teex_abi_decode(rt, ret.data, ret.len, out, err)) != 0)
    teex_err_wrap(err, rc, "return data");
  if (rc != 0)
    teex_err_wrap(err, 0, "call %s", sig);
  teex_buf_free(&cd);
  teex_buf_free(&ret);
  teex_abi_type_free(rt);
  return rc;
}

int teex_eth_estimate_gas(struct teex_eth_rpc *rpc,
                          const struct teex_eth_call_req *c, uint64_t *out,
                          struct teex_err *err) {
  json_t *res, *cj = call_json(c);
  int rc;
  if (!cj)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  rc = simple(rpc, "eth_estimateGas", json_pack("[o]", cj), &res, err);
  if (rc != 0)
    rc = revert_error(rpc, rc, err);
  else
    rc = want_u64(res, out, "eth_estimateGas", err);
  json_decref(res);
  return rc;
}

int teex_eth_send_raw(struct teex_eth_rpc *rpc, const uint8_t *raw, size_t len,
                      uint8_t hash[32], struct teex_err *err) {
  char *hx;
  json_t *res = NULL;
  uint8_t got[32];
  int rc;
  teex_keccak256(raw, len, hash);
  if (!(hx = malloc(2 * len + 3)))
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  hx[0] = '0';
  hx[1] = 'x';
  teex_hex_encode(raw, len, hx + 2);
  /* Idempotent: the same signed bytes can only ever be included once. */
  rc = teex_eth_rpc_call(rpc, "eth_sendRawTransaction", json_pack("[s]", hx), 1,
                         &res, err);
  free(hx);
  if (rc == TEEX_EREMOTE && (strstr(rpc->last.message, "already known") ||
                             strstr(rpc->last.message, "known transaction") ||
                             strstr(rpc->last.message, "already imported"))) {
    teex_err_clear(err);
    return 0;
  }
  if (rc == 0) {
    if (want_fixed(res, got, 32) != 0 || memcmp(got, hash, 32) != 0)
      rc = teex_err_set(err, TEEX_EPROTO,
                        "eth_sendRawTransaction: node returned a different "
                        "transaction hash");
  }
  json_decref(res);
  return rc;
}

int teex_eth_tx_known(struct teex_eth_rpc *rpc, const uint8_t hash[32],
                      int *known, struct teex_err *err) {
  char hx[67] = "0x";
  json_t *res;
  teex_hex_encode(hash, 32, hx + 2);
  int rc =
      simple(rpc, "eth_getTransactionByHash", json_pack("[s]", hx), &res, err);
  if (rc == 0)
    *known = json_is_object(res);
  json_decref(res);
  return rc;
}

int teex_eth_log_parse(json_t *j, struct teex_eth_log *log,
                       struct teex_err *err) {
  json_t *topics = json_object_get(j, "topics"), *t;
  struct teex_buf data;
  size_t i;
  memset(log, 0, sizeof *log);
  if (!json_is_object(j) || !json_is_array(topics) ||
      json_array_size(topics) > 4 ||
      want_fixed(json_object_get(j, "address"), log->address, 20))
    return teex_err_set(err, TEEX_EPROTO, "malformed log");
  json_array_foreach(topics, i, t) {
    if (want_fixed(t, log->topics[i], 32))
      return teex_err_set(err, TEEX_EPROTO, "malformed log topic");
  }
  log->n_topics = json_array_size(topics);
  /* Pending logs have null block numbers and hashes: treat as absent. */
  if (json_is_string(json_object_get(j, "blockNumber")) &&
      want_u64(json_object_get(j, "blockNumber"), &log->block_number,
               "log blockNumber", err))
    return TEEX_EPROTO;
  if (json_is_string(json_object_get(j, "logIndex")) &&
      want_u64(json_object_get(j, "logIndex"), &log->log_index, "log logIndex",
               err))
    return TEEX_EPROTO;
  if (json_is_string(json_object_get(j, "transactionHash")) &&
      want_fixed(json_object_get(j, "transactionHash"), log->tx_hash, 32))
    return teex_err_set(err, TEEX_EPROTO, "malformed log transactionHash");
  teex_buf_init(&data, TEEX_ETH_RPC_MAX_RESPONSE, 0);
  if (want_data(json_object_get(j, "data"), &data) != 0) {
    teex_buf_free(&data);
    return teex_err_set(err, TEEX_EPROTO, "malformed log data");
  }
  log->data_len = data.len;
  log->data = teex_buf_steal(&data, &log->data_len);
  return 0;
}

void teex_eth_logs_free(struct teex_eth_log *logs, size_t n) {
  for (size_t i = 0; logs && i < n; i++)
    free(logs[i].data);
  free(logs);
}

static int parse_logs(json_t *arr, struct teex_eth_log **logs, size_t *n,
                      struct teex_err *err) {
  size_t i, cnt;
  json_t *j;
  *logs = NULL;
  *n = 0;
  if (!json_is_array(arr))
    return teex_err_set(err, TEEX_EPROTO, "logs are not an array");
  cnt = json_array_size(arr);
  if (cnt > TEEX_ETH_MAX_LOGS)
    return teex_err_set(err, TEEX_ETOOBIG, "too many logs (%zu)", cnt);
  if (cnt == 0)
    return 0;
  if (!(*logs = calloc(cnt, sizeof **logs)))
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  json_array_foreach(arr, i, j) {
    int rc = teex_eth_log_parse(j, &(*logs)[i], err);
    if (rc != 0) {
      teex_eth_logs_free(*logs, i + 1);
      *logs = NULL;
      return rc;
    }
  }
  *n = cnt;
  return 0;
}

void teex_eth_receipt_fee(const struct teex_eth_receipt *r, teex_u256 out) {
  if (teex_u256_mul_u64(out, r->effective_gas_price, r->gas_used) != 0)
    memset(out, 0xff, 32); /* cannot happen with real gas prices */
}

void teex_eth_receipt_clear(struct teex_eth_receipt *r) {
  if (!r)
    return;
  teex_eth_logs_free(r->logs, r->n_logs);
  memset(r, 0, sizeof *r);
}

int teex_eth_receipt_parse(json_t *j, struct teex_eth_receipt *r,
                           struct teex_err *err) {
  uint64_t status = 0;
  json_t *ca;
  int rc;
  memset(r, 0, sizeof *r);
  if (!json_is_object(j))
    return teex_err_set(err, TEEX_EPROTO, "receipt is not an object");
  if (want_fixed(json_object_get(j, "transactionHash"), r->tx_hash, 32) ||
      want_fixed(json_object_get(j, "blockHash"), r->block_hash, 32) ||
      want_fixed(json_object_get(j, "from"), r->from, 20))
    return teex_err_set(err, TEEX_EPROTO, "malformed receipt");
  if ((rc = want_u64(json_object_get(j, "status"), &status, "receipt status",
                     err)) != 0 ||
      (rc = want_u64(json_object_get(j, "blockNumber"), &r->block_number,
                     "receipt blockNumber", err)) != 0 ||
      (rc = want_u64(json_object_get(j, "gasUsed"), &r->gas_used,
                     "receipt gasUsed", err)) != 0)
    return rc;
  if (status > 1)
    return teex_err_set(err, TEEX_EPROTO, "receipt status %llu",
                        (unsigned long long)status);
  r->status = (int)status;
  if (json_object_get(j, "effectiveGasPrice") &&
      (rc = want_quantity(json_object_get(j, "effectiveGasPrice"),
                          r->effective_gas_price, "effectiveGasPrice", err)))
    return rc;
  ca = json_object_get(j, "contractAddress");
  if (json_is_string(ca)) {
    if (want_fixed(ca, r->contract_address, 20))
      return teex_err_set(err, TEEX_EPROTO, "malformed contractAddress");
    r->has_contract = 1;
  }
  if ((rc = parse_logs(json_object_get(j, "logs"), &r->logs, &r->n_logs,
                       err)) != 0) {
    memset(r, 0, sizeof *r);
    return rc;
  }
  return 0;
}

int teex_eth_get_receipt(struct teex_eth_rpc *rpc, const uint8_t hash[32],
                         struct teex_eth_receipt *r, struct teex_err *err) {
  char hx[67] = "0x";
  json_t *res;
  memset(r, 0, sizeof *r);
  teex_hex_encode(hash, 32, hx + 2);
  int rc =
      simple(rpc, "eth_getTransactionReceipt", json_pack("[s]", hx), &res, err);
  if (rc == 0) {
    if (json_is_null(res))
      rc = teex_err_set(err, TEEX_ENOTFOUND, "no receipt yet for %s", hx);
    else if ((rc = teex_eth_receipt_parse(res, r, err)) == 0 &&
             memcmp(r->tx_hash, hash, 32) != 0) {
      teex_eth_receipt_clear(r);
      rc = teex_err_set(err, TEEX_EPROTO, "receipt for another transaction");
    }
  }
  json_decref(res);
  return rc;
}

int teex_eth_get_logs(struct teex_eth_rpc *rpc,
                      const struct teex_eth_log_filter *f,
                      struct teex_eth_log **logs, size_t *n,
                      struct teex_err *err) {
  json_t *flt = json_object(), *res = NULL;
  char q[67];
  teex_u256 b;
  int rc;
  *logs = NULL;
  *n = 0;
  if (!flt)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  teex_u256_from_u64(b, f->from_block);
  teex_u256_format_hex(b, q);
  json_object_set_new(flt, "fromBlock", json_string(q));
  if (f->to_block == UINT64_MAX) {
    json_object_set_new(flt, "toBlock", json_string("latest"));
  } else {
    teex_u256_from_u64(b, f->to_block);
    teex_u256_format_hex(b, q);
    json_object_set_new(flt, "toBlock", json_string(q));
  }
  if (f->has_address)
    json_object_set_new(flt, "address", addr_json(f->address));
  if (f->topic_mask & 15u) {
    json_t *ts = json_array();
    int last = 3;
    while (!(f->topic_mask & (1u << last)))
      last--;
    for (int i = 0; ts && i <= last; i++) {
      char t[67] = "0x";
      teex_hex_encode(f->topics[i], 32, t + 2);
      json_array_append_new(ts, (f->topic_mask & (1u << i)) ? json_string(t)
                                                            : json_null());
    }
    json_object_set_new(flt, "topics", ts);
  }
  rc = simple(rpc, "eth_getLogs", json_pack("[o]", flt), &res, err);
  if (rc == 0)
    rc = parse_logs(res, logs, n, err);
  json_decref(res);
  return rc;
}
