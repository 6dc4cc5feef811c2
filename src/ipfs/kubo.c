/* The Kubo RPC API backend (go-ipfs, and js-ipfs which serves the same API):
 * libcurl for HTTP, jansson for the JSON answers. Every call is a POST to
 * <api>/api/v0/<command>; every answer is bounded in size. Nothing the node
 * says is trusted: add recomputes the CID locally from the bytes it uploads
 * and refuses a different answer, and blocks come one by one from block/get
 * so the generic walker verifies each against its CID. */
#include "ipfs/ipfs_internal.h"

#include "teex/config.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KUBO_MAX_JSON (64u * 1024u) /* a JSON answer (add, pin, errors) */
#define KUBO_URL_MAX 2048
#define KUBO_CONNECT_TIMEOUT_S 10L
/* An answer with no byte for this long fails. */
#define KUBO_STALL_S 60L
/* block/get: the node's own time limit for finding a block. */
#define KUBO_BLOCK_TIMEOUT_S 60
/* block/stat for has: how long "not here" may take. */
#define KUBO_HAS_TIMEOUT_S 2

struct kubo {
  struct teex_ipfs_backend base;
  char api[KUBO_URL_MAX];
  CURL *curl; /* reused across calls: keep-alive */
};

struct upload {
  teex_ipfs_read_fn read;
  void *read_ctx;
  struct teex_ipfs_builder *builder;
  struct teex_err *err;
  int rc; /* the first failure inside the callback */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx) {
  struct teex_buf *b = ctx;
  size_t n = size * nmemb;
  if (teex_buf_append(b, p, n) != 0)
    return 0; /* over the bound: curl aborts with CURLE_WRITE_ERROR */
  return n;
}

/* Feeds curl the file, and the same bytes to the local DAG builder. */
static size_t on_upload(char *p, size_t size, size_t nitems, void *ctx) {
  struct upload *u = ctx;
  size_t got = 0;
  int rc = u->read(u->read_ctx, (uint8_t *)p, size * nitems, &got);
  if (rc == 0 && got > 0)
    rc = teex_ipfs_builder_update(u->builder, p, got, u->err);
  if (rc != 0) {
    if (u->rc == 0)
      u->rc = rc;
    return CURL_READFUNC_ABORT;
  }
  return got;
}

/* Copies at most 200 printable characters of m into out. */
static void sanitize(const char *m, char *out, size_t size) {
  size_t i = 0;
  for (; m[i] != '\0' && i + 1 < size && i < 200; i++)
    out[i] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
  out[i] = '\0';
}

/* The node's own words from an error answer ({"Message": ...}), cut short
 * and stripped of control characters. */
static void remote_message(const struct teex_buf *body, char *out,
                           size_t size) {
  out[0] = '\0';
  json_t *j = body->len ? json_loadb((const char *)body->data, body->len,
                                     JSON_DISABLE_EOF_CHECK, NULL)
                        : NULL;
  const char *m = NULL;
  if (j != NULL)
    m = json_string_value(json_object_get(j, "Message"));
  if (m == NULL && j == NULL && body->len > 0)
    m = (const char *)body->data; /* teex_buf keeps a NUL after the data */
  if (m != NULL)
    sanitize(m, out, size);
  json_decref(j);
}

/* POSTs <api>/api/v0/<cmd_query>; the body goes to `body` (its max bounds
 * it). With `upload`, sends the file as multipart/form-data. */
