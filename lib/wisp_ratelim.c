#include "lib/wisp_ratelim.h"

void wisp_ratelim_init(wisp_ratelim *r, uint32_t burst, double per_second, double now) {
  r->burst = burst;
  r->per_second = per_second > 0 ? per_second : 0;
  r->tokens = burst;
  r->last = now;
}

bool wisp_ratelim_take(wisp_ratelim *r, double now) {
  if (now > r->last) {
    r->tokens += (now - r->last) * r->per_second;
    if (r->tokens > r->burst) r->tokens = r->burst;
    r->last = now;
  }
  if (r->tokens < 1) return false;
  r->tokens -= 1;
  return true;
}
