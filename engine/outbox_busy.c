/* outbox_busy.c - the outbox's bookkeeping: the busy set, the ids of
 * deliveries a scan must skip (outbox.c says when an id enters and leaves
 * it), and the per-host table of attempts in flight and ready (keyed by
 * hf_host_of). Ids sit in an
 * array; a hash index (FNV-1a, open addressing with linear probing) finds them,
 * so a scan of hundreds of rows against hundreds of busy ids stays linear. The
 * index is rebuilt when ids are dropped or it is half full.
 *
 * No locking of its own: the outbox calls it under its lock, from the outbox
 * thread and the writer's done() callbacks. */
#include "outbox_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

static void reindex(struct hf_busy *b)
{
	if (b->nslots < 2 * b->n + 2) {
		size_t n = 256;
		while (n < 4 * b->n)
			n *= 2;
		free(b->slots);
		b->slots = hf_xmalloc(n * sizeof *b->slots);
		b->nslots = n;
	}
	memset(b->slots, 0, b->nslots * sizeof *b->slots);
	size_t mask = b->nslots - 1;
	for (size_t i = 0; i < b->n; i++) {
		size_t k = id_hash(b->ids[i].id) & mask;
		while (b->slots[k])
			k = (k + 1) & mask;
		b->slots[k] = (uint32_t)i + 1;
	}
}

static struct hf_busy_id *find(const struct hf_busy *b, const char *id)
{
	if (!b->nslots)
		return NULL;
	size_t mask = b->nslots - 1;
	for (size_t k = id_hash(id) & mask; b->slots[k]; k = (k + 1) & mask)
		if (strcmp(b->ids[b->slots[k] - 1].id, id) == 0)
			return &b->ids[b->slots[k] - 1];
	return NULL;
}

bool hf_busy_has(const struct hf_busy *b, const char *id)
{
	return find(b, id) != NULL;
}

void hf_busy_add(struct hf_busy *b, const char *id)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->ids = hf_xrealloc(b->ids, b->cap * sizeof *b->ids);
	}
	struct hf_busy_id *e = &b->ids[b->n++];
	snprintf(e->id, sizeof e->id, "%s", id);
	e->done = false;
	if (b->nslots < 2 * b->n + 2) {
		reindex(b);
		return;
	}
	size_t mask = b->nslots - 1;
	size_t k = id_hash(id) & mask;
	while (b->slots[k])
		k = (k + 1) & mask;
	b->slots[k] = (uint32_t)b->n;
}

void hf_busy_done(struct hf_busy *b, const char *id)
{
	struct hf_busy_id *e = find(b, id);
	if (e)
		e->done = true;
}

void hf_busy_sweep(struct hf_busy *b)
{
	size_t before = b->n;
	for (size_t i = 0; i < b->n;) {
		if (b->ids[i].done)
			b->ids[i] = b->ids[--b->n];
		else
			i++;
	}
	if (b->n != before)
		reindex(b);
}

void hf_busy_free(struct hf_busy *b)
{
	free(b->ids);
	free(b->slots);
	memset(b, 0, sizeof *b);
}

struct hf_host *hf_hosts_get(struct hf_hosts *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->items[i].name, name) == 0)
			return &t->items[i];
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->items = hf_xrealloc(t->items, t->cap * sizeof *t->items);
	}
	struct hf_host *h = &t->items[t->n++];
	snprintf(h->name, sizeof h->name, "%s", name);
	h->inflight = h->ready = 0;
	return h;
}

void hf_hosts_put(struct hf_hosts *t, struct hf_host *h)
{
	if (h->inflight == 0 && h->ready == 0)
		*h = t->items[--t->n];
}

/* The host:port of url, lower-case, without credentials. */
void hf_host_of(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
}
