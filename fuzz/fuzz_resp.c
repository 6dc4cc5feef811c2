/* libFuzzer harness for the RESP2 request parser (src/ds/resp.c): the
 * commands (and the protocol error, if any) parsed from the input in one
 * piece must be exactly those parsed from the same bytes split at every
 * point, and fed one byte at a time; every command re-encoded as an array
 * of bulk strings must parse back to the same arguments. */
#include "ds/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every command as "argc len bytes len bytes ...", then the final status
 * and error text. */
struct transcript {
  struct teex_buf b;
};

static void record(struct teex_buf *t, const struct teex_resp_cmd *c) {
  if (teex_buf_printf(t, "%zu:", c->argc) != 0)
    abort();
  for (size_t i = 0; i < c->argc; i++)
    if (teex_buf_printf(t, "%zu:", c->argv[i].len) != 0 ||
        teex_buf_append(t, c->argv[i].p, c->argv[i].len) != 0)
      abort();
}

static struct teex_resp_cmd cmd;

/* Parses data fed in pieces at the cut points (sorted, may be empty). */
static void parse(const uint8_t *data, size_t size, const size_t *cuts,
                  size_t ncuts, struct teex_buf *t) {
  struct teex_resp_parser p;
  teex_resp_parser_init(&p);
  size_t from = 0;
  int rc = 0;
  for (size_t k = 0; k <= ncuts && rc >= 0; k++) {
    size_t to = k < ncuts ? cuts[k] : size;
    if (teex_resp_parser_feed(&p, data + from, to - from) != 0)
      abort();
    from = to;
    while ((rc = teex_resp_parser_next(&p, &cmd)) == 1) {
      if (cmd.argc == 0)
        abort();
      record(t, &cmd);
    }
  }
  if (teex_buf_printf(t, "|%d|%s", rc, rc < 0 ? p.err : "") != 0)
    abort();
  teex_resp_parser_free(&p);
}

static void check_same(const struct teex_buf *a, const struct teex_buf *b) {
  if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0))
    abort();
}

/* Re-encodes every command of data as a multibulk request and checks the
 * parse gives the same arguments. */
static void roundtrip(const uint8_t *data, size_t size) {
  struct teex_resp_parser p, q;
  teex_resp_parser_init(&p);
  teex_resp_parser_init(&q);
  if (teex_resp_parser_feed(&p, data, size) != 0)
    abort();
  static struct teex_resp_cmd back;
  while (teex_resp_parser_next(&p, &cmd) == 1) {
    struct teex_buf enc;
    teex_buf_init(&enc, (size_t)8 << 20, 0);
    if (teex_resp_array(&enc, cmd.argc) != 0)
      abort();
    for (size_t i = 0; i < cmd.argc; i++)
      if (teex_resp_bulk(&enc, cmd.argv[i].p, cmd.argv[i].len) != 0)
        abort();
    if (teex_resp_parser_feed(&q, enc.data, enc.len) != 0 ||
        teex_resp_parser_next(&q, &back) != 1 || back.argc != cmd.argc)
      abort();
    for (size_t i = 0; i < cmd.argc; i++)
      if (back.argv[i].len != cmd.argv[i].len ||
          (cmd.argv[i].len &&
           memcmp(back.argv[i].p, cmd.argv[i].p, cmd.argv[i].len) != 0))
        abort();
    teex_buf_free(&enc);
  }
  teex_resp_parser_free(&p);
  teex_resp_parser_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_buf whole, other;
  teex_buf_init(&whole, (size_t)64 << 20, 0);
  parse(data, size, NULL, 0, &whole);
  /* every two-piece split (bounded, so one input stays fast) */
  size_t step = size > 512 ? size / 512 : 1;
  for (size_t cut = 1; cut < size; cut += step) {
    teex_buf_init(&other, (size_t)64 << 20, 0);
    parse(data, size, &cut, 1, &other);
    check_same(&whole, &other);
    teex_buf_free(&other);
  }
  /* one byte at a time */
  if (size <= 4096) {
    size_t *cuts = malloc(size * sizeof(*cuts) + 1);
    if (cuts == NULL)
      abort();
    for (size_t i = 1; i < size; i++)
      cuts[i - 1] = i;
    teex_buf_init(&other, (size_t)64 << 20, 0);
    parse(data, size, cuts, size ? size - 1 : 0, &other);
    check_same(&whole, &other);
    teex_buf_free(&other);
    free(cuts);
  }
  roundtrip(data, size);
  teex_buf_free(&whole);
  return 0;
}
