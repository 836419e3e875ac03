/* park_step.c - one parked run (see hf_park.h): what a park step (`sleep:`,
 * `until:`, `wait_for:`) makes of the run after its code ran, the result of
 * the step once the run is woken, and run.resume_url's tokens.
 *
 * A token is the first 128 bits of HMAC-SHA256(K, "RUN_ID/STEP") in hex,
 * where K is HMAC-SHA256(the state database's secret key, a label): only
 * the server can make one, it names one wait of one run, and checking it
 * needs no row. It is one-shot because the resume is conditional on the run
 * still waiting at that step (hf_store_resume_run).
 *
 * Threading: pure, any thread; the key and base URL are set once by the
 * server before its workers start. Neighbours: ops.c (hf_ops_step calls in),
 * park.c (the threads), ingest (checks tokens). */
#include "hf_crypto.h"
#include "hf_park.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set once, before or while the first requests come: the base is
 * published after the key (release/acquire), and a request that comes before
 * it sees no URL (run.resume_url nil, resume URLs unknown).
 *
 * K is derived on the first token, not here: an HMAC loads OpenSSL's
 * providers (about 2 MiB of RSS, see crypto.c), which a server whose
 * workflows never wait should not pay at start. Until then the secret key
 * itself is kept (secret_key), then wiped. */
static unsigned char secret_key[32];
static unsigned char resume_key[32];
static pthread_once_t resume_once = PTHREAD_ONCE_INIT;
static _Atomic(char *) resume_base;

static void derive_resume_key(void)
{
	static const char label[] = "hookflow run.resume_url v1";
	hf_hmac_sha256(secret_key, sizeof secret_key, label, sizeof label - 1,
		       resume_key);
	explicit_bzero(secret_key, sizeof secret_key);
}

void hf_park_set_resume(const unsigned char key[32], const char *base)
{
	if (atomic_load(&resume_base))
		return; /* once per process */
	memcpy(secret_key, key, sizeof secret_key);
	char *b = hf_xstrdup(base ? base : "");
	size_t n = strlen(b);
	while (n > 0 && b[n - 1] == '/')
		b[--n] = '\0';
	atomic_store_explicit(&resume_base, b, memory_order_release);
}

static const char *base_url(void)
{
	return atomic_load_explicit(&resume_base, memory_order_acquire);
}

/* The token of run_id's wait at step: 32 hex digits and a NUL. */
static void token(const char *run_id, int step, char out[33])
{
	char msg[HF_ID_SIZE + 16];
	unsigned char mac[32];
	int n = snprintf(msg, sizeof msg, "%s/%d", run_id, step);
	pthread_once(&resume_once, derive_resume_key);
	hf_hmac_sha256(resume_key, sizeof resume_key, msg, (size_t)n, mac);
	hf_hex_encode(mac, 16, out);
}

char *hf_park_resume_url(const struct hf_run *run, size_t from)
{
	const char *base = base_url();
	if (!base || !run->wf)
		return NULL;
	for (size_t i = from; i < run->wf->nsteps; i++) {
		if (run->wf->steps[i].park != HF_PARK_WAIT_FOR)
			continue;
		char t[33];
		token(run->id, (int)i, t);
		return hf_xasprintf("%s/resume/%s/%zu/%s", resume_base, run->id,
				    i, t);
	}
	return NULL;
}

bool hf_park_resume_check(const char *path, char run_id[HF_ID_SIZE], int *step)
{
	static const char prefix[] = "/resume/";
	if (!base_url() || strncmp(path, prefix, sizeof prefix - 1) != 0)
		return false;
	const char *id = path + sizeof prefix - 1;
	size_t idn = strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_");
	if (idn == 0 || idn >= HF_ID_SIZE || id[idn] != '/')
		return false;
	const char *num = id + idn + 1;
	size_t nn = strspn(num, "0123456789");
	if (nn == 0 || nn > 4 || num[nn] != '/' || (nn > 1 && num[0] == '0'))
		return false; /* one spelling per URL: no leading zeros */
	memcpy(run_id, id, idn);
	run_id[idn] = '\0';
	*step = (int)strtol(num, NULL, 10);
	const char *given = num + nn + 1;
	size_t gn = strcspn(given, "/");
	char want[33];
	token(run_id, *step, want);
	return hf_ct_equal(given, gn, want, 32) && given[gn] == '\0';
}

