/* The service manifest, teex.toml: strict parsing and canonical text.
 *
 * The file uses the config syntax of include/teex/config.h with two
 * sections, [service] and [limits]. Parsing is strict: every key must be
 * known, every value well formed and in range, so a typo is caught when the
 * provider packs the service, not when a worker runs it. */
#include <stdio.h>
#include <string.h>

#include "image/image_internal.h"
#include "teex/config.h"
#include "teex/image.h"

int teex_image_utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= need)
      return 0;
    for (size_t k = 1; k <= need; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += need + 1;
  }
  return 1;
}

static const char *const known_keys[] = {
    "service.name",      "service.version",
    "service.entry",     "service.description",
    "service.style",     "service.python",
    "service.stateless", "service.full_tracebacks",
    "limits.cpu_ms",     "limits.wall_ms",
    "limits.memory_mb",  "limits.output_bytes",
    "limits.threads",    NULL,
};

static int is_known(const char *key) {
  for (size_t i = 0; known_keys[i] != NULL; i++)
    if (strcmp(key, known_keys[i]) == 0)
      return 1;
  return 0;
}

/* Copies a string field after checking its length and characters. */
static int get_str(const struct teex_config *c, const char *key, int required,
                   char *dst, size_t max,
                   int (*ok)(const char *, char *, size_t),
                   struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  if (v == NULL) {
    if (required)
      return teex_err_set(err, TEEX_EINVAL, "manifest %s: missing (required)",
                          key);
    dst[0] = '\0';
    return 0;
  }
  size_t n = strlen(v);
  if (required && n == 0)
    return teex_err_set(err, TEEX_EINVAL, "manifest %s: empty", key);
  if (n > max)
    return teex_err_set(err, TEEX_EINVAL,
                        "manifest %s: %zu bytes, at most %zu allowed", key, n,
                        max);
  char why[160] = "";
  if (ok != NULL && !ok(v, why, sizeof why))
    return teex_err_set(err, TEEX_EINVAL, "manifest %s: \"%.80s\": %s", key, v,
                        why);
  memcpy(dst, v, n + 1);
  return 0;
}

static int ok_name(const char *v, char *why, size_t n) {
  for (size_t i = 0; v[i]; i++) {
    char ch = v[i];
    int alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
    if (!alnum && !(i > 0 && (ch == '-' || ch == '_' || ch == '.'))) {
      snprintf(why, n, "use lower-case letters, digits and . _ - (not first)");
      return 0;
    }
  }
  return 1;
}

static int ok_version(const char *v, char *why, size_t n) {
  for (size_t i = 0; v[i]; i++) {
    char ch = v[i];
    int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                (ch >= '0' && ch <= '9');
    if (!alnum && !(i > 0 && (ch == '.' || ch == '-' || ch == '+'))) {
      snprintf(why, n, "use letters, digits and . - + (not first)");
      return 0;
    }
  }
  return 1;
}

static int ok_entry(const char *v, char *why, size_t n) {
  struct teex_err e;
  teex_err_clear(&e);
  size_t len = strlen(v);
  if (teex_image_check_path(v, len, &e) != 0) {
    snprintf(why, n, "%s", e.msg);
    return 0;
  }
  if (len < 4 || strcmp(v + len - 3, ".py") != 0) {
    snprintf(why, n, "the entry point must be a .py file");
    return 0;
  }
  return 1;
}

static int ok_text(const char *v, char *why, size_t n) {
  size_t len = strlen(v);
  if (!teex_image_utf8_valid((const uint8_t *)v, len)) {
    snprintf(why, n, "not valid UTF-8");
    return 0;
  }
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
      snprintf(why, n, "control character at byte %zu", i);
      return 0;
    }
  return 1;
}

static int get_bool(const struct teex_config *c, const char *key, int *out,
                    struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  if (v == NULL) {
    *out = 0;
    return 0;
  }
  if (strcmp(v, "true") == 0) {
    *out = 1;
    return 0;
  }
  if (strcmp(v, "false") == 0) {
    *out = 0;
    return 0;
  }
  return teex_err_set(err, TEEX_EINVAL,
                      "manifest %s: \"%.40s\": expected true or false", key, v);
}

