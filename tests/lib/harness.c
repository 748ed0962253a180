/* harness.c -- TAP output, private redis-server and lockservice processes,
 * and HTTP through libcurl for the integration tests (see harness.h).
 *
 * Every process started here is recorded in a small table so that it is
 * stopped by PID on a normal exit (atexit), on SIGINT/SIGTERM/SIGHUP and on
 * a crash of the test itself. Children also get PR_SET_PDEATHSIG so that a
 * SIGKILLed test binary does not leave them behind; start them from the
 * main thread (the death signal follows the thread that forked). */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_PROCS 64
#define MAX_ARGS 128
#define MAX_LOGS 64

/* ------------------------------------------------------------------ TAP */

static pthread_mutex_t tap_lock = PTHREAD_MUTEX_INITIALIZER;
static int tap_count;
static int tap_failed;

bool t_ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&tap_lock);
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&tap_lock);
    return cond;
}

void t_skip(const char *why, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&tap_lock);
    tap_count++;
    printf("ok %d - ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # SKIP %s\n", why);
    fflush(stdout);
    pthread_mutex_unlock(&tap_lock);
}

void t_diag(const char *fmt, ...)
{
    va_list ap;
    char buf[4096];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&tap_lock);
    /* Keep multi-line diagnostics valid TAP: prefix every line. */
    for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        printf("# %s\n", line);
    }
    fflush(stdout);
    pthread_mutex_unlock(&tap_lock);
}

int t_failed(void)
{
    pthread_mutex_lock(&tap_lock);
    int n = tap_failed;
    pthread_mutex_unlock(&tap_lock);
    return n;
}

int t_done(void)
{
    pthread_mutex_lock(&tap_lock);
    printf("1..%d\n", tap_count);
    int n = tap_count, failed = tap_failed;
    fflush(stdout);
    pthread_mutex_unlock(&tap_lock);
    if (n == 0) {
        t_diag("no tests ran");
        return 1;
    }
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------ utilities */

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

double time_scale(void)
{
    const char *s = getenv("LOCKSERVICE_TEST_TIME_SCALE");
    if (s && *s) {
        double v = strtod(s, NULL);
        if (v >= 1.0)
            return v;
    }
    const char *w = getenv("LOCKSERVICE_WRAPPER");
    return (w && *w) ? 10.0 : 1.0;
}

int free_port(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = 0;
        socklen_t len = sizeof sa;
        int port = -1;
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
            port = ntohs(sa.sin_port);
        close(fd);
        if (port > 0 && port != 6379 && port != 8080)
            return port;
    }
    return -1;
}

/* Splits s on spaces into argv[*argc...], strdup'ing each word; replaces
 * "{dir}" by dir when dir is non-NULL. Returns 0 or -1 when full. */
static int split_words(const char *s, const char *dir, char **argv, int *argc,
                       int max)
{
    if (!s)
        return 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if (*argc >= max - 1)
            return -1;
        char word[1024];
        size_t wl = 0;
        for (const char *q = p; q < e && wl < sizeof word - 1;) {
            if (dir && strncmp(q, "{dir}", 5) == 0 && q + 5 <= e) {
                size_t dl = strlen(dir);
                if (wl + dl >= sizeof word)
                    break;
                memcpy(word + wl, dir, dl);
                wl += dl;
                q += 5;
            } else {
                word[wl++] = *q++;
            }
        }
        word[wl] = '\0';
        argv[(*argc)++] = strdup(word);
        p = e;
    }
    argv[*argc] = NULL;
    return 0;
}

static void free_words(char **argv, int from, int argc)
{
    for (int i = from; i < argc; i++)
        free(argv[i]);
}

/* ------------------------------------------------ process bookkeeping */

struct tracked {
    volatile pid_t pid; /* 0: free slot */
    char dir[256];      /* removed at exit when non-empty */
};
static struct tracked procs[MAX_PROCS];
static pthread_mutex_t procs_lock = PTHREAD_MUTEX_INITIALIZER;

static char logs[MAX_LOGS][256];
static int log_count;
static bool keep_logs; /* LOCKSERVICE_TEST_LOGDIR set: tests/run shows them */

static void track(pid_t pid, const char *dir)
{
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid == 0) {
            snprintf(procs[i].dir, sizeof procs[i].dir, "%s", dir ? dir : "");
            procs[i].pid = pid;
            break;
        }
    }
    pthread_mutex_unlock(&procs_lock);
}

static void untrack(pid_t pid)
{
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid == pid)
            procs[i].pid = 0;
    pthread_mutex_unlock(&procs_lock);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir && *dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Waits for pid up to ms; returns the waitpid status or -1 on timeout. */
static int wait_for(pid_t pid, long ms)
{
    double end = now_ms() + (double)ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2; /* not our child any more */
        if (now_ms() > end)
            return -1;
        sleep_ms(5);
    }
}

static void print_log_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *ring[200] = {0};
    if (lines > 200)
        lines = 200;
    int n = 0;
    char buf[1024];
    while (fgets(buf, sizeof buf, f)) {
        free(ring[n % lines]);
        buf[strcspn(buf, "\n")] = '\0';
        ring[n % lines] = strdup(buf);
        n++;
    }
    fclose(f);
    int start = n > lines ? n - lines : 0;
    t_diag("---- last %d lines of %s ----", n - start, path);
    for (int i = start; i < n; i++)
        t_diag("%s", ring[i % lines]);
    for (int i = 0; i < lines; i++)
        free(ring[i]);
}

static void cleanup_at_exit(void)
{
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        pid_t pid = procs[i].pid;
        if (pid > 0) {
            kill(pid, SIGTERM);
            if (wait_for(pid, 3000) == -1) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
            }
            procs[i].pid = 0;
        }
        if (procs[i].dir[0]) {
            rm_rf(procs[i].dir);
            procs[i].dir[0] = '\0';
        }
    }
    pthread_mutex_unlock(&procs_lock);
    for (int i = 0; i < log_count && !keep_logs; i++) {
        if (tap_failed > 0)
            print_log_tail(logs[i], 40);
        unlink(logs[i]);
    }
}

