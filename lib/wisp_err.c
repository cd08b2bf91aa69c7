#include "lib/wisp_err.h"

const char *wisp_err_str(wisp_err err) {
  switch (err) {
    case WISP_OK:
      return "ok";
    case WISP_ERR_IO:
      return "i/o error";
    case WISP_ERR_AGAIN:
      return "try again";
    case WISP_ERR_CLOSED:
      return "connection closed";
    case WISP_ERR_TIMEOUT:
      return "timed out";
    case WISP_ERR_PROTO:
      return "protocol error";
    case WISP_ERR_TLS:
      return "tls error";
    case WISP_ERR_VERIFY:
      return "peer verification failed";
    case WISP_ERR_TOO_BIG:
      return "too big";
    case WISP_ERR_POLICY:
      return "denied by policy";
    case WISP_ERR_IDENTITY:
      return "bad identity";
    case WISP_ERR_INTERNAL:
      return "internal error";
    case WISP_ERR_NOMEM:
      return "out of memory";
    case WISP_ERR_USAGE:
      return "usage error";
    case WISP_ERR_PARSE:
      return "parse error";
  }
  return "unknown error";
}
