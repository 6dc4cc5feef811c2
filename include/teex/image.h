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

#include "teex/error.h"

#define TEEX_IMAGE_NAME_MAX 64
#define TEEX_IMAGE_VERSION_MAX 32
#define TEEX_IMAGE_ENTRY_MAX 128
#define TEEX_IMAGE_DESC_MAX 1024
#define TEEX_IMAGE_PATH_MAX 255
#define TEEX_IMAGE_FILES_MAX 4096
#define TEEX_IMAGE_FILE_SIZE_MAX (8u * 1024 * 1024)
#define TEEX_IMAGE_TOTAL_MAX (64u * 1024 * 1024)

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

void teex_image_free(struct teex_image *img);

/* Finds a file by path; NULL if absent. Borrowed. */
const struct teex_image_file *teex_image_find(const struct teex_image *img,
                                              const char *path);

#endif
