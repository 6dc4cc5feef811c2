/* A chain kept in a text file (include/teex/dispatcher.h): for development
 * and tests, with the Settlement contract's rules applied on settle. */
#include "teex/dispatcher.h"

#include "teex/crypto.h"
#include "teex/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN 1024
#define FILE_MAX_LINES 100000

struct fchain {
  char *path;
  struct teex_domain domain;
};

struct fline {
  char kind; /* 's' service, 'e' escrow, 'b' batch, 'a' allow, 0 other (kept
                verbatim) */
  int is_private; /* a service line ending in "private" */
  char text[LINE_MAX_LEN];
  uint8_t a[32], b[32], addr[20];
  teex_amount x, y;
};

struct fstate {
  struct fline *lines;
  size_t n;
};

static int hex_exact(const char *s, uint8_t *out, size_t want) {
  size_t n = 0;
  if (s == NULL || strncmp(s, "0x", 2) != 0 ||
      teex_hex_decode(s, out, want, &n) != 0 || n != want)
    return -1;
  return 0;
}

static int parse_line(const char *line, struct fline *l, size_t lineno,
                      const char *path, struct teex_err *err) {
  char buf[LINE_MAX_LEN], *save = NULL;
  memset(l, 0, sizeof *l);
  snprintf(l->text, sizeof l->text, "%s", line);
  snprintf(buf, sizeof buf, "%s", line);
  char *hash = strchr(buf, '#');
  if (hash != NULL)
    *hash = '\0';
  char *tok[8];
  int nt = 0;
  for (char *t = strtok_r(buf, " \t\r\n", &save); t != NULL && nt < 8;
       t = strtok_r(NULL, " \t\r\n", &save))
    tok[nt++] = t;
  if (nt == 0)
    return 0;
  if (strcmp(tok[0], "service") == 0 &&
      (nt == 6 || (nt == 7 && strcmp(tok[6], "private") == 0))) {
    l->kind = 's';
    l->is_private = nt == 7;
    if (hex_exact(tok[1], l->a, 32) == 0 && hex_exact(tok[2], l->b, 32) == 0 &&
        teex_amount_parse(tok[3], &l->x) == 0 &&
        teex_amount_parse(tok[4], &l->y) == 0 && l->y <= l->x &&
        teex_eth_address_parse(tok[5], l->addr) == 0)
      return 0;
  } else if (strcmp(tok[0], "allow") == 0 && nt == 3) {
    l->kind = 'a';
    if (hex_exact(tok[1], l->a, 32) == 0 &&
        teex_eth_address_parse(tok[2], l->addr) == 0)
      return 0;
  } else if (strcmp(tok[0], "escrow") == 0 && nt == 4) {
    l->kind = 'e';
    if (teex_eth_address_parse(tok[1], l->addr) == 0 &&
        teex_amount_parse(tok[2], &l->x) == 0 &&
        teex_amount_parse(tok[3], &l->y) == 0)
      return 0;
  } else if (strcmp(tok[0], "batch") == 0 && nt == 5) {
    l->kind = 'b';
    if (hex_exact(tok[1], l->a, 32) == 0 && hex_exact(tok[2], l->b, 32) == 0)
      return 0;
  }
  return teex_err_set(err, TEEX_EFORMAT, "%s:%zu: not a chain file line", path,
                      lineno);
}

static void state_free(struct fstate *st) {
  free(st->lines);
  st->lines = NULL;
  st->n = 0;
}

static int load(struct fchain *c, struct fstate *st, struct teex_err *err) {
  memset(st, 0, sizeof *st);
  FILE *f = fopen(c->path, "r");
  if (f == NULL)
    return teex_err_set(err, TEEX_ECHAIN, "chain file %s: %s", c->path,
                        strerror(errno));
  char line[LINE_MAX_LEN];
  size_t cap = 0;
  int rc = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strchr(line, '\n') == NULL && !feof(f)) {
      rc = teex_err_set(err, TEEX_EFORMAT, "%s:%zu: line too long", c->path,
                        st->n + 1);
      break;
    }
    if (st->n == FILE_MAX_LINES) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "%s: too many lines", c->path);
      break;
    }
    if (st->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct fline *nl = realloc(st->lines, ncap * sizeof *nl);
      if (nl == NULL) {
        rc = teex_err_set(err, TEEX_ENOMEM, NULL);
        break;
      }
      st->lines = nl;
      cap = ncap;
    }
    line[strcspn(line, "\r\n")] = '\0';
    rc = parse_line(line, &st->lines[st->n], st->n + 1, c->path, err);
    if (rc != 0)
      break;
    st->n++;
  }
  fclose(f);
  if (rc != 0)
    state_free(st);
  return rc;
}

