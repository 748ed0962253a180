// Package lockservice is a client for lockservice, distributed locks over
// HTTP/JSON. Standard library only.
//
// A lock is a lease: acquired with a TTL (waiting on the server up to Wait
// while someone else holds it), renewed in the background every TTL/3, and
// released at the end:
//
//	client := lockservice.New("http://127.0.0.1:8080")
//	lock, err := client.Acquire(ctx, "orders", lockservice.Options{TTL: 30 * time.Second, Wait: 10 * time.Second})
//	if err != nil {
//		return err // errors.Is(err, lockservice.ErrLockHeld) when the wait ran out
//	}
//	defer lock.Release(context.Background())
//	work(lock.Context(), lock.Fence) // lock.Context() is cancelled if the lease is lost
//
// A renewal that fails with a network error, a timeout, a 5xx or an answer
// that is not JSON (a proxy's HTML error page) is retried with backoff
// (100 ms doubling up to TTL/10, with jitter) until the lease would end.
// The lease is lost when a renewal is refused (409 not_held / not_owner, or
// any other 4xx), or when no renewal succeeded by TTL - TTL/10 after the
// last one that did, which is before the service's own expiry. Then
// Lock.Context() is cancelled, Lock.Lost() is closed, Lock.Err() says why,
// Options.OnLost is called, and the loss is logged.
//
// An acquire carries a random request_id and is tried again with the same
// one after a network error, a 5xx or an answer that is not JSON (up to 5
// attempts, backing off from 200 ms to 2 s, within Wait plus 10 s): the
// service answers a grant whose answer was lost again ("replayed": true)
// instead of granting a second lease.
//
// Pass Lock.Fence with every write to what the lock protects, and have that
// resource refuse a fence older than the last one it saw.
package lockservice

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultURL is the service's default listen address.
const DefaultURL = "http://127.0.0.1:8080"

const (
	firstBackoff  = 100 * time.Millisecond
	answerSlack   = 10 * time.Second // how much longer than Wait an acquire may take
	releaseBudget = 10 * time.Second
	callTimeout   = 10 * time.Second
	minTTL        = 300 * time.Millisecond

	acquireAttempts     = 5
	acquireFirstBackoff = 200 * time.Millisecond
	acquireMaxBackoff   = 2 * time.Second
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{0,128}$`)

// Problem is a refusal by the service: an RFC 9457 problem with a code to
// switch on (lock_held, not_held, not_owner, invalid_field, unauthorized,
// ...). errors.Is(err, ErrLockHeld) and friends match on Code.
type Problem struct {
	Status       int    `json:"status"`
	Code         string `json:"code"`
	Title        string `json:"title"`
	Detail       string `json:"detail"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("lockservice: %d %s: %s", p.Status, p.Code, p.Detail)
}

// Is matches a sentinel Problem by its Code.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Status == 0 && t.Code == p.Code
}

// Sentinels for errors.Is.
var (
	// ErrLockHeld: the lock was still held when the wait ran out.
	ErrLockHeld = &Problem{Code: "lock_held"}
	// ErrNoPermits: a semaphore had too few permits free when the wait
	// ran out.
	ErrNoPermits = &Problem{Code: "no_permits"}
	// ErrNotHeld: nobody holds the lock (released, or the lease expired).
	ErrNotHeld = &Problem{Code: "not_held"}
	// ErrNotOwner: someone else holds the lock now.
	ErrNotOwner = &Problem{Code: "not_owner"}
	// ErrUnavailable matches an *UnavailableError.
	ErrUnavailable = errors.New("lockservice: service unavailable")
	// ErrLeaseLost matches the error Lock.Err returns after a loss.
	ErrLeaseLost = errors.New("lockservice: lease lost")
)

// UnavailableError is a call that got no usable answer: a network error, a
// timeout, a 5xx, or a body that is not JSON. Worth trying again later.
type UnavailableError struct {
	Status int // HTTP status, 0 when no answer came
	Reason string
}

func (e *UnavailableError) Error() string {
	return "lockservice: service unavailable: " + e.Reason
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// LostError says why a lease was lost; errors.Is(err, ErrLeaseLost) is true.
type LostError struct {
	Name   string
	Reason string
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lockservice: lease on %q lost: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrLeaseLost) true.
func (e *LostError) Is(target error) bool { return target == ErrLeaseLost }

// Lease is the service's answer to an acquire or a renewal (openapi.yaml's
// Lease).
type Lease struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	Fence int64  `json:"fence"`
	TTLMs int64  `json:"ttl_ms"`
	Count int    `json:"count"`
	Owner string `json:"owner"`
	// Mode is "exclusive" or "shared".
	Mode string `json:"mode"`
}