/* Runs "rm -rf path" and waits; async-signal-safe (fork, execve, waitpid). */
static void rm_rf_from_handler(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *const argv[] = {"rm", "-rf", (char *)path, NULL};
        char *const envp[] = {NULL};
        execve("/bin/rm", argv, envp);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void on_fatal_signal(int sig)
{
    /* Async-signal-safe only: kill what we started, remove its files, then
     * die as asked. */
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid > 0) {
            kill(procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
        }
        if (procs[i].dir[0])
            rm_rf_from_handler(procs[i].dir);
    }
    for (int i = 0; i < log_count && !keep_logs; i++)
        rm_rf_from_handler(logs[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

__attribute__((constructor)) static void harness_init(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    signal(SIGPIPE, SIG_IGN);
    int sigs[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT, SIGSEGV,
                  SIGABRT, SIGBUS,  SIGFPE, SIGILL,  SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    keep_logs = getenv("LOCKSERVICE_TEST_LOGDIR") != NULL;
    atexit(cleanup_at_exit);
}

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");
    return (t && *t) ? t : "/tmp";
}

/* Builds the child environment: ours minus every LOCKSERVICE_* variable,
 * plus env. Returns a malloc'd array (strings borrowed) or NULL. */
static char **child_env(const char *const *env)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc(n + m + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LOCKSERVICE_", 12) != 0)
            out[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        out[k++] = (char *)env[i];
    out[k] = NULL;
    return out;
}

/* fork + exec argv with envp (NULL: inherit), stdin /dev/null, stdout and
 * stderr to out_fd / err_fd (-1: /dev/null). Returns the pid or -1. */
static pid_t spawn(char *const *argv, char *const *envp, int out_fd, int err_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* Default signal dispositions for the child. */
        for (int sig = 1; sig < 32; sig++)
            signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        dup2(err_fd >= 0 ? err_fd : devnull, 2);
        if (envp)
            execvpe(argv[0], argv, envp);
        else
            execvp(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* ----------------------------------------------------------------- redis */

static const char *redis_server_bin(void)
{
    const char *b = getenv("REDIS_SERVER");
    return (b && *b) ? b : "redis-server";
}

/* The value following "--requirepass" in extra, copied into buf, or NULL. */
static const char *requirepass(const char *extra, char *buf, size_t len)
{
    const char *p = extra ? strstr(extra, "--requirepass ") : NULL;
    if (!p)
        return NULL;
    p += strlen("--requirepass ");
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* True when a Redis on port answers PING with PONG or NOAUTH. */
static bool redis_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, "PING\r\n", 6) == 6) {
        struct pollfd pfd = {fd, POLLIN, 0};
        char buf[64] = {0};
        if (poll(&pfd, 1, 500) == 1 && read(fd, buf, sizeof buf - 1) > 0)
            ok = strncmp(buf, "+PONG", 5) == 0 ||
                 strncmp(buf, "-NOAUTH", 7) == 0;
    }
    close(fd);
    return ok;
}

/* Starts redis-server for r (r->port, r->dir, r->extra set). */
static int redis_spawn(struct redis_proc *r)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    char port[16], logfile[320];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
    const char *fixed[] = {redis_server_bin(),
                           "--port",
                           port,
                           "--bind",
                           "127.0.0.1",
                           "--dir",
                           r->dir,
                           "--logfile",
                           logfile,
                           "--daemonize",
                           "no",
                           "--save",
                           "",
                           "--appendonly",
                           "no",
                           "--enable-debug-command",
                           "local",
                           NULL};
    for (int i = 0; fixed[i]; i++)
        argv[argc++] = (char *)fixed[i];
    int nfixed = argc;
    if (split_words(r->extra, r->dir, argv, &argc, MAX_ARGS) != 0) {
        free_words(argv, nfixed, argc);
        return -1;
    }
    argv[argc] = NULL;
    pid_t pid = spawn(argv, NULL, -1, -1);
    free_words(argv, nfixed, argc);
    if (pid < 0)
        return -1;
    r->pid = pid;
    track(pid, NULL);
    double end = now_ms() + 10000.0;
    while (now_ms() < end) {
        if (redis_answers(r->port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            untrack(pid);
            r->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    untrack(pid);
    r->pid = 0;
    return -1;
}

/* redis_start with the port taken from pick_port (tried up to 3 times). */
static int redis_start_picking(struct redis_proc *r, const char *extra,
                               int (*pick_port)(void))
{
    memset(r, 0, sizeof *r);
    snprintf(r->extra, sizeof r->extra, "%s", extra ? extra : "");
    snprintf(r->dir, sizeof r->dir, "%s/lockservice-redis-XXXXXX", tmp_root());
    if (!mkdtemp(r->dir)) {
        t_diag("redis_start: mkdtemp %s: %s", r->dir, strerror(errno));
        r->dir[0] = '\0';
        return -1;
    }
    /* Remember the dir so an aborted test still removes it. */
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid == 0 && procs[i].dir[0] == '\0') {
            snprintf(procs[i].dir, sizeof procs[i].dir, "%s", r->dir);
            procs[i].pid = -1; /* reserved: a dir with no process */
            break;
        }
    }
    pthread_mutex_unlock(&procs_lock);
    for (int attempt = 0; attempt < 3; attempt++) {
        r->port = pick_port();
        if (r->port > 0 && redis_spawn(r) == 0)
            return 0;
    }
    t_diag("redis_start: %s did not start (extra: %s)", redis_server_bin(),
           r->extra);
    char logfile[320];
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
    print_log_tail(logfile, 20);
    return -1;
}

int redis_start(struct redis_proc *r, const char *extra)
{
    return redis_start_picking(r, extra, free_port);
}

static void forget_dir(const char *dir)
{
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].dir[0] && strcmp(procs[i].dir, dir) == 0) {
            procs[i].dir[0] = '\0';
            if (procs[i].pid == -1)
                procs[i].pid = 0;
        }
    }
    pthread_mutex_unlock(&procs_lock);
}

void redis_stop(struct redis_proc *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        if (wait_for(r->pid, 10000) == -1) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
        untrack(r->pid);
        r->pid = 0;
    }
    if (r->dir[0]) {
        rm_rf(r->dir);
        forget_dir(r->dir);
        r->dir[0] = '\0';
    }
}

void redis_kill(struct redis_proc *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        untrack(r->pid);
        r->pid = 0;
    }
}

int redis_restart(struct redis_proc *r)
{
    redis_kill(r);
    /* The port was ours a moment ago; retry briefly in case it lingers. */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (redis_spawn(r) == 0)
            return 0;
        sleep_ms(100);
    }
    t_diag("redis_restart: could not restart on port %d", r->port);
    return -1;
}

/* Reads fd to EOF into a malloc'd NUL-terminated string. */
static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

char *redis_cli(const struct redis_proc *r, const char *args)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    char port[16], pass[256];
    snprintf(port, sizeof port, "%d", r->port);
    argv[argc++] = "redis-cli";
    argv[argc++] = "-p";
    argv[argc++] = port;
    if (requirepass(r->extra, pass, sizeof pass)) {
        argv[argc++] = "-a";
        argv[argc++] = pass;
        argv[argc++] = "--no-auth-warning";
    }
    int nfixed = argc;
    if (split_words(args, NULL, argv, &argc, MAX_ARGS) != 0) {
        free_words(argv, nfixed, argc);
        return NULL;
    }
    int pfd[2];
    if (pipe(pfd) != 0) {
        free_words(argv, nfixed, argc);
        return NULL;
    }
    pid_t pid = spawn(argv, NULL, pfd[1], -1);
    free_words(argv, nfixed, argc);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return NULL;
    }
    char *out = read_all(pfd[0]);
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* --------------------------------------------------------------- service */

static const char *svc_bin(void)
{
    const char *b = getenv("LOCKSERVICE_BIN");
    return (b && *b) ? b : "./lockservice";
}

static bool wrapped(void)
{
    const char *w = getenv("LOCKSERVICE_WRAPPER");
    return w && *w;
}

