#include "lib/wisp_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/netfilter_ipv4.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

wisp_err wisp_addr_parse(wisp_addr *out, const char *s) {
  char host[64];
  const char *colon = strrchr(s, ':');
  WISP_ENSURE(colon && colon[1], WISP_ERR_PARSE);
  size_t hlen = (size_t)(colon - s);
  bool bracketed = hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']';
  if (bracketed) {
    s++;
    hlen -= 2;
    WISP_ENSURE(hlen > 0, WISP_ERR_PARSE); /* "[]:80" */
  }
  WISP_ENSURE(hlen < sizeof(host), WISP_ERR_PARSE);
  memcpy(host, s, hlen);
  host[hlen] = '\0';
  /* IPv6 only in brackets: in "::1:80" the port could be part of the address. */
  WISP_ENSURE(bracketed || !memchr(host, ':', hlen), WISP_ERR_PARSE);
  long port = 0;
  for (const char *d = colon + 1; *d; d++) {
    WISP_ENSURE(*d >= '0' && *d <= '9' && port <= 65535, WISP_ERR_PARSE); /* digits only */
    port = port * 10 + (*d - '0');
  }
  WISP_ENSURE(port <= 65535, WISP_ERR_PARSE);

  memset(out, 0, sizeof(*out));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
  if (hlen == 0 || strcmp(host, "*") == 0) strcpy(host, "0.0.0.0");
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    out->len = sizeof(*v4);
    return WISP_OK;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    out->len = sizeof(*v6);
    return WISP_OK;
  }
  return WISP_ERR_PARSE;
}

static bool addr_unspecified(const wisp_addr *a) {
  if (a->sa.ss_family == AF_INET) return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
}

wisp_err wisp_addr_parse_dest(wisp_addr *out, const char *s) {
  char buf[80];
  size_t len = strlen(s);
  WISP_ENSURE(len > 0 && len < sizeof(buf) - 3, WISP_ERR_PARSE);
  WISP_ENSURE(strncmp(s, "localhost", 9) != 0 && s[0] != ':' && s[0] != '*', WISP_ERR_PARSE);
  const char *colon = strchr(s, ':');
  bool bare_v6 = s[0] != '[' && colon && strchr(colon + 1, ':');
  bool has_port = s[0] == '[' ? s[len - 1] != ']' : colon && !bare_v6;
  if (has_port) {
    snprintf(buf, sizeof(buf), "%s", s);
  } else {
    snprintf(buf, sizeof(buf), bare_v6 ? "[%s]:0" : "%s:0", s);
  }
  WISP_GUARD(wisp_addr_parse(out, buf));
  WISP_ENSURE(!addr_unspecified(out), WISP_ERR_PARSE);
  WISP_ENSURE(!has_port || wisp_addr_port(out) != 0, WISP_ERR_PARSE); /* "IP:0", "IP:00": not a port */
  return WISP_OK;
}

void wisp_addr_format_dest(const wisp_addr *a, char *out, size_t out_len) {
  wisp_addr_format(a, out, out_len);
  size_t n = strlen(out);
  if (wisp_addr_port(a) == 0 && n >= 2 && strcmp(out + n - 2, ":0") == 0) out[n - 2] = '\0';
}