// Status is GET /v1/locks/{name} (openapi.yaml's LockStatus): Held false
// (with ReservedMs while a hand-off is pending) or the holder's lease.
type Status struct {
	Name       string `json:"name"`
	Held       bool   `json:"held"`
	Owner      string `json:"owner,omitempty"`
	Fence      int64  `json:"fence,omitempty"`
	TTLMs      int64  `json:"ttl_ms,omitempty"`
	Count      int    `json:"count,omitempty"`
	ReservedMs int64  `json:"reserved_ms,omitempty"`
	// Mode is the holder's: "exclusive", or "shared" (the first shared
	// holder's fields are the ones above).
	Mode string `json:"mode,omitempty"`
	// HolderCount is how many leases hold the lock (0 or 1 for an
	// exclusive lock, every shared one for a shared lock).
	HolderCount int `json:"holder_count"`
	// Waiting is how many requests wait in the lock's queue.
	Waiting int `json:"waiting"`
}

// Client talks to one lockservice. The zero value is not usable: use New
// or NewFromEnv.
type Client struct {
	url    string
	apiKey string
	// HTTP is the client requests go through; its Timeout should be zero
	// (every call sets its own deadline).
	HTTP *http.Client
	// Logf reports renewal failures and losses; nil: log.Printf.
	Logf func(format string, args ...any)
}

// New returns a client for the service at url (e.g.
// "http://127.0.0.1:8080").
func New(url string) *Client {
	return &Client{url: strings.TrimRight(url, "/"), HTTP: &http.Client{}}
}

// NewFromEnv returns a client for $LOCKSERVICE_URL (default DefaultURL)
// with the API key from $LOCKSERVICE_API_KEY_FILE, if set.
func NewFromEnv() (*Client, error) {
	url := os.Getenv("LOCKSERVICE_URL")
	if url == "" {
		url = DefaultURL
	}
	c := New(url)
	if path := os.Getenv("LOCKSERVICE_API_KEY_FILE"); path != "" {
		if err := c.UseAPIKeyFile(path); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// UseAPIKeyFile sends the API key held on the first line of path (the key
// alone) as "Authorization: Bearer".
func (c *Client) UseAPIKeyFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("lockservice: API key file: %w", err)
	}
	key := strings.TrimRight(strings.SplitN(string(raw), "\n", 2)[0], "\r")
	if key == "" || strings.ContainsAny(key, " \t\x00") {
		return fmt.Errorf("lockservice: API key file %s: the first line must hold the key alone", path)
	}
	c.apiKey = key
	return nil
}

func (c *Client) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// ---------------------------------------------------------------- HTTP

type kind int

const (
	kindOK        kind = iota // 2xx with a JSON object
	kindProblem               // 4xx problem with a code (not 408, 429)
	kindTransient             // network error, timeout, 5xx, 408, 429, not JSON
)

type answer struct {
	kind   kind
	status int
	raw    []byte
	prob   Problem
	text   string
	unsent bool // it never reached the service: safe to repeat
}

func (a *answer) err() error {
	if a.kind == kindProblem {
		p := a.prob
		return &p
	}
	return &UnavailableError{Status: a.status, Reason: a.text}
}

// call sends one request and sorts the answer; it never fails otherwise.
func (c *Client) call(ctx context.Context, method, path string, body any) answer {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return answer{kind: kindTransient, text: err.Error(), unsent: true}
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return answer{kind: kindTransient, text: err.Error(), unsent: true}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var op *net.OpError
		return answer{kind: kindTransient, text: err.Error(),
			unsent: errors.As(err, &op) && op.Op == "dial"}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{kind: kindTransient, status: resp.StatusCode, text: err.Error()}
	}
	return classify(resp.StatusCode, resp.Header.Get("Content-Type"), raw)
}

