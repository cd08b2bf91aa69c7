/* wisp_list: an intrusive, circular, doubly linked list (as h2o's
 * include/h2o/linklist.h). A node is a wisp_list member of the element; a
 * list is a wisp_list anchor that wisp_list_init makes empty. Nothing is
 * allocated: the element owns its node, and whoever owns the list owns
 * neither the elements nor their lifetime. Single-threaded.
 *
 *   typedef struct { wisp_list link; int fd; } conn;
 *   wisp_list conns;                       wisp_list_init(&conns);
 *   wisp_list_push_front(&conns, &c->link);
 *   WISP_LIST_FOREACH(it, &conns) { conn *c = WISP_LIST_ELEM(it, conn, link); ... }
 *   wisp_list_unlink(&c->link);
 *
 * A node that is in no list has NULL links (a zeroed element is unlinked);
 * wisp_list_linked says which. */
#ifndef WISP_LIST_H
#define WISP_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wisp_list {
  struct wisp_list *next, *prev;
} wisp_list;

/* The element of type |type| whose member |member| is the node |node|. */
#define WISP_LIST_ELEM(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* Visits every node of |anchor| from the front. The loop body must not
 * unlink |it|; use WISP_LIST_FOREACH_SAFE for that. */
#define WISP_LIST_FOREACH(it, anchor) for (wisp_list *it = (anchor)->next; it != (anchor); it = it->next)
/* As WISP_LIST_FOREACH; the body may unlink (and free) |it|. */
#define WISP_LIST_FOREACH_SAFE(it, anchor) \
  for (wisp_list *it = (anchor)->next, *it##_next_ = it->next; it != (anchor); it = it##_next_, it##_next_ = it->next)

static inline void wisp_list_init(wisp_list *anchor) { anchor->next = anchor->prev = anchor; }

static inline bool wisp_list_empty(const wisp_list *anchor) { return anchor->next == anchor; }

static inline bool wisp_list_linked(const wisp_list *node) { return node->next != NULL; }

/* Puts unlinked |node| just before |pos| (an anchor or a linked node). */
static inline void wisp_list_insert(wisp_list *pos, wisp_list *node) {
  node->prev = pos->prev;
  node->next = pos;
  node->prev->next = node;
  node->next->prev = node;
}

static inline void wisp_list_push_front(wisp_list *anchor, wisp_list *node) { wisp_list_insert(anchor->next, node); }

static inline void wisp_list_push_back(wisp_list *anchor, wisp_list *node) { wisp_list_insert(anchor, node); }

/* Takes |node| out of its list; it is then unlinked. Accepts an unlinked
 * node (does nothing). */
static inline void wisp_list_unlink(wisp_list *node) {
  if (!node->next) return;
  node->next->prev = node->prev;
  node->prev->next = node->next;
  node->next = node->prev = NULL;
}

/* The first node, or NULL when empty. */
static inline wisp_list *wisp_list_first(const wisp_list *anchor) {
  return anchor->next == anchor ? NULL : anchor->next;
}

#endif