/* The value of NAME in a NULL-terminated "NAME=value" list, or NULL. */
static const char *env_get(const char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

/* Fills argv with wrapper + binary; returns the index of the first word to
 * free (the wrapper words are strdup'd). */
static int svc_argv_prefix(char **argv, int *argc)
{
    split_words(getenv("LOCKSERVICE_WRAPPER"), NULL, argv, argc, MAX_ARGS);
    argv[(*argc)++] = (char *)svc_bin();
    return *argc;
}

static int svc_start_once(struct svc_proc *s, const struct redis_proc *r,
                          const char *const *extra_args, const char *const *env)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    int nwrap = svc_argv_prefix(argv, &argc) - 1;
    char listen[64], redis[128];
    const char *env_listen = env_get(env, "LOCKSERVICE_LISTEN");
    if (env_listen) {
        const char *colon = strrchr(env_listen, ':');
        s->port = colon ? (int)strtol(colon + 1, NULL, 10) : 8080;
    } else {
        s->port = free_port();
        snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
        argv[argc++] = "--listen";
        argv[argc++] = listen;
    }
    if (r && !env_get(env, "LOCKSERVICE_REDIS_URL")) {
        snprintf(redis, sizeof redis, "redis://127.0.0.1:%d", r->port);
        argv[argc++] = "--redis";
        argv[argc++] = redis;
    }
    for (int i = 0; extra_args && extra_args[i] && argc < MAX_ARGS - 1; i++)
        argv[argc++] = (char *)extra_args[i];
    argv[argc] = NULL;
    /* "[::1]:PORT" in LOCKSERVICE_LISTEN: the service is reached over IPv6. */
    snprintf(s->url, sizeof s->url, "http://%s:%d",
             env_listen && env_listen[0] == '[' ? "[::1]" : "127.0.0.1",
             s->port);

    const char *logdir = getenv("LOCKSERVICE_TEST_LOGDIR");
    snprintf(s->log, sizeof s->log, "%s/lockservice-%d-XXXXXX.log",
             logdir && *logdir ? logdir : tmp_root(), s->port);
    int logfd = mkstemps(s->log, 4);
    if (logfd < 0) {
        free_words(argv, 0, nwrap);
        t_diag("svc_start: cannot create log %s: %s", s->log, strerror(errno));
        return -1;
    }
    if (log_count < MAX_LOGS)
        snprintf(logs[log_count++], sizeof logs[0], "%s", s->log);
    {
        char cmd[2048] = "";
        for (int i = 0; i < argc; i++) {
            strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
            strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
        }
        dprintf(logfd, "# harness: %s\n", cmd);
    }
    char **envp = child_env(env);
    s->pid = spawn(argv, envp, logfd, logfd);
    free(envp);
    free_words(argv, 0, nwrap);
    close(logfd);
    if (s->pid < 0)
        return -1;
    track(s->pid, NULL);

    double limit = wrapped() ? 60000.0 : 10000.0;
    double end = now_ms() + limit * (time_scale() > 1 && !wrapped() ? 2 : 1);
    while (now_ms() < end) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            untrack(s->pid);
            s->pid = 0;
            return -2; /* exited: perhaps the port was taken */
        }
        struct http_resp h;
        if (http_timeout(&h, 1000, s->url, "GET", "/healthz", NULL, NULL) ==
                0 &&
            h.status == 200) {
            http_resp_free(&h);
            return 0;
        }
        http_resp_free(&h);
        sleep_ms(20);
    }
    t_diag("svc_start: %s did not answer /healthz within %.0f ms", s->url,
           limit);
    svc_kill(s);
    return -1;
}

int svc_start_env(struct svc_proc *s, const struct redis_proc *r,
                  const char *const *extra_args, const char *const *env)
{
    memset(s, 0, sizeof *s);
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = svc_start_once(s, r, extra_args, env);
        if (rc == 0)
            return 0;
        if (rc == -1)
            break;
        if (env_get(env, "LOCKSERVICE_LISTEN"))
            break; /* a fixed port will not get better */
    }
    t_diag("svc_start: %s failed to start; log %s", svc_bin(), s->log);
    print_log_tail(s->log, 20);
    return -1;
}

int svc_start(struct svc_proc *s, const struct redis_proc *r,
              const char *const *extra_args)
{
    return svc_start_env(s, r, extra_args, NULL);
}

int svc_stop(struct svc_proc *s)
{
    if (s->pid <= 0)
        return -1;
    pid_t pid = s->pid;
    int status = -1;
    int st = -2;
    if (waitpid(pid, &st, WNOHANG) == pid) {
        t_ok(false, "service %s was still running when stopped", s->url);
    } else {
        kill(pid, SIGTERM);
        st = wait_for(pid, wrapped() ? 60000 : 15000);
        if (st == -1) {
            t_ok(false, "service %s exits within 15 s of SIGTERM", s->url);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            st = -2;
        }
    }
    untrack(pid);
    s->pid = 0;
    if (st >= 0) {
        if (WIFEXITED(st))
            status = WEXITSTATUS(st);
        else if (WIFSIGNALED(st))
            status = 128 + WTERMSIG(st);
        t_ok(status == 0,
             "service %s shuts down cleanly on SIGTERM "
             "(exit status %d%s)",
             s->url, status,
             status == 99 ? ": errors under LOCKSERVICE_WRAPPER" : "");
        if (status != 0)
            print_log_tail(s->log, 40);
    }
    return status;
}

void svc_kill(struct svc_proc *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    untrack(s->pid);
    s->pid = 0;
}

/* Reads fd into *buf (growing) until EOF; returns false at EOF. */
static bool drain(int fd, char **buf, size_t *len, size_t *cap)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    if (*len + (size_t)n + 1 > *cap) {
        size_t nc = (*cap + (size_t)n) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, tmp, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return true;
}