func classify(status int, ctype string, raw []byte) answer {
	a := answer{kind: kindTransient, status: status, raw: raw}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		if ctype == "" {
			ctype = "untyped"
		}
		a.text = fmt.Sprintf("HTTP %d with a %s body that is not JSON", status, ctype)
		return a
	}
	if status >= 200 && status < 300 {
		a.kind, a.text = kindOK, fmt.Sprintf("HTTP %d", status)
		return a
	}
	_ = json.Unmarshal(raw, &a.prob)
	a.prob.Status = status
	code := a.prob.Code
	if code == "" {
		code = "(no code)"
	}
	a.text = fmt.Sprintf("%d %s", status, code)
	if a.prob.Detail != "" {
		a.text += ": " + a.prob.Detail
	}
	if status >= 400 && status < 500 && status != 408 && status != 429 && a.prob.Code != "" {
		a.kind = kindProblem
	}
	return a
}

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lockservice: bad lock name %q: 1 to 128 characters of A-Z a-z 0-9 . _ : -", name)
	}
	return nil
}

// Status returns the lock's state (never a token).
func (c *Client) Status(ctx context.Context, name string) (*Status, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	a := c.call(ctx, http.MethodGet, "/v1/locks/"+name, nil)
	if a.kind != kindOK {
		return nil, a.err()
	}
	var s Status
	if err := json.Unmarshal(a.raw, &s); err != nil {
		return nil, &UnavailableError{Status: a.status, Reason: err.Error()}
	}
	return &s, nil
}

// ---------------------------------------------------------------- locks

// Options of an acquire. The zero value: a 30 s TTL, no waiting.
type Options struct {
	// TTL of the lease (default 30s, at least 300ms).
	TTL time.Duration
	// Wait on the server up to this long while the lock is held (default
	// 0: answer at once; the service's --max-wait-ms, default 60s, is the
	// most).
	Wait time.Duration
	// Owner is the label status shows (default "go@HOST pid N").
	Owner string
	// Shared asks for a shared (read) lease: shared leases of a name are
	// held at once, an exclusive one (the default) waits for them all.
	// Not for a semaphore.
	Shared bool
	// OnLost is called once, from the renewal goroutine, when the lease
	// is lost (after Context() is cancelled and Lost() closed); it may
	// call Release.
	OnLost func(l *Lock, err error)
}

// Lock is a held lease, renewed in the background until Release.
type Lock struct {
	Name  string
	Token string
	Fence int64
	Owner string
	// Mode is the lease's: "exclusive" or "shared" (a semaphore: "").
	Mode string

	client *Client
	kind   string // "locks" or "semaphores": the API path
	onLost func(*Lock, error)

	ctx    context.Context
	cancel context.CancelFunc
	lost   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	ttl     time.Duration
	basis   time.Time // when the request that set the TTL was sent
	lostErr error

	releaseOnce sync.Once
	releaseErr  error
}

// newRequestID is a fresh random request_id.
func newRequestID() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return fmt.Sprintf("go-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	return "go-" + hex.EncodeToString(b[:])
}

