/* Configuration from a file plus command-line flags.
 *
 * File format (a small INI/TOML subset): `# comment`, `[section]`, and
 * `key = value` lines; a value may be "double quoted" (with \" and \\
 * escapes). Keys are addressed as "section.key" (or "key" before any
 * section). Flags given with teex_config_set override the file. Limits:
 * 64 KiB per file, 256 entries, keys of 127 bytes, values of 4 KiB. */
#ifndef TEEX_CONFIG_H
#define TEEX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"

#define TEEX_CONFIG_FILE_MAX (64 * 1024)
#define TEEX_CONFIG_ENTRIES_MAX 256
#define TEEX_CONFIG_KEY_MAX 127
#define TEEX_CONFIG_VALUE_MAX 4096

struct teex_config_entry {
  char *key;
  char *value;
  int from_flag;
};

struct teex_config {
  struct teex_config_entry *entries;
  size_t count;
};

void teex_config_init(struct teex_config *c);
void teex_config_free(struct teex_config *c);

/* Parses text (len bytes, need not be NUL-terminated) into c; entries set by
 * flags are not overridden. Errors name the line: TEEX_EFORMAT, TEEX_ETOOBIG.
 */
int teex_config_parse(struct teex_config *c, const char *text, size_t len,
                      struct teex_err *err);

/* Reads and parses a file. TEEX_EIO / TEEX_ENOTFOUND plus parse errors. */
int teex_config_load(struct teex_config *c, const char *path,
                     struct teex_err *err);

/* Sets key to value (a flag: later file loads do not override it). */
int teex_config_set(struct teex_config *c, const char *key, const char *value,
                    struct teex_err *err);

/* The value of key, or def when absent. Borrowed; valid until c changes. */
const char *teex_config_get(const struct teex_config *c, const char *key,
                            const char *def);

/* Typed getters: TEEX_EINVAL (with the key named in err) when the value is
 * present but not a valid number/boolean; *out = def when absent. */
int teex_config_get_u64(const struct teex_config *c, const char *key,
                        uint64_t def, uint64_t *out, struct teex_err *err);
int teex_config_get_bool(const struct teex_config *c, const char *key, int def,
                         int *out, struct teex_err *err);

/* Strict decimal parse of a whole string into a u64 (no sign, no spaces,
 * no overflow). The replacement for atoi/strtoul everywhere in teex. */
int teex_parse_u64(const char *s, uint64_t *out);

#endif