int svc_run(const char *const *args, const char *const *env, char **out,
            char **err, int timeout_ms)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    int nwrap = svc_argv_prefix(argv, &argc) - 1;
    for (int i = 0; args && args[i] && argc < MAX_ARGS - 1; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0) {
        free_words(argv, 0, nwrap);
        return -1;
    }
    char **envp = child_env(env);
    pid_t pid = spawn(argv, envp, po[1], pe[1]);
    free(envp);
    free_words(argv, 0, nwrap);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    track(pid, NULL);
    char *bufs[2] = {calloc(1, 1), calloc(1, 1)};
    size_t lens[2] = {0, 0}, caps[2] = {1, 1};
    struct pollfd pfd[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    double end = now_ms() + (double)timeout_ms * (wrapped() ? 10 : 1);
    bool timed_out = false;
    int open_fds = 2;
    while (open_fds > 0) {
        int left = (int)(end - now_ms());
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (poll(pfd, 2, left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP))) {
                if (!drain(pfd[i].fd, &bufs[i], &lens[i], &caps[i])) {
                    close(pfd[i].fd);
                    pfd[i].fd = -1;
                    open_fds--;
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    int st = timed_out ? -1 : wait_for(pid, (long)(end - now_ms()) + 100);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    untrack(pid);
    if (out)
        *out = bufs[0];
    else
        free(bufs[0]);
    if (err)
        *err = bufs[1];
    else
        free(bufs[1]);
    if (st < 0)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* ------------------------------------------------------------------ HTTP */

struct buf {
    char *data;
    size_t len, cap;
};

static size_t buf_append(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > nc)
            nc *= 2;
        char *nd = realloc(b->data, nc);
        if (!nd)
            return 0;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    /* A new status line (after a 100 Continue) starts a new block. */
    if (size * n > 5 && strncmp(p, "HTTP/", 5) == 0)
        b->len = 0;
    return buf_append(b, p, size * n);
}

int http_timeout(struct http_resp *out, long timeout_ms, const char *base,
                 const char *method, const char *path, const char *body,
                 const char *const *headers)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) {
        out->body = calloc(1, 1);
        out->headers = calloc(1, 1);
        return -1;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct buf bb = {0}, hb = {0};
    struct curl_slist *hl = NULL;
    bool has_ct = false, has_expect = false;
    for (int i = 0; headers && headers[i]; i++) {
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0)
            has_ct = true;
        if (strncasecmp(headers[i], "Expect:", 7) == 0)
            has_expect = true;
        hl = curl_slist_append(hl, headers[i]);
    }
    if (!has_expect)
        hl = curl_slist_append(hl, "Expect:");
    if (body && !has_ct)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    if (!body && !has_ct)
        hl = curl_slist_append(hl, "Content-Type:"); /* curl adds none */

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || body) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        /* A body-less POST: Content-Length: 0 and no Content-Type. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);

    double t0 = now_ms();
    CURLcode rc = curl_easy_perform(c);
    out->seconds = (now_ms() - t0) / 1000.0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            snprintf(out->content_type, sizeof out->content_type, "%s", ct);
    } else {
        out->status = 0;
    }
    out->body = bb.data ? bb.data : calloc(1, 1);
    out->len = bb.len;
    out->headers = hb.data ? hb.data : calloc(1, 1);
    if (out->len > 0) {
        json_error_t je;
        out->json = json_loadb(out->body, out->len, JSON_DECODE_ANY, &je);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int http(struct http_resp *out, const char *base, const char *method,
         const char *path, const char *body, const char *const *headers)
{
    return http_timeout(out, 70000L * (long)time_scale(), base, method, path,
                        body, headers);
}

void http_resp_free(struct http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    r->body = NULL;
    r->headers = NULL;
    r->json = NULL;
}

const char *http_header(const struct http_resp *r, const char *name, char *buf,
                        size_t buflen)
{
    if (!r->headers || buflen == 0)
        return NULL;
    size_t nl = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            end = line + strlen(line);
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = end;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t n = (size_t)(ve - v);
            if (n >= buflen)
                n = buflen - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            return buf;
        }
        if (!*end)
            break;
        line = end + 2;
    }
    return NULL;
}

long long jint(const struct http_resp *r, const char *key)
{
    json_t *v = r->json && json_is_object(r->json)
                    ? json_object_get(r->json, key)
                    : NULL;
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

const char *jstr(const struct http_resp *r, const char *key)
{
    json_t *v = r->json && json_is_object(r->json)
                    ? json_object_get(r->json, key)
                    : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *problem_code(const struct http_resp *r)
{
    const char *c = jstr(r, "code");
    return c ? c : "";
}

int httpf(struct http_resp *out, const char *base, const char *method,
          const char *path, const char *const *headers, const char *fmt, ...)
{
    if (!fmt)
        return http(out, base, method, path, NULL, headers);
    va_list ap;
    va_start(ap, fmt);
    char *body = NULL;
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    int rc = http(out, base, method, path, body, headers);
    free(body);
    return rc;
}

bool problem_is(const struct http_resp *r, long status, const char *code)
{
    bool ok = r->status == status &&
              strncmp(r->content_type, "application/problem+json", 24) == 0 &&
              strcmp(problem_code(r), code) == 0 &&
              jint(r, "status") == status && jstr(r, "title") != NULL &&
              jstr(r, "type") != NULL;
    if (!ok)
        t_diag("expected %ld %s problem; got %ld [%s] %.300s", status, code,
               r->status, r->content_type, r->body ? r->body : "");
    return ok;
}

bool token_like(const char *s)
{
    if (!s || strlen(s) != 32)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

double metric_get(const char *base, const char *name, const char *const *labels)
{
    struct http_resp r;
    double value = -1;
    if (http(&r, base, "GET", "/metrics", NULL, NULL) != 0 || r.status != 200) {
        http_resp_free(&r);
        return -1;
    }
    size_t nl = strlen(name);
    for (char *line = r.body; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (line[0] != '#' && strncmp(line, name, nl) == 0 &&
            (line[nl] == ' ' || line[nl] == '{')) {
            char *close = line[nl] == '{' ? strrchr(line + nl, '}') : NULL;
            bool all = true;
            for (int i = 0; labels && labels[i]; i++) {
                char *hit = close ? strstr(line + nl, labels[i]) : NULL;
                if (!hit || hit > close)
                    all = false;
            }
            if (all) {
                char *v = strrchr(line, ' ');
                value = v ? strtod(v + 1, NULL) : -1;
                break;
            }
        }
        line = end ? end + 1 : NULL;
    }
    http_resp_free(&r);
    return value;
}

bool metric_wait(const char *base, const char *name, const char *const *labels,
                 double want, double ms)
{
    double end = now_ms() + ms * time_scale(), v;
    for (;;) {
        v = metric_get(base, name, labels);
        if (v == want)
            return true;
        if (now_ms() >= end)
            break;
        sleep_ms(10);
    }
    t_diag("%s is %g, wanted %g", name, v, want);
    return false;
}

bool waiters_become(const char *base, double want, double ms)
{
    return metric_wait(base, "lockservice_waiters", NULL, want, ms);
}

double serves_again(const char *base, const char *name, double limit_ms,
                    long long *fence)
{
    double t0 = now_ms(), first = -1;
    int streak = 0;

    for (int n = 1; streak < SERVES_STREAK && now_ms() - t0 < limit_ms; n++) {
        struct http_resp r;
        char path[160];

        snprintf(path, sizeof path, "/v1/locks/%s-%d/acquire", name, n);
        http_timeout(&r, 3000, base, "POST", path, "{\"ttl_ms\":1000}", NULL);
        if (r.status == 200) {
            if (first < 0) {
                first = now_ms() - t0;
                if (fence)
                    *fence = jint(&r, "fence");
            }
            streak++;
        } else {
            streak = 0;
            sleep_ms(25);
        }
        http_resp_free(&r);
    }
    return streak == SERVES_STREAK ? first : -1;
}

/* After a timeout: many requests on every worker, each answer for its own
 * request (a stale reply read by the next command would show here). */
void workers_sane(const char *base, const char *when)
{
    int good = 0, total = 24;
    for (int i = 0; i < total; i++) {
        char name[64], path[128];
        snprintf(name, sizeof name, "sane-%d-%d", (int)now_ms() % 100000, i);
        snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
        struct http_resp r, g;
        http_timeout(&r, 3000, base, "POST", path, "{\"ttl_ms\":2000}", NULL);
        snprintf(path, sizeof path, "/v1/locks/%s", name);
        http_timeout(&g, 3000, base, "GET", path, NULL, NULL);
        bool ok = r.status == 200 && jstr(&r, "name") &&
                  strcmp(jstr(&r, "name"), name) == 0 && g.status == 200 &&
                  jstr(&g, "name") && strcmp(jstr(&g, "name"), name) == 0 &&
                  json_is_true(json_object_get(g.json, "held")) &&
                  jint(&g, "fence") == jint(&r, "fence");
        if (!ok)
            t_diag("%s: %s -> %ld %s / %ld %s", when, name, r.status, r.body,
                   g.status, g.body);
        good += ok;
        http_resp_free(&r);
        http_resp_free(&g);
    }
    t_ok(good == total,
         "%s: %d/%d acquire+status pairs answer for their own lock", when, good,
         total);
}

int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *stall_thread(void *p)
{
    struct redis_stall *st = p;
    free(redis_cli(st->redis, st->command));
    return NULL;
}

/* True when Redis at port accepts a connection but leaves its PING
 * unanswered for ms. */
static bool redis_stalled(int port, int ms)
{
    int fd = raw_connect(port);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool stalled;

    if (fd < 0)
        return false;
    stalled = raw_send(fd, "PING\r\n", 6) && poll(&p, 1, ms) == 0;
    close(fd);
    return stalled;
}

