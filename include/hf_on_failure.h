/* hf_on_failure.h - a workflow's `on_failure:` steps at run time: entered
 * once when the run fails (after its retries), with the `failure` global
 * {step, error, attempt}; each runs once, none is retried, a failure of one is
 * recorded and the next still runs; the run then ends failed with its own
 * error. The steps are wf->steps[nsteps…] (wf_flow.c), so a run in them is
 * stored as any run (status running, next_step past the run's steps) and a
 * restart resumes them where they were.
 *
 * Pure functions on a run, except hf_on_failure_restore (a store read). */
#ifndef HF_ON_FAILURE_H
#define HF_ON_FAILURE_H

#include "hf_run.h"
#include "hf_store.h"
#include <stdbool.h>

/* The run just failed at step step_id (error, attempt): when its workflow has
 * on_failure steps and the run is not in them already, moves it to the first
 * (status running, run->failure set) and returns true; else false. */
bool hf_on_failure_enter(struct hf_run *run, const char *step_id,
			 const char *error, int attempt);
/* After an on_failure step ran (res): the next one, or the run's end (status
 * failed). Returns true when the run is over. */
bool hf_on_failure_advance(struct hf_run *run,
			   const struct hf_step_result *res);
/* A run loaded in its on_failure steps (after a restart) has no
 * run->failure and no run->error in memory: reads them back from its record
 * (the run's error, its last failed step). Any thread; a read. */
void hf_on_failure_restore(struct hf_store *s, struct hf_run *run);

#endif
