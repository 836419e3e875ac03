/* hf_workflow.h - the workflow model: YAML files turned into immutable,
 * validated structures, with every problem reported as FILE:LINE:COL.
 *
 * A loaded workflow never changes. Reloading builds a new one; runs hold a
 * reference to the version they started with (hf_workflow_ref/unref are
 * atomic). Lua code is syntax-checked at load but compiled for execution by
 * each Lua state (hf_luart), keyed by (workflow version, chunk). */
#ifndef HF_WORKFLOW_H
#define HF_WORKFLOW_H

#include "hf_cron.h"
#include "hf_util.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hf_method {
	HF_METHOD_GET = 1 << 0,
	HF_METHOD_POST = 1 << 1,
	HF_METHOD_PUT = 1 << 2,
	HF_METHOD_PATCH = 1 << 3,
	HF_METHOD_DELETE = 1 << 4,
	HF_METHOD_HEAD = 1 << 5,
	HF_METHOD_OPTIONS = 1 << 6,
};
/* "POST" -> HF_METHOD_POST, 0 when unknown. Case-sensitive, as HTTP is. */
unsigned hf_method_from_name(const char *name);
/* Writes "GET, POST" for a mask into out. */
void hf_methods_format(unsigned mask, char *out, size_t size);

enum hf_verify_scheme {
	HF_VERIFY_NONE = 0,
	HF_VERIFY_HMAC_SHA256,
	HF_VERIFY_GITHUB,
	HF_VERIFY_STRIPE,
	HF_VERIFY_SLACK,
	HF_VERIFY_SHOPIFY,
	HF_VERIFY_STANDARD, /* standard-webhooks */
	HF_VERIFY_HMAC,	    /* the general form: algorithm, encoding, signed */
	HF_VERIFY_ZENDESK,  /* the presets of the general form */
	HF_VERIFY_HUBSPOT,
	HF_VERIFY_INTERCOM,
	HF_VERIFY_HELPSCOUT,
	HF_VERIFY_TOKEN, /* a shared token: bearer, a header or a query param */
	HF_VERIFY_BASIC, /* HTTP basic auth; secrets[0] is "user:password" */
};
const char *hf_verify_scheme_name(enum hf_verify_scheme s);

struct hf_verify_conf {
	enum hf_verify_scheme scheme;
	char **secrets; /* ${NAME} already expanded; never logged or shown */
	size_t nsecrets;
	char *header;	      /* hmac-sha256 only; lower-case; NULL otherwise */
	int64_t tolerance_ms; /* timestamped schemes */
	/* The general `hmac` scheme, which a preset fills in at load
	 * (hf_verify_preset); header above is its signature header. */
	int algorithm;		/* enum hf_hmac_alg (hf_crypto.h) */
	int encoding;		/* enum hf_sig_encoding (hf_verify.h) */
	char *prefix;		/* stripped before decoding; NULL: none */
	char *timestamp_header; /* lower-case; NULL: no timestamp */
	int timestamp_unit;	/* enum hf_ts_unit (hf_verify.h) */
	char *signed_tmpl;	/* `signed:`, checked at load */
	char *url; /* `verify.url:` scheme://host for {url}; NULL: none */
	bool hubspot_url; /* {url} with HubSpot's listed characters decoded */
	char *query;	  /* token: the query parameter; NULL: a header */
};

/* A Lua expression from the YAML (`if:`, `dedupe:`, `concurrency.key`, `${{
 * }}`). chunk is "return (SRC)" preceded by newlines so that Lua's line numbers
 * are the YAML file's. */
struct hf_expr {
	char *src;
	char *chunk;
	int line;
	int col;
};

/* What a step that parks the run waits for (hf_park.h); HF_PARK_NONE for a
 * step that runs code. */
enum hf_park_kind {
	HF_PARK_NONE = 0,
	HF_PARK_SLEEP,	  /* sleep: DURATION */
	HF_PARK_UNTIL,	  /* until: TIME */
	HF_PARK_WAIT_FOR, /* wait_for: {path, if, timeout, verify} */
};