bool redis_stall_begin(struct redis_stall *st, const struct redis_proc *r,
                       int seconds)
{
    double end = now_ms() + 5000 * time_scale();

    st->redis = r;
    snprintf(st->command, sizeof st->command, "DEBUG SLEEP %d", seconds);
    if (pthread_create(&st->thread, NULL, stall_thread, st) != 0) {
        st->redis = NULL;
        return false;
    }
    while (now_ms() < end) {
        /* 150 ms: a busy machine can delay an idle Redis's PONG by tens of
         * milliseconds, not by this much. */
        if (redis_stalled(r->port, 150))
            return true;
        sleep_ms(5);
    }
    t_diag("redis_stall_begin: Redis still answers PING");
    return false;
}

void redis_stall_end(struct redis_stall *st)
{
    if (st->redis != NULL)
        pthread_join(st->thread, NULL);
    st->redis = NULL;
}

bool raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* ------------------------------- additions for the engine v2 tests */

#include <limits.h>
#include <sys/resource.h>

long long redis_cli_int(const struct redis_proc *r, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = redis_cli(r, args);
    long long v = LLONG_MIN;
    if (out) {
        char *end;
        errno = 0;
        long long n = strtoll(out, &end, 10);
        if (end != out && errno == 0 && (*end == '\n' || *end == '\0'))
            v = n;
    }
    free(out);
    return v;
}

int redis_restart_under(struct redis_proc *r, const char *prefix)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    char port[16], logfile[320];

    redis_kill(r);
    if (split_words(prefix, NULL, argv, &argc, MAX_ARGS) != 0) {
        free_words(argv, 0, argc);
        return -1;
    }
    int nprefix = argc;
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
    const char *fixed[] = {redis_server_bin(),
                           "--port",
                           port,
                           "--bind",
                           "127.0.0.1",
                           "--dir",
                           r->dir,
                           "--logfile",
                           logfile,
                           "--daemonize",
                           "no",
                           "--save",
                           "",
                           "--appendonly",
                           "no",
                           "--enable-debug-command",
                           "local",
                           NULL};
    for (int i = 0; fixed[i] && argc < MAX_ARGS - 1; i++)
        argv[argc++] = (char *)fixed[i];
    int nfixed = argc;
    if (split_words(r->extra, r->dir, argv, &argc, MAX_ARGS) != 0) {
        free_words(argv, 0, nprefix);
        free_words(argv, nfixed, argc);
        return -1;
    }
    /* The port was ours a moment ago; retry briefly in case it lingers. */
    for (int attempt = 0; attempt < 20; attempt++) {
        pid_t pid = spawn(argv, NULL, -1, -1);
        if (pid < 0)
            break;
        track(pid, NULL);
        double end = now_ms() + 10000.0;
        int st;
        bool exited = false;
        while (now_ms() < end && !exited) {
            if (redis_answers(r->port)) {
                r->pid = pid;
                free_words(argv, 0, nprefix);
                free_words(argv, nfixed, argc);
                return 0;
            }
            exited = waitpid(pid, &st, WNOHANG) == pid;
            if (!exited)
                sleep_ms(10);
        }
        if (!exited) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        untrack(pid);
        sleep_ms(100);
    }
    free_words(argv, 0, nprefix);
    free_words(argv, nfixed, argc);
    t_diag("redis_restart_under: could not restart on port %d under '%s'",
           r->port, prefix ? prefix : "");
    print_log_tail(logfile, 20);
    return -1;
}

/* The shifting library: no malloc, no dlsym (the real clock is the system
 * call), so it cannot recurse into an allocator that reads the clock. */
static const char clock_shift_source[] =
    "#define _GNU_SOURCE\n"
    "#include <stdlib.h>\n"
    "#include <sys/syscall.h>\n"
    "#include <sys/time.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "static long long shift_ns(void)\n"
    "{\n"
    "    static volatile long long v;\n"
    "    static volatile int read_once;\n"
    "    if (!read_once) {\n"
    "        const char *s = getenv(\"TEST_CLOCK_SHIFT_MS\");\n"
    "        v = s ? strtoll(s, NULL, 10) * 1000000LL : 0;\n"
    "        read_once = 1;\n"
    "    }\n"
    "    return v;\n"
    "}\n"
    "int clock_gettime(clockid_t id, struct timespec *ts)\n"
    "{\n"
    "    int rc = (int)syscall(SYS_clock_gettime, id, ts);\n"
    "    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) "
    "{\n"
    "        long long ns = (long long)ts->tv_sec * 1000000000LL +\n"
    "                       ts->tv_nsec + shift_ns();\n"
    "        ts->tv_sec = (time_t)(ns / 1000000000LL);\n"
    "        ts->tv_nsec = (long)(ns % 1000000000LL);\n"
    "    }\n"
    "    return rc;\n"
    "}\n"
    "int gettimeofday(struct timeval *tv, void *tz)\n"
    "{\n"
    "    struct timespec ts;\n"
    "    (void)tz;\n"
    "    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)\n"
    "        return -1;\n"
    "    if (tv) {\n"
    "        tv->tv_sec = ts.tv_sec;\n"
    "        tv->tv_usec = ts.tv_nsec / 1000;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "time_t time(time_t *t)\n"
    "{\n"
    "    struct timespec ts;\n"
    "    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)\n"
    "        return (time_t)-1;\n"
    "    if (t)\n"
    "        *t = ts.tv_sec;\n"
    "    return ts.tv_sec;\n"
    "}\n";

const char *clock_shift_preload(void)
{
    static char lib[300];
    static bool tried;
    char dir[256], src[300];

    if (tried)
        return lib[0] ? lib : NULL;
    tried = true;
    snprintf(dir, sizeof dir, "%s/lockservice-clock-XXXXXX", tmp_root());
    if (!mkdtemp(dir)) {
        t_diag("clock_shift_preload: mkdtemp: %s", strerror(errno));
        return NULL;
    }
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid == 0 && procs[i].dir[0] == '\0') {
            snprintf(procs[i].dir, sizeof procs[i].dir, "%s", dir);
            procs[i].pid = -1; /* reserved: a dir with no process */
            break;
        }
    }
    pthread_mutex_unlock(&procs_lock);
    snprintf(src, sizeof src, "%s/clock_shift.c", dir);
    FILE *f = fopen(src, "w");
    if (!f || fputs(clock_shift_source, f) < 0) {
        if (f)
            fclose(f);
        t_diag("clock_shift_preload: cannot write %s", src);
        return NULL;
    }
    fclose(f);
    char out[300];
    snprintf(out, sizeof out, "%s/clock_shift.so", dir);
    const char *cc = getenv("CC");
    char *argv[MAX_ARGS];
    int argc = 0;
    split_words(cc && *cc ? cc : "cc", NULL, argv, &argc, MAX_ARGS - 8);
    int ncc = argc;
    const char *flags[] = {"-shared", "-fPIC", "-O1", "-w", "-o", out, src};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        argv[argc++] = (char *)flags[i];
    argv[argc] = NULL;
    pid_t pid = spawn(argv, NULL, -1, 2);
    free_words(argv, 0, ncc);
    if (pid < 0)
        return NULL;
    int st = wait_for(pid, 60000);
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        t_diag("clock_shift_preload: building %s failed", out);
        return NULL;
    }
    snprintf(lib, sizeof lib, "%s", out);
    return lib;
}

bool nofile_at_least(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)want
                          ? (rlim_t)want
                          : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return false;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)want;
}

long proc_status(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    long v = -1;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            char *end;
            long x = strtol(line + n + 1, &end, 10);
            if (end != line + n + 1)
                v = x;
            break;
        }
    }
    fclose(f);
    return v;
}

