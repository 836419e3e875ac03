/* writer_gate.h - holds a store's writer thread inside a batch for the unit
 * tests of group commit (test_store.c, test_pg_cluster.c): gate_submit
 * queues an HF_W_CALL whose call waits until gate_release(), and returns
 * once the writer has begun it, so that writes submitted meanwhile queue up
 * behind a batch being applied. One gate at a time. Header-only, like
 * tap.h. */
#ifndef WRITER_GATE_H
#define WRITER_GATE_H

#include "hf_store.h"

#include <pthread.h>
#include <stdbool.h>

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_entered;

static inline int gate_call(struct hf_store *s, void *arg)
{
	(void)s;
	(void)arg;
	pthread_mutex_lock(&gate_lock);
	gate_entered = true;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	return 0;
}

/* Submits gate (done() called after its commit, ctx its argument) and waits
 * until the writer is in it. */
static inline void gate_submit(struct hf_store *s, struct hf_write *gate,
			       void (*done)(struct hf_write *w), void *ctx)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = gate_entered = false;
	pthread_mutex_unlock(&gate_lock);
	*gate = (struct hf_write){.kind = HF_W_CALL, .done = done, .ctx = ctx};
	gate->call = gate_call;
	hf_store_submit(s, gate);
	pthread_mutex_lock(&gate_lock);
	while (!gate_entered)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static inline void gate_release(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

#endif
