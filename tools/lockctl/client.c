/* client.c -- see client.h. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define KEY_MAX 256
#define CONNECT_TIMEOUT_MS 5000L

/* Reads the API key: the first line of path, which must be 1..KEY_MAX
 * characters with no space or control character. Returns a malloc'd
 * "Authorization: Bearer <key>" header, or NULL with the reason in err. */
static char *read_key_header(const char *path, char *err, size_t errlen)
{
    char line[KEY_MAX + 3];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open API key file %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = got ? strcspn(line, "\r\n") : 0;
    bool whole = got && (line[n] != '\0' || n < sizeof line - 1);
    line[n] = '\0';
    if (n == 0 || !whole) {
        snprintf(err, errlen, "API key file %s: %s", path,
                 n == 0 ? "its first line is empty"
                        : "the key is longer than 256 characters");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch <= ' ' || ch == 0x7f) {
            snprintf(err, errlen,
                     "API key file %s: the first line must hold the key "
                     "alone (it has a space or control character)",
                     path);
            return NULL;
        }
    }
    size_t len = n + sizeof "Authorization: Bearer ";
    char *header = malloc(len);
    if (header)
        snprintf(header, len, "Authorization: Bearer %s", line);
    else
        snprintf(err, errlen, "out of memory");
    explicit_bzero(line, sizeof line);
    return header;
}

/* Sockets are close-on-exec, so that `run`'s CMD inherits none. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    (void)clientp;
    (void)purpose;
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userp)
{
    struct ls_client *c = userp;
    size_t n = size * nmemb;
    if (c->resp_len + n + 1 > c->resp_cap) {
        size_t cap = (c->resp_len + n + 1) * 2;
        char *p = realloc(c->resp, cap);
        if (p == NULL)
            return 0; /* curl reports CURLE_WRITE_ERROR */
        c->resp = p;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, data, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
    return n;
}

int ls_client_init(struct ls_client *c, const char *url, const char *key_file,
                   char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        n >= sizeof c->base || n <= 8) {
        snprintf(err, errlen,
                 "bad service URL '%s' (want http://HOST:PORT or https://...)",
                 url);
        return -1;
    }
    memcpy(c->base, url, n);
    c->base[n] = '\0';
    if (key_file && *key_file) {
        c->auth_header = read_key_header(key_file, err, errlen);
        if (c->auth_header == NULL)
            return -1;
    }
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (c->multi == NULL || c->easy == NULL) {
        snprintf(err, errlen, "cannot set up libcurl");
        ls_client_cleanup(c);
        return -1;
    }
    return 0;
}

void ls_client_cleanup(struct ls_client *c)
{
    ls_request_cancel(c);
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    if (c->auth_header) {
        explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c->resp);
    memset(c, 0, sizeof *c);
}

int ls_request_start(struct ls_client *c, const char *method, const char *path,
                     const json_t *body, long timeout_ms)
{
    char url[1024];
    if (c->busy)
        ls_request_cancel(c);
    snprintf(url, sizeof url, "%s%s", c->base, path);
    c->resp_len = 0;
    if (c->resp)
        c->resp[0] = '\0';
    c->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    c->headers = curl_slist_append(NULL, "Accept: application/json");
    if (body)
        c->headers =
            curl_slist_append(c->headers, "Content-Type: application/json");
    if (c->auth_header)
        c->headers = curl_slist_append(c->headers, c->auth_header);
    if (c->headers == NULL || (body && c->body == NULL)) {
        ls_request_cancel(c);
        return -1;
    }
    if (timeout_ms < 1)
        timeout_ms = 1;

    CURL *e = c->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms
                                                     : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lockctl/1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    c->errbuf[0] = '\0';
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        ls_request_cancel(c);
        return -1;
    }
    c->busy = true;
    return 0;
}

void ls_request_cancel(struct ls_client *c)
{
    /* libcurl closes the connection of a transfer removed midway. */
    if (c->busy && c->multi && c->easy)
        curl_multi_remove_handle(c->multi, c->easy);
    c->busy = false;
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    free(c->body);
    c->body = NULL;
}

void ls_result_clear(struct ls_result *res)
{
    json_decref(res->json);
    memset(res, 0, sizeof *res);
}

/* Sorts a finished transfer into res (see enum ls_kind). */
static void classify(struct ls_client *c, CURLcode rc, struct ls_result *res)
{
    memset(res, 0, sizeof *res);
    res->kind = LS_TRANSIENT;
    if (rc != CURLE_OK) {
        res->unsent = rc == CURLE_COULDNT_CONNECT ||
                      rc == CURLE_COULDNT_RESOLVE_HOST ||
                      rc == CURLE_COULDNT_RESOLVE_PROXY;
        snprintf(res->text, sizeof res->text, "%s",
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        return;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &res->status);
    json_error_t jerr;
    json_t *body =
        c->resp_len ? json_loadb(c->resp, c->resp_len, 0, &jerr) : NULL;
    if (!json_is_object(body)) {
        const char *ctype = NULL;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
        json_decref(body);
        snprintf(res->text, sizeof res->text,
                 "HTTP %ld with a%s%s body that is not JSON", res->status,
                 ctype ? " " : "n untyped", ctype ? ctype : "");
        return;
    }
    res->json = body;
    const char *code = json_string_value(json_object_get(body, "code"));
    const char *detail = json_string_value(json_object_get(body, "detail"));
    snprintf(res->code, sizeof res->code, "%s", code ? code : "");
    if (res->status >= 200 && res->status < 300) {
        res->kind = LS_OK;
        snprintf(res->text, sizeof res->text, "HTTP %ld", res->status);
        return;
    }
    snprintf(res->text, sizeof res->text, "%ld %s%s%s", res->status,
             code ? code : "(no code)", detail ? ": " : "",
             detail ? detail : "");
    if (res->status >= 400 && res->status < 500 && res->status != 408 &&
        res->status != 429 && code)
        res->kind = LS_PROBLEM;
}

/* Collects the finished transfer, if there is one. */
static bool collect(struct ls_client *c, struct ls_result *res)
{
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE || msg->easy_handle != c->easy)
            continue;
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(c->multi, c->easy);
        classify(c, rc, res);
        c->busy = false;
        curl_slist_free_all(c->headers);
        c->headers = NULL;
        free(c->body);
        c->body = NULL;
        return true;
    }
    return false;
}

bool ls_request_poll(struct ls_client *c, int fd, long wait_ms,
                     struct ls_result *res)
{
    struct curl_waitfd extra = {.fd = fd, .events = CURL_WAIT_POLLIN};
    int running = 0;

    if (c->busy) {
        curl_multi_perform(c->multi, &running);
        if (collect(c, res))
            return true;
    }
    if (wait_ms < 0)
        wait_ms = 0;
    if (wait_ms > 60000)
        wait_ms = 60000;
    curl_multi_poll(c->multi, fd >= 0 ? &extra : NULL, fd >= 0 ? 1u : 0u,
                    (int)wait_ms, NULL);
    if (!c->busy)
        return false;
    curl_multi_perform(c->multi, &running);
    return collect(c, res);
}

void ls_request(struct ls_client *c, const char *method, const char *path,
                const json_t *body, long timeout_ms, struct ls_result *res)
{
    if (ls_request_start(c, method, path, body, timeout_ms) != 0) {
        memset(res, 0, sizeof *res);
        res->kind = LS_TRANSIENT;
        res->unsent = true;
        snprintf(res->text, sizeof res->text, "cannot start a request");
        return;
    }
    while (!ls_request_poll(c, -1, 1000, res))
        ;
}
