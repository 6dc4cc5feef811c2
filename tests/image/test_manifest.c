/* Manifest parsing: every field valid and invalid, canonical round trip. */
#include "testutil.h"

#include "teex/buf.h"
#include "teex/image.h"

#include <stdio.h>
#include <string.h>

static const char good[] =
    "# comment\n"
    "[service]\n"
    "name = \"risk-score\"\n"
    "version = \"1.2.3-rc.1\"\n"
    "entry = \"pkg/main.py\"\n"
    "description = \"Scores \\\"risk\\\" \xc3\xa9l\xc3\xa8ve\"\n"
    "style = \"script\"\n"
    "python = \"3.11\"\n"
    "stateless = true\n"
    "full_tracebacks = false\n"
    "[limits]\n"
    "cpu_ms = 1500\n"
    "wall_ms = 4000\n"
    "memory_mb = 128\n"
    "output_bytes = 4096\n"
    "threads = 2\n";

static void test_manifest_good(void **state) {
  (void)state;
  struct teex_manifest m;
  struct teex_err err;
  teex_err_clear(&err);
  assert_int_equal(teex_manifest_parse(good, strlen(good), &m, &err), 0);
  assert_string_equal(m.name, "risk-score");
  assert_string_equal(m.version, "1.2.3-rc.1");
  assert_string_equal(m.entry, "pkg/main.py");
  assert_string_equal(m.description, "Scores \"risk\" \xc3\xa9l\xc3\xa8ve");
  assert_int_equal(m.style, TEEX_STYLE_SCRIPT);
  assert_string_equal(m.python, "3.11");
  assert_int_equal(m.stateless, 1);
  assert_int_equal(m.full_tracebacks, 0);
  assert_int_equal(m.limits.cpu_ms, 1500);
  assert_int_equal(m.limits.wall_ms, 4000);
  assert_int_equal(m.limits.memory_mb, 128);
  assert_int_equal(m.limits.output_bytes, 4096);
  assert_int_equal(m.limits.threads, 2);

  /* Canonical text parses back to the same manifest, and is a fixed
   * point: formatting the re-parsed manifest gives the same bytes. */
  struct teex_buf b1, b2;
  teex_buf_init(&b1, 1 << 16, 0);
  teex_buf_init(&b2, 1 << 16, 0);
  assert_int_equal(teex_manifest_format(&m, &b1), 0);
  struct teex_manifest m2;
  assert_int_equal(
      teex_manifest_parse((const char *)b1.data, b1.len, &m2, &err), 0);
  assert_memory_equal(&m, &m2, sizeof m);
  assert_int_equal(teex_manifest_format(&m2, &b2), 0);
  assert_int_equal(b1.len, b2.len);
  assert_memory_equal(b1.data, b2.data, b1.len);
  teex_buf_free(&b1);
  teex_buf_free(&b2);
}

static void test_manifest_defaults(void **state) {
  (void)state;
  const char *t = "[service]\nname = \"x\"\nversion = \"1\"\nentry = "
                  "\"main.py\"\n";
  struct teex_manifest m;
  struct teex_err err;
  assert_int_equal(teex_manifest_parse(t, strlen(t), &m, &err), 0);
  assert_int_equal(m.style, TEEX_STYLE_FUNCTION);
  assert_string_equal(m.python, "3.11");
  assert_string_equal(m.description, "");
  assert_int_equal(m.stateless, 0);
  assert_int_equal(m.limits.cpu_ms, 0);
  assert_int_equal(m.limits.threads, 0);
}

struct bad_case {
  const char *line; /* replaces or adds one line */
  const char *replaces;
  int code;
  const char *needle; /* must appear in the message */
};

static const char base[] = "[service]\nname = \"svc\"\nversion = \"1.0\"\n"
                           "entry = \"main.py\"\n[limits]\n";

static void run_bad(const struct bad_case *c) {
  char text[4096];
  const char *at = c->replaces ? strstr(base, c->replaces) : NULL;
  if (c->replaces != NULL) {
    assert_non_null(at);
    size_t pre = (size_t)(at - base);
    snprintf(text, sizeof text, "%.*s%s%s", (int)pre, base, c->line,
             at + strlen(c->replaces));
  } else {
    snprintf(text, sizeof text, "%s%s", base, c->line);
  }
  struct teex_manifest m;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_manifest_parse(text, strlen(text), &m, &err);
  if (rc != c->code || strstr(err.msg, c->needle) == NULL)
    fail_msg("manifest case [%s]: rc %d (%s), want %d with \"%s\"", c->line, rc,
             err.msg, c->code, c->needle);
}