uint16_t wisp_addr_port(const wisp_addr *a) {
  if (a->sa.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
  if (a->sa.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
  return 0;
}

void wisp_addr_set_port(wisp_addr *a, uint16_t port) {
  if (a->sa.ss_family == AF_INET) ((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
  if (a->sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
}

void wisp_addr_format(const wisp_addr *a, char *out, size_t out_len) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (a->sa.ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->sa;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    port = ntohs(v4->sin_port);
    snprintf(out, out_len, "%s:%u", host, port);
  } else if (a->sa.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->sa;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    port = ntohs(v6->sin6_port);
    snprintf(out, out_len, "[%s]:%u", host, port);
  } else {
    snprintf(out, out_len, "?");
  }
}

static void set_nodelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static wisp_err listen_on(int *out_fd, const wisp_addr *a, int backlog, bool shared) {
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  WISP_ENSURE(fd >= 0, WISP_ERR_IO);
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return WISP_ERR_IO;
  }
  if (bind(fd, (const struct sockaddr *)&a->sa, a->len) != 0 || listen(fd, backlog) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return WISP_ERR_IO;
  }
  *out_fd = fd;
  return WISP_OK;
}

wisp_err wisp_net_listen(int *out_fd, const wisp_addr *a, int backlog) { return listen_on(out_fd, a, backlog, false); }

wisp_err wisp_net_listen_shared(int *out_fd, const wisp_addr *a, int backlog) {
  return listen_on(out_fd, a, backlog, true);
}

wisp_err wisp_net_connect(int *out_fd, const wisp_addr *a) {
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  WISP_ENSURE(fd >= 0, WISP_ERR_IO);
  set_nodelay(fd);
  if (connect(fd, (const struct sockaddr *)&a->sa, a->len) != 0 && errno != EINPROGRESS) {
    int saved = errno;
    close(fd);
    errno = saved;
    return WISP_ERR_IO;
  }
  *out_fd = fd;
  return WISP_OK;
}

wisp_err wisp_net_accept(int *out_fd, int lfd, wisp_addr *out_peer) {
  wisp_addr peer;
  peer.len = sizeof(peer.sa);
  int fd = accept4(lfd, (struct sockaddr *)&peer.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? WISP_ERR_AGAIN : WISP_ERR_IO;
  set_nodelay(fd);
  if (out_peer) *out_peer = peer;
  *out_fd = fd;
  return WISP_OK;
}

int wisp_net_connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

static wisp_err unix_addr(struct sockaddr_un *sun, const char *path) {
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sun->sun_path)) {
    errno = ENAMETOOLONG;
    return WISP_ERR_USAGE;
  }
  strcpy(sun->sun_path, path);
  return WISP_OK;
}

wisp_err wisp_net_listen_unix(int *out_fd, const char *path, unsigned mode, int backlog) {
  struct sockaddr_un sun;
  WISP_GUARD(unix_addr(&sun, path));
  struct stat st;
  if (lstat(path, &st) == 0) {
    /* Replace a stale socket from an earlier run; never delete a file. */
    if (!S_ISSOCK(st.st_mode)) {
      errno = EEXIST;
      return WISP_ERR_USAGE;
    }
    unlink(path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  WISP_ENSURE(fd >= 0, WISP_ERR_IO);
  if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(path, mode) != 0 || listen(fd, backlog) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return WISP_ERR_IO;
  }
  *out_fd = fd;
  return WISP_OK;
}

wisp_err wisp_net_connect_unix(int *out_fd, const char *path) {
  struct sockaddr_un sun;
  WISP_GUARD(unix_addr(&sun, path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  WISP_ENSURE(fd >= 0, WISP_ERR_IO);
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    int saved = errno;
    close(fd);
    errno = saved;
    return WISP_ERR_IO;
  }
  *out_fd = fd;
  return WISP_OK;
}

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

wisp_err wisp_net_original_dst(int fd, wisp_addr *out) {
  memset(out, 0, sizeof(*out));
  out->len = sizeof(out->sa);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &out->sa, &out->len) == 0) return WISP_OK;
  out->len = sizeof(out->sa);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &out->sa, &out->len) == 0) return WISP_OK;
  return WISP_ERR_IO;
}

wisp_err wisp_net_local_addr(int fd, wisp_addr *out) {
  memset(out, 0, sizeof(*out));
  out->len = sizeof(out->sa);
  WISP_ENSURE(getsockname(fd, (struct sockaddr *)&out->sa, &out->len) == 0, WISP_ERR_IO);
  return WISP_OK;
}

bool wisp_addr_is_loopback(const wisp_addr *a) {
  if (a->sa.ss_family == AF_INET) return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa.ss_family != AF_INET6) return false;
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

bool wisp_addr_equal(const wisp_addr *a, const wisp_addr *b) {
  if (a->sa.ss_family != b->sa.ss_family) return false;
  if (a->sa.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa, *y = (const struct sockaddr_in *)&b->sa;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa.ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa, *y = (const struct sockaddr_in6 *)&b->sa;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return false;
}
