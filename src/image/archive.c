/* The image archive: one canonical byte encoding of (manifest, files).
 *
 *   magic "TEEXIMG\0" | u32 version = 1 | u32 manifest_len | manifest
 *   | u32 file_count | file_count x (u16 path_len | path | u32 len | data)
 *
 * Integers are big-endian. Files are sorted by byte-wise path order with no
 * duplicates; the manifest is in canonical form; nothing follows the last
 * file. The parser refuses anything else, so equal images have equal bytes
 * and the SHA-256 of the bytes is the image's identity. */
#include <stdlib.h>
#include <string.h>

#include "image/image_internal.h"
#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"

static const uint8_t magic[8] = {'T', 'E', 'E', 'X', 'I', 'M', 'G', 0};
#define ARCHIVE_VERSION 1u

int teex_image_path_cmp(const void *a, const void *b) {
  const struct teex_image_file *fa = a, *fb = b;
  return strcmp(fa->path, fb->path);
}

static int path_char_ok(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

int teex_image_check_path(const char *path, size_t len, struct teex_err *err) {
  if (len == 0)
    return teex_err_set(err, TEEX_EINVAL, "empty path");
  if (len > TEEX_IMAGE_PATH_MAX)
    return teex_err_set(err, TEEX_EINVAL, "path of %zu bytes, at most %d", len,
                        TEEX_IMAGE_PATH_MAX);
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && path[i] != '/') {
      if (!path_char_ok(path[i]))
        return teex_err_set(
            err, TEEX_EINVAL,
            "path \"%.*s...\": byte 0x%02x at %zu not allowed (paths use "
            "A-Z a-z 0-9 . _ - and '/')",
            (int)(i > 100 ? 100 : i), path, (unsigned char)path[i], i);
      continue;
    }
    if (i == start)
      return teex_err_set(err, TEEX_EINVAL, "path \"%.*s\": empty component",
                          (int)(i > 100 ? 100 : i), path);
    if (path[start] == '.')
      return teex_err_set(err, TEEX_EINVAL,
                          "path \"%.*s\": a component starts with '.'",
                          (int)(i > 100 ? 100 : i), path);
    start = i + 1;
  }
  return 0;
}

void teex_image_hash(const uint8_t *archive, size_t len, uint8_t hash[32]) {
  teex_sha256(archive, len, hash);
}

void teex_image_hash_hex(const uint8_t hash[32], char out[65]) {
  teex_hex_encode(hash, 32, out);
}