static int kubo_call(struct kubo *k, const char *cmd_query,
                     struct upload *upload, struct teex_buf *body, long *status,
                     struct teex_err *err) {
  char url[KUBO_URL_MAX + 256];
  curl_mime *mime = NULL;
  int rc = 0;
  int n = snprintf(url, sizeof url, "%s/api/v0/%s", k->api, cmd_query);
  if (n < 0 || (size_t)n >= sizeof url)
    return teex_err_set(err, TEEX_ETOOBIG, "URL too long");
  CURL *c = k->curl;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, KUBO_CONNECT_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, KUBO_STALL_S);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  if (upload != NULL) {
    mime = curl_mime_init(c);
    curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
    if (part == NULL) {
      rc = teex_err_set(err, TEEX_ENOMEM, NULL);
      goto done;
    }
    /* The Kubo RPC wants a Content-Type on every part. */
    curl_mime_name(part, "file");
    curl_mime_filename(part, "file");
    curl_mime_type(part, "application/octet-stream");
    curl_mime_data_cb(part, -1, on_upload, NULL, NULL, upload);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
  } else {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
  }
  CURLcode cc = curl_easy_perform(c);
  if (upload != NULL && upload->rc != 0) {
    rc = upload->rc;
    goto done;
  }
  if (cc == CURLE_WRITE_ERROR) {
    rc = teex_err_set(err, TEEX_ETOOBIG,
                      "answer larger than the %zu-byte limit", body->max);
    goto done;
  }
  if (cc != CURLE_OK) {
    rc = teex_err_set(
        err, cc == CURLE_OPERATION_TIMEDOUT ? TEEX_ETIMEDOUT : TEEX_ECONN,
        "%s: %s", k->api, curl_easy_strerror(cc));
    goto done;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  if (*status != 200) {
    char m[256];
    remote_message(body, m, sizeof m);
    rc = teex_err_set(err, TEEX_EREMOTE, "node answered HTTP %ld: %s", *status,
                      m[0] ? m : "(no message)");
  }
done:
  curl_mime_free(mime);
  return rc;
}

/* Parses an integer field that Kubo sends as a string and js-ipfs as a
 * number. */
static int json_u64(json_t *v, uint64_t *out) {
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = (uint64_t)json_integer_value(v);
    return 0;
  }
  if (json_is_string(v))
    return teex_parse_u64(json_string_value(v), out) == 0 ? 0 : TEEX_EFORMAT;
  return TEEX_EFORMAT;
}

