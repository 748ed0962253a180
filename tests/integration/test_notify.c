/* test_notify.c -- systemd's readiness protocol (service/notify.c), with
 * this test as the service manager: a datagram socket named by
 * NOTIFY_SOCKET must receive READY=1 once the service accepts connections
 * and STOPPING=1 when SIGTERM starts the shutdown; an abstract socket
 * (@name) works too; an unusable NOTIFY_SOCKET is a warn line, and the
 * service serves all the same. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static struct redis_proc redis;
static char dir[] = "/tmp/lockservice-notify-XXXXXX";

/* A datagram socket bound to path ('@' first: abstract), or -1. */
static int notify_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || len >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    if (bind(fd, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                         (path[0] != '@'))) != 0) {
        t_diag("bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The next datagram on fd within ms (scaled), NUL-terminated into buf;
 * false when none came. */
static bool next_message(int fd, char *buf, size_t len, double ms)
{
    double scaled = ms * time_scale();
    struct timeval tv = {(time_t)(scaled / 1000),
                         (suseconds_t)((long)scaled % 1000) * 1000};
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = recv(fd, buf, len - 1, 0);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* Waits for READY=1 and, the moment it arrives, tries to connect to the
 * service's port: readiness sent before the listener is bound would be
 * refused. */
struct ready_watch {
    int fd;
    int port;
    char message[256];
    bool got;
    bool connected;
};

static void *watch_ready(void *arg)
{
    struct ready_watch *w = arg;
    int c;

    w->got = next_message(w->fd, w->message, sizeof w->message, 20000);
    if (!w->got)
        return NULL;
    c = raw_connect(w->port);
    w->connected = c >= 0;
    if (c >= 0)
        close(c);
    return NULL;
}

static void test_ready_and_stopping(void)
{
    char path[128], env_sock[160], env_listen[64], msg[256] = "";
    struct ready_watch w = {.fd = -1};
    struct svc_proc svc;
    pthread_t th;
    int fd;

    snprintf(path, sizeof path, "%s/notify", dir);
    fd = notify_socket(path);
    if (!t_ok(fd >= 0, "a notify socket at %s", path))
        return;
    w.fd = fd;
    w.port = free_port();
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", path);
    snprintf(env_listen, sizeof env_listen, "LOCKSERVICE_LISTEN=127.0.0.1:%d",
             w.port);
    const char *env[] = {env_sock, env_listen, NULL};
    pthread_create(&th, NULL, watch_ready, &w);
    if (!t_ok(svc_start_env(&svc, &redis, NULL, env) == 0,
              "the service starts with NOTIFY_SOCKET set")) {
        pthread_join(th, NULL);
        close(fd);
        return;
    }
    pthread_join(th, NULL);
    t_ok(w.got && strcmp(w.message, "READY=1") == 0,
         "systemd is told READY=1 (got '%s')", w.got ? w.message : "nothing");
    t_ok(w.connected,
         "at READY=1 the service already accepts connections on its port");
    t_ok(!next_message(fd, msg, sizeof msg, 300),
         "nothing else is sent while the service runs");
    svc_stop(&svc);
    t_ok(next_message(fd, msg, sizeof msg, 1000) &&
             strcmp(msg, "STOPPING=1") == 0,
         "SIGTERM: systemd is told STOPPING=1 (got '%s')", msg);
    close(fd);
    unlink(path);
}

static void test_abstract_socket(void)
{
    char name[64], env_sock[96], msg[256] = "";
    struct svc_proc svc;
    int fd;

    snprintf(name, sizeof name, "@lockservice-test-notify-%d", (int)getpid());
    fd = notify_socket(name);
    if (!t_ok(fd >= 0, "an abstract notify socket %s", name))
        return;
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", name);
    const char *env[] = {env_sock, NULL};
    if (t_ok(svc_start_env(&svc, &redis, NULL, env) == 0,
             "the service starts with an abstract NOTIFY_SOCKET")) {
        t_ok(next_message(fd, msg, sizeof msg, 5000) &&
                 strcmp(msg, "READY=1") == 0,
             "READY=1 arrives on the abstract socket (got '%s')", msg);
        svc_stop(&svc);
    }
    close(fd);
}

/* Contains needle in the file at path. */
static bool log_has_now(const char *path, const char *needle)
{
    char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* As log_has_now, waiting up to 2 s (scaled) for the line: the service
 * serves before main() has told systemd it is ready. */
static bool log_has(const char *path, const char *needle)
{
    double end = now_ms() + 2000 * time_scale();

    while (!log_has_now(path, needle)) {
        if (now_ms() > end)
            return false;
        sleep_ms(10);
    }
    return true;
}

static void test_unusable_socket(const char *value, const char *why,
                                 const char *warning)
{
    char env_sock[160];
    struct svc_proc svc;
    struct http_resp r;

    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", value);
    const char *env[] = {env_sock, NULL};
    if (!t_ok(svc_start_env(&svc, &redis, NULL, env) == 0,
              "NOTIFY_SOCKET %s: the service starts all the same", why))
        return;
    http(&r, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(r.status == 200, "NOTIFY_SOCKET %s: it serves (/readyz %ld)", why,
         r.status);
    http_resp_free(&r);
    t_ok(log_has(svc.log, warning), "NOTIFY_SOCKET %s: a warn line says '%s'",
         why, warning);
    svc_stop(&svc);
}

int main(void)
{
    char missing[160];

    if (mkdtemp(dir) == NULL || redis_start(&redis, NULL) != 0) {
        t_ok(false, "a private dir and redis-server");
        return t_done();
    }
    test_ready_and_stopping();
    test_abstract_socket();
    test_unusable_socket("relative/notify", "is a relative path",
                         "NOTIFY_SOCKET is neither a path nor @abstract");
    snprintf(missing, sizeof missing, "%s/nobody-listens", dir);
    test_unusable_socket(missing, "names no socket",
                         "cannot tell systemd READY=1");
    redis_stop(&redis);
    rmdir(dir);
    return t_done();
}