int raw_request(int port, const char *method, const char *path,
                const char *body)
{
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int n;

    if (body)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, port, blen);
    else
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", method,
                     path, port);
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    int fd = raw_connect(port);
    if (fd < 0)
        return -1;
    if (!raw_send(fd, head, (size_t)n) || (blen && !raw_send(fd, body, blen))) {
        close(fd);
        return -1;
    }
    return fd;
}

long raw_status(int fd, int timeout_ms)
{
    char buf[512];
    size_t len = 0;
    double end = now_ms() + timeout_ms;
    while (!memchr(buf, '\n', len) && len < sizeof buf - 1) {
        int left = (int)(end - now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0)
            break;
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return 0;
    return strtol(buf + 9, NULL, 10);
}

/* ---- Additions for Sentinel and replicas (issue 13) ---- */

int sentinel_start(struct redis_proc *s, const struct redis_proc *master,
                   const char *name, int quorum)
{
    return sentinel_start_conf(s, master, name, quorum, NULL);
}

int sentinel_start_conf(struct redis_proc *s, const struct redis_proc *master,
                        const char *name, int quorum, const char *extra_conf)
{
    char conf[320], logfile[320];
    FILE *f;

    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s/lockservice-sentinel-XXXXXX",
             tmp_root());
    if (!mkdtemp(s->dir)) {
        t_diag("sentinel_start: mkdtemp %s: %s", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    pthread_mutex_lock(&procs_lock);
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid == 0 && procs[i].dir[0] == '\0') {
            snprintf(procs[i].dir, sizeof procs[i].dir, "%s", s->dir);
            procs[i].pid = -1;
            break;
        }
    }
    pthread_mutex_unlock(&procs_lock);
    snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
    snprintf(logfile, sizeof logfile, "%s/sentinel.log", s->dir);
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = free_port();
        f = fopen(conf, "w");
        if (f == NULL)
            return -1;
        fprintf(f,
                "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
                "daemonize no\nsentinel resolve-hostnames no\n"
                "sentinel monitor %s 127.0.0.1 %d %d\n"
                "sentinel down-after-milliseconds %s 1000\n"
                "sentinel failover-timeout %s 4000\n"
                "sentinel parallel-syncs %s 2\n%s\n",
                s->port, s->dir, logfile, name, master->port, quorum, name,
                name, name, extra_conf ? extra_conf : "");
        fclose(f);
        char *argv[] = {(char *)redis_server_bin(), conf, "--sentinel", NULL};
        pid_t pid = spawn(argv, NULL, -1, -1);
        if (pid < 0)
            return -1;
        s->pid = pid;
        track(pid, NULL);
        double end = now_ms() + 10000.0;
        while (now_ms() < end) {
            int st;
            if (redis_answers(s->port))
                return 0;
            if (waitpid(pid, &st, WNOHANG) == pid)
                break;
            sleep_ms(10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        untrack(pid);
        s->pid = 0;
    }
    t_diag("sentinel_start: %s --sentinel did not start", redis_server_bin());
    print_log_tail(logfile, 20);
    return -1;
}

/* How many replicas INFO replication shows online at the master's own
 * offset (the whole stream acknowledged). */
static int replicas_caught_up(const struct redis_proc *master)
{
    char *info = redis_cli(master, "INFO replication");
    const char *p = info ? strstr(info, "master_repl_offset:") : NULL;
    char want[48];
    int n = 0;

    if (p != NULL) {
        snprintf(want, sizeof want, ",offset=%lld,",
                 strtoll(p + strlen("master_repl_offset:"), NULL, 10));
        for (const char *l = info; (l = strstr(l, "\nslave")) != NULL; l++) {
            const char *end = strchr(l + 1, '\n');
            size_t len = end ? (size_t)(end - l) : strlen(l);
            char line[512];
            if (len >= sizeof line)
                continue;
            memcpy(line, l, len);
            line[len] = '\0';
            if (strstr(line, "state=online") && strstr(line, want))
                n++;
        }
    }
    free(info);
    return n;
}

bool replicas_synced(const struct redis_proc *master, int n, double ms)
{
    double end = now_ms() + ms * time_scale();

    do {
        if (replicas_caught_up(master) >= n)
            return true;
        sleep_ms(50);
    } while (now_ms() < end);
    t_diag("replicas_synced: fewer than %d replicas of port %d in sync", n,
           master->port);
    return false;
}

/* ---- Additions for Redis Cluster (issue 13 item 4) ---- */

#define CLUSTER_BUS_OFFSET 10000
#define CLUSTER_NODE_ARGS                                                      \
    "--cluster-enabled yes --cluster-config-file nodes.conf "                  \
    "--cluster-node-timeout 1500 --cluster-require-full-coverage no"

/* True when 127.0.0.1:port can be bound right now. */
static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    bool ok;

    if (fd < 0)
        return false;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int cluster_port(void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int port = free_port(), bus = port + CLUSTER_BUS_OFFSET;
        if (port > 0 && bus < 65536 && bus != 6379 && bus != 8080 &&
            port_bindable(bus))
            return port;
    }
    return -1;
}

/* Runs argv for up to timeout_ms (scaled by time_scale()) with its stdout
 * and stderr both into *out (malloc'd, caller frees; NULL when it did not
 * start). Returns the exit status, or -1 when it did not start or was
 * killed at the deadline. */
static int run_captured(char *const *argv, double timeout_ms, char **out)
{
    int pfd[2], st;
    size_t len = 0, cap = 1;
    char *buf = calloc(1, 1);
    double end = now_ms() + timeout_ms * time_scale();
    pid_t pid;

    *out = NULL;
    if (buf == NULL || pipe(pfd) != 0) {
        free(buf);
        return -1;
    }
    pid = spawn(argv, NULL, pfd[1], pfd[1]);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        free(buf);
        return -1;
    }
    track(pid, NULL);
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        int left = (int)(end - now_ms());
        if (left <= 0)
            break;
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            break;
        if ((p.revents & (POLLIN | POLLHUP)) &&
            !drain(pfd[0], &buf, &len, &cap))
            break;
    }
    close(pfd[0]);
    st = wait_for(pid, (long)(end - now_ms()) + 100);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    untrack(pid);
    *out = buf;
    if (st < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* redis-cli with the words of args, as run_captured runs it. */
static int cluster_cli(const char *args, double timeout_ms, char **out)
{
    char *argv[MAX_ARGS];
    int argc = 0, rc;

    argv[argc++] = "redis-cli";
    if (split_words(args, NULL, argv, &argc, MAX_ARGS) != 0) {
        free_words(argv, 1, argc);
        *out = NULL;
        return -1;
    }
    rc = run_captured(argv, timeout_ms, out);
    free_words(argv, 1, argc);
    return rc;
}

/* The integer after "field:" on a line of an INFO-style text, or -1. */
static long info_field(const char *text, const char *field)
{
    size_t n = strlen(field);

    for (const char *l = text; l != NULL && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, field, n) == 0 && l[n] == ':')
            return strtol(l + n + 1, NULL, 10);
    return -1;
}

/* True when the INFO-style text has "field:value" on a line. */
static bool info_says(const char *text, const char *field, const char *value)
{
    char want[128];

    snprintf(want, sizeof want, "%s:%s", field, value);
    for (const char *l = text; l != NULL && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, want, strlen(want)) == 0 &&
            (l[strlen(want)] == '\r' || l[strlen(want)] == '\n' ||
             l[strlen(want)] == '\0'))
            return true;
    return false;
}

