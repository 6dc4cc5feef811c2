/* Service images: a service folder (manifest + Python modules) packed into a
 * deterministic archive, optionally encrypted to a recipient key.
 *
 * This header is the contract between the image module (src/image/: pack,
 * parse, validate, encrypt) and the executor (src/executor/), which loads an
 * image from memory only. */
#ifndef TEEX_IMAGE_H
#define TEEX_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"

#define TEEX_IMAGE_NAME_MAX 64
#define TEEX_IMAGE_VERSION_MAX 32
#define TEEX_IMAGE_ENTRY_MAX 128
#define TEEX_IMAGE_DESC_MAX 1024
#define TEEX_IMAGE_PATH_MAX 255
#define TEEX_IMAGE_FILES_MAX 4096
#define TEEX_IMAGE_FILE_SIZE_MAX (8u * 1024 * 1024)
#define TEEX_IMAGE_TOTAL_MAX (64u * 1024 * 1024)
#define TEEX_IMAGE_MANIFEST_MAX (16u * 1024) /* canonical manifest text */
/* Largest archive: every byte above plus the framing (see
 * docs/internals/image.md). A longer input is refused before parsing. */
#define TEEX_IMAGE_ARCHIVE_MAX                                                 \
  (TEEX_IMAGE_TOTAL_MAX + TEEX_IMAGE_MANIFEST_MAX +                            \
   TEEX_IMAGE_FILES_MAX * (TEEX_IMAGE_PATH_MAX + 6u) + 64u)
/* Manifest value bounds (0 always means "the executor's default"). */
#define TEEX_LIMIT_CPU_MS_MAX (3600u * 1000)  /* one hour of CPU */
#define TEEX_LIMIT_WALL_MS_MAX (3600u * 1000) /* one hour */
#define TEEX_LIMIT_MEMORY_MB_MAX (64u * 1024) /* 64 GiB */
#define TEEX_LIMIT_MEMORY_MB_MIN 32u          /* CPython needs this much */
#define TEEX_LIMIT_OUTPUT_MAX (64u * 1024 * 1024)
#define TEEX_LIMIT_THREADS_MAX 256u

/* The manifest's file name at the root of a service folder. */
#define TEEX_IMAGE_MANIFEST_FILE "teex.toml"
/* The only Python version a manifest may ask for in this release. */
#define TEEX_IMAGE_PYTHON "3.11"

enum teex_service_style {
  TEEX_STYLE_FUNCTION = 0, /* entry module defines main(input) */
  TEEX_STYLE_SCRIPT = 1,   /* TEEX TestNet style: top-level code */
};

/* Resource limits from the manifest (0 = the executor's default). */
struct teex_limits {
  uint32_t cpu_ms;       /* CPU time per task */
  uint32_t wall_ms;      /* wall-clock deadline per task */
  uint32_t memory_mb;    /* address space per task */
  uint32_t output_bytes; /* result + logs + error text per task */
  uint32_t threads;      /* threads a task may create */
};

struct teex_manifest {
  char name[TEEX_IMAGE_NAME_MAX + 1];
  char version[TEEX_IMAGE_VERSION_MAX + 1];
  char entry[TEEX_IMAGE_ENTRY_MAX + 1]; /* module path, e.g. "main.py" */
  char description[TEEX_IMAGE_DESC_MAX + 1];
  char python[8]; /* "3.11" */
  enum teex_service_style style;
  int stateless;       /* no teex.kv writes, no side output */
  int full_tracebacks; /* provider opts in to source lines in errors */
  struct teex_limits limits;
};

struct teex_image_file {
  char *path;    /* relative, '/'-separated, no "..", sorted in the image */
  uint8_t *data; /* file contents */
  size_t len;
};

/* A decoded image in memory. Owned by whoever created it; free with
 * teex_image_free. */
struct teex_image {
  struct teex_manifest manifest;
  struct teex_image_file *files;
  size_t nfiles;
  uint8_t hash[32]; /* SHA-256 of the packed archive bytes: the image hash */
};

/* Frees a heap-allocated image: wipes and frees every file's path and data,
 * the file array, and img itself. NULL-safe. */
void teex_image_free(struct teex_image *img);

/* Finds a file by exact path ("pkg/mod.py"); NULL if absent. Borrowed: valid
 * until img is freed. Binary search over the sorted files of a parsed image,
 * with a linear fallback for hand-built unsorted ones. */
const struct teex_image_file *teex_image_find(const struct teex_image *img,
                                              const char *path);