static int get_u32(const struct teex_config *c, const char *key, uint32_t min,
                   uint32_t max, uint32_t *out, struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  *out = 0;
  if (v == NULL)
    return 0;
  uint64_t x;
  if (teex_parse_u64(v, &x) != 0)
    return teex_err_set(err, TEEX_EINVAL,
                        "manifest %s: \"%.40s\": expected a whole number", key,
                        v);
  if (x != 0 && (x < min || x > max))
    return teex_err_set(err, TEEX_EINVAL,
                        "manifest %s: %llu out of range (0 for the default, "
                        "or %u..%u)",
                        key, (unsigned long long)x, min, max);
  *out = (uint32_t)x;
  return 0;
}

static int key_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
}

/* The config parser keeps the last of repeated keys; a manifest must not
 * repeat one (which value did the provider mean?). Runs on text the config
 * parser accepted, so lines are well formed. */
static int check_duplicates(const char *text, size_t len,
                            struct teex_err *err) {
  enum { SEEN_MAX = 64, KEY_MAX = 128 };
  char seen[SEEN_MAX][KEY_MAX];
  size_t nseen = 0;
  char section[KEY_MAX] = "";
  const char *p = text, *end = text + len;
  int lineno = 0;
  while (p < end) {
    lineno++;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
      eol = end;
    while (p < eol && (*p == ' ' || *p == '\t'))
      p++;
    if (p < eol && *p == '[') {
      size_t n = 0;
      p++;
      while (p < eol && *p != ']' && n + 1 < KEY_MAX)
        section[n++] = *p++;
      section[n] = '\0';
    } else if (p < eol && key_char(*p)) {
      const char *k = p;
      while (p < eol && key_char(*p))
        p++;
      char key[KEY_MAX];
      int n = snprintf(key, sizeof key, "%s%s%.*s", section,
                       section[0] ? "." : "", (int)(p - k), k);
      if (n < 0 || (size_t)n >= sizeof key)
        return 0; /* too long to be a known key: reported as unknown */
      for (size_t i = 0; i < nseen; i++)
        if (strcmp(seen[i], key) == 0)
          return teex_err_set(err, TEEX_EINVAL,
                              "manifest %s: given twice (again on line %d)",
                              key, lineno);
      if (nseen == SEEN_MAX)
        return teex_err_set(err, TEEX_EINVAL, "manifest: too many fields");
      memcpy(seen[nseen++], key, (size_t)n + 1);
    }
    p = eol + (eol < end);
  }
  return 0;
}

