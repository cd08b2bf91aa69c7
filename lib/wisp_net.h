/* wisp_net: socket addresses and non-blocking TCP sockets. The address
 * parser is pure (no DNS: wisp takes literal IPv4/IPv6 addresses or
 * "localhost", so a sidecar never blocks on a resolver). */
#ifndef WISP_NET_H
#define WISP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/wisp_err.h"

typedef struct {
  struct sockaddr_storage sa;
  socklen_t len;
} wisp_addr;

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces). */
wisp_err wisp_addr_parse(wisp_addr *out, const char *s) WISP_MUST_CHECK;
/* Parses a peer address as a destination map names it: "IP:PORT",
 * "[V6]:PORT", or a bare "IP", "V6" or "[V6]" meaning every port (the port
 * is then 0). Literal addresses only: no "localhost", no empty or
 * unspecified (0.0.0.0, ::) host, no port 0. */
wisp_err wisp_addr_parse_dest(wisp_addr *out, const char *s) WISP_MUST_CHECK;
/* Formats a destination address: as wisp_addr_format, without ":0" for
 * an every-port address ("10.0.0.5", "[fd00::5]"). */
void wisp_addr_format_dest(const wisp_addr *a, char *out, size_t out_len);
/* The port of |a| (host order); 0 for a non-IP address. */
uint16_t wisp_addr_port(const wisp_addr *a);
/* Sets the port of an IP address |a| (host order); others stay as they are. */
void wisp_addr_set_port(wisp_addr *a, uint16_t port);
/* Formats |a| as HOST:PORT into |out| (always NUL-terminated). */
void wisp_addr_format(const wisp_addr *a, char *out, size_t out_len);

/* Opens a non-blocking, close-on-exec listening socket; returns the fd in
 * |out_fd|. On failure errno says why. */
wisp_err wisp_net_listen(int *out_fd, const wisp_addr *a, int backlog) WISP_MUST_CHECK;
/* The same with SO_REUSEPORT: every socket bound so to one address takes
 * a share of its connections (the kernel spreads them by hash); each of
 * wisp-proxy's --workers opens its own. */
wisp_err wisp_net_listen_shared(int *out_fd, const wisp_addr *a, int backlog) WISP_MUST_CHECK;
/* Starts a non-blocking connect; the fd is returned even while in progress. */
wisp_err wisp_net_connect(int *out_fd, const wisp_addr *a) WISP_MUST_CHECK;
/* Accepts one connection as non-blocking; WISP_ERR_AGAIN when none. */
wisp_err wisp_net_accept(int *out_fd, int lfd, wisp_addr *out_peer) WISP_MUST_CHECK;
/* Unix sockets: listen at |path| (a stale socket file there is replaced,
 * anything else is refused) with file mode |mode|; connect to |path|. */
wisp_err wisp_net_listen_unix(int *out_fd, const char *path, unsigned mode, int backlog) WISP_MUST_CHECK;
wisp_err wisp_net_connect_unix(int *out_fd, const char *path) WISP_MUST_CHECK;
/* The destination a connection had before an iptables REDIRECT sent it to
 * us (SO_ORIGINAL_DST, IPv4 and IPv6). WISP_ERR_IO if there is none. */
wisp_err wisp_net_original_dst(int fd, wisp_addr *out) WISP_MUST_CHECK;
/* The local address of |fd|. */
wisp_err wisp_net_local_addr(int fd, wisp_addr *out) WISP_MUST_CHECK;
/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
bool wisp_addr_is_loopback(const wisp_addr *a);
/* Same family, address and port. */
bool wisp_addr_equal(const wisp_addr *a, const wisp_addr *b);
/* Result of a finished non-blocking connect (0 or an errno). */
int wisp_net_connect_result(int fd);

#endif