/* One line of CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> <ping>
 * <pong> <epoch> <link> <slot ranges...>". */
struct node_line {
    char id[48];
    int port;
    char flags[128];
    char master_id[48];
    const char *slots; /* into the text: the slot ranges, to the line end */
    size_t slots_len;
};

/* Parses the line at line (up to its '\n'); false when it is no node. */
static bool node_line_parse(const char *line, struct node_line *nl)
{
    const char *end = strchr(line, '\n'), *p = line, *word[8];
    size_t wlen[8];

    if (end == NULL)
        end = line + strlen(line);
    memset(nl, 0, sizeof *nl);
    for (int w = 0; w < 8; w++) {
        while (p < end && *p == ' ')
            p++;
        word[w] = p;
        while (p < end && *p != ' ' && *p != '\r')
            p++;
        wlen[w] = (size_t)(p - word[w]);
        if (wlen[w] == 0)
            return false;
    }
    if (wlen[0] >= sizeof nl->id || wlen[2] >= sizeof nl->flags ||
        wlen[3] >= sizeof nl->master_id)
        return false;
    memcpy(nl->id, word[0], wlen[0]);
    memcpy(nl->flags, word[2], wlen[2]);
    memcpy(nl->master_id, word[3], wlen[3]);
    const char *colon = memchr(word[1], ':', wlen[1]);
    nl->port = colon ? (int)strtol(colon + 1, NULL, 10) : 0;
    while (p < end && *p == ' ')
        p++;
    nl->slots = p;
    nl->slots_len = (size_t)(end - p);
    while (nl->slots_len > 0 && nl->slots[nl->slots_len - 1] == '\r')
        nl->slots_len--;
    return nl->port > 0;
}

/* True when the comma-separated flags of nl include flag. */
static bool node_flag(const struct node_line *nl, const char *flag)
{
    size_t n = strlen(flag);

    for (const char *f = nl->flags; f != NULL;
         f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL)
        if (strncmp(f, flag, n) == 0 && (f[n] == ',' || f[n] == '\0'))
            return true;
    return false;
}

/* Sets owner[s] = port for each slot s of nl's ranges ("a-b" or "a"; the
 * "[slot->-id]" migration marks are skipped). */
static void node_slots_mark(const struct node_line *nl, int *owner)
{
    const char *p = nl->slots, *end = nl->slots + nl->slots_len;

    while (p < end) {
        char *next;
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            break;
        if (*p == '[') {
            while (p < end && *p != ' ')
                p++;
            continue;
        }
        long a = strtol(p, &next, 10), b = a;
        if (next < end && *next == '-')
            b = strtol(next + 1, &next, 10);
        for (long s = a; s <= b && s >= 0 && s < CLUSTER_SLOTS; s++)
            owner[s] = nl->port;
        p = next > p ? next : p + 1;
        while (p < end && *p != ' ')
            p++;
    }
}

/* Which master port node r says serves each slot (0: none). False when r
 * does not answer CLUSTER NODES. */
static bool slot_owners_of(const struct redis_proc *r, int *owner)
{
    char *text = redis_cli(r, "CLUSTER NODES");

    if (text == NULL)
        return false;
    memset(owner, 0, CLUSTER_SLOTS * sizeof *owner);
    for (const char *l = text; l != NULL && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        struct node_line nl;
        if (node_line_parse(l, &nl) && node_flag(&nl, "master"))
            node_slots_mark(&nl, owner);
    }
    free(text);
    return true;
}

/* The first live node of cl that answers PING, or NULL. */
static struct redis_proc *cluster_live_node(struct redis_cluster *cl)
{
    for (int i = 0; i < cl->count; i++)
        if (cl->node[i].pid > 0 && redis_answers(cl->node[i].port))
            return &cl->node[i];
    return NULL;
}

int cluster_start(struct redis_cluster *cl, int masters,
                  int replicas_per_master)
{
    int total = masters * (1 + replicas_per_master), rc;
    char args[1024], *out = NULL;
    struct redis_proc *m[CLUSTER_NODES_MAX];
    size_t len;
    int nm;

    memset(cl, 0, sizeof *cl);
    if (masters < 3 || replicas_per_master < 0 || total > CLUSTER_NODES_MAX) {
        t_diag("cluster_start: %d masters, %d replicas each: not possible",
               masters, replicas_per_master);
        return -1;
    }
    for (int i = 0; i < total; i++) {
        if (redis_start_picking(&cl->node[i], CLUSTER_NODE_ARGS,
                                cluster_port) != 0)
            return -1;
        cl->count++;
    }
    len = (size_t)snprintf(args, sizeof args, "--cluster create");
    for (int i = 0; i < total && len < sizeof args; i++)
        len += (size_t)snprintf(args + len, sizeof args - len, " 127.0.0.1:%d",
                                cl->node[i].port);
    if (len < sizeof args)
        len += (size_t)snprintf(args + len, sizeof args - len,
                                " --cluster-replicas %d --cluster-yes",
                                replicas_per_master);
    if (len >= sizeof args)
        return -1;
    rc = cluster_cli(args, 60000, &out);
    if (rc != 0) {
        t_diag("cluster_start: redis-cli %s -> %d:\n%s", args, rc,
               out ? out : "");
        free(out);
        return -1;
    }
    free(out);
    if (!cluster_settled(cl, 30000)) {
        t_diag("cluster_start: the cluster did not settle");
        return -1;
    }
    nm = cluster_masters(cl, m, CLUSTER_NODES_MAX);
    if (nm != masters) {
        t_diag("cluster_start: %d masters serve slots, not %d", nm, masters);
        return -1;
    }
    for (int i = 0; i < nm; i++)
        if (!replicas_synced(m[i], replicas_per_master, 30000))
            return -1;
    return 0;
}

void cluster_stop(struct redis_cluster *cl)
{
    for (int i = 0; i < cl->count; i++)
        redis_stop(&cl->node[i]);
    cl->count = 0;
}

size_t cluster_seeds(const struct redis_cluster *cl, char *buf, size_t len)
{
    size_t n = 0;

    if (len == 0)
        return 0;
    buf[0] = '\0';
    for (int i = 0; i < cl->count; i++) {
        int w = snprintf(buf + n, len - n, "%s127.0.0.1:%d", i ? "," : "",
                         cl->node[i].port);
        if (w < 0 || (size_t)w >= len - n) {
            buf[0] = '\0';
            return 0;
        }
        n += (size_t)w;
    }
    return n;
}

/* CRC16-CCITT (XMODEM), the one Redis Cluster hashes keys with. */
static unsigned crc16_xmodem(const char *p, size_t len)
{
    unsigned crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)p[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) : (crc << 1);
        crc &= 0xffffu;
    }
    return crc;
}

int cluster_keyslot(const char *key)
{
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;

    /* A hash tag counts when it holds at least one character. */
    if (close != NULL && close > open + 1)
        return (int)(crc16_xmodem(open + 1, (size_t)(close - open - 1)) &
                     (CLUSTER_SLOTS - 1));
    return (int)(crc16_xmodem(key, strlen(key)) & (CLUSTER_SLOTS - 1));
}

int cluster_name_slot(const char *name)
{
    char key[512];

    snprintf(key, sizeof key, "{%s}", name);
    return cluster_keyslot(key);
}

struct redis_proc *cluster_node(struct redis_cluster *cl, int port)
{
    for (int i = 0; i < cl->count; i++)
        if (cl->node[i].port == port)
            return &cl->node[i];
    return NULL;
}