static void test_manifest_bad_fields(void **state) {
  (void)state;
  static const struct bad_case cases[] = {
      {"", "name = \"svc\"\n", TEEX_EINVAL, "service.name: missing"},
      {"name = \"\"\n", "name = \"svc\"\n", TEEX_EINVAL, "service.name: empty"},
      {"name = \"Svc\"\n", "name = \"svc\"\n", TEEX_EINVAL, "service.name"},
      {"name = \"a b\"\n", "name = \"svc\"\n", TEEX_EINVAL, "lower-case"},
      {"name = \"-x\"\n", "name = \"svc\"\n", TEEX_EINVAL, "service.name"},
      {"name = "
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
       "\n",
       "name = \"svc\"\n", TEEX_EINVAL, "at most 64"},
      {"", "version = \"1.0\"\n", TEEX_EINVAL, "service.version: missing"},
      {"version = \"1 0\"\n", "version = \"1.0\"\n", TEEX_EINVAL,
       "service.version"},
      {"", "entry = \"main.py\"\n", TEEX_EINVAL, "service.entry: missing"},
      {"entry = \"main.txt\"\n", "entry = \"main.py\"\n", TEEX_EINVAL,
       "must be a .py file"},
      {"entry = \"../main.py\"\n", "entry = \"main.py\"\n", TEEX_EINVAL,
       "service.entry"},
      {"entry = \"/abs/main.py\"\n", "entry = \"main.py\"\n", TEEX_EINVAL,
       "empty component"},
      {"entry = \"a//main.py\"\n", "entry = \"main.py\"\n", TEEX_EINVAL,
       "empty component"},
      {"entry = \"m\xc3\xa9.py\"\n", "entry = \"main.py\"\n", TEEX_EINVAL,
       "not allowed"},
      {"[service]\ndescription = \"bad \xff utf8\"\n", NULL, TEEX_EINVAL,
       "not valid UTF-8"},
      {"[service]\ndescription = \"tab\there\"\n", NULL, TEEX_EINVAL,
       "control character"},
      {"[service]\nstyle = \"daemon\"\n", NULL, TEEX_EINVAL,
       "\"function\" or \"script\""},
      {"[service]\npython = \"3.12\"\n", NULL, TEEX_EINVAL, "service.python"},
      {"[service]\nstateless = yes\n", NULL, TEEX_EINVAL,
       "service.stateless: \"yes\": expected true or false"},
      {"[service]\nfull_tracebacks = 1\n", NULL, TEEX_EINVAL,
       "service.full_tracebacks"},
      {"[service]\nentrypoint = \"x.py\"\n", NULL, TEEX_EINVAL,
       "unknown field \"service.entrypoint\""},
      {"[limit]\ncpu_ms = 5\n", NULL, TEEX_EINVAL,
       "unknown field \"limit.cpu_ms\""},
      {"cpu_ms = abc\n", NULL, TEEX_EINVAL,
       "limits.cpu_ms: \"abc\": expected a whole number"},
      {"cpu_ms = -5\n", NULL, TEEX_EINVAL, "limits.cpu_ms"},
      {"cpu_ms = 3600001\n", NULL, TEEX_EINVAL, "limits.cpu_ms: 3600001 out"},
      {"wall_ms = 99999999999999999999\n", NULL, TEEX_EINVAL, "limits.wall_ms"},
      {"memory_mb = 8\n", NULL, TEEX_EINVAL, "limits.memory_mb: 8 out"},
      {"output_bytes = 999999999\n", NULL, TEEX_EINVAL, "limits.output_bytes"},
      {"threads = 1000\n", NULL, TEEX_EINVAL, "limits.threads: 1000 out"},
      {"this is not toml\n", NULL, TEEX_EFORMAT, "line 6"},
      {"[service]\nname = \"other\"\n", NULL, TEEX_EINVAL,
       "service.name: given twice (again on line 7)"},
      {"threads = 1\nthreads = 2\n", NULL, TEEX_EINVAL,
       "limits.threads: given twice"},
      {"[service]\nname = \"unterminated\n", NULL, TEEX_EFORMAT,
       "unterminated"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_bad(&cases[i]);
}

static void test_manifest_too_long(void **state) {
  (void)state;
  size_t n = TEEX_IMAGE_MANIFEST_MAX + 1;
  char *t = malloc(n);
  assert_non_null(t);
  memset(t, '#', n);
  struct teex_manifest m;
  struct teex_err err;
  assert_int_equal(teex_manifest_parse(t, n, &m, &err), TEEX_ETOOBIG);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_manifest_good),
      cmocka_unit_test(test_manifest_defaults),
      cmocka_unit_test(test_manifest_bad_fields),
      cmocka_unit_test(test_manifest_too_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
