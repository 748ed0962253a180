package lockservice_test

// Tests of the Go client against a real lockservice and redis-server
// (fixture_test.go starts them on free ports). Time bounds are generous:
// they check that things happen, not how fast. Run from clients/go after
// `make lockservice`: go test ./...

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lockservice "lockservice/client"
)

var (
	redis *redisProc
	svc   *service
)

func TestMain(m *testing.M) {
	t := mainFatal{}
	redis = startRedis(t)
	svc = startService(t, redis)
	code := m.Run()
	svc.close()
	redis.close()
	os.Exit(code)
}

func quiet() *lockservice.Client {
	c := lockservice.New(svc.url)
	c.Logf = func(string, ...any) {}
	return c
}

func TestHappyPath(t *testing.T) {
	c := quiet()
	ctx := context.Background()
	l, err := c.Acquire(ctx, "go-happy", lockservice.Options{TTL: 1200 * time.Millisecond, Wait: time.Second, Owner: "go-test"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(l.Token) || l.Fence <= 0 {
		t.Fatalf("lease %+v", l)
	}
	time.Sleep(2 * time.Second) // past the TTL: the renewals keep it
	st, err := c.Status(ctx, "go-happy")
	if err != nil || !st.Held || st.Owner != "go-test" || st.Fence != l.Fence {
		t.Fatalf("status %+v, %v", st, err)
	}
	if l.Err() != nil || l.Context().Err() != nil {
		t.Fatalf("lost: %v", l.Err())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Context().Err() == nil {
		t.Fatal("the lock's context lives on after the release")
	}
	if st, _ := c.Status(ctx, "go-happy"); st == nil || st.Held {
		t.Fatalf("still held after the release: %+v", st)
	}
}

func TestWithLockAndFence(t *testing.T) {
	c := quiet()
	var fences []int64
	for i := 0; i < 3; i++ {
		err := c.WithLock(context.Background(), "go-fence", lockservice.Options{}, func(ctx context.Context, l *lockservice.Lock) error {
			fences = append(fences, l.Fence)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !(fences[0] < fences[1] && fences[1] < fences[2]) {
		t.Fatalf("fences do not grow: %v", fences)
	}
}

func TestWaitRunsOut(t *testing.T) {
	c := quiet()
	ctx := context.Background()
	holder, err := c.Acquire(ctx, "go-held", lockservice.Options{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release(ctx)
	start := time.Now()
	_, err = c.Acquire(ctx, "go-held", lockservice.Options{Wait: 300 * time.Millisecond})
	var p *lockservice.Problem
	if !errors.Is(err, lockservice.ErrLockHeld) || !errors.As(err, &p) || p.RetryAfterMs <= 0 {
		t.Fatalf("want lock_held with retry_after_ms, got %v", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("answered after %v, before the wait ran out", time.Since(start))
	}
}

func TestSharedLeasesCoexist(t *testing.T) {
	c := quiet()
	ctx := context.Background()
	var readers []*lockservice.Lock
	for i := 0; i < 2; i++ {
		r, err := c.Acquire(ctx, "go-shared", lockservice.Options{TTL: 10 * time.Second, Shared: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Mode != "shared" {
			t.Fatalf("mode %q, want shared", r.Mode)
		}
		readers = append(readers, r)
	}
	st, err := c.Status(ctx, "go-shared")
	if err != nil || st.HolderCount != 2 || st.Mode != "shared" {
		t.Fatalf("status %+v (%v), want two shared holders", st, err)
	}
	if _, err := c.Acquire(ctx, "go-shared", lockservice.Options{}); !errors.Is(err, lockservice.ErrLockHeld) {
		t.Fatalf("an exclusive acquire beside shared leases: %v, want lock_held", err)
	}
	for _, r := range readers {
		if err := r.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Acquire(ctx, "go-shared", lockservice.Options{Wait: time.Second})
	if err != nil || w.Mode != "exclusive" || w.Fence <= readers[1].Fence {
		t.Fatalf("the writer after them: %+v (%v)", w, err)
	}
	w.Release(ctx)
	if _, err := c.AcquireSemaphore(ctx, "go-shared-sem", 2, 1, lockservice.Options{Shared: true}); err == nil {
		t.Fatal("Shared on a semaphore was accepted")
	}
}

func TestTwoHoldersNeverOverlap(t *testing.T) {
	c := quiet()
	var mu sync.Mutex
	inside, most := 0, 0
	var fences []int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.WithLock(context.Background(), "go-mutex", lockservice.Options{TTL: 2 * time.Second, Wait: 20 * time.Second},
				func(ctx context.Context, l *lockservice.Lock) error {
					mu.Lock()
					inside++
					if inside > most {
						most = inside
					}
					fences = append(fences, l.Fence)
					mu.Unlock()
					time.Sleep(300 * time.Millisecond)
					mu.Lock()
					inside--
					mu.Unlock()
					return nil
				})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most != 1 {
		t.Fatalf("%d holders at once", most)
	}
	if len(fences) != 4 || !sort.SliceIsSorted(fences, func(i, j int) bool { return fences[i] < fences[j] }) {
		t.Fatalf("fences in order of entry: %v", fences)
	}
}

func TestHTML502KeepsTheLease(t *testing.T) {
	p := startProxy(t, svc.url)
	defer p.close()
	c := lockservice.New(p.url)
	c.Logf = func(string, ...any) {}
	l, err := c.Acquire(context.Background(), "go-502", lockservice.Options{TTL: 1200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if l.Err() != nil {
		t.Fatalf("lost: %v", l.Err())
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if renewals, bad := p.counts(); bad != 1 || renewals < 3 {
		t.Fatalf("%d renewals, %d answered 502", renewals, bad)
	}
}

func TestAcquireRetriedAfterCutAnswer(t *testing.T) {
	p := startProxy(t, svc.url)
	defer p.close()
	p.mu.Lock()
	p.cutFirstAcquire = true
	p.mu.Unlock()
	c := lockservice.New(p.url)
	c.Logf = func(string, ...any) {}
	l, err := c.Acquire(context.Background(), "go-retry-acquire", lockservice.Options{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := lockservice.New(svc.url).Status(context.Background(), "go-retry-acquire")
	if err != nil {
		t.Fatal(err)
	}
	if st.HolderCount != 1 || st.Fence != l.Fence {
		t.Fatalf("status %+v, the lock's fence %d: want one holder, this lease", st, l.Fence)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := p.acquireIDs()
	if len(ids) != 2 || !strings.HasPrefix(ids[0], "go-") || ids[0] != ids[1] {
		t.Fatalf("acquires' request_ids %q: want two, the same", ids)
	}
}

func TestServiceRestartKeepsTheLease(t *testing.T) {
	own := startService(t, redis)
	defer own.close()
	c := lockservice.New(own.url)
	c.Logf = func(string, ...any) {}
	l, err := c.Acquire(context.Background(), "go-restart", lockservice.Options{TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // past the first renewal
	own.stop()
	time.Sleep(300 * time.Millisecond)
	own.start(t)
	time.Sleep(2500 * time.Millisecond)
	if l.Err() != nil {
		t.Fatalf("lost: %v", l.Err())
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSemaphoreNeverMoreThanLimit(t *testing.T) {
	c := quiet()
	var inside, most int32
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.AcquireSemaphore(context.Background(), "go-sem", 2, 1,
				lockservice.Options{TTL: 1200 * time.Millisecond, Wait: 20 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			n := atomic.AddInt32(&inside, 1)
			for {
				m := atomic.LoadInt32(&most)
				if n <= m || atomic.CompareAndSwapInt32(&most, m, n) {
					break
				}
			}
			time.Sleep(1500 * time.Millisecond) // past the TTL: renewals keep it
			atomic.AddInt32(&inside, -1)
			if s.Err() != nil {
				errs <- s.Err()
			}
			if err := s.Release(context.Background()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most != 2 {
		t.Fatalf("at most %d held at once, want 2 (of 3, limit 2)", most)
	}
	st, err := c.SemaphoreStatus(context.Background(), "go-sem")
	if err != nil || st.Used != 0 {
		t.Fatalf("status %+v, %v: want every permit back", st, err)
	}
}

func TestSemaphoreNoPermitsAndLoss(t *testing.T) {
	c := quiet()
	s, err := c.AcquireSemaphore(context.Background(), "go-sem-full", 3, 2, lockservice.Options{TTL: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.SemaphoreStatus(context.Background(), "go-sem-full")
	if err != nil || st.Used != 2 || st.HolderCount != 1 || st.Holders[0].Fence != s.Fence {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, err := c.AcquireSemaphore(context.Background(), "go-sem-full", 3, 2, lockservice.Options{}); !errors.Is(err, lockservice.ErrNoPermits) {
		t.Fatalf("2 more of 3: %v, want ErrNoPermits", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, svc.url+"/v1/semaphores/go-sem-full", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-s.Context().Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the force-released semaphore lease was not lost")
	}
	if !errors.Is(s.Err(), lockservice.ErrLeaseLost) {
		t.Fatalf("Err() = %v", s.Err())
	}
	if err := s.Release(context.Background()); !errors.Is(err, lockservice.ErrNotHeld) {
		t.Fatalf("release after the loss: %v", err)
	}
}

func TestLockDeletedIsLostAtOnce(t *testing.T) {
	c := quiet()
	released := make(chan error, 1)
	l, err := c.Acquire(context.Background(), "go-gone", lockservice.Options{TTL: 1500 * time.Millisecond,
		OnLost: func(l *lockservice.Lock, _ error) { released <- l.Release(context.Background()) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := redis.cli("DEL", "lockservice:{go-gone}:lock"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Context().Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the lease was not lost")
	}
	if !errors.Is(l.Err(), lockservice.ErrLeaseLost) {
		t.Fatalf("Err() = %v", l.Err())
	}
	// OnLost released it (a Release there must not deadlock).
	select {
	case err := <-released:
		if !errors.Is(err, lockservice.ErrNotHeld) {
			t.Fatalf("release in OnLost: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Release in OnLost did not return")
	}
	if err := l.Release(context.Background()); !errors.Is(err, lockservice.ErrNotHeld) {
		t.Fatalf("release after the loss: %v", err)
	}
}

func TestRedisDownLostBeforeExpiry(t *testing.T) {
	c := quiet()
	const ttl = 1500 * time.Millisecond
	var called int32
	l, err := c.Acquire(context.Background(), "go-down", lockservice.Options{TTL: ttl,
		OnLost: func(*lockservice.Lock, error) { atomic.AddInt32(&called, 1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if redis.cmd == nil {
			redis.start(t)
		}
		svc.ready()
	}()
	time.Sleep(600 * time.Millisecond) // one renewal through
	stopped := time.Now()
	redis.kill()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the lease was not lost")
	}
	// The last renewal reached Redis before it was stopped, so the lease
	// expired at most ttl after that.
	if lostAt := time.Now(); !lostAt.Before(stopped.Add(ttl)) {
		t.Fatalf("lost %v after Redis stopped, the TTL is %v", lostAt.Sub(stopped), ttl)
	}
	onLost := waitUntil(time.Second, func() bool { return atomic.LoadInt32(&called) == 1 })
	if l.Context().Err() == nil || !onLost {
		t.Fatalf("context %v, OnLost called %d times", l.Context().Err(), atomic.LoadInt32(&called))
	}
	redis.start(t)
	if !svc.ready() {
		t.Fatal("the service is not ready again")
	}
	// Redis came back empty: the release says not_held.
	if err := l.Release(context.Background()); !errors.Is(err, lockservice.ErrNotHeld) {
		t.Fatalf("release after the loss: %v", err)
	}
}

func TestList(t *testing.T) {
	c := quiet()
	ctx := context.Background()
	var locks []*lockservice.Lock
	for i := 0; i < 25; i++ {
		l, err := c.Acquire(ctx, fmt.Sprintf("go-list-%02d", i), lockservice.Options{TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, l)
	}
	sem, err := c.AcquireSemaphore(ctx, "go-list-sem", 3, 2, lockservice.Options{TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.Acquire(ctx, "go-list-gone", lockservice.Options{})
	if err != nil || gone.Release(ctx) != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	err = c.List(ctx, lockservice.ListOptions{Prefix: "go-list-", Limit: 2}, func(s *lockservice.Status) error {
		if !s.Held || s.Owner == "" || s.Fence <= 0 {
			t.Errorf("entry %+v", s)
		}
		seen[s.Name]++
		return nil
	})
	if err != nil || len(seen) != 25 {
		t.Fatalf("listed %d names (%v): %v", len(seen), err, seen)
	}
	for i := 0; i < 25; i++ {
		if n := seen[fmt.Sprintf("go-list-%02d", i)]; n != 1 {
			t.Fatalf("go-list-%02d listed %d times", i, n)
		}
	}
	var sems []string
	err = c.ListSemaphores(ctx, lockservice.ListOptions{Prefix: "go-list-"}, func(s *lockservice.SemaphoreStatus) error {
		if s.Limit != 3 || s.Used != 2 {
			t.Errorf("semaphore %+v", s)
		}
		sems = append(sems, s.Name)
		return nil
	})
	if err != nil || len(sems) != 1 || sems[0] != "go-list-sem" {
		t.Fatalf("semaphores %v, %v", sems, err)
	}
	stop := errors.New("stop")
	calls := 0
	err = c.List(ctx, lockservice.ListOptions{Prefix: "go-list-"}, func(*lockservice.Status) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("fn's error did not stop the listing: %v after %d calls", err, calls)
	}
	for _, l := range locks {
		_ = l.Release(ctx)
	}
	_ = sem.Release(ctx)
	calls = 0
	if err := c.List(ctx, lockservice.ListOptions{Prefix: "go-list-"}, func(*lockservice.Status) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("after the releases: %d listed, %v", calls, err)
	}
	if err := c.List(ctx, lockservice.ListOptions{Prefix: "bad/prefix"}, func(*lockservice.Status) error { return nil }); err == nil {
		t.Fatal("a bad prefix was accepted")
	}
	if err := c.List(ctx, lockservice.ListOptions{Limit: 1001}, func(*lockservice.Status) error { return nil }); err == nil {
		t.Fatal("limit 1001 was accepted")
	}
	far := lockservice.New(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	if err := far.List(ctx, lockservice.ListOptions{}, func(*lockservice.Status) error { return nil }); !errors.Is(err, lockservice.ErrUnavailable) {
		t.Fatalf("want unavailable, got %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	c := lockservice.New(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	_, err := c.Acquire(context.Background(), "go-nowhere", lockservice.Options{})
	if !errors.Is(err, lockservice.ErrUnavailable) {
		t.Fatalf("want unavailable, got %v", err)
	}
	if _, err := quiet().Acquire(context.Background(), "bad name", lockservice.Options{}); err == nil {
		t.Fatal("a bad name was accepted")
	}
}

func TestAPIKeyFile(t *testing.T) {
	dir := t.TempDir()
	keys, key := dir+"/keys", dir+"/key"
	os.WriteFile(keys, []byte("go-test-key-0123456789abcdef go\n"), 0o600)
	os.WriteFile(key, []byte("go-test-key-0123456789abcdef\n"), 0o600)
	own := startService(t, redis, "--api-keys-file", keys)
	defer own.close()
	_, err := lockservice.New(own.url).Status(context.Background(), "go-key")
	if !errors.Is(err, &lockservice.Problem{Code: "unauthorized"}) {
		t.Fatalf("without a key: %v", err)
	}
	t.Setenv("LOCKSERVICE_URL", own.url)
	t.Setenv("LOCKSERVICE_API_KEY_FILE", key)
	c, err := lockservice.NewFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c.Logf = func(string, ...any) {}
	if err := c.WithLock(context.Background(), "go-key", lockservice.Options{}, func(context.Context, *lockservice.Lock) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
