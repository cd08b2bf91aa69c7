/* wispctl's parsers and printers: durations, times, the status table and
 * its JSON form. No I/O but the FILE given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/wispctl/wispctl.h"
#include "lib/wisp_json.h"
#include "lib/wisp_rpc_client.h"
#include "lib/wisp_spiffe.h"

void wispctl_format_time(char *out, size_t out_len, int64_t unix_s) {
  if (unix_s == 0) {
    snprintf(out, out_len, "-");
    return;
  }
  time_t t = (time_t)unix_s;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, out_len, "@%lld", (long long)unix_s);
}

void wispctl_format_span(char *out, size_t out_len, int64_t s) {
  if (s < 0) s = -s;
  long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
  if (d > 0) {
    snprintf(out, out_len, h ? "%lldd%lldh" : "%lldd", d, h);
  } else if (h > 0) {
    snprintf(out, out_len, m ? "%lldh%lldm" : "%lldh", h, m);
  } else if (m > 0) {
    snprintf(out, out_len, sec ? "%lldm%llds" : "%lldm", m, sec);
  } else {
    snprintf(out, out_len, "%llds", sec);
  }
}

void wispctl_format_expiry(char *out, size_t out_len, int64_t unix_s, int64_t now) {
  char t[64], span[32];
  wispctl_format_time(t, sizeof(t), unix_s);
  if (unix_s == 0) {
    snprintf(out, out_len, "%s", t);
    return;
  }
  wispctl_format_span(span, sizeof(span), unix_s - now);
  if (unix_s > now) {
    snprintf(out, out_len, "%s (in %s)", t, span);
  } else {
    snprintf(out, out_len, "%s (expired %s ago)", t, span);
  }
}

static void format_ago(char *out, size_t out_len, int64_t unix_s, int64_t now) {
  char span[32];
  if (unix_s == 0) {
    snprintf(out, out_len, "never");
    return;
  }
  if (unix_s >= now) {
    snprintf(out, out_len, "just now");
    return;
  }
  wispctl_format_span(span, sizeof(span), now - unix_s);
  snprintf(out, out_len, "%s ago", span);
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* ---- table ---- */

enum { COL_ID, COL_CONNECTED, COL_ACKED, COL_SERIAL, COL_EXPIRES, COL_SEEN, NCOLS };

static const char *const kHeads[NCOLS] = {"SPIFFE ID",   "CONNECTED",      "ACKED",
                                          "SVID SERIAL", "SVID NOT AFTER", "LAST SEEN"};

/* A SPIFFE ID may be 2048 bytes; the other cells are short. */
typedef struct {
  char cell[NCOLS][WISP_SPIFFE_MAX + 1];
} row;

static void fill_row(row *r, const Wisp__V1__ProxyStatus *p, int64_t now) {
  const size_t n = sizeof(r->cell[0]);
  snprintf(r->cell[COL_ID], n, "%s", or_dash(p->spiffe_id));
  /* Replicas share an identity: how many of its sidecars are connected
   * (an older agent says only whether one is). */
  uint32_t k = p->sidecars_connected ? p->sidecars_connected : p->connected ? 1 : 0;
  if (k) {
    snprintf(r->cell[COL_CONNECTED], n, "%u sidecar%s", k, k == 1 ? "" : "s");
  } else {
    snprintf(r->cell[COL_CONNECTED], n, "no");
  }
  snprintf(r->cell[COL_ACKED], n, "%s%s", or_dash(p->acked_version),
           p->last_nack_error && *p->last_nack_error ? " (NACK)" : "");
  snprintf(r->cell[COL_SERIAL], n, "%s", or_dash(p->svid_serial));
  wispctl_format_expiry(r->cell[COL_EXPIRES], n, p->svid_not_after_unix, now);
  format_ago(r->cell[COL_SEEN], n, p->last_seen_unix, now);
}

static void print_row(FILE *f, const char *const *cells, const size_t *width) {
  for (int i = 0; i < NCOLS; i++) {
    if (i == NCOLS - 1) {
      fprintf(f, "%s\n", cells[i]);
    } else {
      fprintf(f, "%-*s  ", (int)width[i], cells[i]);
    }
  }
}

