/* wisp_webhook_queue: the admission webhook's reviews, decided on a worker
 * thread the queue owns, one at a time, so the agent's loop (its RPCs too)
 * never waits for one (a large review takes tens of milliseconds of
 * jansson, libyaml and diffing).
 *
 * A job owns copies of all it reads (the body, inject's options and their
 * strings: a CA rotation replaces the loop's). The loop hands jobs over
 * and takes answers back under |mu|, woken by |done_async|. What waits is
 * bounded in bytes (each review counted as at least WWQ_JOB_MIN_COST):
 * |max_queue| in all, |max_per_source| from one source; the worker takes
 * the oldest review of another source than the last one's first.
 *
 * Threads: every function is called on the loop; only the worker and the
 * functions here touch the lists. Private to //control:webhook. */
#ifndef WISP_WEBHOOK_QUEUE_H
#define WISP_WEBHOOK_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "control/agent/wisp_admission.h"
#include "control/wispctl/inject.h"
#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"

/* What a queued review counts against the queue's byte budgets at least:
 * many tiny reviews cost their bookkeeping and work too. */
#define WWQ_JOB_MIN_COST 4096
#define WWQ_SRC_MAX 64

typedef struct wwq_job wwq_job;

/* One review for the worker: everything it reads is its own. */
struct wwq_job {
  void *owner;           /* the loop's (its connection); NULL once that is gone */
  char src[WWQ_SRC_MAX]; /* its connection's source */
  size_t cost;           /* counted against the queue's budgets until decided */
  bool taken;            /* in the worker's hands (under |mu|) */
  wisp_admission_scope scope;
  char *body;
  size_t len;
  wispctl_inject_cfg inject; /* a copy; its two changing strings below */
  char *trust_domain, *bundle_pem;
  wisp_buf out; /* the answer */
  wisp_admission_result r;
  wwq_job *next;
};

/* Called on the loop with each decided job, which it then owns (free it
 * with wwq_job_free). */
typedef void (*wwq_done_cb)(wwq_job *j, void *data);

typedef struct {
  struct ev_loop *loop;
  size_t max_queue, max_per_source;
  wwq_done_cb done_cb;
  void *data;
  /* The worker: |todo| and |done| (FIFO lists) and |stop| under |mu|. */
  pthread_t worker;
  bool worker_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wwq_job *todo, *todo_last, *done, *done_last;
  wwq_job *in_hand;           /* the review being decided */
  size_t queued_cost;         /* of |todo| and |in_hand| */
  char last_src[WWQ_SRC_MAX]; /* the source of the review decided last */
  bool stop;
  ev_async done_async;
} wwq_queue;

/* Starts the worker; on failure writes why to |err| and |q| holds
 * nothing. */
wisp_err wwq_start(wwq_queue *q, struct ev_loop *loop, size_t max_queue, size_t max_per_source, wwq_done_cb cb,
                   void *data, char *err, size_t err_len) WISP_MUST_CHECK;

typedef enum {
  WWQ_QUEUED,      /* |*out| is on its way to the worker */
  WWQ_FULL,        /* the reviews waiting reach |max_queue| */
  WWQ_SOURCE_FULL, /* those from this source reach |max_per_source| */
} wwq_result;

/* Hands a review of |len| bytes of |body| (copied, as |inject| and its
 * strings are) to the worker for |owner|; |*out| is set only when it is
 * queued. */
wwq_result wwq_submit(wwq_queue *q, void *owner, const char *src, wisp_admission_scope scope, const char *body,
                      size_t len, const wispctl_inject_cfg *inject, wwq_job **out);
/* The owner of |j| is gone: a review still waiting is freed undecided (true
 * is returned); one in the worker's hands comes back to done_cb with
 * owner NULL. */
bool wwq_drop(wwq_queue *q, wwq_job *j);
/* Stops the worker once it finished the review in hand. */
void wwq_stop(wwq_queue *q);
/* After wwq_stop and once no owner remains: frees every job left. */
void wwq_cleanup(wwq_queue *q);
void wwq_job_free(wwq_job *j);

#endif
