/* test_lockctl.c -- lockctl (tools/lockctl/) against the real service and a
 * real redis-server: its usage and documented exit statuses, acquire /
 * renew / release / status, API keys from a file, and `run`: CMD's
 * environment and exit status, mutual exclusion of concurrent runs, fences
 * that grow, --wait running out, a lease lost while CMD runs (Redis killed
 * past the TTL; the lock deleted under it) stopping CMD, signals passed on
 * to CMD, a proxy answering one renewal with an HTML 502, a service restart
 * mid-lease, and CMD stopped when lockctl itself is killed.
 *
 * lockctl is $LOCKCTL_BIN, default ./lockctl; its man page is
 * tools/lockctl/lockctl.1 (from the repository root). Time bounds are
 * generous (time_scale()); they check that things happen, not how fast. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;
static char workdir[] = "/tmp/lockservice-lockctl.XXXXXX";

static const char *lockctl_bin(void)
{
    const char *b = getenv("LOCKCTL_BIN");
    return b && *b ? b : "./lockctl";
}

/* ------------------------------------------------------------ processes */

/* A lockctl (or sh) started in the background, its stdout and stderr in
 * files of workdir. */
struct proc {
    pid_t pid;
    int status; /* exit status, 128 + signal; -1 while running */
    char out[300], err[300];
};

static int proc_seq;

/* Starts argv (NULL-terminated) with stdin from /dev/null. */
static bool proc_start(struct proc *p, const char *const *argv)
{
    int n = ++proc_seq;
    snprintf(p->out, sizeof p->out, "%s/p%d.out", workdir, n);
    snprintf(p->err, sizeof p->err, "%s/p%d.err", workdir, n);
    p->status = -1;
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid < 0)
        return false;
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return true;
}

/* Waits up to ms * time_scale() for p; returns its status, or -1 (then
 * it is killed). */
static int proc_wait(struct proc *p, double ms)
{
    double end = now_ms() + ms * time_scale();
    int st;
    while (p->status < 0) {
        pid_t got = waitpid(p->pid, &st, WNOHANG);
        if (got == p->pid) {
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (now_ms() > end) {
            t_diag("pid %ld still runs after %.0f ms: killed", (long)p->pid,
                   ms * time_scale());
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            return -1;
        }
        sleep_ms(10);
    }
    return p->status;
}

/* The whole of a file, malloc'd ("" when missing). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 16, len = 0, n;
    char *buf = calloc(1, cap);
    if (f == NULL)
        return buf;
    while ((n = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Runs lockctl with args (NULL-terminated) to the end; its stdout and
 * stderr are left in p. Returns the exit status, or -1. */
static int lockctl(struct proc *p, const char *const *args, double ms)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = lockctl_bin();
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (!proc_start(p, argv))
        return -1;
    return proc_wait(p, ms);
}

/* Starts `lockctl run NAME --url URL EXTRA... -- sh -c SCRIPT`. */
static bool run_start(struct proc *p, const char *url, const char *name,
                      const char *const *extra, const char *script)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = lockctl_bin();
    argv[n++] = "run";
    argv[n++] = name;
    argv[n++] = "--url";
    argv[n++] = url;
    for (int i = 0; extra && extra[i] && n < 58; i++)
        argv[n++] = extra[i];
    argv[n++] = "--";
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n] = NULL;
    return proc_start(p, argv);
}

/* Waits up to ms * time_scale() for path to exist. */
static bool file_appears(const char *path, double ms)
{
    double end = now_ms() + ms * time_scale();
    struct stat sb;
    while (stat(path, &sb) != 0) {
        if (now_ms() > end)
            return false;
        sleep_ms(10);
    }
    return true;
}

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

/* "path" inside workdir. */
static const char *in_workdir(const char *name)
{
    static char paths[8][300];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", workdir, name);
    return p;
}

/* GET /v1/locks/NAME: held? (-1 when no answer) */
static int held(const char *base, const char *name)
{
    struct http_resp r;
    char path[160];
    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(&r, base, "GET", path, NULL, NULL);
    json_t *h = r.json ? json_object_get(r.json, "held") : NULL;
    int v = r.status == 200 && json_is_boolean(h) ? json_is_true(h) : -1;
    http_resp_free(&r);
    return v;
}

/* Waits for Redis-backed answers again after an outage. */
static bool ready_again(const char *base, double ms)
{
    double end = now_ms() + ms * time_scale();
    for (;;) {
        struct http_resp r;
        http_timeout(&r, 2000, base, "GET", "/readyz", NULL, NULL);
        long st = r.status;
        http_resp_free(&r);
        if (st == 200)
            return true;
        if (now_ms() > end)
            return false;
        sleep_ms(50);
    }
}

/* -------------------------------------------------------------- usage */

/* Every "--flag" and exit status --help names is in the man page. */
static void test_help_and_man_page(void)
{
    struct proc p;
    const char *args[] = {"--help", NULL};
    int st = lockctl(&p, args, 5000);
    char *help = slurp(p.out);
    t_ok(st == 0 && contains(help, "exit status") &&
             contains(help, "lockctl run NAME") &&
             contains(help, "lockctl acquire NAME"),
         "lockctl --help exits 0 and shows the commands and exit statuses "
         "(exit %d)",
         st);

    char *man = slurp("tools/lockctl/lockctl.1");
    /* roff writes '-' as '\-': drop the backslashes. */
    size_t w = 0;
    for (size_t r = 0; man[r]; r++)
        if (!(man[r] == '\\' && man[r + 1] == '-'))
            man[w++] = man[r];
    man[w] = '\0';
    int flags = 0, missing = 0;
    for (const char *s = help; (s = strstr(s, "--")) != NULL;) {
        size_t n = 2 + strspn(s + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (n > 3) {
            char flag[64];
            snprintf(flag, sizeof flag, "%.*s", (int)n, s);
            flags++;
            if (!strstr(man, flag)) {
                t_diag("lockctl.1 does not mention %s", flag);
                missing++;
            }
        }
        s += n;
    }
    const char *codes[] = {".B 0\n",   ".B 64\n",  ".B 65\n",
                           ".B 66\n",  ".B 67\n",  ".B 68\n",
                           ".B 126\n", ".B 127\n", NULL};
    for (int i = 0; codes[i]; i++) {
        char in_help[16];
        int code = (int)strtol(codes[i] + 3, NULL, 10);
        snprintf(in_help, sizeof in_help, "\n  %d ", code);
        if (!strstr(man, codes[i]) || !strstr(help, in_help)) {
            t_diag("exit status %d is not in both --help and lockctl.1", code);
            missing++;
        }
    }
    t_ok(flags >= 9 && missing == 0,
         "lockctl.1 documents every option (%d) and exit status of --help",
         flags);
    free(man);
    free(help);

    const char *sub[] = {"run", "--help", NULL};
    st = lockctl(&p, sub, 5000);
    help = slurp(p.out);
    t_ok(st == 0 && contains(help, "--kill-after") &&
             !contains(help, "--token-file"),
         "lockctl run --help shows run's options only (exit %d)", st);
    free(help);
}

static void test_usage_errors(void)
{
    static const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{NULL}, "usage"},
        {{"frobnicate", "x", NULL}, "unknown command"},
        {{"acquire", "x", "--ttl", "10x", NULL}, "bad duration"},
        {{"acquire", "x", "--ttl", "-1s", NULL}, "bad duration"},
        {{"acquire", "x", "--api-key", "secret", NULL}, "unknown option"},
        {{"acquire", "bad/name", NULL}, "bad lock name"},
        {{"status", "x", "--wait", "1s", NULL}, "does not apply"},
        {{"run", "x", NULL}, "no CMD"},
        {{"run", "x", "--ttl", "100ms", "--", "true", NULL}, "300ms"},
        {{"renew", "x", NULL}, "LOCK_TOKEN"},
        {{"status", "x", "--url", "ftp://host", NULL}, "bad service URL"},
        {{"status", "x", "--api-key-file", "/nonexistent/key", NULL},
         "cannot open API key file"},
    };
    unsetenv("LOCK_TOKEN");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proc p;
        char line[256] = "";
        for (int j = 0; cases[i].args[j]; j++)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s",
                     cases[i].args[j]);
        int st = lockctl(&p, cases[i].args, 5000);
        char *err = slurp(p.err);
        t_ok(st == 64 && contains(err, cases[i].says),
             "lockctl%s -> exit 64, says '%s' (exit %d)", line, cases[i].says,
             st);
        if (st != 64)
            t_diag("stderr: %s", err);
        free(err);
    }
}