static int fc_escrow(void *arg, const uint8_t user[20], teex_amount *escrow,
                     teex_amount *settled, struct teex_err *err) {
  struct fchain *c = arg;
  struct fstate st;
  int rc = load(c, &st, err);
  if (rc != 0)
    return rc;
  *escrow = *settled = 0;
  for (size_t i = 0; i < st.n; i++)
    if (st.lines[i].kind == 'e' && memcmp(st.lines[i].addr, user, 20) == 0) {
      *escrow = st.lines[i].x;
      *settled = st.lines[i].y;
    }
  state_free(&st);
  return 0;
}

static int fc_service(void *arg, const uint8_t id[32], const uint8_t image[32],
                      struct teex_dispatcher_service *out,
                      struct teex_err *err) {
  struct fchain *c = arg;
  struct fstate st;
  int rc = load(c, &st, err);
  if (rc != 0)
    return rc;
  rc = teex_err_set(err, TEEX_ENOTFOUND, "no such service or image listed");
  for (size_t i = 0; i < st.n; i++) {
    const struct fline *l = &st.lines[i];
    if (l->kind == 's' && memcmp(l->a, id, 32) == 0 &&
        memcmp(l->b, image, 32) == 0) {
      memcpy(out->provider, l->addr, 20);
      out->price = l->x;
      out->remuneration = l->y;
      out->is_private = l->is_private;
      rc = 0;
    }
  }
  state_free(&st);
  return rc;
}

static int save(struct fchain *c, const struct fstate *st,
                struct teex_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", c->path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return teex_err_set(err, TEEX_ECHAIN, "write %s: %s", tmp, strerror(errno));
  for (size_t i = 0; i < st->n; i++) {
    const struct fline *l = &st->lines[i];
    if (l->kind == 'e') {
      char hex[43], x[40], y[40];
      teex_eth_address_hex(l->addr, hex);
      teex_amount_format(l->x, x);
      teex_amount_format(l->y, y);
      fprintf(f, "escrow %s %s %s\n", hex, x, y);
    } else {
      fprintf(f, "%s\n", l->text);
    }
  }
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
    fclose(f);
    return teex_err_set(err, TEEX_ECHAIN, "write %s", tmp);
  }
  if (fclose(f) != 0 || rename(tmp, c->path) != 0)
    return teex_err_set(err, TEEX_ECHAIN, "write %s", c->path);
  return 0;
}

