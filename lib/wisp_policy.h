/* wisp_policy: authorization policy. Kubernetes-style YAML documents
 * (AuthorizationPolicy, PeerAuthentication; see DESIGN.md) are parsed with
 * libyaml (with Destination documents, the address -> identity map of
 * transparent mode), validated strictly and compiled into an immutable wisp_policy;
 * a wisp_policy_view then picks what governs one workload and answers
 * "may this caller make this request?" without allocating or parsing.
 * wisp_policy_compile is a parser in the STYLE.md sense: bytes in, result
 * out, no I/O, no globals.
 *
 * Ownership (BoringSSL's words). wisp_policy is refcounted: compile gives a
 * reference, wisp_policy_up_ref takes another, wisp_policy_free drops one.
 * A view holds its own reference to its policy, so the caller may free the
 * policy right after making the view. Policies and views are immutable, so
 * any number of threads may evaluate one view at once. Compiling never
 * touches another policy: on error nothing is made, and whatever policy the
 * caller holds stays in force ("the last good policy stays").
 *
 * Semantics (what a user of Istio's AuthorizationPolicy expects):
 * - A workload is known by its SPIFFE ID spiffe://<td>/ns/<N>/sa/<SA>. A
 *   policy governs it when the policy's selector namespace (spec.selector.
 *   namespace, else metadata.namespace, else "default") is N and, if
 *   spec.selector.serviceAccount is given, it is SA. A workload whose ID has
 *   another form is governed by no policy.
 * - DENY first: if any rule of a governing DENY policy matches, deny. Else,
 *   if an ALLOW policy governs the workload, allow only when one of its rules
 *   matches. Else allow (no policy, or only DENY policies). spec.action
 *   defaults to ALLOW.
 * - An ALLOW policy with no rules (spec: {}, or rules: []) matches nothing,
 *   so it denies everything it governs; rules: [{}] (one empty rule) matches
 *   everything. A DENY policy with no rules matches nothing. spec itself is
 *   required.
 * - A rule matches when ANY of its `from` entries matches AND ANY of its `to`
 *   entries matches; a missing from/to matches anything. Within one entry
 *   every field given must match; each field is an OR-list; notX fields
 *   match when the value is in none of the patterns.
 * - from: principals / notPrincipals (SPIFFE IDs: exact, "prefix*",
 *   "*suffix", "*" = any authenticated caller; Istio's form without
 *   "spiffe://" is accepted and the scheme added), namespaces /
 *   notNamespaces (the N of the caller's spiffe://td/ns/N/sa/SA; same
 *   pattern forms).
 * - to: methods / notMethods (case-sensitive HTTP tokens; lowercase ones are
 *   refused; HEAD counts as GET in DENY methods and ALLOW notMethods, where
 *   matching refuses, since apps answer HEAD with their GET handler),
 *   paths / notPaths (exact "/a"; prefix "/a*", i.e. "/a/" and a
 *   star for a folder; suffix "*.json"; "*" any; matched up to the first
 *   '?', so the query string is ignored; NOT normalised: see
 *   wisp_policy_request; one trailing '/' is ignored by DENY paths and
 *   ALLOW notPaths, where matching refuses, and nowhere else), ports /
 *   notPorts (destination ports 1..65535, integers or, as Istio writes
 *   them, quoted).
 * - Missing attributes fail closed. A caller with no identity (plaintext in
 *   PERMISSIVE mode) never matches principals or namespaces; a notX field of
 *   `from` matches it in a DENY rule (so DENY notPrincipals: ["*"] refuses
 *   plaintext) but not in an ALLOW rule (the ISTIO-SECURITY-2021-004
 *   surprise: ALLOW notNamespaces: [foo] would admit plaintext from foo).
 *   An authenticated caller whose ID has no /ns/N/ part is treated the same
 *   way for namespaces/notNamespaces. For an L4 connection (no method), a
 *   `to` entry with method or path fields never matches in an ALLOW rule,
 *   and in a DENY rule those fields are ignored (Istio's TCP rule: deny
 *   more, never allow more); ports apply as usual.
 * - Destination (spec: {addresses: [IP:PORT or IP, ...], spiffeId: ID})
 *   says which identity the sidecar at those addresses must present when
 *   this proxy dials them in transparent mode (an IP alone: every port). It
 *   governs no workload and is the same for every proxy. One address in two
 *   Destinations is an error, even with the same ID.
 * - PeerAuthentication (spec: {mode: STRICT|PERMISSIVE, selector}): the one
 *   selecting the workload's service account wins over the namespace-wide
 *   one; none: STRICT. Two PeerAuthentications with the same scope, or two
 *   documents of one kind with the same namespace/name, are an error.
 * - Validation is strict: unknown fields, duplicate keys, nulls, empty lists
 *   (other than rules: []), empty from/to entries, wrong types (a plain
 *   123/true where a string goes: quote it), anchors, aliases and tags are
 *   errors, and the whole input is refused. Messages name the document
 *   (1-based, with kind and metadata.name when known), the field path
 *   (0-based indexes) and the reason, e.g.
 *   document 2 (AuthorizationPolicy "orders-read"): spec.rules[0].to[0].ports[1]: 70000 is not a port (1..65535) [line 12, column 41]
 *   Empty documents (a lone "---") are skipped but counted in the index. */
