/* Unit tests for lib/wisp_accept: the accept loop on a real libev loop over
 * real sockets. A socket that is not listening makes accept(2) fail with
 * EINVAL at every wakeup; a lowered RLIMIT_NOFILE makes it fail with
 * EMFILE. Nothing here reads a clock: the loop is turned a fixed number of
 * times and the acceptor's counters say how often accept(2) was tried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_accept.h"
#include "lib/wisp_net.h"
#include "tests/unit/test_util.h"

#define PER_EVENT 16
/* Loop turns that do not wait: a spinning acceptor tries accept(2)
 * PER_EVENT times in each; a paused one not at all. */
#define TURNS 200
/* Upper bound of loop turns that wait (each at most one backoff, <= 1 s). */
#define WAITING_TURNS 50

typedef struct {
  int accepted;
  bool paused_in_cb;
} counts;

static void on_conn(wisp_acceptor *a, int fd, const wisp_addr *peer) {
  (void)peer;
  counts *c = a->data;
  c->accepted++;
  c->paused_in_cb = wisp_acceptor_paused(a);
  close(fd);
}

static void spin(struct ev_loop *loop, int turns) {
  for (int i = 0; i < turns; i++) ev_run(loop, EVRUN_NOWAIT);
}

/* A listener on 127.0.0.1 with one caller waiting in its backlog; returns
 * the listening socket, the caller's in |*client|. */
static int listener_with_caller(int *client) {
  wisp_addr any, bound;
  assert_int_equal(wisp_addr_parse(&any, "127.0.0.1:0"), WISP_OK);
  int lfd;
  assert_int_equal(wisp_net_listen(&lfd, &any, 16), WISP_OK);
  bound.len = sizeof(bound.sa);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&bound.sa, &bound.len), 0);
  *client = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(*client >= 0);
  assert_int_equal(connect(*client, (struct sockaddr *)&bound.sa, bound.len), 0); /* done by the backlog */
  return lfd;
}

/* Sets the soft open-files limit so that no descriptor is free: the next
 * accept(2) fails with EMFILE. Returns the limit to restore. */
static struct rlimit exhaust_fds(void) {
  struct rlimit old, low;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = dup(0); /* the lowest free descriptor */
  assert_true(probe >= 0);
  close(probe);
  low = old;
  low.rlim_cur = (rlim_t)probe;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  return old;
}

/* Runs |fn| with stderr going to a temporary file; returns the number of
 * lines it wrote there. */
static int stderr_lines(void (*fn)(void *), void *arg) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tmp), 2) >= 0);
  fn(arg);
  fflush(stderr);
  assert_true(dup2(saved, 2) >= 0);
  close(saved);
  rewind(tmp);
  int lines = 0, ch;
  while ((ch = fgetc(tmp)) != EOF) lines += ch == '\n';
  fclose(tmp);
  return lines;
}

typedef struct {
  struct ev_loop *loop;
  int turns;
  bool no_fds; /* turn the loop with no descriptor free */
} spin_arg;

