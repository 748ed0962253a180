/* main.c -- lockctl: locks from lockservice for the shell. Parses the
 * command line against two tables (commands, options), sets up the client
 * and runs the command; --help is printed from the same tables, so a new
 * command or option shows up in it by itself (lockctl.1 is kept by hand;
 * tests/integration/test_lockctl.c checks that it names every option and
 * exit status --help does). */
#include "lockctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const struct lockctl_cmd *const commands[] = {
    &cmd_acquire_entry, &cmd_renew_entry, &cmd_release_entry, &cmd_status_entry,
    &cmd_check_entry,   &cmd_run_entry,   &cmd_list_entry,
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

enum option_kind { KIND_STRING, KIND_DURATION, KIND_FLAG, KIND_COUNT };

struct option_row {
    unsigned bit;
    const char *flag;
    const char *arg; /* the value's name in --help, NULL for a flag */
    enum option_kind kind;
    size_t offset;   /* of the member of struct lockctl_args it sets */
    const char *env; /* read when the option is not given, or NULL */
    const char *help;
};

#define ARG(member) offsetof(struct lockctl_args, member)

static const struct option_row options[] = {
    {OPT_URL, "--url", "URL", KIND_STRING, ARG(url), "LOCKSERVICE_URL",
     "the service (default " LOCKCTL_DEFAULT_URL ")"},
    {OPT_API_KEY_FILE, "--api-key-file", "PATH", KIND_STRING, ARG(api_key_file),
     "LOCKSERVICE_API_KEY_FILE",
     "send the API key held on the first line of PATH (a key is never "
     "taken from the command line)"},
    {OPT_TTL, "--ttl", "DURATION", KIND_DURATION, ARG(ttl_ms), NULL,
     "the lease's time to live (default 30s; renew: the TTL granted)"},
    {OPT_WAIT, "--wait", "DURATION", KIND_DURATION, ARG(wait_ms), NULL,
     "wait on the server up to this long while the lock is held (default "
     "0s: answer at once; the service's --max-wait-ms, default 60s, is the "
     "most)"},
    {OPT_OWNER, "--owner", "LABEL", KIND_STRING, ARG(owner), NULL,
     "the label status shows for the holder (default lockctl@HOST, with "
     "\"pid N\" for run)"},
    {OPT_KILL_AFTER, "--kill-after", "DURATION", KIND_DURATION,
     ARG(kill_after_ms), NULL,
     "when the lease is lost, SIGKILL CMD this long after its SIGTERM "
     "(default 5s)"},
    {OPT_ENV, "--env", NULL, KIND_FLAG, ARG(env), NULL,
     "print LOCK_NAME, LOCK_TOKEN, LOCK_FENCE and LOCK_TTL_MS lines to eval "
     "instead of JSON"},
    {OPT_REENTER, "--reenter", NULL, KIND_FLAG, ARG(reenter), NULL,
     "re-enter the lease in LOCK_TOKEN: one more hold, same fence"},
    {OPT_TOKEN_FILE, "--token-file", "PATH", KIND_STRING, ARG(token_file), NULL,
     "read the lease token from PATH (\"-\": stdin) instead of LOCK_TOKEN"},
    {OPT_FORCE, "--force", NULL, KIND_FLAG, ARG(force), NULL,
     "end whatever lease holds NAME, no token needed (DELETE; needs an "
     "admin key when the service has API keys)"},
    {OPT_SEMAPHORE, "--semaphore", "N", KIND_COUNT, ARG(semaphore), NULL,
     "NAME is a semaphore of limit N (/v1/semaphores): up to N permits "
     "held at once; all its users must give the same N (renew, release, "
     "status: N only selects the semaphore)"},
    {OPT_PERMITS, "--permits", "K", KIND_COUNT, ARG(permits), NULL,
     "with --semaphore: take K permits (default 1, at most N)"},
    {OPT_PREFIX, "--prefix", "P", KIND_STRING, ARG(prefix), NULL,
     "list: only names starting with P (0 to 128 characters of A-Z a-z "
     "0-9 . _ : -)"},
    {OPT_LIMIT, "--limit", "N", KIND_COUNT, ARG(limit), NULL,
     "list: ask for pages of up to N names (1..1000, default the "
     "service's 100); every page is listed"},
    {OPT_SEMAPHORES, "--semaphores", NULL, KIND_FLAG, ARG(semaphores), NULL,
     "list: the semaphores instead of the locks"},
    {OPT_SHARED, "--shared", NULL, KIND_FLAG, ARG(shared), NULL,
     "a shared (read) lease: shared leases of NAME are held at once, an "
     "exclusive one (the default) waits for them all (with --reenter: the "
     "lease in LOCK_TOKEN is a shared one)"},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

static const struct {
    int code;
    const char *meaning;
} exit_codes[] = {
    {LOCKCTL_OK, "success; run: CMD's own exit status, 128+N when a signal "
                 "N ended it"},
    {LOCKCTL_USAGE, "usage error: bad option, duration, name, key file or "
                    "token"},
    {LOCKCTL_NOT_ACQUIRED,
     "not acquired within --wait (409 lock_held, or no_permits for a "
     "semaphore); run never started CMD"},
    {LOCKCTL_LEASE_LOST,
     "the lease is gone (409 not_held or not_owner); run: the lease was "
     "lost while CMD ran, and CMD was stopped"},
    {LOCKCTL_REFUSED, "refused by the service: another 4xx (invalid_field, "
                      "unauthorized, hold_limit, ...)"},
    {LOCKCTL_UNAVAILABLE,
     "service unreachable, a 5xx, or an answer that is not JSON (acquire "
     "and run retry their acquire, run its renewals until the lease would "
     "end)"},
    {LOCKCTL_CANNOT_EXEC, "run: CMD could not be executed"},
    {LOCKCTL_NOT_FOUND, "run: CMD was not found"},
};
#define EXIT_CODE_COUNT (sizeof exit_codes / sizeof exit_codes[0])

/* Prints text wrapped at 79 columns from column col (where the cursor
 * is), continuation lines indented by indent. */
static void wrap(FILE *out, const char *text, int col, int indent)
{
    const char *p = text;
    bool first = true;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (!first && col + 1 + (int)word > 79) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)word, p);
        col += (int)word;
        first = false;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

