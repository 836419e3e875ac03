/* outbox_int.h - the outbox's internals shared by its files (outbox.c, the
 * thread; outbox_busy.c, the busy set and the per-host table). Not for other
 * modules. */
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

/* Attempts in flight and ready, per host (host:port). Outbox thread only.
 * Zeroed to start; free items at the end. */
struct hf_host {
	char name[256];
	int inflight, ready;
};
struct hf_hosts {
	struct hf_host *items;
	size_t n, cap;
};
/* The host's entry, made when missing. The pointer is valid until the next
 * hf_hosts_get or hf_hosts_put. */
struct hf_host *hf_hosts_get(struct hf_hosts *t, const char *name);
/* Drops h when nothing of its host is in flight or ready, so the table stays
 * as small as the number of hosts being delivered to. */
void hf_hosts_put(struct hf_hosts *t, struct hf_host *h);
/* The host:port of url (lower-case, no credentials) into out: the table's
 * key. */
void hf_host_of(const char *url, char *out, size_t size);

#endif
