/* wisp_policy_internal: the compiled model shared by the three files of
 * //lib:policy. wisp_policy_parse.c turns YAML into it, wisp_policy.c owns
 * it and builds views, wisp_policy_eval.c matches requests against it.
 * Not a public header: only those files include it. */
#ifndef WISP_POLICY_INTERNAL_H
#define WISP_POLICY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_policy.h"

/* ---- arena: everything of a policy or view lives in one, freed at once -- */

typedef struct wp_chunk wp_chunk;

typedef struct {
  wp_chunk *head;
} wp_arena;

/* Returns |n| zeroed bytes aligned for any type. Out of memory is fatal. */
void *wp_alloc(wp_arena *a, size_t n);
char *wp_strndup(wp_arena *a, const char *s, size_t len);
void wp_arena_free(wp_arena *a);

/* ---- the compiled model ---------------------------------------------- */

typedef struct {
  const char *s; /* NUL-terminated too, for logs */
  uint32_t len;
} wp_str;

/* A set of string patterns: "*" (any), exact, "prefix*", "*suffix". Exact
 * strings are sorted by (length, bytes) for binary search. */
typedef struct {
  bool any;
  uint32_t n_exact, n_prefix, n_suffix;
  const wp_str *exact;
  const wp_str *prefix; /* without the '*' */
  const wp_str *suffix; /* without the '*' */
} wp_strset;

/* Bits for the common methods; others are kept as strings. */
enum {
  WP_GET = 1u << 0,
  WP_HEAD = 1u << 1,
  WP_POST = 1u << 2,
  WP_PUT = 1u << 3,
  WP_DELETE = 1u << 4,
  WP_CONNECT = 1u << 5,
  WP_OPTIONS = 1u << 6,
  WP_TRACE = 1u << 7,
  WP_PATCH = 1u << 8,
};

typedef struct {
  uint32_t mask;
  uint32_t n_other;
  const wp_str *other; /* sorted as in wp_strset */
} wp_methodset;

typedef struct {
  uint32_t n;
  const uint16_t *ports; /* sorted, unique */
} wp_portset;

/* Which fields a from/to entry gives (an entry gives at least one). */
enum {
  WP_F_PRINCIPALS = 1u << 0,
  WP_F_NOT_PRINCIPALS = 1u << 1,
  WP_F_NAMESPACES = 1u << 2,
  WP_F_NOT_NAMESPACES = 1u << 3,
};

enum {
  WP_T_METHODS = 1u << 0,
  WP_T_NOT_METHODS = 1u << 1,
  WP_T_PATHS = 1u << 2,
  WP_T_NOT_PATHS = 1u << 3,
  WP_T_PORTS = 1u << 4,
  WP_T_NOT_PORTS = 1u << 5,
  WP_T_HTTP = WP_T_METHODS | WP_T_NOT_METHODS | WP_T_PATHS | WP_T_NOT_PATHS,
};

typedef struct {
  uint32_t fields;
  wp_strset principals, not_principals, namespaces, not_namespaces;
} wp_from;

typedef struct {
  uint32_t fields;
  wp_methodset methods, not_methods;
  wp_strset paths, not_paths;
  wp_portset ports, not_ports;
} wp_to;

typedef struct {
  uint32_t n_from, n_to; /* 0: any */
  const wp_from *from;
  const wp_to *to;
} wp_rule;

/* What a policy selects: workloads in namespace |ns|, with service account
 * |sa| unless it is NULL. */
typedef struct {
  wp_str ns;
  wp_str sa; /* .s NULL: any service account */
} wp_selector;

typedef struct {
  const char *qname; /* "namespace/name" */
  wp_selector sel;
  bool deny;
  uint32_t doc; /* 1-based document index */
  uint32_t n_rules;
  const wp_rule *rules;
} wp_authz;

typedef struct {
  const char *qname;
  wp_selector sel;
  wisp_mtls_mode mode;
  uint32_t doc;
} wp_peer;

/* A Destination document: the identity the sidecar at these addresses
 * must present (transparent mode). Its addresses are entries of
 * wisp_policy.dests, from |first| on. */
typedef struct {
  const char *qname;
  const char *spiffe_id;
  uint32_t doc;
  uint32_t first, n_addrs;
} wp_dest;

/* One address of a Destination, with where it was written (to name both
 * places when two documents map one address). */
typedef struct {
  wisp_policy_destination pub; /* address (canonical) and spiffe_id */
  uint32_t dest;               /* index into wisp_policy.dest_docs */
  uint32_t item;               /* index in spec.addresses */
  uint32_t line, col;
} wp_dest_addr;