void teex_image_bytes_free(uint8_t *p, size_t len) {
  if (p == NULL)
    return;
  teex_wipe(p, len);
  free(p);
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

int teex_image_encode(struct teex_image *img, uint8_t **out, size_t *out_len,
                      struct teex_err *err) {
  *out = NULL;
  *out_len = 0;
  struct teex_buf man;
  teex_buf_init(&man, TEEX_IMAGE_MANIFEST_MAX, 0);
  int rc = teex_manifest_format(&img->manifest, &man);
  if (rc != 0) {
    teex_buf_free(&man);
    return teex_err_set(err, rc, "encode image: manifest too long");
  }
  if (img->nfiles == 0 || img->nfiles > TEEX_IMAGE_FILES_MAX) {
    rc = teex_err_set(err, TEEX_EINVAL, "encode image: %zu files (1..%d)",
                      img->nfiles, TEEX_IMAGE_FILES_MAX);
    goto fail_after_man;
  }
  size_t total = 0, size = 8 + 4 + 4 + man.len + 4;
  for (size_t i = 0; i < img->nfiles; i++) {
    const struct teex_image_file *f = &img->files[i];
    size_t plen = strlen(f->path);
    if ((rc = teex_image_check_path(f->path, plen, err)) != 0) {
      teex_err_wrap(err, 0, "encode image");
      goto fail_after_man;
    }
    if (i > 0 && strcmp(img->files[i - 1].path, f->path) >= 0) {
      rc = teex_err_set(err, TEEX_EINVAL,
                        "encode image: files not sorted or duplicate at "
                        "\"%.100s\"",
                        f->path);
      goto fail_after_man;
    }
    if (f->len > TEEX_IMAGE_FILE_SIZE_MAX ||
        total + f->len > TEEX_IMAGE_TOTAL_MAX) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "encode image: size limit at %s",
                        f->path);
      goto fail_after_man;
    }
    total += f->len;
    size += 2 + plen + 4 + f->len;
  }
  uint8_t *a = malloc(size);
  if (a == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "encode image");
    goto fail_after_man;
  }
  uint8_t *p = a;
  memcpy(p, magic, 8);
  put_u32(p + 8, ARCHIVE_VERSION);
  put_u32(p + 12, (uint32_t)man.len);
  p += 16;
  memcpy(p, man.data, man.len);
  p += man.len;
  put_u32(p, (uint32_t)img->nfiles);
  p += 4;
  for (size_t i = 0; i < img->nfiles; i++) {
    const struct teex_image_file *f = &img->files[i];
    size_t plen = strlen(f->path);
    p[0] = (uint8_t)(plen >> 8);
    p[1] = (uint8_t)plen;
    memcpy(p + 2, f->path, plen);
    p += 2 + plen;
    put_u32(p, (uint32_t)f->len);
    if (f->len > 0)
      memcpy(p + 4, f->data, f->len);
    p += 4 + f->len;
  }
  teex_image_hash(a, size, img->hash);
  *out = a;
  *out_len = size;
  rc = 0;
fail_after_man:
  teex_buf_free(&man);
  return rc;
}

/* A bounded reader over the archive: every take checks what remains. */
struct rd {
  const uint8_t *p;
  size_t left;
};

static const uint8_t *take(struct rd *r, size_t n) {
  if (n > r->left)
    return NULL;
  const uint8_t *q = r->p;
  r->p += n;
  r->left -= n;
  return q;
}

