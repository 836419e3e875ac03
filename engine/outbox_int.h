/* outbox_int.h - the outbox's internals shared by its files (outbox.c, the
 * thread; outbox_busy.c, the busy set). Not for other modules. */
#ifndef HF_OUTBOX_INT_H
#define HF_OUTBOX_INT_H

#include "hf_store.h"
#include "hf_util.h"

#include <stdbool.h>
#include <stdint.h>

/* The ids of deliveries that a scan must skip: read ahead, in flight, or
 * their attempt's record not yet committed. A done id (its record
 * committed) is dropped at the next sweep. Not locked: the outbox holds its
 * lock around every call. Zeroed to start. */
struct hf_busy_id {
	char id[HF_DELIVERY_ID_SIZE];
	bool done;
};
struct hf_busy {
	struct hf_busy_id *ids;
	size_t n, cap;
	uint32_t *slots; /* hash index of ids: position + 1, 0 = empty */
	size_t nslots;	 /* a power of two, at least twice n */
};
bool hf_busy_has(const struct hf_busy *b, const char *id);
void hf_busy_add(struct hf_busy *b, const char *id);
void hf_busy_done(struct hf_busy *b, const char *id); /* unknown id: no-op */
void hf_busy_sweep(struct hf_busy *b);		      /* drops the done ids */
void hf_busy_free(struct hf_busy *b);

#endif