static void test_unreachable(void)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", free_port());
    const char *args[] = {"status", "x", "--url", url, NULL};
    struct proc p;
    int st = lockctl(&p, args, 10000);
    char *err = slurp(p.err);
    t_ok(st == 68 && contains(err, "unavailable"),
         "a service nobody listens on -> exit 68 (exit %d)", st);
    free(err);
    const char *run[] = {
        "run", "x", "--url", url, "--", "touch", in_workdir("unreachable-ran"),
        NULL};
    st = lockctl(&p, run, 10000);
    struct stat sb;
    t_ok(st == 68 && stat(in_workdir("unreachable-ran"), &sb) != 0,
         "run against it -> exit 68, CMD never runs (exit %d)", st);
    const char *list[] = {"list", "--url", url, NULL};
    st = lockctl(&p, list, 10000);
    t_ok(st == 68, "list against it -> exit 68 (exit %d)", st);
}

/* ------------------------------------------------- acquire .. release */

static void test_one_shot_commands(void)
{
    struct proc p;
    const char *acq[] = {"acquire", "cli-basic", "--url",  svc.url, "--ttl",
                         "1m",      "--owner",   "tester", NULL};
    int st = lockctl(&p, acq, 10000);
    char *out = slurp(p.out);
    json_error_t jerr;
    json_t *lease = json_loads(out, 0, &jerr);
    const char *token = json_string_value(json_object_get(lease, "token"));
    t_ok(st == 0 && token && token_like(token) &&
             json_integer_value(json_object_get(lease, "fence")) > 0 &&
             json_integer_value(json_object_get(lease, "ttl_ms")) == 60000,
         "acquire prints the lease as JSON (exit %d: %.200s)", st, out);

    const char *status[] = {"status", "cli-basic", "--url", svc.url, NULL};
    st = lockctl(&p, status, 10000);
    char *sout = slurp(p.out);
    t_ok(st == 0 && contains(sout, "\"held\":true") &&
             contains(sout, "\"owner\":\"tester\"") &&
             !contains(sout, token ? token : "no token"),
         "status shows the holder and no token (exit %d: %.200s)", st, sout);
    free(sout);

    const char *again[] = {"acquire", "cli-basic", "--url", svc.url,
                           "--wait",  "300ms",     NULL};
    double t0 = now_ms();
    st = lockctl(&p, again, 10000);
    double took = now_ms() - t0;
    char *err = slurp(p.err);
    t_ok(st == 65 && took >= 250 && contains(err, "lock_held"),
         "acquire of a held lock waits --wait 300ms, then exit 65 (exit %d "
         "after %.0f ms)",
         st, took);
    free(err);

    /* The token from a file; then a second release finds nothing. */
    const char *tokfile = in_workdir("token");
    FILE *f = fopen(tokfile, "w");
    if (f) {
        fprintf(f, "%s\n", token ? token : "");
        fclose(f);
    }
    const char *rel[] = {"release",      "cli-basic", "--url", svc.url,
                         "--token-file", tokfile,     NULL};
    st = lockctl(&p, rel, 10000);
    char *rout = slurp(p.out);
    t_ok(st == 0 && contains(rout, "\"released\":true") &&
             held(svc.url, "cli-basic") == 0,
         "release --token-file frees the lock (exit %d: %.100s)", st, rout);
    free(rout);
    st = lockctl(&p, rel, 10000);
    err = slurp(p.err);
    t_ok(st == 66 && contains(err, "not_held"),
         "releasing it again -> exit 66, not_held (exit %d)", st);
    free(err);
    const char *renew[] = {"renew",        "cli-basic", "--url", svc.url,
                           "--token-file", tokfile,     NULL};
    st = lockctl(&p, renew, 10000);
    t_ok(st == 66, "renewing a released lease -> exit 66 (exit %d)", st);
    json_decref(lease);
    free(out);

    /* --env lines, eval'd: renew and release find the token in the
     * environment. */
    char script[1024];
    snprintf(script, sizeof script,
             "set -e; eval \"$(%s acquire cli-env --url %s --env)\"; "
             "echo \"fence=$LOCK_FENCE\"; "
             "%s renew cli-env --url %s --ttl 2m; "
             "%s release cli-env --url %s",
             lockctl_bin(), svc.url, lockctl_bin(), svc.url, lockctl_bin(),
             svc.url);
    const char *sh[] = {"sh", "-c", script, NULL};
    if (proc_start(&p, sh))
        st = proc_wait(&p, 10000);
    out = slurp(p.out);
    t_ok(st == 0 && contains(out, "fence=") &&
             contains(out, "\"ttl_ms\":120000") &&
             contains(out, "\"released\":true") &&
             held(svc.url, "cli-env") == 0,
         "eval \"$(lockctl acquire --env)\", then renew and release with "
         "LOCK_TOKEN (exit %d: %.300s)",
         st, out);
    free(out);

    /* Re-entry: one more hold, the same fence. */
    snprintf(script, sizeof script,
             "eval \"$(%s acquire cli-reenter --url %s --env)\"; "
             "first=$LOCK_FENCE; "
             "%s acquire cli-reenter --url %s --reenter >%s/reenter.json; "
             "echo \"first=$first\"; "
             "%s release cli-reenter --url %s; "
             "%s release cli-reenter --url %s",
             lockctl_bin(), svc.url, lockctl_bin(), svc.url, workdir,
             lockctl_bin(), svc.url, lockctl_bin(), svc.url);
    if (proc_start(&p, sh))
        st = proc_wait(&p, 10000);
    out = slurp(p.out);
    char *re = slurp(in_workdir("reenter.json"));
    const char *first = strstr(out, "first=");
    char want[64] = "?";
    if (first)
        snprintf(want, sizeof want, "\"fence\":%lld",
                 strtoll(first + 6, NULL, 10));
    t_ok(st == 0 && contains(re, "\"count\":2") && contains(re, want) &&
             contains(out, "\"count\":1") && contains(out, "\"count\":0"),
         "acquire --reenter: count 2, the same fence; two releases (exit "
         "%d: %.200s)",
         st, re);
    free(re);
    free(out);
}

