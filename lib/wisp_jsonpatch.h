/* wisp_jsonpatch: the JSON Patch (RFC 6902) that turns one JSON document
 * into another, for the admission webhook's answer. Pure. The patch is
 * small for what inject does: keys added or removed, items inserted into an
 * array (before, after or between the items kept, as "add" at an index or
 * "-"), a value replaced; an array changed otherwise is replaced whole.
 * Paths are JSON Pointers (RFC 6901: "~" as "~0", "/" as "~1"). */
#ifndef WISP_JSONPATCH_H
#define WISP_JSONPATCH_H

#include <jansson.h>

/* A new array of patch operations (json_decref) that applied to |from|
 * gives |to|; empty when they are equal. Both are borrowed. */
json_t *wisp_jsonpatch_diff(const json_t *from, const json_t *to);

#endif
