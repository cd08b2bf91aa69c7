/* wisp-proxy: the sidecar. See README.md for flags and deployment. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lib/wisp_log.h"
#include "proxy/wisp_config.h"
#include "proxy/wisp_sidecar.h"

static wisp_log_level parse_level(const char *s) {
  if (strcmp(s, "debug") == 0) return WISP_LOG_DEBUG;
  if (strcmp(s, "warn") == 0) return WISP_LOG_WARN;
  if (strcmp(s, "error") == 0) return WISP_LOG_ERROR;
  return WISP_LOG_INFO;
}

int main(int argc, char **argv) {
  static char logbuf[64 * 1024];
  setvbuf(stdout, logbuf, _IOFBF, sizeof(logbuf));
  signal(SIGPIPE, SIG_IGN);
  /* Per-request buffers come and go at a high rate: keep freed heap instead
   * of returning it to the kernel after every burst (page-fault churn). */
  mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  wisp_config cfg = {0};
  char err[1024];
  if (wisp_config_parse(&cfg, argc, argv, err, sizeof(err)) != WISP_OK) {
    fprintf(stderr, "wisp-proxy: %s\n", err);
    wisp_config_cleanup(&cfg);
    return 2;
  }
  if (cfg.help) {
    fputs(wisp_config_usage(), stdout);
    wisp_config_cleanup(&cfg);
    return 0;
  }
  wisp_log_set_level(parse_level(cfg.log_level));
  wisp_proxy px = {0};
  wisp_sidecar sidecar = {0};
  struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
  int status = 0;
  if (wisp_sidecar_start(&sidecar, &px, loop, &cfg, err, sizeof(err)) != WISP_OK) {
    WISP_ERROR("cannot start: %s", err);
    status = 1;
  } else {
    wisp_proxy_run(&px);
    WISP_INFO("stopped");
  }
  wisp_sidecar_cleanup(&sidecar);
  ev_loop_destroy(loop);
  wisp_config_cleanup(&cfg);
  return status;
}
