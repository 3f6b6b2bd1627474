/* The libelf/gelf API as FerryELF sees it: elfutils' libelf on Linux,
 * the base system's libelf on FreeBSD; both provide these two headers. */
#ifndef FERRY_CLIBELF_SHIM_H
#define FERRY_CLIBELF_SHIM_H

#include <libelf.h>
#include <gelf.h>

#endif