static void test_api_key_file(void)
{
    const char *keys = in_workdir("service-keys");
    const char *key = in_workdir("client-key");
    const char *bad = in_workdir("bad-key");
    FILE *f = fopen(keys, "w");
    if (f) {
        fprintf(f, "lockctl-test-key-0123456789abcdef ci\n");
        fprintf(f, "lockctl-admin-key-0123456789abcdef name=ops role=admin\n");
        fclose(f);
    }
    const char *admin = in_workdir("admin-key");
    f = fopen(admin, "w");
    if (f) {
        fprintf(f, "lockctl-admin-key-0123456789abcdef\n");
        fclose(f);
    }
    f = fopen(key, "w");
    if (f) {
        fprintf(f, "lockctl-test-key-0123456789abcdef\n");
        fclose(f);
    }
    f = fopen(bad, "w");
    if (f) {
        fprintf(f, "lockctl-test-key-0123456789abcdef ci\n");
        fclose(f);
    }
    struct svc_proc keyed;
    const char *extra[] = {"--api-keys-file", keys, NULL};
    if (!t_ok(svc_start(&keyed, &redis, extra) == 0,
              "a service with --api-keys-file starts"))
        return;
    struct proc p;
    const char *none[] = {"status", "keyed", "--url", keyed.url, NULL};
    int st = lockctl(&p, none, 10000);
    char *err = slurp(p.err);
    t_ok(st == 67 && contains(err, "unauthorized"),
         "no key -> 401 unauthorized, exit 67 (exit %d)", st);
    free(err);
    const char *with[] = {"status",         "keyed", "--url", keyed.url,
                          "--api-key-file", key,     NULL};
    st = lockctl(&p, with, 10000);
    t_ok(st == 0, "--api-key-file PATH -> exit 0 (exit %d)", st);
    setenv("LOCKSERVICE_API_KEY_FILE", key, 1);
    char script[600];
    snprintf(script, sizeof script, "test \"$LOCKSERVICE_API_KEY_FILE\" = %s",
             key);
    const char *ttl[] = {"--ttl", "2s", NULL};
    st = -1;
    if (run_start(&p, keyed.url, "keyed", ttl, script))
        st = proc_wait(&p, 10000);
    unsetenv("LOCKSERVICE_API_KEY_FILE");
    t_ok(st == 0,
         "LOCKSERVICE_API_KEY_FILE: run acquires, CMD sees the "
         "variable, releases (exit %d)",
         st);
    const char *badkey[] = {"status",         "keyed", "--url", keyed.url,
                            "--api-key-file", bad,     NULL};
    st = lockctl(&p, badkey, 10000);
    err = slurp(p.err);
    t_ok(st == 64 && contains(err, "alone"),
         "a key file whose first line has more than the key -> exit 64 "
         "(exit %d)",
         st);
    free(err);

    /* release --force needs an admin key. */
    const char *take[] = {
        "acquire", "keyed-force", "--url", keyed.url, "--api-key-file",
        key,       "--ttl",       "1m",    NULL};
    st = lockctl(&p, take, 10000);
    const char *force_client[] = {"release", "keyed-force", "--force",
                                  "--url",   keyed.url,     "--api-key-file",
                                  key,       NULL};
    int st2 = lockctl(&p, force_client, 10000);
    err = slurp(p.err);
    t_ok(st == 0 && st2 == 67 && contains(err, "forbidden"),
         "release --force with a client key -> 403 forbidden, exit 67 "
         "(exit %d)",
         st2);
    free(err);
    const char *force_admin[] = {"release", "keyed-force", "--force",
                                 "--url",   keyed.url,     "--api-key-file",
                                 admin,     NULL};
    st = lockctl(&p, force_admin, 10000);
    char *out = slurp(p.out);
    t_ok(st == 0 && contains(out, "\"holders\":1"),
         "release --force with an admin key ends the lease (exit %d: %.100s)",
         st, out ? out : "");
    free(out);
    svc_stop(&keyed);
}

/* release --force and check, without API keys. */
static void test_force_release_and_check(void)
{
    struct proc p;
    const char *acq[] = {"acquire", "cli-force", "--url", svc.url,
                         "--ttl",   "1m",        NULL};
    int st = lockctl(&p, acq, 10000);
    char *out = slurp(p.out);
    json_error_t jerr;
    json_t *lease = out ? json_loads(out, 0, &jerr) : NULL;
    const char *token = json_string_value(json_object_get(lease, "token"));
    const char *tokfile = in_workdir("force-token");
    FILE *f = fopen(tokfile, "w");
    if (f) {
        fprintf(f, "%s\n", token ? token : "");
        fclose(f);
    }
    const char *check[] = {"check",        "cli-force", "--url", svc.url,
                           "--token-file", tokfile,     NULL};
    int st2 = lockctl(&p, check, 10000);
    char *cout = slurp(p.out);
    t_ok(st == 0 && st2 == 0 && contains(cout, "\"held\":true") &&
             !contains(cout, token ? token : "no token"),
         "check with the holder's token -> exit 0 and the status (exit %d: "
         "%.150s)",
         st2, cout ? cout : "");
    free(cout);
    const char *force[] = {"release", "cli-force", "--force",
                           "--url",   svc.url,     NULL};
    st = lockctl(&p, force, 10000);
    char *fout = slurp(p.out);
    t_ok(st == 0 && contains(fout, "\"holders\":1") &&
             held(svc.url, "cli-force") == 0,
         "release --force ends the lease without its token (exit %d: "
         "%.100s)",
         st, fout ? fout : "");
    free(fout);
    st = lockctl(&p, check, 10000);
    char *err = slurp(p.err);
    t_ok(st == 66 && contains(err, "not_held"),
         "check after the force release -> exit 66, not_held (exit %d)", st);
    free(err);
    st = lockctl(&p, force, 10000);
    fout = slurp(p.out);
    t_ok(st == 0 && contains(fout, "\"holders\":0"),
         "release --force of a free lock -> holders 0 (exit %d)", st);
    free(fout);
    /* Someone else holds it now: the force-ended token stays not_held. */
    const char *other[] = {"acquire", "cli-force", "--url", svc.url, NULL};
    int took = lockctl(&p, other, 10000);
    st = lockctl(&p, check, 10000);
    err = slurp(p.err);
    t_ok(took == 0 && st == 66 && contains(err, "not_held"),
         "check with the force-ended token while another lease holds it -> "
         "exit 66, not_held (exit %d: %.150s)",
         st, err ? err : "");
    free(err);
    lockctl(&p, force, 10000);
    const char *bad[] = {"release", "cli-force",    "--force", "--url",
                         svc.url,   "--token-file", tokfile,   NULL};
    st = lockctl(&p, bad, 10000);
    t_ok(st == 64, "--force with --token-file -> exit 64 (exit %d)", st);

    /* A semaphore: every lease ends. */
    const char *sem[] = {
        "acquire", "cli-force-sem", "--url", svc.url, "--semaphore", "2", NULL};
    lockctl(&p, sem, 10000);
    lockctl(&p, sem, 10000);
    const char *sforce[] = {
        "release", "cli-force-sem", "--force", "--semaphore",
        "2",       "--url",         svc.url,   NULL};
    st = lockctl(&p, sforce, 10000);
    fout = slurp(p.out);
    t_ok(st == 0 && contains(fout, "\"released\":true"),
         "release --force --semaphore ends its leases (exit %d: %.100s)", st,
         fout ? fout : "");
    free(fout);
    json_decref(lease);
    free(out);
}