int ipfs_kubo_parse_add(const uint8_t *body, size_t body_len,
                        struct teex_cid *cid, uint64_t *dag_size,
                        struct teex_err *err) {
  /* One JSON object per line; the file's is the one with a Hash (progress
   * lines have none). */
  const char *line = (const char *)body;
  const char *end = line + body_len;
  int found = 0;
  while (line != NULL && line < end) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
    if (len > 0) {
      int rc = 0;
      json_t *j = json_loadb(line, len, 0, NULL);
      if (j == NULL)
        return teex_err_set(err, TEEX_EPROTO, "add: answer is not JSON");
      const char *h = json_string_value(json_object_get(j, "Hash"));
      const char *type = json_string_value(json_object_get(j, "Type"));
      json_t *sz = json_object_get(j, "Size");
      uint64_t tsize = 0;
      if (type != NULL && strcmp(type, "error") == 0) {
        const char *m = json_string_value(json_object_get(j, "Message"));
        char clean[256];
        sanitize(m ? m : "(no message)", clean, sizeof clean);
        rc = teex_err_set(err, TEEX_EREMOTE, "add: node error: %s", clean);
      } else if (h != NULL) {
        rc = teex_cid_parse(h, cid, err);
        /* Kubo sends Size as a string, js-ipfs as a number. */
        if (rc == 0 && sz != NULL && json_u64(sz, &tsize) != 0)
          rc = teex_err_set(err, TEEX_EPROTO, "add: bad Size in answer");
        if (rc == 0) {
          found = 1;
          if (dag_size != NULL)
            *dag_size = tsize;
        }
      }
      json_decref(j);
      if (rc != 0)
        return rc;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (!found)
    return teex_err_set(err, TEEX_EPROTO, "add: the node returned no CID");
  return 0;
}

static int kubo_add(struct teex_ipfs_backend *b, teex_ipfs_read_fn read,
                    void *read_ctx, struct teex_cid *root, uint64_t *size,
                    struct teex_err *err) {
  struct kubo *k = (struct kubo *)b;
  struct teex_buf body;
  struct upload up = {read, read_ctx, NULL, err, 0};
  struct teex_cid mine, theirs;
  long status = 0;
  int rc;
  teex_buf_init(&body, KUBO_MAX_JSON, 0);
  if (teex_ipfs_builder_new(NULL, NULL, &up.builder) != 0)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  rc = kubo_call(k,
                 "add?cid-version=1&cid-base=base32&raw-leaves=true"
                 "&chunker=size-262144"
                 "&hash=sha2-256&pin=true&progress=false",
                 &up, &body, &status, err);
  if (rc != 0)
    goto done;
  rc = teex_ipfs_builder_finish(up.builder, &mine, size, err);
  if (rc != 0)
    goto done;
  rc = ipfs_kubo_parse_add(body.data, body.len, &theirs, NULL, err);
  if (rc != 0)
    goto done;
  if (!teex_cid_equal(&mine, &theirs)) {
    char a[TEEX_CID_STR_SIZE], t[TEEX_CID_STR_SIZE];
    teex_cid_to_string(&mine, a);
    teex_cid_to_string(&theirs, t);
    rc = teex_err_set(err, TEEX_EAUTH,
                      "the node stored the file as %s but its bytes give %s "
                      "(a node with other chunking, or a lying node)",
                      t, a);
    goto done;
  }
  *root = mine;
done:
  teex_ipfs_builder_free(up.builder);
  teex_buf_free(&body);
  if (rc != 0)
    teex_err_wrap(err, 0, "add via %s", k->api);
  return rc;
}

static int kubo_get_block(struct teex_ipfs_backend *b,
                          const struct teex_cid *cid, struct teex_buf *out,
                          struct teex_err *err) {
  struct kubo *k = (struct kubo *)b;
  char q[64 + TEEX_CID_STR_SIZE], s[TEEX_CID_STR_SIZE];
  long status = 0;
  teex_cid_to_string(cid, s);
  /* timeout: a node that looks for a missing block on the network (or, as
   * js-ipfs does, waits for it even offline) answers with an error. */
  snprintf(q, sizeof q, "block/get?arg=%s&timeout=%ds", s,
           KUBO_BLOCK_TIMEOUT_S);
  /* The block's own bound, not the caller's: a block is at most
   * TEEX_IPFS_MAX_BLOCK whatever the node sends. */
  size_t saved = out->max;
  if (out->max > TEEX_IPFS_MAX_BLOCK)
    out->max = TEEX_IPFS_MAX_BLOCK;
  int rc = kubo_call(k, q, NULL, out, &status, err);
  out->max = saved;
  if (rc != 0)
    return teex_err_wrap(err, rc, "block/get %s", s);
  return 0;
}

/* Runs a command whose answer is small JSON; returns it parsed (caller
 * decrefs) or NULL with err set. */
static json_t *kubo_json(struct kubo *k, const char *cmd_query, long *status,
                         int *rc, struct teex_err *err) {
  struct teex_buf body;
  json_t *j = NULL;
  teex_buf_init(&body, KUBO_MAX_JSON, 0);
  *rc = kubo_call(k, cmd_query, NULL, &body, status, err);
  if (*rc == 0) {
    j = json_loadb((const char *)body.data, body.len, 0, NULL);
    if (j == NULL)
      *rc = teex_err_set(err, TEEX_EPROTO, "answer is not JSON");
  }
  teex_buf_free(&body);
  return j;
}

static int kubo_simple(struct teex_ipfs_backend *b, const char *cmd,
                       const struct teex_cid *cid, struct teex_err *err) {
  struct kubo *k = (struct kubo *)b;
  char q[128 + TEEX_CID_STR_SIZE], s[TEEX_CID_STR_SIZE];
  long status = 0;
  int rc;
  teex_cid_to_string(cid, s);
  snprintf(q, sizeof q, "%s?arg=%s", cmd, s);
  json_t *j = kubo_json(k, q, &status, &rc, err);
  json_decref(j);
  if (rc != 0)
    return teex_err_wrap(err, rc, "%s %s", cmd, s);
  return 0;
}

static int kubo_pin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                    struct teex_err *err) {
  return kubo_simple(b, "pin/add", cid, err);
}

static int kubo_unpin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                      struct teex_err *err) {
  return kubo_simple(b, "pin/rm", cid, err);
}

