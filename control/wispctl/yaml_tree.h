/* yaml_tree: small helpers over a libyaml document tree (yaml_document_t, as
 * yaml_parser_load makes it and yaml_emitter_dump writes it): look values up
 * in mappings, build scalars, mappings and sequences, put a key, prepend to
 * a sequence, measure the nesting.
 *
 * Nodes are named by libyaml's ids (1-based; 0 means none). Adding a node
 * may move every yaml_node_t, so callers hold ids, never node pointers,
 * across an add. libyaml running out of memory is fatal, here, in one place
 * (as wisp_malloc is for ours). */
#ifndef WISP_WISPCTL_YAML_TREE_H
#define WISP_WISPCTL_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

/* One entry of a mapping to build; a |value| of 0 leaves the entry out. */
typedef struct {
  const char *key;
  int value;
} wispctl_yaml_kv;

/* The node |id| if it is of type |type|, else NULL. Borrowed, and only
 * until the next add. */
yaml_node_t *wispctl_yaml_node(yaml_document_t *d, int id, yaml_node_type_t type);
/* The value of scalar |id|, or NULL if it is not a scalar. */
const char *wispctl_yaml_str(yaml_document_t *d, int id);
/* Whether |id| is a plain scalar meaning true (true, yes, on; any case). */
bool wispctl_yaml_is_true(yaml_document_t *d, int id);
/* Whether scalar |id| says "nothing": "key:", "key: null", "key: ~", "key: ''". */
bool wispctl_yaml_is_null(yaml_document_t *d, int id);
/* The value of |key| in mapping |map|; 0 if |map| is not a mapping or has no
 * such key. */
int wispctl_yaml_get(yaml_document_t *d, int map, const char *key);
/* Follows the NULL-terminated |keys| from |node|; 0 where the path ends. */
int wispctl_yaml_path(yaml_document_t *d, int node, const char *const *keys);

/* A string scalar: plain, or double-quoted where a YAML reader would
 * otherwise take it for a number, boolean or null ("1337", "true", ""). */
int wispctl_yaml_add_str(yaml_document_t *d, const char *s);
/* A plain scalar that is meant to be read as a number or boolean. */
int wispctl_yaml_add_plain(yaml_document_t *d, const char *s);
int wispctl_yaml_add_int(yaml_document_t *d, long n);
/* A block mapping of |kv| (until a NULL key), in order. */
int wispctl_yaml_add_map(yaml_document_t *d, const wispctl_yaml_kv *kv);
/* A block sequence of |items| (until a 0). */
int wispctl_yaml_add_seq(yaml_document_t *d, const int *items);
#define WISPCTL_YAML_MAP(d, ...) wispctl_yaml_add_map((d), (const wispctl_yaml_kv[]){__VA_ARGS__, {NULL, 0}})
#define WISPCTL_YAML_SEQ(d, ...) wispctl_yaml_add_seq((d), (const int[]){__VA_ARGS__, 0})

/* Appends |item| to sequence |seq|. */
void wispctl_yaml_append(yaml_document_t *d, int seq, int item);
/* Puts |items| (|n| of them), in order, before the first item of |seq|. */
void wispctl_yaml_prepend(yaml_document_t *d, int seq, const int *items, size_t n);
/* Sets |key| of mapping |map| to |value|: replaces the value if the key is
 * there, else appends the pair. */
void wispctl_yaml_put(yaml_document_t *d, int map, const char *key, int value);
/* The collection of |type| (mapping or sequence) under |key| of |map|,
 * created (or put in place of a null or empty value) if missing, and set to
 * block style so that what is added reads like the rest of a manifest.
 * 0 if the key holds something else. */
int wispctl_yaml_want(yaml_document_t *d, int map, const char *key, yaml_node_type_t type);

/* Sets mapping or sequence |id| to block style (the emitter writes a block
 * collection inside a flow one as flow: set its parents too). */
void wispctl_yaml_set_block(yaml_document_t *d, int id);

/* How deeply the document nests (a lone scalar is 1). yaml_emitter_dump
 * recurses once per level, so a caller bounds this before dumping. */
size_t wispctl_yaml_depth(yaml_document_t *d);

#endif