/* ----------------------------------------------------------------- run */

static void test_run_environment_and_status(void)
{
    struct proc p;
    char script[600];
    snprintf(script, sizeof script,
             "env | grep -E '^(LOCK_|LOCKSERVICE_URL=)' > %s/env; exit 7",
             workdir);
    const char *extra[] = {"--ttl", "5s", NULL};
    int st = -1;
    if (run_start(&p, svc.url, "run-env", extra, script))
        st = proc_wait(&p, 10000);
    char *env = slurp(in_workdir("env"));
    char want_url[128];
    snprintf(want_url, sizeof want_url, "LOCKSERVICE_URL=%s\n", svc.url);
    const char *tok = strstr(env, "LOCK_TOKEN=");
    char token[40] = "";
    if (tok)
        snprintf(token, sizeof token, "%.32s", tok + 11);
    t_ok(contains(env, "LOCK_NAME=run-env\n") && token_like(token) &&
             contains(env, "LOCK_FENCE=") &&
             contains(env, "LOCK_TTL_MS=5000\n") && contains(env, want_url),
         "CMD sees LOCK_NAME, LOCK_TOKEN, LOCK_FENCE, LOCK_TTL_MS and "
         "LOCKSERVICE_URL");
    t_ok(st == 7 && held(svc.url, "run-env") == 0,
         "run exits with CMD's status (7) and the lock is free (exit %d)", st);
    free(env);

    st = -1;
    if (run_start(&p, svc.url, "run-env", extra, "kill -KILL $$"))
        st = proc_wait(&p, 10000);
    t_ok(st == 128 + SIGKILL, "CMD killed by SIGKILL -> exit 137 (exit %d)",
         st);

    const char *missing[] = {"run", "run-env",          "--url", svc.url,
                             "--",  "/nonexistent/cmd", NULL};
    st = lockctl(&p, missing, 10000);
    char *err = slurp(p.err);
    t_ok(st == 127 && contains(err, "No such file") &&
             held(svc.url, "run-env") == 0,
         "a CMD that does not exist -> exit 127, the lock released (exit "
         "%d)",
         st);
    free(err);
    const char *noexec[] = {"run", "run-env", "--url", svc.url,
                            "--",  workdir,   NULL};
    st = lockctl(&p, noexec, 10000);
    t_ok(st == 126, "a CMD that cannot be executed -> exit 126 (exit %d)", st);

    /* The fence grows from one run to the next. */
    long long fences[3] = {0};
    for (int i = 0; i < 3; i++) {
        snprintf(script, sizeof script, "echo $LOCK_FENCE");
        if (run_start(&p, svc.url, "run-fence", NULL, script))
            proc_wait(&p, 10000);
        char *out = slurp(p.out);
        fences[i] = strtoll(out, NULL, 10);
        free(out);
    }
    t_ok(fences[0] > 0 && fences[1] > fences[0] && fences[2] > fences[1],
         "LOCK_FENCE grows from run to run (%lld, %lld, %lld)", fences[0],
         fences[1], fences[2]);
}

/* Three runs of one name at once: a directory made and removed inside
 * CMD is the witness that no two overlap. */