static int fc_settle(void *arg, const struct teex_dispatcher_batch *b,
                     struct teex_err *err) {
  struct fchain *c = arg;
  struct fstate st;
  int rc = load(c, &st, err);
  if (rc != 0)
    return rc;
  static const uint8_t zero[32];
  if (memcmp(b->root, zero, 32) == 0 || b->task_count == 0 ||
      b->cid[0] == '\0') {
    rc = teex_err_set(err, TEEX_EINVAL, "empty batch");
    goto out;
  }
  for (size_t i = 0; i < st.n; i++)
    if (st.lines[i].kind == 'b' &&
        memcmp(st.lines[i].a, b->batch_id, 32) == 0) {
      rc = teex_err_set(err, TEEX_EEXIST, "BatchAlreadySettled");
      goto out;
    }
  teex_amount debits = 0, credits = 0;
  for (size_t i = 0; i < b->nauths; i++) {
    const struct teex_payment_auth *a = &b->auths[i];
    uint8_t d[32], who[20];
    teex_stmt_payment_auth_digest(&c->domain, a, d);
    if (memcmp(a->dispatcher, b->auths[0].dispatcher, 20) != 0 ||
        teex_stmt_recover(d, a->sig, who) != 0 ||
        memcmp(who, a->user, 20) != 0) {
      rc = teex_err_set(err, TEEX_EBADSIG, "BadAuthorizationSignature");
      goto out;
    }
    struct fline *e = NULL;
    for (size_t k = 0; k < st.n; k++)
      if (st.lines[k].kind == 'e' && memcmp(st.lines[k].addr, a->user, 20) == 0)
        e = &st.lines[k];
    teex_amount escrow = e ? e->x : 0, settled = e ? e->y : 0;
    teex_amount debit = a->cumulative > settled ? a->cumulative - settled : 0;
    if (debit > escrow) {
      rc = teex_err_set(err, TEEX_EFUNDS, "InsufficientEscrow");
      goto out;
    }
    if (debit > 0) {
      e->x -= debit;
      e->y = a->cumulative;
    }
    debits += debit;
  }
  for (size_t i = 0; i < b->ncredits; i++) {
    static const uint8_t z20[20];
    if (memcmp(b->credits[i].payee, z20, 20) == 0) {
      rc = teex_err_set(err, TEEX_EINVAL, "zero payee");
      goto out;
    }
    credits += b->credits[i].amount;
  }
  if (debits != credits) {
    rc = teex_err_set(err, TEEX_EINVAL, "DebitsCreditsMismatch");
    goto out;
  }
  if (st.n == FILE_MAX_LINES) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "chain file full");
    goto out;
  }
  struct fline *nl = realloc(st.lines, (st.n + 1) * sizeof *nl);
  if (nl == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto out;
  }
  st.lines = nl;
  struct fline *l = &st.lines[st.n++];
  memset(l, 0, sizeof *l);
  char id[65], root[65];
  teex_hex_encode(b->batch_id, 32, id);
  teex_hex_encode(b->root, 32, root);
  snprintf(l->text, sizeof l->text, "batch 0x%s 0x%s %u %s", id, root,
           b->task_count, b->cid);
  l->kind = 'b';
  rc = save(c, &st, err);
out:
  state_free(&st);
  return rc;
}

static void fc_close(void *arg) {
  struct fchain *c = arg;
  if (c != NULL)
    free(c->path);
  free(c);
}

static int fc_batch_root(void *arg, const uint8_t batch_id[32],
                         uint8_t root[32], struct teex_err *err) {
  struct fchain *c = arg;
  struct fstate st;
  int rc = load(c, &st, err);
  if (rc != 0)
    return rc;
  memset(root, 0, 32);
  for (size_t i = 0; i < st.n; i++)
    if (st.lines[i].kind == 'b' && memcmp(st.lines[i].a, batch_id, 32) == 0)
      memcpy(root, st.lines[i].b, 32);
  state_free(&st);
  return 0;
}

static int fc_may_invoke(void *arg, const uint8_t id[32],
                         const uint8_t caller[20], int *allowed,
                         struct teex_err *err) {
  struct fchain *c = arg;
  struct fstate st;
  int rc = load(c, &st, err);
  if (rc != 0)
    return rc;
  *allowed = 0;
  for (size_t i = 0; i < st.n; i++)
    if (st.lines[i].kind == 'a' && memcmp(st.lines[i].a, id, 32) == 0 &&
        memcmp(st.lines[i].addr, caller, 20) == 0)
      *allowed = 1;
  state_free(&st);
  return 0;
}

static const struct teex_dispatcher_chain_ops file_ops = {
    fc_escrow, fc_service,    fc_settle,     NULL, NULL,
    fc_close,  fc_batch_root, fc_may_invoke, NULL};

int teex_dispatcher_chain_file(const char *path,
                               const struct teex_domain *domain,
                               struct teex_dispatcher_chain *out,
                               struct teex_err *err) {
  struct fchain *c = calloc(1, sizeof *c);
  if (c == NULL || (c->path = strdup(path)) == NULL) {
    free(c);
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  c->domain = *domain;
  out->ops = &file_ops;
  out->arg = c;
  return 0;
}