typedef enum { WP_DOC_AUTHZ, WP_DOC_PEER, WP_DOC_DEST } wp_doc_kind;

/* One document in order, for the summary. */
typedef struct {
  wp_doc_kind kind;
  uint32_t index; /* into authz, peer or dest_docs */
} wp_docref;

struct wisp_policy {
  atomic_uint refs;
  wp_arena arena;
  uint32_t n_authz, n_peer, n_docs, n_rules, n_allow, n_deny;
  wp_authz *authz; /* malloc'd arrays, grown while parsing; the rest is */
  wp_peer *peer;   /* in the arena */
  wp_docref *docs;
  uint32_t n_dest_docs, n_dests;
  wp_dest *dest_docs;                 /* malloc'd too */
  wp_dest_addr *dests;                /* malloc'd; sorted by address once compiled */
  wisp_policy_destination *dest_list; /* malloc'd: the public view of dests */
};

/* ---- views ------------------------------------------------------------ */

/* A rule of a governing policy, in evaluation order. */
typedef struct {
  const wp_rule *rule;
  const char *policy; /* qname */
  int32_t index;      /* in the policy's rules */
} wp_item;

/* Index. A rule is filed under the patterns that a request must match for
 * the rule to match, by kind, so that a request finds its candidate rules
 * by hashing instead of trying every rule:
 * - by caller, when each from entry names the caller positively: by
 *   principals (unless "*" is one) or else by namespaces (same);
 * - else by path, when each to entry has paths (without "*"). Such a rule
 *   cannot match an L4 connection in an ALLOW list, but can in a DENY list
 *   (which ignores paths for L4), so those are kept apart for that case;
 * - else it is scanned. */
enum {
  WP_K_PRINCIPAL, /* exact principal */
  WP_K_PRINCIPAL_PREFIX,
  WP_K_PRINCIPAL_SUFFIX,
  WP_K_NAMESPACE, /* exact namespace */
  WP_K_NAMESPACE_PREFIX,
  WP_K_NAMESPACE_SUFFIX,
  WP_K_PATH, /* exact path */
  WP_K_PATH_PREFIX,
  WP_K_PATH_SUFFIX,
  WP_K_COUNT,
};

/* Open addressing, capacity a power of 2, at most half full. A caller
 * probes its whole ID and namespace, and for the prefix and suffix kinds
 * its prefixes and suffixes of each length some pattern has. */
typedef struct {
  uint64_t hash; /* wp_key_hash(kind, s, len) */
  const char *s; /* NULL: empty slot */
  uint32_t len;
  uint32_t kind;
  uint32_t off, n; /* postings[off .. off+n): ascending item indexes */
} wp_slot;

typedef struct {
  uint32_t n_items;
  const wp_item *items;
  uint32_t n_generic;
  const uint32_t *generic; /* items not in the index, ascending */
  uint32_t n_indexed;
  uint32_t n_by_path;
  const uint32_t *by_path; /* items filed by path, ascending */
  uint32_t mask;           /* capacity - 1; table NULL when nothing indexed */
  const wp_slot *table;
  const uint32_t *postings;
  uint32_t n_lens[WP_K_COUNT];      /* prefix/suffix kinds: the distinct */
  const uint32_t *lens[WP_K_COUNT]; /* pattern lengths, ascending */
  bool has_callers;                 /* some key is of a principal or namespace kind */
  bool has_namespaces;              /* some key is of a namespace kind */
  bool has_paths;                   /* some key is of a path kind */
} wp_list;

struct wisp_policy_view {
  atomic_int refs;     /* wisp_policy_view_up_ref: several threads may hold it */
  wisp_policy *policy; /* a reference */
  wp_arena arena;
  wp_list deny, allow;
  uint32_t n_allow_policies, n_deny_policies;
  wisp_mtls_mode mode;
  const char *mode_from;
};

/* ---- shared helpers ---------------------------------------------------- */

/* The hash of the index. */
uint64_t wp_hash(const char *s, size_t len);
uint64_t wp_key_hash(uint32_t kind, const char *s, size_t len);

/* Orders strings by (length, bytes): the order of wp_strset.exact. */
int wp_str_cmp(const char *a, size_t a_len, const char *b, size_t b_len);

/* RFC 9110 tchar: a method is one or more of these. */
bool wp_tchar(char ch);

/* Finds the N of ".../ns/N/sa/SA" in a SPIFFE ID's path part: sets
 * |*ns|/|*ns_len| and |*sa|/|*sa_len| and returns true when |id| is
 * spiffe://<td>/ns/<N>/sa/<SA> exactly. */
bool wp_k8s_id(const char *id, size_t len, const char **ns, size_t *ns_len, const char **sa, size_t *sa_len);

#endif
