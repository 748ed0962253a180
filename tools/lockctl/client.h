/* client.h -- lockctl's HTTP client for the lockservice API (libcurl's multi
 * interface, one request in flight at a time) and the one place that sorts
 * an answer into success, a refusal, or a transient failure.
 *
 * A request is started with ls_request_start and driven by ls_request_poll,
 * which can also wait on one more file descriptor (run's signal pipe), so a
 * renewal in flight never delays forwarding a signal. ls_request does both
 * for callers that just wait. */
#ifndef LOCKCTL_CLIENT_H
#define LOCKCTL_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum ls_kind {
    LS_OK,        /* 2xx with a JSON object */
    LS_PROBLEM,   /* 4xx problem+json with a "code" (not 408, 429) */
    LS_TRANSIENT, /* worth trying again: network error, timeout, 5xx, 408,
                     429, or a body that is not a JSON object (a proxy's
                     HTML error page) */
};

/* The outcome of one request. json is owned (ls_result_clear frees it). */
struct ls_result {
    enum ls_kind kind;
    long status;    /* HTTP status, 0 when no answer arrived */
    json_t *json;   /* the body when it is a JSON object, else NULL */
    bool unsent;    /* it surely never reached the service (no connection
                       could be made), so retrying cannot repeat it */
    char code[64];  /* the problem's "code", "" when none */
    char text[512]; /* for messages: "409 lock_held: lock 'x' is held; ..."
                       or "Couldn't connect to server" */
};

struct ls_client {
    char base[512];    /* the service URL, without a trailing '/' */
    char *auth_header; /* "Authorization: Bearer <key>", or NULL; owned */
    CURLM *multi;
    CURL *easy; /* reused, so that its connection stays alive */
    struct curl_slist *headers;
    char *body; /* the request body in flight, owned */
    char *resp; /* the answer so far, owned */
    size_t resp_len, resp_cap;
    bool busy; /* a request is in flight */
    char errbuf[CURL_ERROR_SIZE];
};

/* Sets the client up for url (http:// or https://) with the API key read
 * from key_file (NULL for none: the first line, which must hold nothing
 * but the key). Returns 0, or -1 with the reason in err. */
int ls_client_init(struct ls_client *c, const char *url, const char *key_file,
                   char *err, size_t errlen);
void ls_client_cleanup(struct ls_client *c);

/* Starts method path (e.g. "/v1/locks/x/renew") with body (a JSON object,
 * borrowed; NULL sends none), to be answered within timeout_ms. Returns 0,
 * or -1 when no request could be started (then nothing is in flight). */
int ls_request_start(struct ls_client *c, const char *method, const char *path,
                     const json_t *body, long timeout_ms);
/* Waits up to wait_ms for the request in flight to finish, or for fd
 * (-1 for none) to be readable. Returns true when the request finished
 * (res filled: clear it), false otherwise (timeout, fd readable, or no
 * request in flight). */
bool ls_request_poll(struct ls_client *c, int fd, long wait_ms,
                     struct ls_result *res);
/* Abandons the request in flight, if any (the connection is closed). */
void ls_request_cancel(struct ls_client *c);
/* One request, waited for. res is always filled. */
void ls_request(struct ls_client *c, const char *method, const char *path,
                const json_t *body, long timeout_ms, struct ls_result *res);

/* Frees res->json; res may be reused afterwards. */
void ls_result_clear(struct ls_result *res);

#endif
