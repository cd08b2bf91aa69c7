/* yaml_json: a JSON value (jansson) as a libyaml document tree and back,
 * losslessly, so that the admission webhook can run inject's YAML code path
 * on the Pod of an AdmissionReview. Strings become double-quoted scalars
 * (never read as numbers or booleans); numbers, true, false and null plain
 * ones. Back, a scalar that is not plain is a string; a plain one is read as
 * YAML 1.1 would (null, ~, true/false/yes/no/on/off, integers, floats),
 * else a string: what inject adds (ports, booleans, "1337" quoted) comes out
 * as kubectl would read wispctl inject's output. Integers stay integers,
 * reals stay reals (printed with 17 digits and a '.'). */
#ifndef WISP_WISPCTL_YAML_JSON_H
#define WISP_WISPCTL_YAML_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <yaml.h>

#include "lib/wisp_err.h"

/* Fills the empty document |d| (yaml_document_initialize'd) with |v|, its
 * root node 1. WISP_ERR_TOO_BIG if |v| nests deeper than |max_depth|. */
wisp_err wispctl_yaml_from_json(yaml_document_t *d, const json_t *v, size_t max_depth) WISP_MUST_CHECK;

/* Node |id| of |d| as a new JSON value (json_decref); NULL for a mapping
 * key that is not a scalar, an alias loop or more than |max_depth| levels. */
json_t *wispctl_yaml_to_json(yaml_document_t *d, int id, size_t max_depth);

#endif
