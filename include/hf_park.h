/* hf_park.h - the parked run: a run that waits (a `sleep:` or `until:` step,
 * a `wait_for:` step; later debounce, throttle and lanes) is a row in the
 * state store with status `waiting`, a due time (wake_at) and what it waits
 * for (RUN's "waiting": {"for", "until", "step"}), and at a wait_for the path
 * whose signals may resume it. It holds no worker, no Lua state and no memory
 * of the scheduler's.
 *
 * Parking: the worker runs the park step's code (its `if:`, an `until:`
 * expression), then hf_park_step sets the run's waiting state; the step's
 * write stores it (HF_W_STEP without a step record) and, once committed, the
 * run leaves memory (hf_park_parked notes its due time).
 *
 * Waking: one thread (hf-park) sleeps until the earliest due time (one timer:
 * hf_store_next_wake, lowered by hf_park_parked), then wakes the runs due in
 * batches (hf_store_wake_due, on the writer): each becomes a run of the disk
 * backlog, which loads it page by page as the scheduler has room
 * (backlog.c). Loaded, it is `woken`: the worker ends its park step without
 * running anything (hf_park_woken_result: nil, or a signal's body) and the
 * run goes on at the next step. So a restart, even a SIGKILL, loses nothing:
 * due times are rows, and a run woken but not yet finished is a row of the
 * backlog.
 *
 * Signals: a request to a wait_for path is stored as an event (ingest), then,
 * after its commit, handed here: a second thread (hf-signals) loads the runs
 * waiting on that path, evaluates each one's wait_for `if:` (with `event` the
 * run's event and `signal` the request, in an expression-only Lua runtime
 * with its limits: never on an HTTP thread, never on the writer), and
 * resumes the matches in one write, each conditional on the run still
 * waiting at that step (hf_store_resume_run). The ids whose resume committed
 * are exactly the answer's "resumed". run.resume_url resumes one run the
 * same way, by its token, or finds that the run has not parked at that step
 * yet (hf_park_not_yet: its sender is asked to try again).
 *
 * Parking a run of another kind (debounce, throttle, a lane's turn): set
 * run->status = HF_RUN_WAITING, run->wake_at (when to go on, or a far time
 * for "until something else wakes it"), run->waiting (RUN's "waiting" JSON,
 * with "for") before its write: HF_W_STEP without a result (a run that has
 * begun), or HF_W_INGEST / HF_W_RUNS (a new run, stored parked: no queue
 * row). After the commit, drop it from memory and call hf_park_parked. It
 * comes back woken through the disk backlog at wake_at (or earlier by
 * hf_store_resume_run when it waits at a wait_for step); woken at a step
 * that does not park (step 0 of a debounced run), it simply runs it.
 *
 * Threading: as stated per function. */
#ifndef HF_PARK_H
#define HF_PARK_H

#include "hf_engine.h"
#include "hf_run.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* --- One run (park_step.c): pure, any thread. --- */

/* After the code of a park step ran and succeeded (res), at now: parks the
 * run (status HF_RUN_WAITING, wake_at, waiting, wait_path) and returns 1;
 * returns 0 when the time has come already (the step then succeeds at once,
 * output nil); -1 when an `until:` value is not a time (res is failed with
 * why). A park step's output is nil either way. */
int hf_park_step(struct hf_run *run, struct hf_step_result *res, int64_t now);
/* The result of a woken run's park step (run->woken): succeeded, its output
 * the signal's body when one resumed it (in run->outputs), else nil. */
void hf_park_woken_result(struct hf_run *run, struct hf_step_result *res,
			  int64_t now);

/* run.resume_url: base (scheme://host[:port], no trailing '/') and the key
 * its tokens are made with (derived from the store's secret key), for the
 * process. Main thread, before workers start. */
void hf_park_set_resume(const unsigned char key[32], const char *base);
/* The URL that resumes the first wait_for step at or after `from` of run
 * (malloc'd), or NULL when there is none or no key was set. */
char *hf_park_resume_url(const struct hf_run *run, size_t from);
/* Checks the path of a resume URL ("/resume/RUN/STEP/TOKEN") in constant
 * time; fills run_id and step. Returns true when the token is right. */
bool hf_park_resume_check(const char *path, char run_id[HF_ID_SIZE], int *step);

/* --- The threads (park.c). --- */

struct hf_park;

/* The parked runs' side over eng (its store, backlog, snapshot). Its two
 * threads start when first needed (park.c): the wake-up thread now if the
 * store has parked runs or is shared, else when a run parks; the signal
 * thread with the first signal or resume. NULL when a thread needed now
 * cannot start. */
struct hf_park *hf_park_start(struct hf_engine *eng);
/* Stops and joins the threads that started; jobs not done are answered with
 * nothing resumed. Frees p. Before the store closes. */
void hf_park_stop(struct hf_park *p); /* accepts NULL */
/* A run parked until wake_at committed (writer thread, in its done()). */
void hf_park_parked(struct hf_park *p, int64_t wake_at);
/* n parked runs left the waiting state otherwise than by waking (a cancel):
 * the gauge follows. Any thread. */
void hf_park_unparked(struct hf_park *p, int n);
/* Runs parked now (the /metrics gauge). Any thread. */
int64_t hf_park_count(struct hf_park *p);

/* done(arg, resumed, why) gets the ids of the runs resumed (a new array, the
 * callee's), on the writer thread after the resume committed (or on
 * hf-signals with [] when nothing was to be resumed); NULL when nothing was
 * resumed: why is NULL when the resume could not be stored or the runs not
 * read (worth another try), else why the signal gave up (its limits, park.c;
 * a static text). A resume URL whose run has not parked at its step yet
 * (HF_RESUME_NOT_YET: queued, running or waiting before it) gets [] and why
 * hf_park_not_yet: the same URL resumes it once it waits there. */
typedef void (*hf_park_done)(void *arg, json_t *resumed, const char *why);
extern const char hf_park_not_yet[];
/* Reserves a place for a signal among the HF_PARK_SIGNAL_QUEUE that may wait
 * to be matched: false when they are all taken (the signal is refused before
 * it is stored). hf_park_signal takes the place over; a signal that does not
 * get there gives it back (hf_park_signal_unreserve). Any thread. */
bool hf_park_signal_reserve(struct hf_park *p);
void hf_park_signal_unreserve(struct hf_park *p);
/* A request to the wait_for path `path` (as the workflows declare it) was
 * stored as ev: resumes the runs it matches, with output (the JSON text of
 * ev's body, taken over) as their step's output. Takes a reference on ev and
 * the place reserved for it. Any thread. */
void hf_park_signal(struct hf_park *p, struct hf_event *ev, const char *path,
		    char *output, hf_park_done done, void *arg);
/* run.resume_url was called: resumes run_id at step with output (JSON text,
 * taken over). Any thread. */
void hf_park_resume(struct hf_park *p, const char *run_id, int step,
		    char *output, hf_park_done done, void *arg);

#endif