static int kubo_is_pinned(struct teex_ipfs_backend *b,
                          const struct teex_cid *cid, struct teex_err *err) {
  struct kubo *k = (struct kubo *)b;
  char q[128 + TEEX_CID_STR_SIZE], s[TEEX_CID_STR_SIZE];
  long status = 0;
  int rc;
  teex_cid_to_string(cid, s);
  snprintf(q, sizeof q, "pin/ls?arg=%s&type=recursive&cid-base=base32", s);
  json_t *j = kubo_json(k, q, &status, &rc, err);
  if (rc != 0) {
    /* Both Kubo and js-ipfs answer an unpinned CID with an error whose
     * message says "not pinned". */
    if (rc == TEEX_EREMOTE && strstr(err->msg, "not pinned") != NULL) {
      teex_err_clear(err);
      return 0;
    }
    return teex_err_wrap(err, rc, "pin/ls %s", s);
  }
  /* Kubo: {"Keys": {"<cid>": {"Type": "recursive"}}}; js-ipfs streams
   * {"Cid": "<cid>", "Type": "recursive"}. */
  int pinned = 0;
  json_t *keys = json_object_get(j, "Keys");
  if (json_is_object(keys) && json_object_get(keys, s) != NULL)
    pinned = 1;
  const char *c = json_string_value(json_object_get(j, "Cid"));
  if (c != NULL && strcmp(c, s) == 0)
    pinned = 1;
  json_decref(j);
  return pinned;
}

static int kubo_has(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                    struct teex_err *err) {
  struct kubo *k = (struct kubo *)b;
  char q[128 + TEEX_CID_STR_SIZE], s[TEEX_CID_STR_SIZE];
  long status = 0;
  int rc;
  teex_cid_to_string(cid, s);
  /* offline=true: answer from the local blockstore, never the network.
   * Kubo then says "not found" at once; js-ipfs ignores offline and waits,
   * so a short timeout stands for "not here". */
  snprintf(q, sizeof q, "block/stat?arg=%s&offline=true&timeout=%ds", s,
           KUBO_HAS_TIMEOUT_S);
  json_t *j = kubo_json(k, q, &status, &rc, err);
  if (rc != 0) {
    if (rc == TEEX_EREMOTE && (strstr(err->msg, "not found") != NULL ||
                               strstr(err->msg, "timed out") != NULL ||
                               strstr(err->msg, "offline") != NULL)) {
      teex_err_clear(err);
      return 0;
    }
    return teex_err_wrap(err, rc, "block/stat %s", s);
  }
  json_decref(j);
  return 1;
}

static void kubo_close(struct teex_ipfs_backend *b) {
  struct kubo *k = (struct kubo *)b;
  if (k == NULL)
    return;
  curl_easy_cleanup(k->curl);
  free(k);
}

static const struct teex_ipfs_backend_ops kubo_ops = {
    .version = 1,
    .name = "kubo-rpc",
    .add = kubo_add,
    .get_block = kubo_get_block,
    .has = kubo_has,
    .pin = kubo_pin,
    .unpin = kubo_unpin,
    .is_pinned = kubo_is_pinned,
    .close = kubo_close,
};

static int curl_init_rc;
static void curl_init_once(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int teex_ipfs_kubo_open(const char *api_url, struct teex_ipfs_backend **out,
                        struct teex_err *err) {
  size_t n = strlen(api_url);
  if (strncmp(api_url, "http://", 7) != 0 &&
      strncmp(api_url, "https://", 8) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "IPFS API URL must start with http:// or https://");
  while (n > 0 && api_url[n - 1] == '/')
    n--;
  if (n >= KUBO_URL_MAX)
    return teex_err_set(err, TEEX_EINVAL, "IPFS API URL too long");
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)api_url[i] <= 0x20 || api_url[i] == '?' ||
        api_url[i] == '#' || (unsigned char)api_url[i] >= 0x7f)
      return teex_err_set(err, TEEX_EINVAL,
                          "IPFS API URL: unexpected character");
  /* curl_global_init is not thread-safe: run it once, whoever comes. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, curl_init_once);
  if (curl_init_rc != 0)
    return teex_err_set(err, TEEX_EINTERNAL, "libcurl init failed");
  struct kubo *k = calloc(1, sizeof *k);
  if (k == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  k->base.ops = &kubo_ops;
  memcpy(k->api, api_url, n);
  k->api[n] = '\0';
  k->curl = curl_easy_init();
  if (k->curl == NULL) {
    free(k);
    return teex_err_set(err, TEEX_ENOMEM, "libcurl");
  }
  *out = &k->base;
  return 0;
}
