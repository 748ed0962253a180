/* harness.h -- what every integration test needs: TAP output, a private
 * redis-server and lockservice on free ports, and HTTP through libcurl.
 *
 * Environment: LOCKSERVICE_BIN (default ./lockservice), LOCKSERVICE_WRAPPER
 * (a command prefix such as "valgrind --error-exitcode=99 -q"), REDIS_SERVER
 * (default redis-server). Never touches port 6379 or 8080. */
#ifndef LOCKSERVICE_TEST_HARNESS_H
#define LOCKSERVICE_TEST_HARNESS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* TAP: prints "ok N - desc" or "not ok N - desc"; returns cond. */
bool t_ok(bool cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints a "# ..." diagnostic line. */
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the plan "1..N"; returns the process exit status (0 if all passed). */
int t_done(void);

/* A free TCP port on 127.0.0.1 (bound then released). */
int free_port(void);

struct redis_proc {
    pid_t pid;
    int port;
    char dir[256];   /* private working dir (AOF/RDB), removed by stop */
    char extra[512]; /* extra args given to redis_start, kept for restart */
};
/* Starts redis-server on a free port (--save "" --appendonly no unless extra
 * says otherwise; extra is a space-separated arg string or NULL) and waits
 * until it answers PING. Returns 0 or -1. */
int redis_start(struct redis_proc *r, const char *extra);
void redis_stop(struct redis_proc *r);   /* SIGTERM, waitpid, rm dir */
void redis_kill(struct redis_proc *r);   /* SIGKILL, waitpid, keep dir */
int redis_restart(struct redis_proc *r); /* same port and dir */
/* Runs redis-cli -p port ARGS... and returns its stdout (malloc'd, caller
 * frees) or NULL. args is a space-separated string. */
char *redis_cli(const struct redis_proc *r, const char *args);

struct svc_proc {
    pid_t pid;
    int port;
    char url[64];  /* "http://127.0.0.1:PORT" */
    char log[256]; /* file holding the service's stderr */
};
/* Starts the service against r (--listen 127.0.0.1:<free> --redis
 * redis://127.0.0.1:<r->port>) plus extra_args (NULL-terminated, may be
 * NULL), waits until /healthz answers 200. Returns 0 or -1. */
int svc_start(struct svc_proc *s, const struct redis_proc *r,
              const char *const *extra_args);
/* SIGTERM, waits up to 15 s; returns the exit status (or -1). */
int svc_stop(struct svc_proc *s);
void svc_kill(struct svc_proc *s); /* SIGKILL + waitpid */

struct http_resp {
    long status; /* 0 when the transfer failed */
    char *body;  /* NUL-terminated, malloc'd */
    size_t len;
    char content_type[128];
    char *headers;  /* raw response header block, malloc'd */
    json_t *json;   /* parsed body when it is JSON, else NULL */
    double seconds; /* total time */
};
/* One request. body may be NULL (no body sent). headers is a NULL-terminated
 * list of "Name: value" lines or NULL; when body is non-NULL and headers
 * does not set Content-Type, "Content-Type: application/json" is added.
 * Returns 0 when a response arrived, -1 otherwise (out->status 0). */
int http(struct http_resp *out, const char *base, const char *method,
         const char *path, const char *body, const char *const *headers);
void http_resp_free(struct http_resp *r);
/* Value of response header name (case-insensitive) copied into buf, or NULL. */
const char *http_header(const struct http_resp *r, const char *name, char *buf,
                        size_t buflen);
/* json helpers on r->json: integer member or -1; string member or NULL. */
long long jint(const struct http_resp *r, const char *key);
const char *jstr(const struct http_resp *r, const char *key);
/* The "code" member of a problem+json body, or "" */
const char *problem_code(const struct http_resp *r);

/* A TCP connection to 127.0.0.1:port, or -1: for requests libcurl will not
 * send (truncated, trickled, malformed). */
int raw_connect(int port);
/* Sends all len bytes (no SIGPIPE). Returns false when the peer is gone. */
bool raw_send(int fd, const void *buf, size_t len);

/* Milliseconds since an arbitrary monotonic start. */
double now_ms(void);

/* ---- Additions (the declarations above are the stable API) ---- */

/* Like svc_start, and env is a NULL-terminated list of "NAME=value" set in
 * the service's environment (every other LOCKSERVICE_* variable is cleared).
 * When env sets LOCKSERVICE_LISTEN, no --listen flag is passed and s->port is
 * taken from it (s->url is http://[::1]:PORT when it starts with '['); when env
 * sets LOCKSERVICE_REDIS_URL, no --redis flag is passed. r may be NULL in both
 * functions: then no --redis flag is passed (give one in extra_args or env). */
int svc_start_env(struct svc_proc *s, const struct redis_proc *r,
                  const char *const *extra_args, const char *const *env);
/* Runs the service binary (under LOCKSERVICE_WRAPPER if set) with args
 * (NULL-terminated) and env as for svc_start_env, stdin from /dev/null;
 * waits up to timeout_ms. Stores its stdout and stderr (malloc'd, caller
 * frees; either pointer may be NULL to discard). Returns the exit status,
 * 128 + signal when killed by one, or -1 on timeout or spawn failure. */
int svc_run(const char *const *args, const char *const *env, char **out,
            char **err, int timeout_ms);
/* Like http, with a total time limit in milliseconds (http uses 70 s). */
int http_timeout(struct http_resp *out, long timeout_ms, const char *base,
                 const char *method, const char *path, const char *body,
                 const char *const *headers);
/* Factor for generous timing bounds: $LOCKSERVICE_TEST_TIME_SCALE if set,
 * else 10 under LOCKSERVICE_WRAPPER, else 1. */
double time_scale(void);
/* Sleeps ms milliseconds. */
void sleep_ms(long ms);
/* Number of "not ok" lines printed so far. */
int t_failed(void);
/* A TAP skip, "ok N - desc # SKIP why": the check could not run here.
 * tests/run counts it as skipped, not passed. */
void t_skip(const char *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* http with a printf-formatted body; fmt NULL sends no body. */
int httpf(struct http_resp *out, const char *base, const char *method,
          const char *path, const char *const *headers, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* True when r is a problem+json response with this status and code (the
 * body's "status" and "code" members agree); prints diagnostics if not. */
bool problem_is(const struct http_resp *r, long status, const char *code);
/* True when s is 32 lowercase hex digits. */
bool token_like(const char *s);
/* Fetches base/metrics and returns the value of the first sample of metric
 * name (exact) whose labels include every "key=\"value\"" string of labels
 * (NULL-terminated, may be NULL). Returns -1 when absent or unreachable. */
double metric_get(const char *base, const char *name,
                  const char *const *labels);
/* Polls metric_get(base, name, labels) every 10 ms, at least once, until it
 * equals want or ms * time_scale() have passed; on timeout prints the last
 * value as a diagnostic and returns false. */
bool metric_wait(const char *base, const char *name, const char *const *labels,
                 double want, double ms);
/* metric_wait on the lockservice_waiters gauge (parked waiters). */
bool waiters_become(const char *base, double want, double ms);
/* After an outage: polls acquire of NAME-1, NAME-2, ... (ttl 1 s), each on
 * a fresh connection, so on every worker in turn. Returns the ms until
 * the first 200, once SERVES_STREAK acquires in a row were granted (each
 * worker's connection has its own reconnect backoff), or -1 when that
 * did not happen within limit_ms. *fence (when not NULL) is the first
 * grant's fence. */
#define SERVES_STREAK 6
double serves_again(const char *base, const char *name, double limit_ms,
                    long long *fence);
/* t_ok that 24 acquire + status pairs on fresh connections each answer for
 * their own lock (a stale reply read by the next command would show). */
void workers_sane(const char *base, const char *when);

/* Redis made unresponsive on purpose: DEBUG SLEEP seconds, sent by
 * redis-cli from a thread of its own. redis_stall_begin returns once the
 * stall has begun (a PING on a fresh connection goes unanswered for 150 ms),
 * false if it did not within 5 s * time_scale(); redis_stall_end waits for
 * the stall to end. Call redis_stall_end after either result. */
struct redis_stall {
    pthread_t thread;
    const struct redis_proc *redis;
    char command[32];
};
bool redis_stall_begin(struct redis_stall *st, const struct redis_proc *r,
                       int seconds);
void redis_stall_end(struct redis_stall *st);

/* In redis_start's extra, "{dir}" is replaced by the private dir, e.g.
 * "--unixsocket {dir}/redis.sock". When extra has "--requirepass P",
 * redis_cli authenticates with P. */

/* ---- Additions for the engine v2 tests (issue 9) ---- */

/* redis_cli with a printf-formatted argument string; returns the answer as
 * an integer (its first line), or LLONG_MIN when it is no integer or
 * redis-cli failed. E.g. redis_cli_int(&r, "LLEN %s", key). */
long long redis_cli_int(const struct redis_proc *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* SIGKILLs r and starts it again on the same port and dir (and extra), with
 * prefix (space-separated words, e.g. "env NAME=value") put before the
 * server command, and waits until it answers PING. The prefix must exec the
 * server, not fork it, so that r->pid stays the server's: faketime(1) forks
 * (and see clock_shift_preload). The data is whatever the dir holds: none
 * with redis_start's default --save "" --appendonly no. Returns 0 or -1. */
int redis_restart_under(struct redis_proc *r, const char *prefix);
/* The path of an LD_PRELOAD library that shifts a process's wall clock
 * (clock_gettime of CLOCK_REALTIME*, gettimeofday, time) by
 * $TEST_CLOCK_SHIFT_MS milliseconds and leaves the monotonic clocks alone;
 * built on first use with $CC (default cc) in a private dir removed at
 * exit. libfaketime does the same but hangs a redis-server linked with
 * jemalloc (libfaketime issue 130). E.g. redis_restart_under(&r, "env
 * LD_PRELOAD=<path> TEST_CLOCK_SHIFT_MS=-30000"). NULL when it cannot be
 * built. */
const char *clock_shift_preload(void);
/* Raises the soft RLIMIT_NOFILE to at least want (up to the hard limit);
 * processes started afterwards inherit it. True when it is now >= want. */
bool nofile_at_least(long want);
/* A numeric field of /proc/<pid>/status ("VmRSS" in kB, "Threads"), or -1. */
long proc_status(pid_t pid, const char *field);
/* Opens a connection to 127.0.0.1:port and sends one HTTP/1.1 request
 * (body: JSON, or NULL for none), leaving the answer unread: a client that
 * waits and may hang up (close the fd). Returns the fd or -1. */
int raw_request(int port, const char *method, const char *path,
                const char *body);
/* Reads fd until the status line of an HTTP answer has arrived, for up to
 * timeout_ms, and returns its status code, or 0 (no answer, closed). What
 * else was read is discarded. */
long raw_status(int fd, int timeout_ms);

/* ---- Additions for Sentinel and replicas (issue 13) ---- */

/* Starts a redis-sentinel (redis-server CONF --sentinel) on a free port,
 * its config file in a private dir: monitoring master as name with quorum,
 * resolve-hostnames no, down-after-milliseconds 1000, failover-timeout
 * 4000. Waits until it answers PING. Stop it with redis_stop (or
 * redis_kill). Returns 0 or -1. */
int sentinel_start(struct redis_proc *s, const struct redis_proc *master,
                   const char *name, int quorum);
/* The same, with extra_conf (lines, e.g. "requirepass P", or NULL) added
 * to the config file. */
int sentinel_start_conf(struct redis_proc *s, const struct redis_proc *master,
                        const char *name, int quorum, const char *extra_conf);
/* Polls INFO replication on master until n replicas are online and have
 * acknowledged the master's whole stream, for up to ms * time_scale().
 * True when they did. */
bool replicas_synced(const struct redis_proc *master, int n, double ms);

/* ---- Additions for Redis Cluster (issue 13 item 4) ---- */

/* A local Redis Cluster: redis-server processes with cluster mode on, each
 * in its own dir (its nodes.conf there), created with redis-cli --cluster
 * create. Slots are left to redis-cli: the masters and their replicas are
 * asked of the nodes (CLUSTER NODES), never assumed from the start order.
 * Every node runs with --cluster-node-timeout 1500 and
 * --cluster-require-full-coverage no (the masters that are up keep serving
 * their slots while another master is down). */
#define CLUSTER_NODES_MAX 12
#define CLUSTER_SLOTS 16384
#define CLUSTER_NODE_TIMEOUT_MS 1500
struct redis_cluster {
    int count; /* nodes started, node[0 .. count-1] */
    struct redis_proc node[CLUSTER_NODES_MAX];
};
/* A free port p whose cluster bus port p + 10000 is free too (and below
 * 65536), or -1. */
int cluster_port(void);
/* Starts masters * (1 + replicas_per_master) nodes (masters >= 3, at most
 * CLUSTER_NODES_MAX in all), creates the cluster and waits (bounded, scaled
 * by time_scale()) until every node says cluster_state:ok with all 16384
 * slots served, every node agrees on the slot map, and every master's
 * replicas have acknowledged its whole stream. Returns 0, or -1 (the nodes
 * started so far are left for cluster_stop). */
int cluster_start(struct redis_cluster *cl, int masters,
                  int replicas_per_master);
/* redis_stop of every node (killed ones too: their dirs go). */
void cluster_stop(struct redis_cluster *cl);
/* "127.0.0.1:p1,127.0.0.1:p2,..." of every node started, into buf; returns
 * its length, or 0 when it does not fit. */
size_t cluster_seeds(const struct redis_cluster *cl, char *buf, size_t len);
/* The hash slot of key (CRC16 of its hash tag, or of the whole key), as
 * CLUSTER KEYSLOT answers it. */
int cluster_keyslot(const char *key);
/* The slot of every key of lock name: that of "{name}". */
int cluster_name_slot(const char *name);
/* The node of cl on port, whether alive or not, or NULL. */
struct redis_proc *cluster_node(struct redis_cluster *cl, int port);
/* The port of the master serving slot as a live node's CLUSTER NODES shows
 * it, or -1. */
int cluster_slot_owner(struct redis_cluster *cl, int slot);
/* The node of the master serving name's slot, or NULL. */
struct redis_proc *cluster_name_master(struct redis_cluster *cl,
                                       const char *name);
/* The slots the master on port serves: owned[s] set to 1 or 0 for each of
 * the 16384 slots (owned may be NULL). Returns how many, or -1. */
int cluster_slots_of(struct redis_cluster *cl, int port, unsigned char *owned);
/* The live masters serving slots, by their lowest slot, into out (up to
 * max). Returns how many. */
int cluster_masters(struct redis_cluster *cl, struct redis_proc **out, int max);
/* A live replica of master, or NULL. */
struct redis_proc *cluster_replica_of(struct redis_cluster *cl,
                                      const struct redis_proc *master);
/* The 40-hex node id of r (CLUSTER MYID) into buf (at least 41 bytes);
 * false when r does not answer. */
bool cluster_node_id(const struct redis_proc *r, char *buf, size_t len);
/* Polls every live node until each says cluster_state:ok and
 * cluster_slots_ok:16384 and all agree which master serves each slot, that
 * master a live node (not one killed), for up to ms * time_scale(). True
 * when they did. */
bool cluster_settled(struct redis_cluster *cl, double ms);
/* redis-cli --cluster reshard --cluster-from <from> --cluster-to <to>
 * --cluster-slots nslots --cluster-yes: moves the lowest nslots slots of
 * from (redis-cli takes a source's slots in order) with their keys to to,
 * then waits for cluster_settled. True when redis-cli succeeded and the
 * cluster settled with to serving them; prints redis-cli's output if not. */
bool cluster_reshard(struct redis_cluster *cl, const struct redis_proc *from,
                     const struct redis_proc *to, int nslots);
/* CLUSTER FAILOVER on replica, then waits until it is a master and the
 * cluster settled, for up to ms * time_scale(). True when it did. */
bool cluster_failover(struct redis_cluster *cl, struct redis_proc *replica,
                      double ms);

#endif
