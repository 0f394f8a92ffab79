/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The leg table of the superblock (doc/format.md, "The leg table"): each slot's recorded name
 * and last path, packed into the bytes after the roles table.  Used by the codec only.
 */
#ifndef FUSEMIRROR_SUPERBLOCK_NAMES_H
#define FUSEMIRROR_SUPERBLOCK_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "mirror/superblock.h"

/*
 * Pack the names and paths of sb's slots below num_legs into area (size bytes, zeroed by the
 * caller).  An empty slot, and a text that is not storable, is written as unknown; when the
 * table does not fit, the paths of the highest slots are dropped first, then their names.
 */
void superblock_names_encode(const struct superblock *sb, uint8_t *area, size_t size);

/*
 * Unpack area into sb's roles (num_legs must be valid).  NULL, or a one-line problem (g_free
 * it): a text not terminated within the table, too long, not UTF-8, with a control character,
 * or bytes after the table that are not zero.
 */
char *superblock_names_decode(const uint8_t *area, size_t size, struct superblock *sb);

#endif /* FUSEMIRROR_SUPERBLOCK_NAMES_H */
