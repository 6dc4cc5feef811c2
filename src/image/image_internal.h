/* Helpers shared by the files of the image module. */
#ifndef TEEX_IMAGE_INTERNAL_H
#define TEEX_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* 1 when p[0..n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing past U+10FFFF). */
int teex_image_utf8_valid(const uint8_t *p, size_t n);

/* Byte-wise path order used inside archives (strcmp on NUL-free paths). */
int teex_image_path_cmp(const void *a, const void *b);

#endif