/* An `until:` expression's value as wall ms: a string (ISO 8601 or Unix
 * seconds) or a number of Unix seconds. Returns 0 or -1. */
static int until_value(const json_t *v, int64_t *ms)
{
	if (json_is_string(v))
		return hf_park_parse_time(json_string_value(v),
					  json_string_length(v), ms);
	if (json_is_number(v)) {
		double s = json_number_value(v);
		if (s <= 0 || s > 1e13)
			return -1;
		*ms = (int64_t)(s * 1000.0);
		return 0;
	}
	return -1;
}

/* RUN's "waiting" as JSON text (a debounced run's burst kept in it). */
static char *waiting_text(const struct hf_run *run, const struct hf_step *st,
			  int64_t at)
{
	static const char *const kinds[] = {
	    [HF_PARK_SLEEP] = "sleep",
	    [HF_PARK_UNTIL] = "until",
	    [HF_PARK_WAIT_FOR] = "signal",
	};
	char iso[32];
	hf_time_iso(at, iso);
	json_t *o = json_pack("{s:s,s:s,s:s}", "for", kinds[st->park], "until",
			      iso, "step", st->id);
	return hf_run_waiting_text(run, o);
}

int hf_park_step(struct hf_run *run, struct hf_step_result *res, int64_t now)
{
	const struct hf_step *st = &run->wf->steps[run->next_step];
	int64_t at = now;
	int rc = 1;
	switch (st->park) {
	case HF_PARK_NONE:
		return 0;
	case HF_PARK_SLEEP:
		at = now + st->sleep_ms;
		break;
	case HF_PARK_UNTIL:
		if (st->until_ms > 0) {
			at = st->until_ms;
		} else if (until_value(res->output, &at) < 0) {
			char *v = json_dumps(res->output,
					     JSON_COMPACT | JSON_ENCODE_ANY);
			res->status = HF_STEP_FAILED;
			free(res->error);
			res->error = hf_xasprintf(
			    "until: %.200s is not a time (expected ISO 8601 "
			    "with a zone, or Unix seconds)",
			    v ? v : "?");
			free(v);
			rc = -1;
		}
		break;
	case HF_PARK_WAIT_FOR:
		at = now + st->wait_timeout_ms;
		break;
	}
	json_decref(res->output);
	res->output = json_null();
	if (rc < 0 || (st->park != HF_PARK_WAIT_FOR && at <= now))
		return rc < 0 ? -1 : 0;
	run->status = HF_RUN_WAITING;
	run->wake_at = at;
	char *text = waiting_text(run, st, at);
	free(run->waiting);
	run->waiting = text;
	free(run->wait_path);
	run->wait_path =
	    st->park == HF_PARK_WAIT_FOR ? hf_xstrdup(st->wait_path) : NULL;
	return 1;
}

void hf_park_woken_result(struct hf_run *run, struct hf_step_result *res,
			  int64_t now)
{
	const struct hf_step *st = &run->wf->steps[run->next_step];
	json_t *out = json_object_get(run->outputs, st->id);
	memset(res, 0, sizeof *res);
	res->status = HF_STEP_SUCCEEDED;
	res->output = out ? json_incref(out) : json_null();
	res->logs = json_array();
	res->started_at = res->finished_at = now;
	/* The run's timeout counts from now (hf_step_budget), not from its
	 * due time: a server that was down meanwhile does not time it out. */
	run->wake_at = now;
	run->woken = false;
	hf_run_end_wait(run);
}