/* Prints head, then text from column 27 (on the next line when head is
 * longer). */
static void two_columns(FILE *out, const char *head, const char *text)
{
    int len = (int)strlen(head);
    fputs(head, out);
    if (len >= 26)
        fprintf(out, "\n%*s", 27, "");
    else
        fprintf(out, "%*s", 27 - len, "");
    wrap(out, text, 27, 27);
}

/* "(acquire, run)": the commands taking option bit. */
static void commands_taking(unsigned bit, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    if (bit & OPT_GLOBAL)
        return;
    for (size_t i = 0; i < COMMAND_COUNT && used + 2 < len; i++) {
        if (!(commands[i]->options & bit))
            continue;
        used += (size_t)snprintf(out + used, len - used, "%s%s",
                                 used ? ", " : "(", commands[i]->name);
    }
    if (used && used + 2 < len)
        snprintf(out + used, len - used, ")");
}

static void print_option(FILE *out, const struct option_row *o)
{
    char head[64], which[96], text[512];
    snprintf(head, sizeof head, "  %s%s%s", o->flag, o->arg ? " " : "",
             o->arg ? o->arg : "");
    commands_taking(o->bit, which, sizeof which);
    snprintf(text, sizeof text, "%s%s%s%s%s", which, which[0] ? " " : "",
             o->help, o->env ? "; env " : "", o->env ? o->env : "");
    two_columns(out, head, text);
}