struct hf_step {
	char *id;
	/* Lua source of the step: the inline `run:` text or the script file's
	 * contents, padded with leading newlines for inline code so that Lua
	 * reports YAML line numbers. */
	char *code;
	/* Chunk name as Lua wants it ("@workflows/x.yml" or "@scripts/a.lua"),
	 * so errors read "workflows/x.yml:12: ...". */
	char *code_name;
	char *script;		 /* the `script:` name, NULL for inline code */
	struct hf_expr *if_expr; /* NULL when absent */
	/* `with:` as a Lua chunk returning the args table, with `${{ EXPR }}`
	 * strings turned into the expressions; NULL when absent (args = {}). */
	char *with_chunk;
	int retry_attempts; /* total attempts, 1 = no retry */
	int64_t retry_backoff_ms;
	int64_t retry_max_backoff_ms;
	int64_t retry_max_delay_ms; /* caps retry.after's delay */
	int64_t timeout_ms;
	bool continue_on_error;
	int line; /* where the step starts in the YAML file */
	/* Inline code: the YAML column of its first character (a block's
	 * indentation + 1), so that chunk column c is YAML column code_col-1+c;
	 * 0 for a script. */
	int code_col;
	/* A step that parks the run (wf_park.c). Its code returns nil, or for
	 * `until: "${{ EXPR }}"` the value of EXPR (ISO 8601 or Unix
	 * seconds), so that `if:` and the expression run as any step's. */
	enum hf_park_kind park;
	int64_t sleep_ms; /* sleep: */
	int64_t until_ms; /* until: a literal time; 0: the code's value */
	char *wait_path;  /* wait_for.path */
	struct hf_expr *wait_if; /* wait_for.if: NULL: every signal matches */
	int64_t wait_timeout_ms; /* wait_for.timeout */
	struct hf_verify_conf wait_verify; /* wait_for.verify; scheme NONE */
	int wait_verify_line, wait_verify_col; /* where it is; 0: none */
	struct hf_throttle *throttle; /* `throttle:` (wf_flow.c); NULL */
};

/* `throttle:` (workflow or step level): at most limit starts per period per
 * key; the key is shared by every workflow naming it (throttle.c). */
struct hf_throttle {
	struct hf_expr *key;
	int limit;
	int64_t period_ms;
};

/* `debounce:`: events with the same key within period make one run
 * (debounce.c). */
struct hf_debounce {
	struct hf_expr *key;
	int64_t period_ms;
	int64_t max_wait_ms; /* 0: none */
};

/* One entry of `cancel_on:`: a request to path whose `if:` is true (event:
 * the waiting run's event, signal: the request) cancels the run. */
struct hf_cancel_on {
	char *path;		 /* starts with '/' */
	struct hf_expr *if_expr; /* NULL: every request to path */
	int line;
};

/* One entry of `on.schedule`: a cron expression read in a time zone. */
struct hf_schedule {
	char *cron; /* as written, for event.schedule.cron */
	struct hf_cron expr;
	char *timezone;	  /* IANA name as written; "UTC" by default */
	struct hf_tz *tz; /* NULL: UTC */
	int catch_up;	  /* fires missed while stopped that still run */
	int line;	  /* where the entry starts in the YAML file */
};

struct hf_workflow {
	char *name;
	char *description; /* NULL when absent */
	char *file;	   /* path as given to the loader */
	char *version; /* hex SHA-256 of the YAML and the scripts it names */
	char *source;  /* the YAML text, kept to store the version with runs */
	size_t source_len;
	char *path; /* webhook path, starts with '/'; {name} parameters; NULL
		       for a workflow with only `on.schedule` */
	unsigned methods; /* mask of enum hf_method; default POST */
	struct hf_verify_conf verify;
	struct hf_expr *dedupe; /* NULL: default per scheme, or none */
	bool respond_sync;
	int64_t respond_timeout_ms;
	struct hf_expr *if_expr; /* NULL when absent */
	int64_t timeout_ms;
	struct hf_expr *concurrency_key; /* NULL when absent */
	int concurrency_max;
	/* concurrency.cancel_in_progress: a newer run of a key cancels the
	 * older ones (flow.c). */
	bool concurrency_cancel;
	struct hf_step *steps;
	size_t nsteps;
	struct hf_schedule *schedules; /* `on.schedule`, in file order */
	size_t nschedules;
	/* `cancel_on:` (wf_flow.c): requests that cancel this workflow's
	 * queued and waiting runs (flow.c). */
	struct hf_cancel_on *cancel_on;
	size_t ncancel_on;
	struct hf_throttle *throttle; /* `throttle:` (wf_flow.c); NULL: none */
	struct hf_debounce *debounce; /* `debounce:` (wf_flow.c); NULL: none */
	/* `on_failure:` (wf_flow.c): steps[nsteps .. nsteps + nfailure_steps),
	 * their ids "on_failure.ID"; run once after the run failed. */
	size_t nfailure_steps;
	bool has_wait_for; /* a step has `wait_for:` (run.resume_url) */
	int refs;	   /* atomic */
};

/* Loads and validates one file. Script files named by `script:` are read from
 * scripts_dir. On success returns a workflow with one reference. On failure
 * returns NULL and appends every problem found to diags. */
