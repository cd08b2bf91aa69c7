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
