/* Configuration file parser and flag overrides (see include/teex/config.h). */
#include "teex/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void teex_config_init(struct teex_config *c) {
  c->entries = NULL;
  c->count = 0;
}

void teex_config_free(struct teex_config *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->count; i++) {
    free(c->entries[i].key);
    free(c->entries[i].value);
  }
  free(c->entries);
  c->entries = NULL;
  c->count = 0;
}

static struct teex_config_entry *find(const struct teex_config *c,
                                      const char *key) {
  for (size_t i = 0; i < c->count; i++)
    if (strcmp(c->entries[i].key, key) == 0)
      return &c->entries[i];
  return NULL;
}

static int put(struct teex_config *c, const char *key, const char *value,
               int from_flag, struct teex_err *err) {
  if (strlen(key) > TEEX_CONFIG_KEY_MAX || key[0] == '\0')
    return teex_err_set(err, TEEX_EINVAL, "config key empty or too long");
  if (strlen(value) > TEEX_CONFIG_VALUE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "config value of %s too long", key);
  struct teex_config_entry *e = find(c, key);
  if (e != NULL) {
    if (e->from_flag && !from_flag)
      return 0; /* flags win over the file */
    char *v = strdup(value);
    if (v == NULL)
      return teex_err_set(err, TEEX_ENOMEM, NULL);
    free(e->value);
    e->value = v;
    e->from_flag = from_flag;
    return 0;
  }
  if (c->count == TEEX_CONFIG_ENTRIES_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "more than %d config entries",
                        TEEX_CONFIG_ENTRIES_MAX);
  struct teex_config_entry *ne =
      realloc(c->entries, (c->count + 1) * sizeof *ne);
  if (ne == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  c->entries = ne;
  char *k = strdup(key), *v = strdup(value);
  if (k == NULL || v == NULL) {
    free(k);
    free(v);
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  c->entries[c->count].key = k;
  c->entries[c->count].value = v;
  c->entries[c->count].from_flag = from_flag;
  c->count++;
  return 0;
}

int teex_config_set(struct teex_config *c, const char *key, const char *value,
                    struct teex_err *err) {
  return put(c, key, value, 1, err);
}

static int is_key_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  return p;
}

int teex_config_parse(struct teex_config *c, const char *text, size_t len,
                      struct teex_err *err) {
  if (len > TEEX_CONFIG_FILE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "config larger than %d bytes",
                        TEEX_CONFIG_FILE_MAX);
  char section[TEEX_CONFIG_KEY_MAX + 1] = "";
  const char *p = text, *end = text + len;
  int lineno = 0;
  while (p < end) {
    lineno++;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
      eol = end;
    const char *q = skip_ws(p, eol);
    const char *line_end = eol;
    if (line_end > q && line_end[-1] == '\r')
      line_end--;
    if (q == line_end || *q == '#' || *q == ';') {
      p = eol + (eol < end);
      continue;
    }
    if (memchr(q, '\0', (size_t)(line_end - q)) != NULL)
      return teex_err_set(err, TEEX_EFORMAT, "config line %d: NUL byte",
                          lineno);
    if (*q == '[') {
      const char *close = memchr(q, ']', (size_t)(line_end - q));
      if (close == NULL)
        return teex_err_set(err, TEEX_EFORMAT, "config line %d: missing ']'",
                            lineno);
      size_t n = (size_t)(close - q - 1);
      if (n == 0 || n > TEEX_CONFIG_KEY_MAX / 2)
        return teex_err_set(err, TEEX_EFORMAT,
                            "config line %d: bad section name", lineno);
      for (size_t i = 0; i < n; i++)
        if (!is_key_char(q[1 + i]))
          return teex_err_set(err, TEEX_EFORMAT,
                              "config line %d: bad section name", lineno);
      const char *rest = skip_ws(close + 1, line_end);
      if (rest != line_end && *rest != '#')
        return teex_err_set(err, TEEX_EFORMAT,
                            "config line %d: text after section", lineno);
      memcpy(section, q + 1, n);
      section[n] = '\0';
      p = eol + (eol < end);
      continue;
    }
    const char *k = q;
    while (q < line_end && is_key_char(*q))
      q++;
    size_t klen = (size_t)(q - k);
    q = skip_ws(q, line_end);
    if (klen == 0 || q == line_end || *q != '=')
      return teex_err_set(err, TEEX_EFORMAT,
                          "config line %d: expected 'key = value'", lineno);
    q = skip_ws(q + 1, line_end);
    char key[TEEX_CONFIG_KEY_MAX + 1];
    size_t slen = strlen(section);
    if (slen + (slen ? 1 : 0) + klen > TEEX_CONFIG_KEY_MAX)
      return teex_err_set(err, TEEX_EFORMAT, "config line %d: key too long",
                          lineno);
    size_t ko = 0;
    if (slen) {
      memcpy(key, section, slen);
      key[slen] = '.';
      ko = slen + 1;
    }
    memcpy(key + ko, k, klen);
    key[ko + klen] = '\0';

    char value[TEEX_CONFIG_VALUE_MAX + 1];
    size_t vo = 0;
    if (q < line_end && *q == '"') {
      q++;
      int closed = 0;
      while (q < line_end) {
        char ch = *q++;
        if (ch == '"') {
          closed = 1;
          break;
        }
        if (ch == '\\') {
          if (q == line_end || (*q != '"' && *q != '\\'))
            return teex_err_set(err, TEEX_EFORMAT, "config line %d: bad escape",
                                lineno);
          ch = *q++;
        }
        if (vo == TEEX_CONFIG_VALUE_MAX)
          return teex_err_set(err, TEEX_ETOOBIG,
                              "config line %d: value too long", lineno);
        value[vo++] = ch;
      }
      if (!closed)
        return teex_err_set(err, TEEX_EFORMAT,
                            "config line %d: unterminated string", lineno);
      q = skip_ws(q, line_end);
      if (q != line_end && *q != '#')
        return teex_err_set(err, TEEX_EFORMAT,
                            "config line %d: text after value", lineno);
    } else {
      const char *vend = q;
      while (vend < line_end && *vend != '#')
        vend++;
      while (vend > q && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
      vo = (size_t)(vend - q);
      if (vo > TEEX_CONFIG_VALUE_MAX)
        return teex_err_set(err, TEEX_ETOOBIG, "config line %d: value too long",
                            lineno);
      memcpy(value, q, vo);
    }
    value[vo] = '\0';
    int rc = put(c, key, value, 0, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "config line %d", lineno);
    p = eol + (eol < end);
  }
  return 0;
}

int teex_config_load(struct teex_config *c, const char *path,
                     struct teex_err *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return teex_err_set(err, errno == ENOENT ? TEEX_ENOTFOUND : TEEX_EIO,
                        "open config %s: %s", path, strerror(errno));
  char *text = malloc(TEEX_CONFIG_FILE_MAX + 1);
  if (text == NULL) {
    fclose(f);
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  }
  size_t n = fread(text, 1, TEEX_CONFIG_FILE_MAX + 1, f);
  int rc;
  if (ferror(f))
    rc = teex_err_set(err, TEEX_EIO, "read config %s", path);
  else
    rc = teex_config_parse(c, text, n, err);
  if (rc != 0 && rc != TEEX_EIO)
    teex_err_wrap(err, 0, "%s", path);
  free(text);
  fclose(f);
  return rc;
}

const char *teex_config_get(const struct teex_config *c, const char *key,
                            const char *def) {
  const struct teex_config_entry *e = find(c, key);
  return e ? e->value : def;
}

int teex_parse_u64(const char *s, uint64_t *out) {
  if (s == NULL || *s == '\0')
    return TEEX_EINVAL;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return TEEX_EINVAL;
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return TEEX_EINVAL;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int teex_config_get_u64(const struct teex_config *c, const char *key,
                        uint64_t def, uint64_t *out, struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (teex_parse_u64(v, out) != 0)
    return teex_err_set(err, TEEX_EINVAL, "config %s: not a number: \"%.64s\"",
                        key, v);
  return 0;
}

int teex_config_get_bool(const struct teex_config *c, const char *key, int def,
                         int *out, struct teex_err *err) {
  const char *v = teex_config_get(c, key, NULL);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
      !strcasecmp(v, "on")) {
    *out = 1;
    return 0;
  }
  if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
      !strcasecmp(v, "off")) {
    *out = 0;
    return 0;
  }
  return teex_err_set(err, TEEX_EINVAL, "config %s: not a boolean: \"%.64s\"",
                      key, v);
}