#ifndef WISP_POLICY_H
#define WISP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"

/* Bounds: a policy source never decides how much we allocate. Exceeding
 * one is WISP_ERR_TOO_BIG. */
#define WISP_POLICY_MAX_INPUT (4u << 20)   /* bytes of YAML */
#define WISP_POLICY_MAX_DOCS 4096          /* documents, empty ones included */
#define WISP_POLICY_MAX_RULES 16384        /* rules, all policies together */
#define WISP_POLICY_MAX_LIST 1024          /* items in any list but rules */
#define WISP_POLICY_MAX_DEPTH 32           /* YAML nesting */
#define WISP_POLICY_MAX_NODES 262144       /* YAML nodes in one document */
#define WISP_POLICY_MAX_STR 4096           /* bytes of any one string */
#define WISP_POLICY_MAX_DESTINATIONS 65536 /* addresses, all Destinations together */

typedef struct wisp_policy wisp_policy;
typedef struct wisp_policy_view wisp_policy_view;

typedef enum {
  WISP_MTLS_STRICT = 0, /* refuse plaintext inbound (the default) */
  WISP_MTLS_PERMISSIVE, /* also accept plaintext callers, with no identity */
} wisp_mtls_mode;

/* Parses, validates and compiles the YAML stream |yaml| (|len| bytes, need
 * not be NUL-terminated). On success sets |*out| to a new policy (one
 * reference). On error leaves |*out| alone, writes the message to |err_buf|
 * (may be NULL; always NUL-terminated when |err_len| > 0) and returns
 * WISP_ERR_PARSE (YAML syntax or validation) or WISP_ERR_TOO_BIG (a
 * WISP_POLICY_MAX_* bound). An input with no documents compiles to the
 * empty policy, which governs nothing. */
wisp_err wisp_policy_compile(wisp_policy **out, const char *yaml, size_t len, char *err_buf,
                             size_t err_len) WISP_MUST_CHECK;

/* Takes another reference to |p|. */
void wisp_policy_up_ref(wisp_policy *p);

/* Drops one reference to |p|; the last one frees it. Accepts NULL. */
void wisp_policy_free(wisp_policy *p);

/* Counts for /config and logs. */
typedef struct {
  size_t documents;              /* non-empty documents */
  size_t authorization_policies; /* allow_policies + deny_policies */
  size_t allow_policies;
  size_t deny_policies;
  size_t peer_authentications;
  size_t rules;                 /* over all AuthorizationPolicies */
  size_t destinations;          /* Destination documents */
  size_t destination_addresses; /* over all Destinations */
} wisp_policy_stats;

void wisp_policy_get_stats(const wisp_policy *p, wisp_policy_stats *out);

/* The address -> identity map of transparent mode: every address of every
 * Destination document, sorted by address, each at most once. |address| is
 * canonical ("10.0.0.5:8080", "[fd00::5]:8080", or an IP alone for every
 * port: see wisp_addr_parse_dest); strings are borrowed from |p|. */
typedef struct {
  const char *address;
  const char *spiffe_id;
} wisp_policy_destination;

/* Sets |*out| to the map (borrowed from |p|) and returns its length. */
size_t wisp_policy_get_destinations(const wisp_policy *p, const wisp_policy_destination **out);

/* Writes a canonical one-line summary of |p| (documents in order: kind,
 * namespace/name, action or mode, selector, rule count) for logs, as
 * snprintf does: cut to |out_len| (always NUL-terminated when |out_len| > 0)
 * and returns the length it would have had. */
size_t wisp_policy_summary(const wisp_policy *p, char *out, size_t out_len);

/* Makes the view of |p| for the workload whose SPIFFE ID is |workload_id|
 * (|id_len| bytes): the governing policies with their rules indexed, and the
 * mTLS mode. Takes a reference to |p|. Returns WISP_ERR_IDENTITY if the ID
 * is not a valid SPIFFE ID. Do it once per (policy, workload), not per
 * request. */