static void help(FILE *out)
{
    fprintf(out, "usage: lockctl COMMAND [NAME] [OPTIONS] [-- CMD [ARGS...]]\n"
                 "\n");
    wrap(out,
         "Distributed locks from a lockservice, for the shell: take a lock "
         "and print its lease, renew or release it, show a lock's state, run "
         "a command only while holding the lock, or list the held locks.",
         0, 0);
    fprintf(out, "\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        char head[160];
        snprintf(head, sizeof head, "lockctl %s %s", commands[i]->name,
                 commands[i]->synopsis);
        fprintf(out, "  ");
        wrap(out, head, 2, 6);
        fprintf(out, "%*s", 6, "");
        wrap(out, commands[i]->summary, 6, 6);
    }
    fprintf(out, "\noptions (before or after NAME; run's CMD starts at the "
                 "first word after NAME\nthat is no option, or after "
                 "\"--\"):\n");
    for (size_t i = 0; i < OPTION_COUNT; i++)
        print_option(out, &options[i]);
    two_columns(out, "  -h, --help",
                "this text; lockctl COMMAND --help: that command's options "
                "only");
    fprintf(out, "\ndurations: 500ms, 30s, 2m, 1h, or plain seconds (1.5)\n"
                 "\n");
    wrap(out,
         "run: CMD gets LOCK_NAME, LOCK_TOKEN, LOCK_FENCE (pass it with every "
         "write to what the lock protects), LOCK_TTL_MS and LOCKSERVICE_URL "
         "in its environment. An acquire (acquire, run) carries a random "
         "request_id and is tried again with the same one after a network "
         "error, 5xx or an answer that is not JSON (up to 5 attempts, within "
         "--wait plus 10s), so a grant whose answer was lost is answered "
         "again, never a second lease. The lease is renewed every ttl/3; a "
         "failed "
         "renewal (network error, 5xx, an answer that is not JSON) is retried "
         "with backoff until the lease would end. When the lease is lost (a "
         "409, or no renewal succeeded in time) lockctl says so on stderr, "
         "sends CMD SIGTERM, and SIGKILL --kill-after later. SIGINT, SIGTERM, "
         "SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to CMD (not the "
         "ones the terminal already sent to CMD's process group); should "
         "lockctl die, CMD gets SIGTERM. The lease is released when CMD "
         "exits.",
         0, 0);
    fprintf(out, "\nexit status:\n");
    for (size_t i = 0; i < EXIT_CODE_COUNT; i++) {
        char head[16];
        snprintf(head, sizeof head, "  %d", exit_codes[i].code);
        fprintf(out, "%-7s", head);
        wrap(out, exit_codes[i].meaning, 7, 7);
    }
    fprintf(out, "\nSee lockctl(1).\n");
}

static void command_help(FILE *out, const struct lockctl_cmd *cmd)
{
    char head[160];
    snprintf(head, sizeof head, "usage: lockctl %s %s", cmd->name,
             cmd->synopsis);
    wrap(out, head, 0, 6);
    fprintf(out, "\n");
    wrap(out, cmd->summary, 0, 0);
    fprintf(out, "\noptions:\n");
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if ((options[i].bit & (cmd->options | OPT_GLOBAL)) != 0)
            print_option(out, &options[i]);
    fprintf(out, "\nexit statuses and the rest: lockctl --help, "
                 "lockctl(1)\n");
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lockctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'lockctl --help'.\n");
    return LOCKCTL_USAGE;
}

static const struct option_row *find_option(const char *arg, size_t len)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strlen(options[i].flag) == len &&
            strncmp(options[i].flag, arg, len) == 0)
            return &options[i];
    return NULL;
}

static const struct lockctl_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._:-") == n;
}

static bool owner_valid(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        if ((*p & 0xc0) != 0x80)
            n++; /* count characters, not UTF-8 bytes */
    }
    return n <= 128;
}

/* Stores one option's value. Returns 0 or the exit status. */
static int set_option(struct lockctl_args *a, const struct option_row *o,
                      const char *value)
{
    char *field = (char *)a + o->offset;
    switch (o->kind) {
    case KIND_STRING:
        *(const char **)(void *)field = value;
        return 0;
    case KIND_DURATION: {
        long ms;
        if (duration_parse(value, &ms) != 0)
            return usage_error("bad duration '%s' (e.g. 500ms, 30s, 2m)",
                               value);
        *(long *)(void *)field = ms;
        return 0;
    }
    case KIND_FLAG:
        *(bool *)(void *)field = true;
        return 0;
    case KIND_COUNT: {
        char *end = NULL;
        errno = 0;
        long n = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < 1 || n > 1000000)
            return usage_error("bad %s '%s' (a whole number from 1)", o->flag,
                               value);
        *(long *)(void *)field = n;
        return 0;
    }
    }
    return LOCKCTL_USAGE;
}

/* Parses argv into ctl->args and finds the command. Returns 0, -1 when
 * help was printed, or the exit status. */