int teex_image_parse(const uint8_t *archive, size_t len,
                     struct teex_image **out, struct teex_err *err) {
  *out = NULL;
  int rc;
  if (len > TEEX_IMAGE_ARCHIVE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "image: %zu bytes, at most %u", len,
                        TEEX_IMAGE_ARCHIVE_MAX);
  struct rd r = {archive, len};
  const uint8_t *h = take(&r, 16);
  if (h == NULL || memcmp(h, magic, 8) != 0)
    return teex_err_set(err,
                        h == NULL && len > 0 && len < 8 &&
                                memcmp(archive, magic, len) == 0
                            ? TEEX_ETRUNC
                            : TEEX_EFORMAT,
                        "image: not a teex image archive (bad magic)");
  if (get_u32(h + 8) != ARCHIVE_VERSION)
    return teex_err_set(err, TEEX_EVERSION,
                        "image: archive version %u, this teex reads %u",
                        get_u32(h + 8), ARCHIVE_VERSION);
  uint32_t mlen = get_u32(h + 12);
  if (mlen == 0 || mlen > TEEX_IMAGE_MANIFEST_MAX)
    return teex_err_set(err, TEEX_EFORMAT, "image: manifest length %u", mlen);
  const uint8_t *mtext = take(&r, mlen);
  if (mtext == NULL)
    return teex_err_set(err, TEEX_ETRUNC, "image: truncated in manifest");

  struct teex_image *img = calloc(1, sizeof *img);
  if (img == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "image");
  rc = teex_manifest_parse((const char *)mtext, mlen, &img->manifest, err);
  if (rc != 0) {
    teex_err_wrap(err, 0, "image");
    goto fail_after_img;
  }
  /* Only the canonical text is accepted: one image, one encoding. */
  struct teex_buf canon;
  teex_buf_init(&canon, TEEX_IMAGE_MANIFEST_MAX, 0);
  rc = teex_manifest_format(&img->manifest, &canon);
  int canonical =
      rc == 0 && canon.len == mlen && memcmp(canon.data, mtext, mlen) == 0;
  teex_buf_free(&canon);
  if (!canonical) {
    rc = teex_err_set(err, TEEX_EFORMAT,
                      "image: manifest is not in canonical form");
    goto fail_after_img;
  }

  const uint8_t *cnt = take(&r, 4);
  if (cnt == NULL) {
    rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated before file count");
    goto fail_after_img;
  }
  uint32_t nfiles = get_u32(cnt);
  if (nfiles == 0 || nfiles > TEEX_IMAGE_FILES_MAX) {
    rc = teex_err_set(err, nfiles == 0 ? TEEX_EFORMAT : TEEX_ETOOBIG,
                      "image: %u files (1..%d)", nfiles, TEEX_IMAGE_FILES_MAX);
    goto fail_after_img;
  }
  /* Each file takes at least 7 bytes: refuse counts the input cannot hold
   * before allocating the array. */
  if ((size_t)nfiles * 7 > r.left) {
    rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated (%u files announced)",
                      nfiles);
    goto fail_after_img;
  }
  img->files = calloc(nfiles, sizeof *img->files);
  if (img->files == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "image");
    goto fail_after_img;
  }
  size_t total = 0;
  for (uint32_t i = 0; i < nfiles; i++) {
    const uint8_t *pl = take(&r, 2);
    if (pl == NULL) {
      rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated at file %u", i);
      goto fail_after_img;
    }
    size_t plen = ((size_t)pl[0] << 8) | pl[1];
    const uint8_t *path = take(&r, plen);
    if (path == NULL) {
      rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated in path %u", i);
      goto fail_after_img;
    }
    if ((rc = teex_image_check_path((const char *)path, plen, err)) != 0) {
      rc = teex_err_wrap(err, TEEX_EFORMAT, "image: file %u", i);
      goto fail_after_img;
    }
    const uint8_t *dl = take(&r, 4);
    if (dl == NULL) {
      rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated at file %u", i);
      goto fail_after_img;
    }
    uint32_t dlen = get_u32(dl);
    if (dlen > TEEX_IMAGE_FILE_SIZE_MAX ||
        total + dlen > TEEX_IMAGE_TOTAL_MAX) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "image: file %.*s too large (%u)",
                        (int)plen, (const char *)path, dlen);
      goto fail_after_img;
    }
    const uint8_t *data = take(&r, dlen);
    if (data == NULL) {
      rc = teex_err_set(err, TEEX_ETRUNC, "image: truncated in %.*s", (int)plen,
                        (const char *)path);
      goto fail_after_img;
    }
    total += dlen;
    struct teex_image_file *f = &img->files[i];
    f->path = malloc(plen + 1);
    f->data = malloc(dlen ? dlen : 1);
    img->nfiles = i + 1; /* so teex_image_free releases this entry */
    if (f->path == NULL || f->data == NULL) {
      rc = teex_err_set(err, TEEX_ENOMEM, "image");
      goto fail_after_img;
    }
    memcpy(f->path, path, plen);
    f->path[plen] = '\0';
    if (dlen)
      memcpy(f->data, data, dlen);
    f->len = dlen;
    if (i > 0 && strcmp(img->files[i - 1].path, f->path) >= 0) {
      rc = teex_err_set(err, TEEX_EFORMAT,
                        "image: files out of order or duplicated at %s",
                        f->path);
      goto fail_after_img;
    }
  }
  if (r.left != 0) {
    rc = teex_err_set(err, TEEX_EFORMAT, "image: %zu trailing bytes", r.left);
    goto fail_after_img;
  }
  if (teex_image_find(img, img->manifest.entry) == NULL) {
    rc = teex_err_set(err, TEEX_EINVAL,
                      "image: entry point %s is not in the image",
                      img->manifest.entry);
    goto fail_after_img;
  }
  teex_image_hash(archive, len, img->hash);
  *out = img;
  return 0;
fail_after_img:
  teex_image_free(img);
  return rc;
}