static void test_run_mutual_exclusion(void)
{
    enum { RUNS = 3 };
    struct proc p[RUNS];
    char script[1024];
    const char *log = in_workdir("mutex.log");
    snprintf(script, sizeof script,
             "if ! mkdir %s/mutex.busy; then echo OVERLAP >> %s; fi; "
             "echo \"start $LOCK_FENCE $(date +%%s%%N)\" >> %s; sleep 0.5; "
             "echo \"end $LOCK_FENCE $(date +%%s%%N)\" >> %s; "
             "rmdir %s/mutex.busy",
             workdir, log, log, log, workdir);
    const char *extra[] = {"--wait", "30s", "--ttl", "3s", NULL};
    for (int i = 0; i < RUNS; i++)
        run_start(&p[i], svc.url, "run-mutex", extra, script);
    int ok = 0;
    for (int i = 0; i < RUNS; i++)
        ok += proc_wait(&p[i], 30000) == 0;
    char *text = slurp(log);
    t_ok(ok == RUNS && !contains(text, "OVERLAP"),
         "%d concurrent runs of one lock all run CMD, never two at once "
         "(%d exited 0)",
         RUNS, ok);

    /* start/end alternate; fences grow; each start follows the previous
     * end closely (the release wakes the next waiter). */
    long long fence_prev = 0, end_prev = 0, worst_gap = 0;
    int starts = 0, ends = 0;
    bool order = true;
    for (char *line = text; line && *line;) {
        char kind[8];
        long long fence, ns;
        if (sscanf(line, "%7s %lld %lld", kind, &fence, &ns) == 3) {
            if (strcmp(kind, "start") == 0) {
                order = order && starts == ends && fence > fence_prev;
                if (end_prev && ns - end_prev > worst_gap)
                    worst_gap = ns - end_prev;
                fence_prev = fence;
                starts++;
            } else {
                order = order && starts == ends + 1 && fence == fence_prev;
                end_prev = ns;
                ends++;
            }
        }
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    t_ok(order && starts == RUNS && ends == RUNS,
         "the witness log alternates start/end with growing fences");
    t_ok(worst_gap > 0 && worst_gap < (long long)(1000e6 * time_scale()),
         "each run starts right after the previous one ended (worst gap "
         "%.0f ms)",
         (double)worst_gap / 1e6);
    if (!order)
        t_diag("log:\n%s", text);
    free(text);
}

/* N+1 concurrent `run --semaphore N`: each CMD leaves a file in a witness
 * directory while it runs and logs how many it saw there; never more than
 * N at once. */
static void test_run_semaphore(void)
{
    enum { LIMIT = 2, RUNS = LIMIT + 1 };
    struct proc p[RUNS];
    char script[1024];
    const char *dir = in_workdir("sem.witness");
    const char *log = in_workdir("sem.log");
    if (!t_ok(mkdir(dir, 0700) == 0, "a witness directory"))
        return;
    snprintf(script, sizeof script,
             "touch %s/$$; n=$(ls %s | wc -l); echo $n >> %s; sleep 1; "
             "rm %s/$$",
             dir, dir, log, dir);
    const char *extra[] = {"--wait",      "30s", "--ttl", "3s",
                           "--semaphore", "2",   NULL};
    for (int i = 0; i < RUNS; i++)
        run_start(&p[i], svc.url, "run-sem", extra, script);
    int ok = 0;
    for (int i = 0; i < RUNS; i++)
        ok += proc_wait(&p[i], 30000) == 0;
    char *text = slurp(log);
    int lines = 0, most = 0;
    for (char *line = text; line && *line;) {
        int n = 0;
        if (sscanf(line, "%d", &n) == 1) {
            lines++;
            if (n > most)
                most = n;
        }
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    t_ok(ok == RUNS && lines == RUNS && most >= 1 && most <= LIMIT,
         "%d concurrent runs of --semaphore %d all run CMD, never more than "
         "%d at once (%d exited 0, %d ran, at most %d at once)",
         RUNS, LIMIT, LIMIT, ok, lines, most);
    t_ok(most == LIMIT, "and %d did run at once (at most %d seen)", LIMIT,
         most);
    if (ok != RUNS)
        t_diag("log:\n%s", text ? text : "");
    free(text);
    struct http_resp r;
    http(&r, svc.url, "GET", "/v1/semaphores/run-sem", NULL, NULL);
    json_t *used = r.json ? json_object_get(r.json, "used") : NULL;
    t_ok(r.status == 200 && json_is_integer(used) &&
             json_integer_value(used) == 0,
         "and every permit is given back (HTTP %ld)", r.status);
    http_resp_free(&r);
}

/* `run --shared`: three runs of one name hold it at once (each CMD sees
 * the others' files in a witness directory); `acquire --shared` twice is
 * two shared leases, an exclusive acquire beside them is exit 65, and
 * --shared with --semaphore is a usage error. */
static void test_shared(void)
{
    enum { RUNS = 3 };
    struct proc p[RUNS];
    char script[1024];
    const char *dir = in_workdir("shared.witness");
    const char *log = in_workdir("shared.log");
    if (!t_ok(mkdir(dir, 0700) == 0, "shared: a witness directory"))
        return;
    snprintf(script, sizeof script,
             "touch %s/$$; sleep 1.5; n=$(ls %s | wc -l); echo $n >> %s; "
             "rm %s/$$",
             dir, dir, log, dir);
    const char *extra[] = {"--wait", "30s", "--ttl", "5s", "--shared", NULL};
    for (int i = 0; i < RUNS; i++)
        run_start(&p[i], svc.url, "run-shared", extra, script);
    int ok = 0;
    for (int i = 0; i < RUNS; i++)
        ok += proc_wait(&p[i], 30000) == 0;
    char *text = slurp(log);
    int most = 0;
    for (char *line = text; line && *line;) {
        int n = 0;
        if (sscanf(line, "%d", &n) == 1 && n > most)
            most = n;
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    t_ok(ok == RUNS && most == RUNS,
         "%d concurrent runs with --shared all run CMD at once (%d exited 0, "
         "at most %d seen at once)",
         RUNS, ok, most);
    free(text);

    struct proc q;
    const char *acq[] = {"acquire", "cli-shared", "--url",    svc.url,
                         "--ttl",   "1m",         "--shared", NULL};
    char *tok[2] = {NULL, NULL};
    int granted = 0;
    for (int i = 0; i < 2; i++) {
        int st = lockctl(&q, acq, 10000);
        char *out = slurp(q.out);
        json_error_t jerr;
        json_t *lease = out ? json_loads(out, 0, &jerr) : NULL;
        const char *mode = json_string_value(json_object_get(lease, "mode"));
        const char *t = json_string_value(json_object_get(lease, "token"));
        if (st == 0 && mode && strcmp(mode, "shared") == 0 && t)
            granted++;
        tok[i] = t ? strdup(t) : NULL;
        json_decref(lease);
        free(out);
    }
    t_ok(granted == 2, "acquire --shared twice: two shared leases (%d)",
         granted);
    const char *excl[] = {"acquire", "cli-shared", "--url", svc.url, NULL};
    int st = lockctl(&q, excl, 10000);
    t_ok(st == 65, "an exclusive acquire beside them -> exit 65 (exit %d)", st);
    for (int i = 0; i < 2; i++) {
        const char *tokfile =
            in_workdir(i ? "shared-token-1" : "shared-token-0");
        FILE *f = fopen(tokfile, "w");
        if (f) {
            fprintf(f, "%s\n", tok[i] ? tok[i] : "");
            fclose(f);
        }
        const char *rel[] = {"release",      "cli-shared", "--url", svc.url,
                             "--token-file", tokfile,      NULL};
        st = lockctl(&q, rel, 10000);
        t_ok(st == 0, "release of shared lease %d (exit %d)", i, st);
        free(tok[i]);
    }
    const char *bad[] = {"acquire",     "cli-shared", "--url",    svc.url,
                         "--semaphore", "2",          "--shared", NULL};
    st = lockctl(&q, bad, 10000);
    t_ok(st == 64, "--shared with --semaphore -> exit 64 (exit %d)", st);
}

/* acquire / status / renew / release with --semaphore N [--permits K]. */
static void test_semaphore_one_shot(void)
{
    struct proc p;
    const char *acq[] = {"acquire",   "cli-sem", "--url",       svc.url,
                         "--ttl",     "1m",      "--semaphore", "3",
                         "--permits", "2",       NULL};
    int st = lockctl(&p, acq, 10000);
    char *out = slurp(p.out);
    json_error_t jerr;
    json_t *lease = out ? json_loads(out, 0, &jerr) : NULL;
    const char *token = json_string_value(json_object_get(lease, "token"));
    t_ok(st == 0 && token && token_like(token) &&
             json_integer_value(json_object_get(lease, "permits")) == 2 &&
             json_integer_value(json_object_get(lease, "limit")) == 3,
         "acquire --semaphore 3 --permits 2 prints the semaphore lease "
         "(exit %d: %.200s)",
         st, out);
    const char *more[] = {"acquire",   "cli-sem",     "--url",
                          svc.url,     "--semaphore", "3",
                          "--permits", "2",           NULL};
    st = lockctl(&p, more, 10000);
    char *err = slurp(p.err);
    t_ok(st == 65 && contains(err, "no_permits"),
         "2 more permits of 3 -> exit 65, no_permits (exit %d)", st);
    free(err);
    const char *status[] = {"status",      "cli-sem", "--url", svc.url,
                            "--semaphore", "3",       NULL};
    st = lockctl(&p, status, 10000);
    char *sout = slurp(p.out);
    t_ok(st == 0 && contains(sout, "\"used\":2") &&
             !contains(sout, token ? token : "no token"),
         "status --semaphore shows 2 used, no token (exit %d: %.200s)", st,
         sout);
    free(sout);
    const char *tokfile = in_workdir("sem-token");
    FILE *f = fopen(tokfile, "w");
    if (f) {
        fprintf(f, "%s\n", token ? token : "");
        fclose(f);
    }
    const char *renew[] = {"renew",        "cli-sem",     "--url",
                           svc.url,        "--semaphore", "3",
                           "--token-file", tokfile,       NULL};
    st = lockctl(&p, renew, 10000);
    t_ok(st == 0, "renew --semaphore (exit %d)", st);
    const char *rel[] = {"release",      "cli-sem",     "--url",
                         svc.url,        "--semaphore", "3",
                         "--token-file", tokfile,       NULL};
    st = lockctl(&p, rel, 10000);
    char *rout = slurp(p.out);
    t_ok(st == 0 && contains(rout, "\"released\":true"),
         "release --semaphore gives the permits back (exit %d: %.100s)", st,
         rout);
    free(rout);
    st = lockctl(&p, rel, 10000);
    t_ok(st == 66, "releasing it again -> exit 66 (exit %d)", st);
    const char *bad[] = {"acquire",   "cli-sem", "--url", svc.url,
                         "--permits", "2",       NULL};
    st = lockctl(&p, bad, 10000);
    t_ok(st == 64, "--permits without --semaphore -> exit 64 (exit %d)", st);
    json_decref(lease);
    free(out);
}

/* Counts the lines of out that are JSON objects with "name" == name, and
 * all its lines that are not JSON objects. */
static int lines_naming(const char *out, const char *name, int *not_json)
{
    int n = 0;
    *not_json = 0;
    for (const char *line = out; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        json_error_t jerr;
        json_t *o = json_loadb(line, len, 0, &jerr);
        const char *got = json_string_value(json_object_get(o, "name"));
        if (!json_is_object(o) || json_object_get(o, "queue") != NULL)
            (*not_json)++;
        else if (got && strcmp(got, name) == 0)
            n++;
        json_decref(o);
        line = end ? end + 1 : line + len;
    }
    return n;
}

/* list: every held name once across pages, prefix, --semaphores, and what
 * it refuses. */
static void test_list(void)
{
    struct proc p;
    int held_ok = 0, bad = 0;
    char name[64];

    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "cli-list-%02d", i);
        const char *acq[] = {"acquire", name, "--url", svc.url,
                             "--ttl",   "2m", NULL};
        held_ok += lockctl(&p, acq, 10000) == 0;
    }
    const char *sem[] = {"acquire", "cli-list-sem", "--url",
                         svc.url,   "--semaphore",  "4",
                         "--ttl",   "2m",           NULL};
    t_ok(held_ok == 30 && lockctl(&p, sem, 10000) == 0,
         "30 locks cli-list-NN and a semaphore cli-list-sem held (%d)",
         held_ok);

    const char *list[] = {"list",      "--url",   svc.url, "--prefix",
                          "cli-list-", "--limit", "3",     NULL};
    int st = lockctl(&p, list, 20000);
    char *out = slurp(p.out);
    int once = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "cli-list-%02d", i);
        once += lines_naming(out, name, &bad) == 1;
    }
    int sem_lines = lines_naming(out, "cli-list-sem", &bad);
    t_ok(st == 0 && once == 30 && bad == 0 && sem_lines == 0,
         "list --prefix cli-list- --limit 3: each of the 30 locks on one JSON "
         "line exactly once, no queue, no semaphore (exit %d, %d once, %d "
         "other lines)",
         st, once, bad);
    t_ok(!contains(out, "\"token\""), "list prints no token");
    free(out);

    const char *sems[] = {"list",     "--semaphores", "--url", svc.url,
                          "--prefix", "cli-list-",    NULL};
    st = lockctl(&p, sems, 10000);
    out = slurp(p.out);
    t_ok(st == 0 && lines_naming(out, "cli-list-sem", &bad) == 1 && bad == 0 &&
             lines_naming(out, "cli-list-00", &bad) == 0 &&
             contains(out, "\"limit\":4"),
         "list --semaphores: the semaphore with its limit, no lock (exit %d: "
         "%.200s)",
         st, out);
    free(out);

    const char *none[] = {"list",     "--url",      svc.url,
                          "--prefix", "cli-nobody", NULL};
    st = lockctl(&p, none, 10000);
    out = slurp(p.out);
    t_ok(st == 0 && out && out[0] == '\0',
         "list of a prefix nobody holds: nothing, exit 0 (exit %d)", st);
    free(out);

    static const struct {
        const char *args[8];
        const char *says;
    } refused[] = {
        {{"list", "cli-list-00", NULL}, "takes no NAME"},
        {{"list", "--prefix", "a/b", NULL}, "--prefix"},
        {{"list", "--limit", "1001", NULL}, "--limit"},
        {{"list", "--limit", "0", NULL}, "--limit"},
        {{"list", "--semaphore", "3", NULL}, "does not apply"},
        {{"status", "--semaphores", "x", NULL}, "does not apply"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        st = lockctl(&p, refused[i].args, 5000);
        char *err = slurp(p.err);
        t_ok(st == 64 && contains(err, refused[i].says),
             "lockctl %s %s -> exit 64 naming %s (exit %d: %.120s)",
             refused[i].args[0], refused[i].args[1], refused[i].says, st, err);
        free(err);
    }
}