int teex_manifest_parse(const char *text, size_t len, struct teex_manifest *m,
                        struct teex_err *err) {
  struct teex_config c;
  teex_config_init(&c);
  memset(m, 0, sizeof *m);
  int rc;
  if (len > TEEX_IMAGE_MANIFEST_MAX) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "manifest: %zu bytes, at most %u", len,
                      TEEX_IMAGE_MANIFEST_MAX);
    goto done;
  }
  rc = teex_config_parse(&c, text, len, err);
  if (rc != 0) {
    teex_err_wrap(err, 0, "manifest");
    goto done;
  }
  if ((rc = check_duplicates(text, len, err)) != 0)
    goto done;
  for (size_t i = 0; i < c.count; i++)
    if (!is_known(c.entries[i].key)) {
      rc = teex_err_set(err, TEEX_EINVAL,
                        "manifest: unknown field \"%.100s\" (known: "
                        "[service] name version entry description style "
                        "python stateless full_tracebacks; [limits] cpu_ms "
                        "wall_ms memory_mb output_bytes threads)",
                        c.entries[i].key);
      goto done;
    }
  if ((rc = get_str(&c, "service.name", 1, m->name, TEEX_IMAGE_NAME_MAX,
                    ok_name, err)) != 0 ||
      (rc = get_str(&c, "service.version", 1, m->version,
                    TEEX_IMAGE_VERSION_MAX, ok_version, err)) != 0 ||
      (rc = get_str(&c, "service.entry", 1, m->entry, TEEX_IMAGE_ENTRY_MAX,
                    ok_entry, err)) != 0 ||
      (rc = get_str(&c, "service.description", 0, m->description,
                    TEEX_IMAGE_DESC_MAX, ok_text, err)) != 0)
    goto done;

  const char *style = teex_config_get(&c, "service.style", "function");
  if (strcmp(style, "function") == 0) {
    m->style = TEEX_STYLE_FUNCTION;
  } else if (strcmp(style, "script") == 0) {
    m->style = TEEX_STYLE_SCRIPT;
  } else {
    rc = teex_err_set(err, TEEX_EINVAL,
                      "manifest service.style: \"%.40s\": expected "
                      "\"function\" or \"script\"",
                      style);
    goto done;
  }
  const char *py = teex_config_get(&c, "service.python", TEEX_IMAGE_PYTHON);
  if (strcmp(py, TEEX_IMAGE_PYTHON) != 0) {
    rc = teex_err_set(err, TEEX_EINVAL,
                      "manifest service.python: \"%.40s\": this teex runs "
                      "CPython " TEEX_IMAGE_PYTHON " only",
                      py);
    goto done;
  }
  memcpy(m->python, TEEX_IMAGE_PYTHON, sizeof TEEX_IMAGE_PYTHON);
  if ((rc = get_bool(&c, "service.stateless", &m->stateless, err)) != 0 ||
      (rc = get_bool(&c, "service.full_tracebacks", &m->full_tracebacks,
                     err)) != 0)
    goto done;

  struct teex_limits *l = &m->limits;
  if ((rc = get_u32(&c, "limits.cpu_ms", 1, TEEX_LIMIT_CPU_MS_MAX, &l->cpu_ms,
                    err)) != 0 ||
      (rc = get_u32(&c, "limits.wall_ms", 1, TEEX_LIMIT_WALL_MS_MAX,
                    &l->wall_ms, err)) != 0 ||
      (rc = get_u32(&c, "limits.memory_mb", TEEX_LIMIT_MEMORY_MB_MIN,
                    TEEX_LIMIT_MEMORY_MB_MAX, &l->memory_mb, err)) != 0 ||
      (rc = get_u32(&c, "limits.output_bytes", 1, TEEX_LIMIT_OUTPUT_MAX,
                    &l->output_bytes, err)) != 0 ||
      (rc = get_u32(&c, "limits.threads", 1, TEEX_LIMIT_THREADS_MAX,
                    &l->threads, err)) != 0)
    goto done;
  rc = 0;
done:
  teex_config_free(&c);
  return rc;
}

static int put_str(struct teex_buf *out, const char *key, const char *v) {
  int rc = teex_buf_printf(out, "%s = \"", key);
  for (const char *p = v; rc == 0 && *p; p++) {
    if (*p == '"' || *p == '\\')
      rc = teex_buf_putc(out, '\\');
    if (rc == 0)
      rc = teex_buf_putc(out, (uint8_t)*p);
  }
  return rc != 0 ? rc : teex_buf_append_str(out, "\"\n");
}

int teex_manifest_format(const struct teex_manifest *m, struct teex_buf *out) {
  int rc;
  const struct teex_limits *l = &m->limits;
  if ((rc = teex_buf_append_str(out, "[service]\n")) != 0 ||
      (rc = put_str(out, "name", m->name)) != 0 ||
      (rc = put_str(out, "version", m->version)) != 0 ||
      (rc = put_str(out, "entry", m->entry)) != 0 ||
      (rc = put_str(out, "description", m->description)) != 0 ||
      (rc = put_str(out, "style",
                    m->style == TEEX_STYLE_SCRIPT ? "script" : "function")) !=
          0 ||
      (rc = put_str(out, "python", TEEX_IMAGE_PYTHON)) != 0 ||
      (rc = teex_buf_printf(out, "stateless = %s\nfull_tracebacks = %s\n",
                            m->stateless ? "true" : "false",
                            m->full_tracebacks ? "true" : "false")) != 0 ||
      (rc = teex_buf_printf(out,
                            "\n[limits]\ncpu_ms = %u\nwall_ms = %u\n"
                            "memory_mb = %u\noutput_bytes = %u\nthreads = %u\n",
                            l->cpu_ms, l->wall_ms, l->memory_mb,
                            l->output_bytes, l->threads)) != 0)
    return rc;
  return 0;
}