static void print_table(FILE *f, const Wisp__V1__StatusResponse *st, int64_t now) {
  char ca[128];
  wispctl_format_expiry(ca, sizeof(ca), st->ca_not_after_unix, now);
  fprintf(f, "agent policy version:  %s\n", or_dash(st->version));
  fprintf(f, "CA not after:          %s\n", ca);
  fprintf(f, "trust bundle roots:    %u\n", st->bundle_roots);
  fprintf(f, "\n");
  if (st->n_proxies == 0) {
    fprintf(f, "no proxies yet\n");
    return;
  }
  /* Two passes (measure, then print) over one row buffer: no copy of the
   * whole table, however many proxies. */
  static row r;
  const char *cells[NCOLS];
  size_t width[NCOLS];
  for (int i = 0; i < NCOLS; i++) {
    width[i] = strlen(kHeads[i]);
    cells[i] = r.cell[i];
  }
  for (size_t k = 0; k < st->n_proxies; k++) {
    fill_row(&r, st->proxies[k], now);
    for (int i = 0; i < NCOLS; i++) {
      size_t n = strlen(r.cell[i]);
      if (n > width[i]) width[i] = n;
    }
  }
  print_row(f, kHeads, width);
  for (size_t k = 0; k < st->n_proxies; k++) {
    fill_row(&r, st->proxies[k], now);
    print_row(f, cells, width);
    const char *nack = st->proxies[k]->last_nack_error;
    if (nack && *nack) fprintf(f, "    last NACK: %s\n", nack);
  }
}

/* ---- JSON ---- */

/* One proxy's object at most: its strings came in one status answer (at
 * most WISP_RPCC_MAX_MSG bytes), escaped at most 6 bytes a byte. */
#define JSON_PIECE_MAX (6u * WISP_RPCC_MAX_MSG + 4096)

/* The document is written a piece at a time (the head, each proxy, the
 * tail), so memory stays bounded by one piece however many proxies. */
static void flush_piece(wisp_json_writer *w, FILE *f) {
  if (w->err != WISP_OK) return;
  fwrite(wisp_buf_rptr(&w->out), 1, wisp_buf_len(&w->out), f);
  wisp_buf_consume(&w->out, wisp_buf_len(&w->out));
}

/* A string, escaped as people read it (\n, not \u000a); NULL: "". */
static void put_str(wisp_json_writer *w, const char *s) { wisp_json_writer_str(w, s ? s : ""); }

static void put_text(wisp_json_writer *w, const char *s) { wisp_json_writer_raw(w, s, strlen(s)); }

static void json_time(wisp_json_writer *w, const char *indent, const char *key, int64_t unix_s, bool last) {
  char t[64];
  wispctl_format_time(t, sizeof(t), unix_s);
  wisp_json_writer_printf(w, "%s\"%s\": ", indent, key);
  if (unix_s) {
    put_str(w, t);
  } else {
    put_text(w, "null");
  }
  wisp_json_writer_printf(w, ",\n%s\"%s_unix\": %lld%s\n", indent, key, (long long)unix_s, last ? "" : ",");
}

static wisp_err print_json(FILE *f, const Wisp__V1__StatusResponse *st) {
  wisp_json_writer w;
  wisp_json_writer_init(&w, JSON_PIECE_MAX, WISP_JSON_ESCAPE_SHORT);
  put_text(&w, "{\n  \"version\": ");
  put_str(&w, st->version);
  put_text(&w, ",\n");
  json_time(&w, "  ", "ca_not_after", st->ca_not_after_unix, false);
  wisp_json_writer_printf(&w, "  \"bundle_roots\": %u,\n  \"proxies\": [", st->bundle_roots);
  for (size_t k = 0; k < st->n_proxies; k++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[k];
    flush_piece(&w, f);
    put_text(&w, k ? ",\n    {\n" : "\n    {\n");
    put_text(&w, "      \"spiffe_id\": ");
    put_str(&w, p->spiffe_id);
    wisp_json_writer_printf(&w,
                            ",\n      \"connected\": %s,\n      \"sidecars_connected\": %u,\n      "
                            "\"sidecars_acked\": %u,\n      \"sidecars_nacked\": %u,\n      \"acked_version\": ",
                            p->connected ? "true" : "false", p->sidecars_connected, p->sidecars_acked,
                            p->sidecars_nacked);
    put_str(&w, p->acked_version);
    put_text(&w, ",\n      \"last_nack_error\": ");
    put_str(&w, p->last_nack_error);
    put_text(&w, ",\n      \"svid_serial\": ");
    put_str(&w, p->svid_serial);
    put_text(&w, ",\n");
    json_time(&w, "      ", "svid_not_after", p->svid_not_after_unix, false);
    json_time(&w, "      ", "last_seen", p->last_seen_unix, true);
    put_text(&w, "    }");
  }
  put_text(&w, st->n_proxies ? "\n  ]\n}\n" : "]\n}\n");
  flush_piece(&w, f);
  wisp_err rc = w.err;
  wisp_json_writer_cleanup(&w);
  return rc;
}

wisp_err wispctl_print_status(FILE *f, const Wisp__V1__StatusResponse *st, bool json, int64_t now) {
  if (json) return print_json(f, st);
  print_table(f, st, now);
  return WISP_OK;
}