static void test_run_wait_expires(void)
{
    struct http_resp r;
    httpf(&r, svc.url, "POST", "/v1/locks/run-busy/acquire", NULL,
          "{\"ttl_ms\":20000}");
    char token[64];
    snprintf(token, sizeof token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);

    struct proc p;
    const char *marker = in_workdir("busy-ran");
    const char *args[] = {"run",   "run-busy", "--url", svc.url, "--wait",
                          "500ms", "--",       "touch", marker,  NULL};
    double t0 = now_ms();
    int st = lockctl(&p, args, 10000);
    double took = now_ms() - t0;
    struct stat sb;
    char *err = slurp(p.err);
    t_ok(st == 65 && stat(marker, &sb) != 0 && took >= 400 &&
             contains(err, "lock_held"),
         "run --wait 500ms on a held lock -> exit 65 after the wait, CMD "
         "never ran (exit %d after %.0f ms)",
         st, took);
    free(err);
    httpf(&r, svc.url, "POST", "/v1/locks/run-busy/release", NULL,
          "{\"token\":\"%s\"}", token);
    http_resp_free(&r);
}

/* Redis killed while CMD runs: renewals fail with 503 until the lease
 * would end; CMD ignores SIGTERM, so SIGKILL follows --kill-after later. */
static void test_run_lease_lost_redis_down(void)
{
    struct proc p;
    char script[600];
    const char *ready = in_workdir("lost-ready");
    snprintf(script, sizeof script,
             "trap '' TERM; echo $$ > %s; while :; do sleep 0.1; done", ready);
    const char *extra[] = {"--ttl", "1500ms", "--kill-after", "1s", NULL};
    if (!run_start(&p, svc.url, "run-lost", extra, script) ||
        !t_ok(file_appears(ready, 5000), "CMD runs under the lease"))
        return;
    sleep_ms(100);
    char *pidtext = slurp(ready);
    pid_t child = (pid_t)strtol(pidtext, NULL, 10);
    free(pidtext);
    double t0 = now_ms();
    redis_kill(&redis);
    int st = proc_wait(&p, 15000);
    double took = now_ms() - t0;
    char *err = slurp(p.err);
    t_ok(st == 66 && contains(err, "' lost:") && contains(err, "SIGKILL"),
         "Redis down past the TTL: the lease is lost, CMD (ignoring "
         "SIGTERM) is killed, exit 66 (exit %d after %.0f ms)",
         st, took);
    t_ok(took < (1500 + 1000 + 2000) * time_scale() && kill(child, 0) == -1 &&
             errno == ESRCH,
         "CMD is gone within TTL + kill-after (%.0f ms)", took);
    if (st != 66)
        t_diag("stderr: %s", err);
    free(err);
    t_ok(redis_restart(&redis) == 0 && ready_again(svc.url, 10000),
         "Redis back, the service ready again");
}

/* The lock deleted under a running CMD: the next renewal gets 409
 * not_held and CMD is stopped at once with SIGTERM. */
static void test_run_lease_lost_409(void)
{
    struct proc p;
    char script[600];
    const char *ready = in_workdir("gone-ready");
    const char *term = in_workdir("gone-term");
    snprintf(script, sizeof script,
             "trap 'echo TERM > %s; exit 0' TERM; touch %s; "
             "while :; do sleep 0.1; done",
             term, ready);
    const char *extra[] = {"--ttl", "1500ms", "--kill-after", "10s", NULL};
    if (!run_start(&p, svc.url, "run-gone", extra, script) ||
        !t_ok(file_appears(ready, 5000), "CMD runs under the lease"))
        return;
    char *out = redis_cli(&redis, "DEL lockservice:{run-gone}:lock");
    free(out);
    double t0 = now_ms();
    int st = proc_wait(&p, 10000);
    double took = now_ms() - t0;
    char *err = slurp(p.err);
    char *got = slurp(term);
    t_ok(st == 66 && contains(err, "not_held") && contains(got, "TERM") &&
             took < 5000 * time_scale(),
         "the lock deleted under CMD: the renewal's 409 not_held stops CMD "
         "with SIGTERM, exit 66 (exit %d after %.0f ms)",
         st, took);
    if (st != 66)
        t_diag("stderr: %s", err);
    free(got);
    free(err);
}