/* ---- manifest (src/image/manifest.c) ---- */

/* Parses and strictly validates teex.toml text (see docs/writing-a-service.md
 * for the fields): every unknown section or key, missing required field,
 * value out of range or of the wrong form is TEEX_EINVAL with the field named
 * in err ("manifest service.name: ..."); syntax errors are TEEX_EFORMAT with
 * the line. m is fully overwritten. */
int teex_manifest_parse(const char *text, size_t len, struct teex_manifest *m,
                        struct teex_err *err);

/* Appends the canonical text of m to out: fixed key order, every field
 * written, strings quoted. Parsing it gives back m; the same m always gives
 * the same bytes (this text is what an archive stores). TEEX_ETOOBIG /
 * TEEX_ENOMEM from out. */
int teex_manifest_format(const struct teex_manifest *m, struct teex_buf *out);

/* ---- archive (src/image/archive.c) ----
 * Format "TEEXIMG1": magic, manifest, files sorted by path, no timestamps,
 * owners or modes; byte by byte in docs/internals/image.md. One image has
 * exactly one encoding, so the SHA-256 of the bytes identifies it. */

/* Checks a file path inside an image: 1..TEEX_IMAGE_PATH_MAX bytes of
 * '/'-separated components of [A-Za-z0-9._-], none empty, none starting with
 * '.'. 0 or TEEX_EINVAL with the reason in err. */
int teex_image_check_path(const char *path, size_t len, struct teex_err *err);

/* Encodes img (manifest + files, which must be sorted by strcmp without
 * duplicates and within the limits) into a fresh malloc'd archive;
 * sets img->hash. The caller frees *out with teex_image_bytes_free.
 * TEEX_EINVAL (unsorted, bad path, over a limit), TEEX_ENOMEM. */
int teex_image_encode(struct teex_image *img, uint8_t **out, size_t *out_len,
                      struct teex_err *err);

/* Parses an archive into a new image (heap; free with teex_image_free),
 * checking every length against the TEEX_IMAGE_* limits before allocating,
 * the paths, their order, the manifest and that the entry point is present.
 * Sets hash. Does not compile the Python (see teex_image_check_python).
 * TEEX_EFORMAT (not an image, bad framing), TEEX_EVERSION, TEEX_ETRUNC,
 * TEEX_ETOOBIG, TEEX_EINVAL (bad manifest or path), TEEX_ENOMEM. */
int teex_image_parse(const uint8_t *archive, size_t len,
                     struct teex_image **out, struct teex_err *err);

/* SHA-256 of archive bytes (the image hash), and its lower-case hex form. */
void teex_image_hash(const uint8_t *archive, size_t len, uint8_t hash[32]);
void teex_image_hash_hex(const uint8_t hash[32], char out[65]);

/* Wipes and frees bytes returned by this module (archives, plaintexts,
 * ciphertexts). NULL-safe. */
void teex_image_bytes_free(uint8_t *p, size_t len);

/* ---- packing a folder (src/image/pack.c) ---- */

/* Reads DIR (teex.toml + files), validates everything and returns the image
 * (heap, hash set) and, when archive is not NULL, its archive bytes (free
 * with teex_image_bytes_free). Skipped: names starting with '.', __pycache__
 * folders, *.pyc files. Symlinks: a link to a regular file inside DIR is
 * stored as a copy under the link's own path; a link that leaves DIR, a
 * dangling link and a link to a folder are errors. Errors name the file:
 * TEEX_ENOTFOUND (no teex.toml, entry point missing), TEEX_EINVAL (manifest
 * field, path, symlink, Python syntax with file and line, file type),
 * TEEX_ETOOBIG (file, total, count), TEEX_EIO. Compiles every .py file with
 * the embedded CPython in a forked child (never running it): call from a
 * single-threaded process. */
int teex_image_pack(const char *dir, struct teex_image **img, uint8_t **archive,
                    size_t *archive_len, struct teex_err *err);

/* Compiles every *.py file of img with the embedded CPython 3.11 (in a
 * forked child; nothing is executed) and reports the first syntax error as
 * "path:line:col: message" (TEEX_EINVAL). TEEX_EINTERNAL when the checker
 * itself could not run. */
int teex_image_check_python(const struct teex_image *img, struct teex_err *err);

/* Loads an image for running: DIR is packed (as teex_image_pack); a file is
 * read (at most the largest encrypted image) and, when it is encrypted,
 * decrypted in memory with key (32-byte image key; NULL: an encrypted file
 * is TEEX_EPERM "encrypted image: a key is needed"), then parsed. */