static void spin_fn(void *arg) {
  spin_arg *s = arg;
  struct rlimit old;
  if (s->no_fds) old = exhaust_fds();
  spin(s->loop, s->turns);
  if (s->no_fds) assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* An acceptor over |lfd| (owned) on a loop of its own; |client| (owned,
 * -1: none) waits in its backlog. */
typedef struct {
  struct ev_loop *loop;
  int lfd, client;
  counts c;
  wisp_acceptor a;
} fixture;

static void fixture_start(fixture *f, int lfd, int client) {
  memset(f, 0, sizeof(*f));
  f->loop = ev_loop_new(EVFLAG_AUTO);
  f->lfd = lfd;
  f->client = client;
  wisp_acceptor_init(&f->a, f->loop, lfd, "test listener", PER_EVENT, on_conn, &f->c);
  wisp_acceptor_start(&f->a);
}

/* The usual case: a listener with one caller waiting. */
static void fixture_listening(fixture *f) {
  int client;
  int lfd = listener_with_caller(&client);
  fixture_start(f, lfd, client);
}

static void fixture_end(fixture *f) {
  wisp_acceptor_stop(&f->a);
  if (f->client >= 0) close(f->client);
  close(f->lfd);
  ev_loop_destroy(f->loop);
}

/* A socket whose accept(2) fails with neither a resource nor a routine
 * error (EINVAL: it does not listen) stays readable: the acceptor pauses
 * instead of trying again at every turn of the loop, and says so in a
 * bounded number of lines. */
static void test_broken_socket_pauses(void **state) {
  (void)state;
  fixture f;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  assert_true(fd >= 0);
  fixture_start(&f, fd, -1);
  spin_arg s = {f.loop, TURNS, false};
  int lines = stderr_lines(spin_fn, &s);
  print_message("# %d turns: %llu failed accepts, %llu pauses, %d log lines\n", TURNS, (unsigned long long)f.a.failures,
                (unsigned long long)f.a.pauses, lines);
  /* a spin is TURNS * PER_EVENT failures; a pause one (or a few, should a
   * backoff pass during the turns on a slow machine) */
  assert_true(f.a.failures >= 1 && f.a.failures <= 5);
  assert_true(wisp_acceptor_paused(&f.a));
  assert_int_equal(f.a.pauses, 1);
  assert_true(lines >= 1 && lines <= 5);
  /* The pause ends and accept(2) is tried again, once per backoff. */
  uint64_t before = f.a.failures;
  for (int i = 0; i < WAITING_TURNS && f.a.failures == before; i++) ev_run(f.loop, EVRUN_ONCE);
  assert_int_equal(f.a.failures, before + 1);
  assert_true(wisp_acceptor_paused(&f.a)); /* failed again: paused again */
  assert_int_equal(f.a.pauses, 1);         /* the same episode */
  assert_int_equal(f.c.accepted, 0);
  fixture_end(&f);
}

/* Out of descriptors: the caller waits in the backlog while the acceptor
 * pauses, and is served once a descriptor is free. */
static void test_out_of_fds_pauses_and_resumes(void **state) {
  (void)state;
  fixture f;
  fixture_listening(&f);
  spin_arg s = {f.loop, TURNS, true};
  int lines = stderr_lines(spin_fn, &s);
  print_message("# %d turns without descriptors: %llu failed accepts, %d log lines\n", TURNS,
                (unsigned long long)f.a.failures, lines);
  assert_int_equal(f.c.accepted, 0);
  assert_true(f.a.failures >= 1 && f.a.failures <= 5);
  assert_true(wisp_acceptor_paused(&f.a));
  assert_int_equal(f.a.pauses, 1);
  assert_int_equal(lines, 1); /* the episode's first line */
  for (int i = 0; i < WAITING_TURNS && f.c.accepted == 0; i++) ev_run(f.loop, EVRUN_ONCE);
  assert_int_equal(f.c.accepted, 1);
  assert_false(f.c.paused_in_cb);
  assert_false(wisp_acceptor_paused(&f.a));
  assert_true(f.a.backoff == 0); /* the episode is over */
  fixture_end(&f);
}

/* Stopped during a pause and started again, the acceptor watches its
 * socket: it is not paused any more, although no accept has worked since. */
static void test_not_paused_after_restart(void **state) {
  (void)state;
  fixture f;
  fixture_listening(&f);
  spin_arg s = {f.loop, 1, true};
  (void)stderr_lines(spin_fn, &s);
  assert_true(wisp_acceptor_paused(&f.a));
  wisp_acceptor_stop(&f.a);
  assert_false(wisp_acceptor_paused(&f.a));
  wisp_acceptor_start(&f.a);
  assert_false(wisp_acceptor_paused(&f.a));
  assert_int_equal(f.c.accepted, 0);
  s.no_fds = false;
  (void)stderr_lines(spin_fn, &s); /* the "accepting again" line */
  assert_int_equal(f.c.accepted, 1);
  fixture_end(&f);
}

/* The open-files limit is raised to what is wanted, as far as the hard
 * limit allows, and never lowered. */
static void test_raise_fd_limit(void **state) {
  (void)state;
  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 200) skip();
  struct rlimit low = {100, old.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  assert_int_equal(wisp_accept_raise_fd_limit(150), 150);
  assert_int_equal(wisp_accept_raise_fd_limit(120), 150); /* not lowered */
  struct rlimit now;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
  assert_int_equal(now.rlim_cur, 150);
  if (old.rlim_max != RLIM_INFINITY) {
    assert_int_equal(wisp_accept_raise_fd_limit((uint64_t)old.rlim_max + 1000), old.rlim_max);
  }
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_broken_socket_pauses),
      cmocka_unit_test(test_out_of_fds_pauses_and_resumes),
      cmocka_unit_test(test_not_paused_after_restart),
      cmocka_unit_test(test_raise_fd_limit),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