/* A signal to lockctl reaches CMD; CMD's status comes back; the lock is
 * released. */
static void test_run_forwards_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    static const char *const names[] = {"TERM", "INT", "HUP"};
    for (int i = 0; i < 3; i++) {
        struct proc p;
        char script[600], rname[32], gname[32];
        snprintf(rname, sizeof rname, "sig-ready-%d", i);
        snprintf(gname, sizeof gname, "sig-got-%d", i);
        const char *ready = in_workdir(rname);
        const char *got_path = in_workdir(gname);
        snprintf(script, sizeof script,
                 "trap 'echo %s > %s; exit 3' %s; touch %s; "
                 "while :; do sleep 0.1; done",
                 names[i], got_path, names[i], ready);
        const char *extra[] = {"--ttl", "10s", NULL};
        if (!run_start(&p, svc.url, "run-signal", extra, script) ||
            !file_appears(ready, 5000)) {
            t_ok(false, "CMD runs under the lease");
            continue;
        }
        kill(p.pid, sigs[i]);
        int st = proc_wait(&p, 10000);
        char *got = slurp(got_path);
        t_ok(st == 3 && contains(got, names[i]) &&
                 held(svc.url, "run-signal") == 0,
             "SIG%s to lockctl reaches CMD, which exits 3; lockctl exits 3 "
             "and the lock is free (exit %d)",
             names[i], st);
        free(got);
    }
}

/* lockctl SIGKILLed: nobody renews, so CMD gets SIGTERM from the kernel. */
static void test_run_parent_death(void)
{
    struct proc p;
    char script[600];
    const char *ready = in_workdir("orphan-ready");
    const char *term = in_workdir("orphan-term");
    snprintf(script, sizeof script,
             "trap 'echo TERM > %s; exit 0' TERM; touch %s; "
             "while :; do sleep 0.1; done",
             term, ready);
    const char *extra[] = {"--ttl", "10s", NULL};
    if (!run_start(&p, svc.url, "run-orphan", extra, script) ||
        !file_appears(ready, 5000)) {
        t_ok(false, "CMD runs under the lease");
        return;
    }
    kill(p.pid, SIGKILL);
    proc_wait(&p, 5000);
    t_ok(file_appears(term, 5000),
         "lockctl killed with SIGKILL: CMD gets SIGTERM");
}

/* ---------------------------------------------------- the 502 proxy */

/* A proxy in front of the service that answers the first renewal with
 * an HTML 502 (as nginx does when an upstream fails) and passes every
 * other request on, one request per connection. */
struct proxy {
    int listen_fd;
    int port;
    int upstream_port;
    pthread_t thread;
    volatile bool stop;
    int renewals;            /* renewals seen */
    int bad_gateway;         /* renewals answered with the 502 */
    bool cut_first_acquire;  /* instead: pass the first acquire on, then
                                close the connection without an answer */
    int acquires;            /* acquires seen */
    char request_ids[4][80]; /* the request_id of the first four */
};

/* Reads one request (head + Content-Length body) into buf. Returns its
 * length, or -1. */
static long read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0)
            return -1;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL && len + 1 >= cap)
            return -1;
    }
    size_t head = (size_t)(end + 4 - buf);
    long body = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end)
        body = strtol(cl + 17, NULL, 10);
    while (len < head + (size_t)body && len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (long)len;
}

/* Sends the request upstream with "Connection: close" and relays the
 * answer, which ends when the service closes. */
