/* ingest_signal.c - requests that resume parked runs (hf_park.h): a request
 * to a wait_for path (a signal), and a POST to run.resume_url.
 *
 * A signal is a webhook like any other (routed, verified with the `verify:`
 * under its wait_for, stored with the runs of any workflow on the same path);
 * after its commit the request stays suspended while the parked runs' thread
 * matches it (hf_park_signal), and resumes with "resumed": the ids of the
 * runs whose resume committed. Before it is stored (hf_ingest_signal_admit)
 * it is refused 413 when its body, as JSON, is larger than a step's output
 * may be (the same check as a resume URL's body: step_output), and 503 when
 * the signals waiting to be matched fill their queue (hf_park.h). A resume URL
 * is checked here (its token, in constant time), its body handed over with no
 * event stored; 202 with "resumed" when the run was waiting at that step, 503
 * with Retry-After when it has not parked there yet (its step before is
 * still running, or it is queued), 410 when it no longer is (the URL was
 * used, or the wait ended), 404 for a token that is not one.
 *
 * Threading: hf_ingest_resume on an HTTP thread; hf_ingest_signal_stored on
 * the writer; the callbacks on the writer or on hf-signals (nothing to
 * resume). Neighbours: ingest.c, ingest_sync.c, park.c. */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_park.h"
#include "ingest_int.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* The signal's runs are resumed: answer the request (any thread). NULL:
 * they could not be; hf_ingest_answer_commit answers 503 (the event is
 * stored, a retry of the sender resumes them). */
static void signal_answered(void *arg, json_t *resumed, const char *why)
{
	struct req *r = arg;
	r->resumed = resumed; /* read by hf_ingest_answer_commit */
	r->signal_failed = resumed == NULL;
	r->signal_why = why;
	hf_ingest_resume_now(r);
}

/* A respond: sync workflow on the same path answers: the ids are not. */
static void signal_unanswered(void *arg, json_t *resumed, const char *why)
{
	(void)arg;
	(void)why;
	json_decref(resumed);
}

/* The JSON text of a body that becomes a step's output (a signal's, a
 * resume URL's), or NULL with the request's answer set: 413 when it is
 * larger than a step's output may be, as any step's (HF_STEP_OUTPUT_MAX). */
static char *step_output(struct req *r, json_t *body)
{
	char *output = json_dumps(body ? body : json_null(),
				  JSON_COMPACT | JSON_ENCODE_ANY);
	if (output && strlen(output) <= HF_STEP_OUTPUT_MAX)
		return output;
	free(output);
	if (output)
		hf_answer_error(
		    &r->ans, 413,
		    "the body is larger than a step's output may be "
		    "(%d bytes as JSON)",
		    HF_STEP_OUTPUT_MAX);
	else
		hf_answer_error(&r->ans, 500, "cannot encode the body");
	hf_metrics_event(r->nwfs ? r->wfs[0]->name : NULL, r->ans.status);
	return NULL;
}

bool hf_ingest_signal_admit(struct req *r)
{
	char *output = step_output(r, hf_event_body(r->ev));
	if (!output)
		return false;
	if (!hf_park_signal_reserve(r->in->eng->park)) {
		free(output);
		hf_answer_error(&r->ans, 503,
				"too many signals wait to be matched against "
				"the runs waiting for them; try again later");
		r->ans.retry_after = HF_PARK_SIGNAL_RETRY_AFTER_S;
		hf_metrics_event(r->nwfs ? r->wfs[0]->name : NULL, 503);
		return false;
	}
	r->signal_output = output;
	r->signal_reserved = true;
	return true;
}

void hf_ingest_signal_free(struct req *r)
{
	free(r->signal_output);
	r->signal_output = NULL;
	if (r->signal_reserved)
		hf_park_signal_unreserve(r->in->eng->park);
	r->signal_reserved = false;
}

void hf_ingest_signal_stored(struct req *r, bool answer)
{
	struct hf_park *p = r->in->eng->park;
	char *output = r->signal_output; /* both taken over */
	r->signal_output = NULL;
	r->signal_reserved = false;
	if (answer)
		hf_park_signal(p, r->ev, r->signal->wait_path, output,
			       signal_answered, r);
	else
		hf_park_signal(p, r->ev, r->signal->wait_path, output,
			       signal_unanswered, NULL);
}

static void resume_answered(void *arg, json_t *resumed, const char *why)
{
	struct req *r = arg;
	if (!resumed) {
		hf_answer_error(&r->ans, 503, "cannot resume the run now");
		r->ans.retry_after = 1;
		hf_metrics_event(NULL, 503);
	} else if (why == hf_park_not_yet) {
		/* Early, not late: the sender may try again (a 410 would tell
		 * it never to). The body was read: the connection stays. */
		json_decref(resumed);
		hf_answer_error(&r->ans, 503, "%s; try again later", why);
		r->ans.retry_after = 1;
		hf_metrics_event(NULL, 503);
	} else if (json_array_size(resumed) > 0) {
		hf_answer_json(&r->ans, 202,
			       json_pack("{s:o}", "resumed", resumed));
		hf_metrics_event(NULL, 202);
	} else {
		json_decref(resumed);
		hf_answer_error(&r->ans, 410,
				"this resume URL was used already, or its run "
				"no longer waits for it");
		hf_metrics_event(NULL, 410);
	}
	hf_ingest_resume_now(r);
}

enum hf_ingest_rc hf_ingest_resume(struct req *r, const char *url)
{
	struct hf_engine *eng = r->in->eng;
	char run_id[HF_ID_SIZE], err[512];
	int step = 0;
	if (!hf_park_resume_check(url, run_id, &step)) {
		hf_answer_error(&r->ans, 404, "no such resume URL");
		hf_metrics_event(NULL, 404);
		return HF_INGEST_ANSWER;
	}
	const char *ctype = MHD_lookup_connection_value(
	    r->conn, MHD_HEADER_KIND, "Content-Type");
	json_t *body = NULL;
	int rc =
	    hf_body_decode_sent(ctype, false, r->body.data ? r->body.data : "",
				r->body.len, &body, err, sizeof err);
	if (rc < 0) {
		hf_answer_error(&r->ans, 400, "%s", err);
		hf_metrics_event(NULL, 400);
		return HF_INGEST_ANSWER;
	}
	char *output = step_output(r, body);
	json_decref(body);
	if (!output)
		return HF_INGEST_ANSWER;
	atomic_fetch_add(&r->in->waiting, 1);
	if (atomic_load(&eng->draining)) {
		atomic_fetch_sub(&r->in->waiting, 1);
		free(output);
		hf_answer_error(&r->ans, 503, "shutting down");
		r->ans.retry_after = 5;
		return HF_INGEST_ANSWER;
	}
	r->state = WAITING;
	MHD_suspend_connection(r->conn);
	hf_park_resume(eng->park, run_id, step, output, resume_answered, r);
	return HF_INGEST_SUSPENDED;
}