// acquireCall POSTs an acquire body with a fresh request_id, and tries it
// again with the same one after a transient failure (bounded, with backoff,
// within wait plus slack), each try asking to wait only what is left.
func (c *Client) acquireCall(ctx context.Context, path string, body map[string]any, wait time.Duration) answer {
	body["request_id"] = newRequestID()
	start := time.Now()
	waitEnd := start.Add(wait)
	deadline := waitEnd.Add(answerSlack)
	backoff := acquireFirstBackoff
	for attempt := 1; ; attempt++ {
		left := time.Until(waitEnd)
		if left < 0 {
			left = 0
		}
		body["wait_ms"] = left.Milliseconds()
		budget := time.Until(deadline)
		if budget < left+time.Second {
			budget = left + time.Second
		}
		actx, cancel := context.WithTimeout(ctx, budget)
		a := c.call(actx, http.MethodPost, path, body)
		cancel()
		if a.kind != kindTransient || attempt >= acquireAttempts || ctx.Err() != nil ||
			time.Now().Add(backoff).After(deadline) {
			return a
		}
		c.logf("lockservice: acquire %s: %s; trying again with the same request_id", path, a.text)
		select {
		case <-ctx.Done():
			return a
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > acquireMaxBackoff {
			backoff = acquireMaxBackoff
		}
	}
}

// Acquire takes the lock name. ctx bounds the acquire (including its wait)
// and is the parent of Lock.Context(). Errors: a *Problem (errors.Is
// ErrLockHeld when the wait ran out), an *UnavailableError, or a usage
// error.
func (c *Client) Acquire(ctx context.Context, name string, opt Options) (*Lock, error) {
	return c.acquire(ctx, "locks", name, opt, nil)
}

// Semaphore is a lease of Permits of the semaphore Name, which lets at
// most Limit permits be held at once (/v1/semaphores). It is renewed,
// lost (Context, Lost, Err) and released like a Lock.
type Semaphore struct {
	*Lock
	Limit   int
	Permits int
}

// AcquireSemaphore takes permits (at least 1, at most limit) of the
// semaphore name of limit permits; everyone using it must give the same
// limit. opt as for Acquire; errors.Is(err, ErrNoPermits) when too few
// were free after opt.Wait.
func (c *Client) AcquireSemaphore(ctx context.Context, name string, limit, permits int, opt Options) (*Semaphore, error) {
	if limit < 1 || permits < 1 || permits > limit {
		return nil, fmt.Errorf("lockservice: semaphore limit %d, permits %d: want 1 <= permits <= limit", limit, permits)
	}
	l, err := c.acquire(ctx, "semaphores", name, opt, map[string]any{"limit": limit, "permits": permits})
	if err != nil {
		return nil, err
	}
	return &Semaphore{Lock: l, Limit: limit, Permits: permits}, nil
}

// SemaphoreStatus is GET /v1/semaphores/{name}: the limit in force, the
// permits used, and the holders (never a token).
type SemaphoreStatus struct {
	Name        string `json:"name"`
	Limit       int    `json:"limit"`
	Used        int    `json:"used"`
	HolderCount int    `json:"holder_count"`
	Waiting     int    `json:"waiting"`
	Holders     []struct {
		Owner   string `json:"owner"`
		Fence   int64  `json:"fence"`
		TTLMs   int64  `json:"ttl_ms"`
		Permits int    `json:"permits"`
	} `json:"holders"`
}

// SemaphoreStatus is the semaphore's state.
func (c *Client) SemaphoreStatus(ctx context.Context, name string) (*SemaphoreStatus, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	a := c.call(ctx, http.MethodGet, "/v1/semaphores/"+name, nil)
	if a.kind != kindOK {
		return nil, a.err()
	}
	var s SemaphoreStatus
	if err := json.Unmarshal(a.raw, &s); err != nil {
		return nil, &UnavailableError{Status: a.status, Reason: err.Error()}
	}
	return &s, nil
}

// ---------------------------------------------------------------- listing

// ListOptions selects what a listing shows. The zero value: every name,
// pages of the service's default 100.
type ListOptions struct {
	Prefix string // only names starting with it (0..128 name characters)
	Limit  int    // names per page asked for, 1..1000; 0: the service's 100
}

// listPages follows GET /v1/{member} page by page to the end, giving each
// entry to fn; fn's error stops it and is returned.
func (c *Client) listPages(ctx context.Context, member string, opt ListOptions, fn func(raw json.RawMessage) error) error {
	if !prefixRE.MatchString(opt.Prefix) {
		return fmt.Errorf("lockservice: bad prefix %q: 0 to 128 characters of A-Z a-z 0-9 . _ : -", opt.Prefix)
	}
	if opt.Limit < 0 || opt.Limit > 1000 {
		return fmt.Errorf("lockservice: bad limit %d: 1 to 1000, or 0 for the default", opt.Limit)
	}
	cursor := ""
	for {
		q := url.Values{"prefix": {opt.Prefix}}
		if opt.Limit > 0 {
			q.Set("limit", strconv.Itoa(opt.Limit))
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		pctx, cancel := context.WithTimeout(ctx, callTimeout)
		a := c.call(pctx, http.MethodGet, "/v1/"+member+"?"+q.Encode(), nil)
		cancel()
		if a.kind != kindOK {
			return a.err()
		}
		var page map[string]json.RawMessage
		var items []json.RawMessage
		var next *string
		if json.Unmarshal(a.raw, &page) != nil || json.Unmarshal(page[member], &items) != nil ||
			json.Unmarshal(page["next_cursor"], &next) != nil || (next != nil && *next == "") {
			return &UnavailableError{Status: a.status, Reason: "not a listing page"}
		}
		for _, raw := range items {
			if err := fn(raw); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		cursor = *next
	}
}

// List calls fn with every held or queued lock whose name starts with
// opt.Prefix, each as Status shows it, following the service's pages to
// the end (GET /v1/locks); a name held throughout is given exactly once.
// fn's error stops the listing and is returned.
func (c *Client) List(ctx context.Context, opt ListOptions, fn func(*Status) error) error {
	return c.listPages(ctx, "locks", opt, func(raw json.RawMessage) error {
		var s Status
		if err := json.Unmarshal(raw, &s); err != nil {
			return &UnavailableError{Reason: err.Error()}
		}
		return fn(&s)
	})
}

// ListSemaphores is List for the semaphores with permits held or waiters
// (GET /v1/semaphores).
func (c *Client) ListSemaphores(ctx context.Context, opt ListOptions, fn func(*SemaphoreStatus) error) error {
	return c.listPages(ctx, "semaphores", opt, func(raw json.RawMessage) error {
		var s SemaphoreStatus
		if err := json.Unmarshal(raw, &s); err != nil {
			return &UnavailableError{Reason: err.Error()}
		}
		return fn(&s)
	})
}

func (c *Client) acquire(ctx context.Context, kind, name string, opt Options, extra map[string]any) (*Lock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if opt.TTL == 0 {
		opt.TTL = 30 * time.Second
	}
	if opt.TTL < minTTL {
		return nil, fmt.Errorf("lockservice: TTL %v is below %v (renewals go out every TTL/3)", opt.TTL, minTTL)
	}
	if opt.Wait < 0 {
		return nil, errors.New("lockservice: negative Wait")
	}
	if opt.Owner == "" {
		host, _ := os.Hostname()
		opt.Owner = fmt.Sprintf("go@%s pid %d", host, os.Getpid())
		if len(opt.Owner) > 128 {
			opt.Owner = opt.Owner[:128]
		}
	}
	body := map[string]any{"ttl_ms": opt.TTL.Milliseconds(), "owner": opt.Owner}
	if opt.Shared {
		if kind != "locks" {
			return nil, errors.New("lockservice: Shared is for a lock, not a semaphore")
		}
		body["mode"] = "shared"
	}
	for k, v := range extra {
		body[k] = v
	}
	sent := time.Now()
	a := c.acquireCall(ctx, "/v1/"+kind+"/"+name+"/acquire", body, opt.Wait)
	if a.kind != kindOK {
		return nil, a.err()
	}
	var lease Lease
	if err := json.Unmarshal(a.raw, &lease); err != nil || lease.Token == "" || lease.TTLMs <= 0 {
		return nil, &UnavailableError{Status: a.status, Reason: "an answer without a lease"}
	}
	l := &Lock{
		Name: name, Token: lease.Token, Fence: lease.Fence, Owner: lease.Owner,
		Mode: lease.Mode, client: c, kind: kind, onLost: opt.OnLost,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		ttl: time.Duration(lease.TTLMs) * time.Millisecond,
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	first := sent.Add(l.ttl / 3)
	l.basis = sent
	if now := time.Now(); now.Sub(sent) > l.ttl/10 {
		// It waited: the grant came at some moment of the wait. Renew at
		// once, which pins the TTL to a known start.
		l.basis, first = now, now
	}
	go func() {
		lost := l.renew(first)
		close(l.done) // before OnLost, which may call Release
		if lost != nil && l.onLost != nil {
			l.onLost(l, lost)
		}
	}()
	return l, nil
}

// WithLock acquires name, runs fn with the lock's context (cancelled if the
// lease is lost), and releases the lock. It returns fn's error, else the
// acquire's, else the loss (ErrLeaseLost) if the lease was lost while fn
// ran.
func (c *Client) WithLock(ctx context.Context, name string, opt Options, fn func(ctx context.Context, l *Lock) error) error {
	l, err := c.Acquire(ctx, name, opt)
	if err != nil {
		return err
	}
	ferr := fn(l.Context(), l)
	lostErr := l.Err()
	_ = l.Release(context.Background())
	if ferr != nil {
		return ferr
	}
	return lostErr
}

// Context is cancelled when the lease is lost, or once it is released.
func (l *Lock) Context() context.Context { return l.ctx }

// Lost is closed when the lease is lost (not on release).
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Err is nil while the lease holds, a *LostError once it is lost.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// TTL is the lease's time to live as last granted.
func (l *Lock) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}

func (l *Lock) deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.basis.Add(l.ttl - l.ttl/10)
}

// backoffCap is the longest pause between two renewal attempts: TTL/10,
// and at least the first pause.
func backoffCap(ttl time.Duration) time.Duration {
	if ttl/10 > firstBackoff {
		return ttl / 10
	}
	return firstBackoff
}

func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int63n(int64(d)/2+1))
}