static void relay(const struct proxy *px, int client, char *req, long len,
                  bool discard)
{
    char *head_end = strstr(req, "\r\n\r\n");
    int up = raw_connect(px->upstream_port);
    if (up < 0 || head_end == NULL) {
        if (up >= 0)
            close(up);
        return;
    }
    char *line = strstr(req, "\r\n") + 2;
    raw_send(up, req, (size_t)(line - req));
    while (line < head_end + 2) {
        char *next = strstr(line, "\r\n") + 2;
        if (strncasecmp(line, "Connection:", 11) != 0)
            raw_send(up, line, (size_t)(next - line));
        line = next;
    }
    raw_send(up, "Connection: close\r\n\r\n", 21);
    raw_send(up, head_end + 4, (size_t)(len - (head_end + 4 - req)));
    char buf[8192];
    for (;;) {
        struct pollfd pfd = {up, POLLIN, 0};
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t n = read(up, buf, sizeof buf);
        if (n <= 0)
            break;
        if (!discard)
            raw_send(client, buf, (size_t)n);
    }
    close(up);
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    static const char html[] =
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
        "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    char bad_gateway[512];
    int bad_len = snprintf(bad_gateway, sizeof bad_gateway,
                           "HTTP/1.1 502 Bad Gateway\r\n"
                           "Server: nginx\r\n"
                           "Content-Type: text/html\r\n"
                           "Content-Length: %zu\r\n"
                           "Connection: close\r\n\r\n%s",
                           sizeof html - 1, html);
    char req[16384];
    while (!px->stop) {
        struct pollfd pfd = {px->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int client = accept(px->listen_fd, NULL, NULL);
        if (client < 0)
            continue;
        long len = read_request(client, req, sizeof req);
        if (len > 0) {
            bool renew = strstr(req, "/renew ") != NULL;
            bool acquire = strstr(req, "/acquire ") != NULL;
            if (acquire && px->acquires < 4) {
                const char *id = strstr(req, "\"request_id\":\"");
                size_t n = id ? strcspn(id + 14, "\"") : 0;
                snprintf(px->request_ids[px->acquires], 80, "%.*s", (int)n,
                         id ? id + 14 : "");
            }
            if (acquire && px->acquires++ == 0 && px->cut_first_acquire) {
                relay(px, client, req, len, true); /* granted, unanswered */
            } else if (!px->cut_first_acquire && renew && px->renewals++ == 0) {
                px->bad_gateway++;
                raw_send(client, bad_gateway, (size_t)bad_len);
            } else {
                relay(px, client, req, len, false);
            }
        }
        close(client);
    }
    return NULL;
}

static bool proxy_start(struct proxy *px, int upstream_port)
{
    memset(px, 0, sizeof *px);
    px->upstream_port = upstream_port;
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 20; i++) {
        px->port = free_port();
        sa.sin_port = htons((uint16_t)px->port);
        if (bind(px->listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        px->port = -1;
    }
    if (px->port < 0 || listen(px->listen_fd, 16) != 0)
        return false;
    return pthread_create(&px->thread, NULL, proxy_main, px) == 0;
}

static void proxy_stop(struct proxy *px)
{
    px->stop = true;
    pthread_join(px->thread, NULL);
    close(px->listen_fd);
}

static void test_run_survives_html_502(void)
{
    struct proxy px;
    if (!t_ok(proxy_start(&px, svc.port), "a proxy in front of the service"))
        return;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", px.port);
    struct proc p;
    const char *extra[] = {"--ttl", "1200ms", NULL};
    int st = -1;
    if (run_start(&p, url, "run-502", extra, "sleep 2.5"))
        st = proc_wait(&p, 15000);
    char *err = slurp(p.err);
    t_ok(st == 0 && px.bad_gateway == 1 && px.renewals >= 3 &&
             contains(err, "not JSON") && !contains(err, "' lost:"),
         "one renewal answered with an HTML 502: retried, the lease kept, "
         "CMD's status 0 (exit %d, %d renewals, %d answered 502)",
         st, px.renewals, px.bad_gateway);
    if (st != 0 || !contains(err, "not JSON") || contains(err, "' lost:"))
        t_diag("stderr: %s", err);
    free(err);
    proxy_stop(&px);
    t_ok(held(svc.url, "run-502") == 0, "and the lock is released");
}

/* GET /v1/locks/NAME's holder_count and holder's fence (-1 when none). */
static int holder_count(const char *base, const char *name, long long *fence)
{
    struct http_resp r;
    char path[160];
    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(&r, base, "GET", path, NULL, NULL);
    json_t *n = r.json ? json_object_get(r.json, "holder_count") : NULL;
    int v =
        r.status == 200 && json_is_integer(n) ? (int)json_integer_value(n) : -1;
    json_t *f = r.json ? json_object_get(r.json, "fence") : NULL;
    *fence = json_is_integer(f) ? (long long)json_integer_value(f) : -1;
    http_resp_free(&r);
    return v;
}

/* The first acquire reaches the service, which grants it, but its answer
 * is cut off: lockctl tries again with the same request_id and gets the
 * same lease back, never a second one. */
static void test_acquire_retried_after_cut_answer(void)
{
    struct proxy px;
    if (!t_ok(proxy_start(&px, svc.port), "a proxy in front of the service"))
        return;
    px.cut_first_acquire = true;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", px.port);
    struct proc p;
    int st = lockctl(&p,
                     (const char *const[]){"acquire", "retry-acq", "--url", url,
                                           "--ttl", "30s", NULL},
                     15000);
    char *out = slurp(p.out), *err = slurp(p.err);
    json_error_t jerr;
    json_t *lease = out ? json_loads(out, 0, &jerr) : NULL;
    long long fence = -1;
    int count = holder_count(svc.url, "retry-acq", &fence);
    json_t *f = json_object_get(lease, "fence");
    t_ok(st == 0 && px.acquires == 2 && px.request_ids[0][0] != '\0' &&
             strcmp(px.request_ids[0], px.request_ids[1]) == 0 &&
             json_is_true(json_object_get(lease, "replayed")),
         "the answer to the first acquire cut off: tried again with the same "
         "request_id and answered the lease it got (exit %d, %d acquires, "
         "ids '%s' '%s')",
         st, px.acquires, px.request_ids[0], px.request_ids[1]);
    t_ok(count == 1 && json_is_integer(f) &&
             (long long)json_integer_value(f) == fence,
         "exactly one lease, the one lockctl printed (holder_count %d)", count);
    if (st != 0)
        t_diag("stdout: %s stderr: %s", out ? out : "", err ? err : "");
    const char *token = json_string_value(json_object_get(lease, "token"));
    if (token) {
        char body[128];
        snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
        struct http_resp r;
        http(&r, svc.url, "POST", "/v1/locks/retry-acq/release", body, NULL);
        http_resp_free(&r);
    }
    json_decref(lease);
    free(out);
    free(err);

    /* run: the same, and CMD runs under that one lease. */
    px.acquires = 0;
    memset(px.request_ids, 0, sizeof px.request_ids);
    const char *seen = in_workdir("retry-run-count");
    char script[400];
    snprintf(script, sizeof script,
             "curl -s http://127.0.0.1:%d/v1/locks/retry-run > %s", svc.port,
             seen);
    const char *extra[] = {"--ttl", "5s", NULL};
    st = -1;
    if (run_start(&p, url, "retry-run", extra, script))
        st = proc_wait(&p, 15000);
    char *status = slurp(seen);
    json_t *js = status ? json_loads(status, 0, &jerr) : NULL;
    json_t *n = json_object_get(js, "holder_count");
    t_ok(st == 0 && px.acquires == 2 &&
             strcmp(px.request_ids[0], px.request_ids[1]) == 0 &&
             json_is_integer(n) && json_integer_value(n) == 1,
         "run: the cut-off acquire retried with the same request_id, CMD "
         "ran under exactly one lease (exit %d, %d acquires)",
         st, px.acquires);
    json_decref(js);
    free(status);
    proxy_stop(&px);
    t_ok(held(svc.url, "retry-run") == 0, "and the lock is released");
}

/* The service stopped and started again on its port while CMD runs:
 * renewals fail meanwhile and succeed once it is back. */
static void test_run_survives_service_restart(void)
{
    struct svc_proc s;
    char listen[64];
    snprintf(listen, sizeof listen, "LOCKSERVICE_LISTEN=127.0.0.1:%d",
             free_port());
    const char *env[] = {listen, NULL};
    if (!t_ok(svc_start_env(&s, &redis, NULL, env) == 0,
              "a service on a fixed port"))
        return;
    struct proc p;
    const char *ready = in_workdir("restart-ready");
    char script[400];
    snprintf(script, sizeof script, "touch %s; sleep 4", ready);
    const char *extra[] = {"--ttl", "3s", NULL};
    if (!run_start(&p, s.url, "run-restart", extra, script) ||
        !file_appears(ready, 5000)) {
        t_ok(false, "CMD runs under the lease");
        svc_stop(&s);
        return;
    }
    sleep_ms(1200); /* past the first renewal */
    svc_stop(&s);
    sleep_ms(300);
    bool back = svc_start_env(&s, &redis, NULL, env) == 0;
    int st = proc_wait(&p, 15000);
    char *err = slurp(p.err);
    t_ok(back && st == 0 && !contains(err, "' lost:"),
         "the service restarted mid-lease: renewals retried, the lease "
         "kept, CMD's status 0 (exit %d)",
         st);
    if (st != 0 || contains(err, "' lost:"))
        t_diag("stderr: %s", err);
    free(err);
    if (back) {
        t_ok(held(s.url, "run-restart") == 0, "and the lock is released");
        svc_stop(&s);
    }
}

int main(void)
{
    if (mkdtemp(workdir) == NULL) {
        t_ok(false, "a temporary directory");
        return t_done();
    }
    test_help_and_man_page();
    test_usage_errors();
    test_unreachable();
    if (redis_start(&redis, NULL) != 0 ||
        svc_start(&svc, &redis,
                  (const char *const[]){"--redis-timeout-ms", "300", NULL}) !=
            0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    test_one_shot_commands();
    test_api_key_file();
    test_run_environment_and_status();
    test_run_mutual_exclusion();
    test_run_semaphore();
    test_semaphore_one_shot();
    test_list();
    test_shared();
    test_force_release_and_check();
    test_run_wait_expires();
    test_run_forwards_signals();
    test_run_parent_death();
    test_run_survives_html_502();
    test_acquire_retried_after_cut_answer();
    test_run_survives_service_restart();
    test_run_lease_lost_409();
    test_run_lease_lost_redis_down();
    svc_stop(&svc);
    redis_stop(&redis);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", workdir);
    if (system(rm) != 0)
        t_diag("could not remove %s", workdir);
    return t_done();
}
