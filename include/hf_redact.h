/* hf_redact.h - what is shown of credentials (redact.c): a URL with its user
 * info and query values replaced, and which request headers carry secrets.
 * For display only (the admin API, the CLI, logs, the dashboard): the stored
 * values stay as they are, so that deliveries and replays still work. Pure
 * functions, any thread. */
#ifndef HF_REDACT_H
#define HF_REDACT_H

#include <stdbool.h>

/* What a hidden value shows as. */
#define HF_REDACTED "[redacted]"

/* url with the user info ("user:pass@") and every value of the query and
 * fragment ("?token=x&a" -> "?token=[redacted]&[redacted]") replaced by
 * HF_REDACTED; scheme, host, port and path as they were. malloc'd. */
char *hf_redact_url(const char *url);
/* True when the header (any case) carries a credential: Authorization,
 * Proxy-Authorization, Cookie, Set-Cookie, the signature headers of the
 * schemes hookflow verifies (X-Hub-Signature*, Stripe-Signature,
 * X-Slack-Signature, X-Shopify-Hmac-Sha256, webhook-signature, X-Signature)
 * and any name containing "signature", "token", "secret", "password",
 * "api-key" or "apikey". */
bool hf_header_is_secret(const char *name);

#endif
