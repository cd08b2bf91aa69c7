"""One place for compiler and linker flags (as BoringSSL's util/util.bzl)."""

WISP_COPTS = [
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wvla",
    # printf-style formats are checked (and must be literals), string
    # literals are const, and K&R definitions are refused.
    "-Wformat=2",
    "-Wwrite-strings",
    "-Wold-style-definition",
    "-Wno-unused-parameter",
    # snprintf into fixed buffers truncates on purpose (bounded log lines).
    "-Wno-format-truncation",
    # BoringSSL's headers live here; -isystem puts them before OpenSSL 3's.
    "-isystem",
    "/usr/include/android",
]

BORINGSSL_LINKOPTS = [
    "-L/usr/lib/x86_64-linux-gnu/android",
    "-Wl,-rpath,/usr/lib/x86_64-linux-gnu/android",
    "-lssl",
    "-lcrypto",
]

# jansson (libjansson-dev): the JSON library, for JWT/JWKS and AdmissionReview.
# Chosen over json-c and cJSON for its API: integers kept apart from reals as
# 64-bit json_int_t (cJSON holds every number as a double), duplicate keys
# refused on request (JSON_REJECT_DUPLICATES: a token with two "aud" claims
# must not be read two ways), errors with line and column, json_equal for
# diffs, insertion order kept. Slower than both (parse + dump of a 16 KB
# AdmissionReview: about 1 ms against 0.5 and 0.25 ms), which does not matter
# for one review or token at a time.
JANSSON_LINKOPTS = ["-ljansson"]