int cluster_slot_owner(struct redis_cluster *cl, int slot)
{
    static int owner[CLUSTER_SLOTS];
    struct redis_proc *r = cluster_live_node(cl);

    if (slot < 0 || slot >= CLUSTER_SLOTS || r == NULL ||
        !slot_owners_of(r, owner))
        return -1;
    return owner[slot] > 0 ? owner[slot] : -1;
}

struct redis_proc *cluster_name_master(struct redis_cluster *cl,
                                       const char *name)
{
    int port = cluster_slot_owner(cl, cluster_name_slot(name));

    return port > 0 ? cluster_node(cl, port) : NULL;
}

int cluster_slots_of(struct redis_cluster *cl, int port, unsigned char *owned)
{
    static int owner[CLUSTER_SLOTS];
    struct redis_proc *r = cluster_live_node(cl);
    int n = 0;

    if (r == NULL || !slot_owners_of(r, owner))
        return -1;
    for (int s = 0; s < CLUSTER_SLOTS; s++) {
        if (owned != NULL)
            owned[s] = owner[s] == port;
        n += owner[s] == port;
    }
    return n;
}

int cluster_masters(struct redis_cluster *cl, struct redis_proc **out, int max)
{
    static int owner[CLUSTER_SLOTS];
    struct redis_proc *r = cluster_live_node(cl);
    int n = 0;

    if (r == NULL || !slot_owners_of(r, owner))
        return 0;
    /* By lowest slot: the first slot seen of each port. */
    for (int s = 0; s < CLUSTER_SLOTS && n < max; s++) {
        struct redis_proc *m = owner[s] > 0 ? cluster_node(cl, owner[s]) : NULL;
        bool seen = false;
        for (int i = 0; i < n && !seen; i++)
            seen = out[i] == m;
        if (m != NULL && !seen && m->pid > 0)
            out[n++] = m;
    }
    return n;
}

bool cluster_node_id(const struct redis_proc *r, char *buf, size_t len)
{
    char *out = r->pid > 0 ? redis_cli(r, "CLUSTER MYID") : NULL;
    size_t n = out ? strcspn(out, "\r\n") : 0;
    bool ok = n == 40 && n < len;

    if (ok) {
        memcpy(buf, out, n);
        buf[n] = '\0';
    }
    free(out);
    return ok;
}

struct redis_proc *cluster_replica_of(struct redis_cluster *cl,
                                      const struct redis_proc *master)
{
    char id[48], *text;
    struct redis_proc *found = NULL;

    if (!cluster_node_id(master, id, sizeof id) ||
        (text = redis_cli(master, "CLUSTER NODES")) == NULL)
        return NULL;
    for (const char *l = text; l != NULL && *l && found == NULL;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        struct node_line nl;
        struct redis_proc *r;
        if (node_line_parse(l, &nl) && node_flag(&nl, "slave") &&
            !node_flag(&nl, "fail") && !node_flag(&nl, "fail?") &&
            strcmp(nl.master_id, id) == 0 &&
            (r = cluster_node(cl, nl.port)) != NULL && r->pid > 0)
            found = r;
    }
    free(text);
    return found;
}

/* True when every live node of cl says state ok with all slots served and
 * shows the same slot map, each slot's master one of cl's live nodes. */
static bool cluster_agrees(struct redis_cluster *cl)
{
    static int first[CLUSTER_SLOTS], other[CLUSTER_SLOTS];
    bool have_first = false;

    for (int i = 0; i < cl->count; i++) {
        const struct redis_proc *r = &cl->node[i];
        char *info;
        bool ok;
        if (r->pid <= 0)
            continue;
        info = redis_cli(r, "CLUSTER INFO");
        ok = info != NULL && info_says(info, "cluster_state", "ok") &&
             info_field(info, "cluster_slots_ok") == CLUSTER_SLOTS;
        free(info);
        if (!ok || !slot_owners_of(r, have_first ? other : first))
            return false;
        if (have_first && memcmp(first, other, sizeof first) != 0)
            return false;
        have_first = true;
    }
    /* A master just killed still serves its slots in the others' eyes
     * until they find it failed. */
    for (int s = 0; have_first && s < CLUSTER_SLOTS; s++) {
        const struct redis_proc *m = cluster_node(cl, first[s]);
        if (m == NULL || m->pid <= 0)
            return false;
    }
    return have_first;
}

bool cluster_settled(struct redis_cluster *cl, double ms)
{
    double end = now_ms() + ms * time_scale();

    do {
        if (cluster_agrees(cl))
            return true;
        sleep_ms(100);
    } while (now_ms() < end);
    t_diag("cluster_settled: the nodes do not agree on a whole slot map "
           "within %.0f ms",
           ms * time_scale());
    for (int i = 0; i < cl->count; i++) {
        char *info, *nodes;
        if (cl->node[i].pid <= 0)
            continue;
        info = redis_cli(&cl->node[i], "CLUSTER INFO");
        nodes = redis_cli(&cl->node[i], "CLUSTER NODES");
        t_diag("node %d: cluster_state %s, cluster_slots_ok %ld; its CLUSTER "
               "NODES:\n%s",
               cl->node[i].port,
               info && info_says(info, "cluster_state", "ok") ? "ok" : "not ok",
               info ? info_field(info, "cluster_slots_ok") : -1,
               nodes ? nodes : "(no answer)");
        free(info);
        free(nodes);
    }
    return false;
}

bool cluster_reshard(struct redis_cluster *cl, const struct redis_proc *from,
                     const struct redis_proc *to, int nslots)
{
    char from_id[48], to_id[48], args[512], *out = NULL;
    int before = cluster_slots_of(cl, to->port, NULL), after, rc;

    if (!cluster_node_id(from, from_id, sizeof from_id) ||
        !cluster_node_id(to, to_id, sizeof to_id))
        return false;
    snprintf(args, sizeof args,
             "--cluster reshard 127.0.0.1:%d --cluster-from %s --cluster-to "
             "%s --cluster-slots %d --cluster-yes",
             from->port, from_id, to_id, nslots);
    rc = cluster_cli(args, 120000, &out);
    if (rc != 0) {
        t_diag("cluster_reshard: redis-cli %s -> %d:\n%.3000s", args, rc,
               out ? out : "");
        free(out);
        return false;
    }
    free(out);
    if (!cluster_settled(cl, 30000))
        return false;
    after = cluster_slots_of(cl, to->port, NULL);
    if (after != before + nslots) {
        t_diag("cluster_reshard: port %d serves %d slots, not %d + %d",
               to->port, after, before, nslots);
        return false;
    }
    return true;
}

bool cluster_failover(struct redis_cluster *cl, struct redis_proc *replica,
                      double ms)
{
    double end = now_ms() + ms * time_scale();
    char *out = redis_cli(replica, "CLUSTER FAILOVER");
    bool ok = out != NULL && strncmp(out, "OK", 2) == 0;

    if (!ok) {
        t_diag("cluster_failover: CLUSTER FAILOVER on port %d -> %s",
               replica->port, out ? out : "(no answer)");
        free(out);
        return false;
    }
    free(out);
    for (bool master = false; !master;) {
        char *info = redis_cli(replica, "INFO replication");
        master = info != NULL && info_says(info, "role", "master");
        free(info);
        if (!master && now_ms() > end) {
            t_diag("cluster_failover: port %d is no master within %.0f ms",
                   replica->port, ms * time_scale());
            return false;
        }
        if (!master)
            sleep_ms(50);
    }
    return cluster_settled(cl, (end - now_ms()) / time_scale());
}
