/* wispctl check: plain-words diagnostics of the agent and, with --proxy,
 * of one sidecar, like `linkerd check`. Each check is one line, ✓ (pass),
 * ‼ (warning: worth a look, not a failure) or ✗ (fail) with details and a
 * hint saying what to do. Exit 0 when no check failed (warnings allowed),
 * else 1; -o json prints the same results as one JSON document.
 *
 * check.c runs the checks and prints them; check_proxy.c fetches the
 * sidecar's GET /status (admin API) and runs its checks. The results are
 * collected in a wispctl_report the caller owns. */
#ifndef WISPCTL_CHECK_H
#define WISPCTL_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "control/wispctl/wispctl.h"

#define WISPCTL_CHECK_CA_MIN_DEFAULT "30d"
#define WISPCTL_CHECK_SVID_MIN_DEFAULT "1h"

typedef enum { WISPCTL_PASS, WISPCTL_WARN, WISPCTL_FAIL } wispctl_check_status;

typedef struct {
  char *group; /* "agent", "proxy" */
  char *id;    /* stable, for scripts: "agent.ca" */
  wispctl_check_status status;
  char *title; /* what was checked and what was found, one line */
  char **details;
  size_t ndetails;
  char *hint; /* NULL when it passed */
} wispctl_check;

typedef struct {
  wispctl_check *v;
  size_t n, cap;
} wispctl_report;

typedef struct {
  wispctl_opts agent;  /* where the agent is, the timeout */
  bool agent_explicit; /* --agent or WISP_AGENT given */
  const char *proxy;   /* the sidecar's admin address, NULL: none */
  int64_t ca_min_s;    /* --ca-min-validity */
  int64_t svid_min_s;  /* --svid-min-validity */
  bool svid_min_given; /* else: a quarter of each SVID's lifetime, at most svid_min_s */
  bool json;
} wispctl_check_opts;

/* Runs every check and prints the report on stdout; returns the exit
 * code. */
int wispctl_check_run(const wispctl_check_opts *o, int64_t now);

/* ---- the report (check.c) ---- */

/* Adds a check; |hint| may be NULL. Returns it, for details. */
wispctl_check *wispctl_report_add(wispctl_report *r, const char *group, const char *id, wispctl_check_status st,
                                  const char *hint, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void wispctl_check_detail(wispctl_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wispctl_report_free(wispctl_report *r);
/* How long an SVID issued at |issued| and ending at |not_after| must
 * still be valid: --svid-min-validity as given; by default a quarter of
 * its lifetime (renewal comes at about half-life, so less left means it is
 * overdue), at most the default 1h. */
int64_t wispctl_check_svid_min(const wispctl_check_opts *o, int64_t issued, int64_t not_after);
/* Where a CA rotation stands and its next step, one line for a check's
 * detail and one for its hint, from the agent's |rotation| state and
 * |finish_after| (Admin.Status); false when none is under way. */
bool wispctl_check_rotation_step(const char *rotation, int64_t finish_after, int64_t now, char *where, size_t where_len,
                                 char *next, size_t next_len);
/* "in 3d4h (2026-06-01T12:00:00Z)" or "2h ago (...)". */
void wispctl_check_when(char *out, size_t out_len, int64_t t, int64_t now);

/* ---- the sidecar (check_proxy.c) ---- */

/* What the agent said, for the sidecar checks that compare with it; NULL
 * members: unknown. */
typedef struct {
  const char *version; /* the agent's policy version */
  uint32_t bundle_roots;
  const char *rotation; /* "none", "prepared", "active" */
  int64_t finish_after; /* an active rotation: FINISH allowed from then; 0: unknown */
} wispctl_agent_facts;

typedef struct wispctl_sidecar wispctl_sidecar;

/* Reads the sidecar's GET /status at o->proxy and adds the proxy.admin
 * check; NULL when it cannot (the check says why). */
wispctl_sidecar *wispctl_sidecar_fetch(wispctl_report *r, const wispctl_check_opts *o);
/* The sidecar's --agent target (borrowed from |sc|); NULL: certificate
 * files. */
const char *wispctl_sidecar_agent(const wispctl_sidecar *sc);
/* The sidecar's checks, compared with |agent| where it says (NULL:
 * unknown). */
void wispctl_sidecar_check(wispctl_report *r, const wispctl_sidecar *sc, const wispctl_check_opts *o,
                           const wispctl_agent_facts *agent, int64_t now);
void wispctl_sidecar_free(wispctl_sidecar *sc);

#endif