static int parse(int argc, char **argv, struct lockctl *ctl,
                 const struct lockctl_cmd **cmd_out)
{
    struct lockctl_args *a = &ctl->args;
    const struct lockctl_cmd *cmd = NULL;
    unsigned seen = 0;
    bool want_help = false;

    a->ttl_ms = a->wait_ms = a->kill_after_ms = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool cmd_may_start = cmd && cmd->takes_command && a->name;
        if (strcmp(arg, "--") == 0) {
            if (!cmd_may_start)
                return usage_error("'%s' only goes before run's CMD", arg);
            a->cmd = argv + i + 1;
            break;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
                want_help = true;
                continue;
            }
            const char *eq = strchr(arg, '=');
            size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
            const struct option_row *o = find_option(arg, len);
            if (o == NULL)
                return usage_error("unknown option '%s'", arg);
            const char *value = NULL;
            if (o->arg && eq)
                value = eq + 1;
            else if (o->arg && i + 1 < argc)
                value = argv[++i];
            else if (o->arg)
                return usage_error("%s needs a value", o->flag);
            else if (eq)
                return usage_error("%s takes no value", o->flag);
            int rc = set_option(a, o, value);
            if (rc != 0)
                return rc;
            seen |= o->bit;
            continue;
        }
        if (cmd_may_start) {
            a->cmd = argv + i;
            break;
        }
        if (cmd == NULL) {
            cmd = find_command(arg);
            if (cmd == NULL)
                return usage_error("unknown command '%s'", arg);
        } else if (a->name == NULL) {
            a->name = arg;
        } else {
            return usage_error("unexpected argument '%s'", arg);
        }
    }

    if (want_help) {
        if (cmd)
            command_help(stdout, cmd);
        else
            help(stdout);
        return -1;
    }
    if (cmd == NULL) {
        help(stderr);
        return LOCKCTL_USAGE;
    }
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if ((seen & options[i].bit) &&
            !(options[i].bit & (cmd->options | OPT_GLOBAL))) {
            return usage_error("%s does not apply to %s", options[i].flag,
                               cmd->name);
        }
    if (cmd->takes_no_name && a->name != NULL)
        return usage_error("%s takes no NAME ('%s'; maybe --prefix %s)",
                           cmd->name, a->name, a->name);
    if (a->prefix && a->prefix[0] != '\0' && !name_valid(a->prefix))
        return usage_error("bad --prefix '%s' (0 to 128 characters of "
                           "A-Z a-z 0-9 . _ : -)",
                           a->prefix);
    if (a->limit > 1000)
        return usage_error("bad --limit %ld (at most 1000)", a->limit);
    if (!cmd->takes_no_name && a->name == NULL)
        return usage_error("%s: no lock NAME given", cmd->name);
    if (!cmd->takes_no_name && !name_valid(a->name))
        return usage_error("bad lock name '%s' (1 to 128 characters of "
                           "A-Z a-z 0-9 . _ : -)",
                           a->name);
    if (cmd->takes_command && (a->cmd == NULL || a->cmd[0] == NULL))
        return usage_error("%s: no CMD given", cmd->name);
    if (a->owner && !owner_valid(a->owner))
        return usage_error("bad --owner '%s' (at most 128 characters, no "
                           "control characters)",
                           a->owner);
    if (a->ttl_ms == 0)
        return usage_error("%s", "--ttl must be more than 0");
    if (a->permits > 0 && a->semaphore == 0)
        return usage_error("%s", "--permits needs --semaphore N");
    if (a->permits > a->semaphore && a->semaphore > 0)
        return usage_error("--permits %ld is more than the --semaphore "
                           "limit %ld",
                           a->permits, a->semaphore);
    if (a->force && a->token_file)
        return usage_error("%s", "--force takes no token (--token-file)");
    if (a->shared && a->semaphore > 0)
        return usage_error("%s", "--shared does not apply to a semaphore");
    if (a->reenter && a->semaphore > 0)
        return usage_error("%s", "--reenter does not apply to a semaphore "
                                 "(a token is one lease)");
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        char *field = (char *)a + options[i].offset;
        const char **value = (const char **)(void *)field;
        if (options[i].env && *value == NULL) {
            const char *env = getenv(options[i].env);
            *value = env && *env ? env : NULL;
        }
    }
    if (a->url == NULL)
        a->url = LOCKCTL_DEFAULT_URL;
    *cmd_out = cmd;
    return 0;
}

int main(int argc, char **argv)
{
    struct lockctl ctl;
    const struct lockctl_cmd *cmd = NULL;
    char err[512];

    memset(&ctl, 0, sizeof ctl);
    int rc = parse(argc, argv, &ctl, &cmd);
    if (rc != 0)
        return rc < 0 ? LOCKCTL_OK : rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lockctl_warn("cannot initialise libcurl");
        return LOCKCTL_UNAVAILABLE;
    }
    if (ls_client_init(&ctl.client, ctl.args.url, ctl.args.api_key_file, err,
                       sizeof err) != 0) {
        lockctl_warn("%s", err);
        curl_global_cleanup();
        return LOCKCTL_USAGE;
    }
    rc = cmd->exec(&ctl);
    ls_client_cleanup(&ctl.client);
    curl_global_cleanup();
    return rc;
}