wisp_err wisp_policy_view_new(wisp_policy_view **out, wisp_policy *p, const char *workload_id,
                              size_t id_len) WISP_MUST_CHECK;

/* Takes another reference to |v|: a view is immutable once made, so
 * threads may evaluate one at once (wisp-proxy's --workers share it). */
void wisp_policy_view_up_ref(wisp_policy_view *v);

/* Drops one reference to |v|; the last frees it and drops its reference
 * to its policy. Accepts NULL. */
void wisp_policy_view_free(wisp_policy_view *v);

/* The mTLS mode for the view's workload. */
wisp_mtls_mode wisp_policy_view_mode(const wisp_policy_view *v);

/* "STRICT" or "PERMISSIVE". */
const char *wisp_mtls_mode_name(wisp_mtls_mode mode);

typedef struct {
  size_t allow_policies; /* governing the workload */
  size_t deny_policies;
  size_t allow_rules;
  size_t deny_rules;
  size_t indexed_rules; /* rules found by hashing the caller's ID,
                           * namespace or path (the others are scanned) */
  wisp_mtls_mode mode;
  const char *mode_from; /* "namespace/name" of the PeerAuthentication
                           * that set the mode, NULL for the default;
                           * borrowed from the view */
} wisp_policy_view_info;

void wisp_policy_view_get_info(const wisp_policy_view *v, wisp_policy_view_info *out);

/* One request (HTTP) or connection (L4). Strings are borrowed, not
 * NUL-terminated, and matched as bytes: the caller passes the verified peer
 * SPIFFE ID, the :method and the :path. The path is matched up to its
 * first '?'; it is NOT normalised here: the HTTP layer passes the normal
 * form of lib/wisp_path (and sends the app that same form). */
typedef struct {
  const char *principal; /* the caller's SPIFFE ID; NULL (or ""): no identity */
  size_t principal_len;
  const char *method; /* NULL: an L4 connection (method and path unused) */
  size_t method_len;
  const char *path; /* NULL or "" with a method: no path */
  size_t path_len;
  uint16_t port; /* destination port */
} wisp_policy_request;

typedef struct {
  bool allow;
  const char *policy;   /* "namespace/name" of the policy whose rule decided;
                        * NULL when no rule did; borrowed from the view */
  int rule;             /* index of that rule in spec.rules; -1: none */
  const char *reason;   /* static: one of the WISP_POLICY_REASON_* */
  uint32_t rules_tried; /* rules whose conditions were evaluated: what the
                         * index saved is visible (tests, debugging) */
} wisp_policy_decision;

#define WISP_POLICY_REASON_DENY_RULE "denied by DENY policy"
#define WISP_POLICY_REASON_ALLOW_RULE "allowed by rule"
#define WISP_POLICY_REASON_NO_ALLOW_MATCH "no ALLOW rule matched"
#define WISP_POLICY_REASON_NO_POLICY "no policy governs this workload"
#define WISP_POLICY_REASON_NO_ALLOW_POLICY "no ALLOW policy governs this workload"
#define WISP_POLICY_REASON_NO_IDENTITY "no caller identity in STRICT mode"

/* Decides |req| for the view's workload into |out|. When several rules
 * match, the first in document order decides (DENY policies before ALLOW
 * ones). Never allocates, never fails, safe from any number of threads. A
 * caller with no identity (NULL or empty principal) is denied outright in
 * STRICT mode: the transport should have refused it already.
 *
 * Cost: the view files each rule under what a request must have for it to
 * match (a principal or namespace pattern, else a path pattern) in a hash
 * table, so a request hashes its ID, namespace and path (at each length a
 * prefix or suffix pattern has) and tries only the rules filed there, plus
 * the rules that name neither caller nor path, which are tried in turn. */
/* Why a request's :method (|len| bytes) cannot be judged by a policy, or
 * NULL. Methods are matched as bytes (RFC 9110: they are case-sensitive)
 * and rules name only upper-case tokens (compile refuses "get"), but some
 * apps upper-case the method before they route (Werkzeug/Flask serve
 * "delete" as DELETE), so a method with a lower-case letter would walk
 * past a DENY on DELETE. The HTTP layer refuses such a request under a
 * policy (400) rather than guess what the app makes of it. Pure. */
const char *wisp_policy_method_refused(const char *method, size_t len);

void wisp_policy_evaluate(const wisp_policy_view *v, const wisp_policy_request *req, wisp_policy_decision *out);

#endif
