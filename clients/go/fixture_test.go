package lockservice_test

// Processes for the tests: a private redis-server and lockservice on free
// loopback ports (never 6379 or 8080), stopped by PID, and a proxy that
// answers one renewal with an HTML 502 the way nginx does.
// LOCKSERVICE_BIN names the service (default ../../lockservice),
// REDIS_SERVER the Redis binary (default redis-server).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fataler is what the helpers need of a *testing.T (TestMain has none).
type fataler interface{ Fatal(args ...any) }

// mainFatal stops TestMain.
type mainFatal struct{}

func (mainFatal) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(1)
}

func freePort(t fataler) int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 && port != 8080 {
			return port
		}
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

type redisProc struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t fataler) *redisProc {
	dir, err := os.MkdirTemp("", "lockservice-goredis.")
	if err != nil {
		t.Fatal(err)
	}
	r := &redisProc{port: freePort(t), dir: dir}
	r.start(t)
	return r
}

func (r *redisProc) start(t fataler) {
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprint(c, "PING\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "+PONG")
	}
	if !waitUntil(10*time.Second, up) {
		t.Fatal("redis-server did not start")
	}
}

func (r *redisProc) kill() {
	if r.cmd != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

func (r *redisProc) close() {
	r.kill()
	os.RemoveAll(r.dir)
}

func (r *redisProc) cli(args ...string) error {
	return exec.Command("redis-cli", append([]string{"-p", fmt.Sprint(r.port)}, args...)...).Run()
}

type service struct {
	redis *redisProc
	port  int
	url   string
	extra []string
	cmd   *exec.Cmd
	log   *os.File
}

func startService(t fataler, r *redisProc, extra ...string) *service {
	log, err := os.CreateTemp("", "lockservice-go.*.log")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{redis: r, port: freePort(t), extra: extra, log: log}
	s.url = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.start(t)
	return s
}

func (s *service) start(t fataler) {
	bin := os.Getenv("LOCKSERVICE_BIN")
	if bin == "" {
		bin = "../../lockservice"
	}
	args := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", s.port),
		"--redis", fmt.Sprintf("redis://127.0.0.1:%d", s.redis.port),
		"--redis-timeout-ms", "300", "--shutdown-timeout-ms", "1000"}, s.extra...)
	s.cmd = exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOCKSERVICE_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool { return get(s.url+"/healthz") == 200 }) {
		t.Fatal("lockservice did not start")
	}
}

func get(u string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *service) ready() bool {
	return waitUntil(10*time.Second, func() bool { return get(s.url+"/readyz") == 200 })
}

func (s *service) stop() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
}

func (s *service) close() {
	s.stop()
	s.log.Close()
	os.Remove(s.log.Name())
}

const badGatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
	"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// proxy passes requests on to the service, except the first renewal,
// which gets nginx's HTML 502.
type proxy struct {
	srv        *http.Server
	url        string
	mu         sync.Mutex
	renewals   int
	badGateway int
	// cutFirstAcquire: instead, pass the first acquire on (the service
	// grants it) and close the connection without its answer.
	cutFirstAcquire bool
	acquires        int
	requestIDs      []string
}

func startProxy(t fataler, upstream string) *proxy {
	target, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &proxy{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + l.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/acquire") {
			raw, _ := io.ReadAll(r.Body)
			var b struct {
				RequestID string `json:"request_id"`
			}
			_ = json.Unmarshal(raw, &b)
			p.mu.Lock()
			p.acquires++
			n := p.acquires
			p.requestIDs = append(p.requestIDs, b.RequestID)
			cut := p.cutFirstAcquire && n == 1
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(raw))
			r.ContentLength = int64(len(raw))
			if cut {
				resp, err := http.Post(upstream+r.URL.Path, "application/json", bytes.NewReader(raw))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
					}
				}
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, "/renew") {
			p.mu.Lock()
			p.renewals++
			first := p.renewals == 1
			if first {
				p.badGateway++
			}
			p.mu.Unlock()
			if first {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Server", "nginx")
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprint(w, badGatewayHTML)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	return p
}

func (p *proxy) counts() (renewals, badGateway int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.renewals, p.badGateway
}

func (p *proxy) acquireIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requestIDs...)
}

func (p *proxy) close() { p.srv.Close() }