// renew keeps the lease alive until Release (nil) or a loss (returned).
func (l *Lock) renew(next time.Time) *LostError {
	backoff, failures := firstBackoff, 0
	path := "/v1/" + l.kind + "/" + l.Name + "/renew"
	for {
		deadline := l.deadline()
		now := time.Now()
		if !now.Before(deadline) {
			return l.lose(fmt.Sprintf("no renewal succeeded in time (%d attempts failed; the TTL is %v)", failures, l.TTL()))
		}
		if now.Before(next) {
			wake := next
			if deadline.Before(wake) {
				wake = deadline
			}
			t := time.NewTimer(wake.Sub(now))
			select {
			case <-l.stop:
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		timeout := l.TTL() / 3
		if timeout < time.Second {
			timeout = time.Second
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ctx, cancel2 := context.WithTimeout(ctx, timeout)
		go func() {
			select {
			case <-l.stop:
				cancel2()
			case <-ctx.Done():
			}
		}()
		a := l.client.call(ctx, http.MethodPost, path, map[string]string{"token": l.Token})
		cancel2()
		cancel()
		select {
		case <-l.stop:
			return nil
		default:
		}
		var lease Lease
		if a.kind == kindOK && json.Unmarshal(a.raw, &lease) == nil && lease.TTLMs > 0 {
			if failures > 0 {
				l.client.logf("lockservice: renewed %q after %d failed attempts", l.Name, failures)
			}
			l.mu.Lock()
			l.ttl = time.Duration(lease.TTLMs) * time.Millisecond
			l.basis = now
			next = now.Add(l.ttl / 3)
			l.mu.Unlock()
			backoff, failures = firstBackoff, 0
			continue
		}
		if a.kind == kindProblem {
			return l.lose("the renewal was refused (" + a.text + ")")
		}
		failures++
		delay := jitter(backoff)
		next = time.Now().Add(delay)
		backoff *= 2
		if limit := backoffCap(l.TTL()); backoff > limit {
			backoff = limit
		}
		reason := a.text
		if reason == "" {
			reason = "no answer"
		}
		l.client.logf("lockservice: renewing %q failed (%s); trying again in %v (%v before the lease counts as lost)",
			l.Name, reason, delay.Round(time.Millisecond), time.Until(l.deadline()).Round(time.Millisecond))
	}
}

func (l *Lock) lose(reason string) *LostError {
	err := &LostError{Name: l.Name, Reason: reason}
	l.mu.Lock()
	l.lostErr = err
	l.mu.Unlock()
	l.cancel()
	close(l.lost)
	l.client.logf("lockservice: lease on %q lost: %s; stop working under it", l.Name, reason)
	return err
}

// Release stops renewing and releases the lease; transient failures are
// retried for up to 10 s within the lease's life (and ctx). It returns nil
// when released, the *Problem when the lease had already ended
// (errors.Is(err, ErrNotHeld) after a loss), or an *UnavailableError (the
// lease then ends by itself when its TTL runs out). Calling it again
// returns the first result. Lock.Context() is cancelled afterwards.
func (l *Lock) Release(ctx context.Context) error {
	l.releaseOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.releaseErr = l.release(ctx)
		l.cancel()
	})
	return l.releaseErr
}

func (l *Lock) release(ctx context.Context) error {
	path := "/v1/" + l.kind + "/" + l.Name + "/release"
	until := l.deadline()
	if limit := time.Now().Add(releaseBudget); limit.Before(until) {
		until = limit
	}
	backoff, uncertain := firstBackoff, false
	for {
		timeout := time.Until(until)
		if timeout > 5*time.Second {
			timeout = 5 * time.Second
		}
		if timeout < 500*time.Millisecond {
			timeout = 500 * time.Millisecond
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		a := l.client.call(cctx, http.MethodPost, path, map[string]string{"token": l.Token})
		cancel()
		switch {
		case a.kind == kindOK:
			return nil
		case a.kind == kindProblem && a.prob.Code == "not_held" && uncertain:
			return nil // an earlier attempt counted
		case a.kind == kindProblem:
			return a.err()
		}
		if time.Now().Add(backoff).After(until) || ctx.Err() != nil {
			return a.err()
		}
		uncertain = uncertain || !a.unsent
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return a.err()
		}
		backoff *= 2
	}
}