struct hf_workflow *hf_workflow_load(const char *file, const char *scripts_dir,
				     struct hf_diags *diags);
/* The same, from a buffer (file is used for messages only). */
struct hf_workflow *hf_workflow_parse(const char *file, const char *text,
				      size_t len, const char *scripts_dir,
				      struct hf_diags *diags);
/* A `script:` file's text as stored with a workflow version. */
struct hf_script_src {
	const char *name; /* as written after `script:` */
	const char *code;
	size_t len;
};
/* hf_workflow_parse with the `script:` files taken from scripts[] rather than
 * read from scripts_dir (which only names them in messages): rebuilds a version
 * stored in the state database, with the same hf_workflow.version. */
struct hf_workflow *
hf_workflow_parse_stored(const char *file, const char *text, size_t len,
			 const char *scripts_dir,
			 const struct hf_script_src *scripts, size_t nscripts,
			 struct hf_diags *diags);
struct hf_workflow *hf_workflow_ref(struct hf_workflow *wf);
void hf_workflow_unref(struct hf_workflow *wf); /* accepts NULL */
/* Every step of wf: steps then on_failure steps (wf->steps' length). */
static inline size_t hf_workflow_nall(const struct hf_workflow *wf)
{
	return wf->nsteps + wf->nfailure_steps;
}
/* Index of the step with that id, or -1. */
int hf_workflow_step_index(const struct hf_workflow *wf, const char *id);

/* A problem of a workflow file that did not load (one per problem; a file may
 * have several). Kept in the set so that the server can show it. */
struct hf_load_error {
	char *file;
	int line; /* 0 when unknown */
	int col;
	char *message;
	/* The webhook path (on.webhook.path) read from the file as far as it
	 * parses, or NULL: requests to it answer 503 rather than 404. */
	char *path;
};

/* A set of workflows loaded from a directory: names unique, paths checked. */
struct hf_workflow_set {
	struct hf_workflow **items;
	size_t n;
	int refs; /* atomic */
	/* The files that failed to load, whether or not a previous version of
	 * theirs stays in items: nfailed files, nerrors problems in all. */
	struct hf_load_error *errors;
	size_t nerrors;
	size_t nfailed;
};

/* Loads every *.yml / *.yaml in dir (sorted by name). Invalid files are
 * reported in diags and in set->errors and left out; when prev is given, the
 * previous version of a workflow whose file is now invalid stays in the set.
 * Duplicate names across files are an error for the later file. Returns a set
 * with one reference (possibly empty), or NULL when dir cannot be read. */
struct hf_workflow_set *hf_workflow_set_load(const char *dir,
					     const char *scripts_dir,
					     const struct hf_workflow_set *prev,
					     struct hf_diags *diags);
struct hf_workflow_set *hf_workflow_set_ref(struct hf_workflow_set *set);
void hf_workflow_set_unref(struct hf_workflow_set *set); /* accepts NULL */
struct hf_workflow *hf_workflow_set_find(const struct hf_workflow_set *set,
					 const char *name);
/* The load error of a failed file whose webhook path matches url (trailing
 * '/' ignored; a `{name}` segment matches any one segment), or NULL. */
const struct hf_load_error *
hf_workflow_set_failed_path(const struct hf_workflow_set *set, const char *url);

/* The wait_for step (hf_park.h) of a workflow of set whose path is path
 * (trailing '/' ignored): the first with a `verify:`, else the first; NULL
 * when none waits there. Its verify checks the signals to path. */
const struct hf_step *
hf_workflow_set_wait_for(const struct hf_workflow_set *set, const char *path);

/* When optional is true, an unset environment variable in a `${NAME}` secret is
 * accepted (`hookflow check` does not need the secrets). Default false. */
void hf_workflow_set_env_optional(bool optional);

/* True when the `cancel_on:` entry e is for path (a trailing '/' ignored),
 * and when a workflow of set has such an entry. Pure. */
bool hf_workflow_cancel_on_matches(const struct hf_cancel_on *e,
				   const char *path);
/* (see above) */
bool hf_workflow_set_cancel_on(const struct hf_workflow_set *set,
			       const char *path);
/* Reserved paths a workflow may not declare (/api..., /healthz, /metrics,
 * /ui...). */
bool hf_path_is_reserved(const char *path);
/* /resume and below: run.resume_url's (hf_park.h); a workflow or a wait_for
 * may not declare them. */
bool hf_park_is_resume_path(const char *path);
/* An `until:` time: ISO 8601 with a zone (2026-12-24T18:00:00Z, +01:00) or
 * Unix seconds, surrounding spaces ignored, into wall ms. Returns 0 or -1. */
int hf_park_parse_time(const char *s, size_t n, int64_t *ms);

#endif
