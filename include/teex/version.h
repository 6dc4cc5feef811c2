/* The teex release version. */
#ifndef TEEX_VERSION_H
#define TEEX_VERSION_H

/* "0.1.0": the version of libteex this program was built from. */
const char *teex_version(void);

#endif
