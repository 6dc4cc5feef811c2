/* Service images in memory: lifetime and lookup. The archive codec is in
 * archive.c, packing in pack.c, encryption in seal.c. */
#include <stdlib.h>
#include <string.h>

#include "teex/image.h"
#include "teex/mem.h"

void teex_image_free(struct teex_image *img) {
  if (img == NULL)
    return;
  for (size_t i = 0; i < img->nfiles; i++) {
    struct teex_image_file *f = &img->files[i];
    /* The code of a confidential service: wipe it before release. */
    if (f->data != NULL)
      teex_wipe(f->data, f->len);
    free(f->data);
    free(f->path);
  }
  free(img->files);
  teex_wipe(img, sizeof(*img));
  free(img);
}

const struct teex_image_file *teex_image_find(const struct teex_image *img,
                                              const char *path) {
  if (img == NULL || path == NULL)
    return NULL;
  /* Files are sorted by byte-wise strcmp in a parsed image: binary search. */
  size_t lo = 0, hi = img->nfiles;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(path, img->files[mid].path);
    if (c == 0)
      return &img->files[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  /* An image assembled by hand may be unsorted: fall back to a scan. */
  for (size_t i = 0; i < img->nfiles; i++)
    if (strcmp(path, img->files[i].path) == 0)
      return &img->files[i];
  return NULL;
}
