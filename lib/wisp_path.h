/* wisp_path: the one form of a request's :path that the policy judges and
 * the app is sent (issue 9). Apps decode and clean paths before they route
 * (Go's ServeMux, Werkzeug, servlets), so a policy that matched the bytes
 * as received could be walked around with `/%61dmin`, `/x/../admin`,
 * `/users/%40me` or `/admin;x/secret`. Like Envoy's normalize_path +
 * merge_slashes with path_with_escaped_slashes_action REJECT_REQUEST
 * (Istio's MERGE_SLASHES, with %2F and %5C refused instead of kept) and
 * Spring's StrictHttpFirewall (';' refused), a pure function: bytes in,
 * normal form out; no I/O, no globals, no allocation.
 *
 * The normal form of the path part (up to the first '?'):
 * - %XX is decoded, once, when the character may stand raw in a segment
 *   with the same meaning (RFC 3986 3.3 pchar): the unreserved characters
 *   (ALPHA DIGIT - . _ ~) and the sub-delims and ':' '@' (! $ & ' ( ) * +
 *   , = : @; not ';', refused below). Apps decode these before they
 *   route, so matching the decoded form is matching what the app sees,
 *   and the app, sent the decoded form, has nothing left to decode
 *   differently. Any other escape is kept, with uppercase hex (%3f ->
 *   %3F): %25 (decoding '%' would make new escapes), %3F and %23
 *   (decoding would start a query or fragment), and those of characters
 *   that may not stand raw (space, '"', non-ASCII, ...);
 * - runs of '/' are merged into one, then "." and ".." segments are
 *   removed (RFC 3986 5.2.4; also those spelled %2E; ".." never climbs
 *   above "/"); a path that ended in '/', "." or ".." ends in '/'.
 * Merging before the dot segments is what Go's path.Clean, Node's
 * path.posix.normalize and nginx do (`/a//../b` -> `/b`); since the app is
 * sent the result, which has no "//" and no dot segment, any order would
 * be safe, this one is simply the common one.
 *
 * Refused (cannot be normalised without guessing what the app would do):
 * an empty path or one not starting with '/' (except exactly "*", OPTIONS'
 * asterisk form); %2F and %5C (encoded '/' and '\': the app may or may
 * not decode them into separators); a raw '\'; ';' and %3B (servlet
 * containers and Spring cut ";parameters" out of a segment, so they serve
 * "/admin;x/secret" as "/admin/secret" and "/..;/" as "/../"); %25 followed
 * by two hex digits (a double-encoded escape such as %252e: whatever
 * decodes twice would see '.'); a '#' (a client never sends a fragment,
 * and an app would cut the path there); a bad or truncated escape (%zz,
 * %4, a lone %); encoded control characters (%00-%1F, %7F); raw bytes RFC
 * 3986 does not allow in a path (controls, space, " < > [ ] ^ ` { | } and
 * non-ASCII bytes, which a client must percent-encode), so each character
 * has one spelling in the normal form.
 *
 * The query (from the first '?') is copied unchanged and not judged, except
 * that raw control bytes are refused anywhere. */
#ifndef WISP_PATH_H
#define WISP_PATH_H

#include <stddef.h>

#include "lib/wisp_err.h"

/* Writes the normal form of |in| (|in_len| bytes, a :path value) to |out|,
 * NUL-terminated, and its length (without the NUL) to |out_len|. The normal
 * form is never longer than |in_len|, and |out_cap| must exceed |in_len|
 * (else WISP_ERR_TOO_BIG, whatever the result's length would be).
 *
 * Errors: WISP_ERR_PROTO for a path refused as above, with |*out_reason|
 * (if |out_reason| is not NULL) set to a static sentence saying why;
 * WISP_ERR_TOO_BIG (reason "path longer than the buffer"). On error
 * nothing is written to |out| or |out_len|; on success |out_reason| is
 * left alone. |out| and |in| must not overlap. */
wisp_err wisp_path_normalize(char *out, size_t out_cap, size_t *out_len, const char *in, size_t in_len,
                             const char **out_reason) WISP_MUST_CHECK;

#endif