int teex_image_load(const char *path, const uint8_t *key,
                    struct teex_image **img, struct teex_err *err);

/* ---- encryption (src/image/seal.c) ----
 * Chunked XChaCha20-Poly1305 under a per-file content key derived with
 * HKDF-SHA256 from the image key (symmetric mode) or from an X25519 shared
 * secret with an ephemeral key (recipient mode). Every chunk authenticates
 * the whole header, its index and a final flag, so a tampered, truncated,
 * extended, reordered or re-headed ciphertext is refused with TEEX_EAUTH.
 * Layout in docs/internals/image.md. */

#define TEEX_IMAGE_KEY_LEN 32
#define TEEX_IMAGE_ENC_CHUNK (64u * 1024)
#define TEEX_IMAGE_ENC_CHUNK_MIN 1024u
#define TEEX_IMAGE_ENC_CHUNK_MAX (1024u * 1024)
#define TEEX_IMAGE_ENC_MODE_KEY 1       /* symmetric image key */
#define TEEX_IMAGE_ENC_MODE_RECIPIENT 2 /* X25519 recipient public key */
#define TEEX_IMAGE_ENC_HEADER_MAX 96
/* Largest ciphertext accepted: a maximal archive in minimal chunks. */
#define TEEX_IMAGE_ENC_MAX                                                     \
  (TEEX_IMAGE_ENC_HEADER_MAX + TEEX_IMAGE_ARCHIVE_MAX +                        \
   (TEEX_IMAGE_ARCHIVE_MAX / TEEX_IMAGE_ENC_CHUNK_MIN + 1) * 16u)

struct teex_image_enc_header {
  uint8_t mode;          /* TEEX_IMAGE_ENC_MODE_* */
  uint32_t chunk_size;   /* plaintext bytes per chunk (last may be shorter) */
  uint64_t plain_len;    /* archive length */
  uint8_t salt[32];      /* random per encryption: HKDF salt */
  uint8_t ephemeral[32]; /* recipient mode: the sender's ephemeral X25519 */
  size_t header_len;     /* bytes of header before the first chunk */
};

/* 1 when p starts with the encrypted-image magic. */
int teex_image_is_encrypted(const uint8_t *p, size_t len);

/* Parses and bounds-checks the header of an encrypted image (no key needed,
 * nothing authenticated yet). TEEX_EFORMAT, TEEX_EVERSION, TEEX_ETRUNC,
 * TEEX_ETOOBIG (plain_len past TEEX_IMAGE_ARCHIVE_MAX), TEEX_EAUTH (total
 * length does not match the header: truncated or extended). */
int teex_image_enc_header_parse(const uint8_t *p, size_t len,
                                struct teex_image_enc_header *h,
                                struct teex_err *err);

/* Encrypts pt under a 32-byte image key. *out is malloc'd (free with
 * teex_image_bytes_free). TEEX_ETOOBIG past TEEX_IMAGE_ARCHIVE_MAX,
 * TEEX_ENOMEM. */
int teex_image_encrypt(const uint8_t key[32], const uint8_t *pt, size_t len,
                       uint8_t **out, size_t *out_len, struct teex_err *err);

/* Decrypts in memory; *out (malloc'd, free with teex_image_bytes_free) is
 * set only when every chunk authenticated. TEEX_EAUTH (wrong key, tampered,
 * truncated, reordered, re-headed), TEEX_EFORMAT / TEEX_EVERSION (not an
 * encrypted image), TEEX_EPERM (recipient-mode file: needs the secret key),
 * TEEX_ENOMEM. */
int teex_image_decrypt(const uint8_t key[32], const uint8_t *ct, size_t len,
                       uint8_t **out, size_t *out_len, struct teex_err *err);

/* Recipient mode: encrypts pt to an X25519 public key (a fresh ephemeral key
 * per call). TEEX_ECRYPTO for a low-order public key. */
int teex_image_seal(const uint8_t recipient_pk[32], const uint8_t *pt,
                    size_t len, uint8_t **out, size_t *out_len,
                    struct teex_err *err);

/* Recipient mode decryption with the X25519 secret key; errors as
 * teex_image_decrypt (TEEX_EPERM for a symmetric-mode file). */
int teex_image_open(const uint8_t recipient_sk[32], const uint8_t *ct,
                    size_t len, uint8_t **out, size_t *out_len,
                    struct teex_err *err);

#endif
