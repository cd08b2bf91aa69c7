#include "control/agent/wisp_webhook_queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"

void wwq_job_free(wwq_job *j) {
  free(j->body);
  free(j->trust_domain);
  free(j->bundle_pem);
  wisp_buf_cleanup(&j->out);
  free(j);
}

static char *dup_or_null(const char *s) { return s ? wisp_strdup(s) : NULL; }

/* Appends |j| to the list |*head|..|*last|. */
static void enqueue(wwq_job **head, wwq_job **last, wwq_job *j) {
  j->next = NULL;
  if (*last) {
    (*last)->next = j;
  } else {
    *head = j;
  }
  *last = j;
}

/* Takes |j| off |todo| (under |mu|). */
static void unlink_todo(wwq_queue *q, wwq_job *j) {
  wwq_job *prev = NULL;
  for (wwq_job *k = q->todo; k && k != j; k = k->next) prev = k;
  if (prev) {
    prev->next = j->next;
  } else {
    q->todo = j->next;
  }
  if (q->todo_last == j) q->todo_last = prev;
  j->next = NULL;
}

/* The next review to decide (under |mu|): the oldest from a source other
 * than the last one's, if any, so one source's flood of reviews cannot
 * hold up another's for more than one review at a time. */
static wwq_job *next_job(wwq_queue *q) {
  wwq_job *j = q->todo;
  for (wwq_job *k = q->todo; k; k = k->next) {
    if (strcmp(k->src, q->last_src) != 0) {
      j = k;
      break;
    }
  }
  unlink_todo(q, j);
  return j;
}

bool wwq_drop(wwq_queue *q, wwq_job *j) {
  pthread_mutex_lock(&q->mu);
  bool waiting = !j->taken;
  if (waiting) {
    unlink_todo(q, j);
    q->queued_cost -= j->cost;
  }
  j->owner = NULL;
  pthread_mutex_unlock(&q->mu);
  if (waiting) wwq_job_free(j);
  return waiting;
}

/* The bytes of reviews queued or in hand from |src| (under |mu|). */
static size_t source_cost(const wwq_queue *q, const char *src) {
  size_t n = q->in_hand && !strcmp(q->in_hand->src, src) ? q->in_hand->cost : 0;
  for (const wwq_job *k = q->todo; k; k = k->next)
    if (!strcmp(k->src, src)) n += k->cost;
  return n;
}

static void *worker_main(void *arg) {
  wwq_queue *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (!q->stop && !q->todo) pthread_cond_wait(&q->cv, &q->mu);
    if (q->stop) break;
    wwq_job *j = next_job(q);
    j->taken = true;
    q->in_hand = j;
    snprintf(q->last_src, sizeof(q->last_src), "%s", j->src);
    pthread_mutex_unlock(&q->mu);
    wisp_admission_review(&j->inject, j->scope, j->body, j->len, &j->out, &j->r);
    pthread_mutex_lock(&q->mu);
    q->in_hand = NULL;
    q->queued_cost -= j->cost;
    enqueue(&q->done, &q->done_last, j);
    ev_async_send(q->loop, &q->done_async);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *a, int revents) {
  wwq_queue *q = a->data;
  pthread_mutex_lock(&q->mu);
  wwq_job *list = q->done;
  q->done = q->done_last = NULL;
  pthread_mutex_unlock(&q->mu);
  while (list) {
    wwq_job *next = list->next;
    q->done_cb(list, q->data);
    list = next;
  }
}

wwq_result wwq_submit(wwq_queue *q, void *owner, const char *src, wisp_admission_scope scope, const char *body,
                      size_t len, const wispctl_inject_cfg *inject, wwq_job **out) {
  size_t cost = len > WWQ_JOB_MIN_COST ? len : WWQ_JOB_MIN_COST;
  pthread_mutex_lock(&q->mu);
  bool total_full = q->queued_cost + cost > q->max_queue;
  bool source_full = !total_full && source_cost(q, src) + cost > q->max_per_source;
  if (!total_full && !source_full) q->queued_cost += cost; /* taken now: the job is queued below */
  pthread_mutex_unlock(&q->mu);
  if (total_full) return WWQ_FULL;
  if (source_full) return WWQ_SOURCE_FULL;
  wwq_job *j = wisp_calloc(1, sizeof(*j));
  snprintf(j->src, sizeof(j->src), "%s", src);
  j->cost = cost;
  j->owner = owner;
  j->scope = scope;
  j->body = wisp_malloc(len ? len : 1);
  memcpy(j->body, body, len);
  j->len = len;
  j->inject = *inject;
  j->trust_domain = dup_or_null(j->inject.o.trust_domain);
  j->bundle_pem = dup_or_null(j->inject.o.bundle_pem);
  j->inject.o.trust_domain = j->trust_domain;
  j->inject.o.bundle_pem = j->bundle_pem;
  *out = j;
  pthread_mutex_lock(&q->mu);
  enqueue(&q->todo, &q->todo_last, j);
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return WWQ_QUEUED;
}

wisp_err wwq_start(wwq_queue *q, struct ev_loop *loop, size_t max_queue, size_t max_per_source, wwq_done_cb cb,
                   void *data, char *err, size_t err_len) {
  memset(q, 0, sizeof(*q));
  q->loop = loop;
  q->max_queue = max_queue;
  q->max_per_source = max_per_source;
  q->done_cb = cb;
  q->data = data;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  ev_async_init(&q->done_async, on_done);
  q->done_async.data = q;
  ev_async_start(loop, &q->done_async);
  ev_unref(loop); /* the worker's wakeups alone keep no loop running */
  q->worker_started = pthread_create(&q->worker, NULL, worker_main, q) == 0;
  if (!q->worker_started) {
    snprintf(err, err_len, "cannot start the webhook's worker thread: %s", strerror(errno));
    ev_ref(loop);
    ev_async_stop(loop, &q->done_async);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    return WISP_ERR_INTERNAL;
  }
  return WISP_OK;
}

void wwq_stop(wwq_queue *q) {
  if (!q->worker_started) return;
  /* It finishes the review in hand, then every job is on a list. */
  pthread_mutex_lock(&q->mu);
  q->stop = true;
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
  pthread_join(q->worker, NULL);
  q->worker_started = false;
}

void wwq_cleanup(wwq_queue *q) {
  for (wwq_job *lists[] = {q->todo, q->done}, **l = lists; l < lists + 2; l++) {
    while (*l) {
      wwq_job *next = (*l)->next;
      wwq_job_free(*l);
      *l = next;
    }
  }
  q->todo = q->todo_last = q->done = q->done_last = NULL;
  ev_ref(q->loop);
  ev_async_stop(q->loop, &q->done_async);
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
}
