// Package redistest starts a real redis-server for tests: one process per
// call, on a free loopback port, in the test's temp directory, with no
// persistence unless asked (--save "" --appendonly no), killed at cleanup.
// It never mocks Redis. If redis-server is not installed the test fails
// (run scripts/install-deps), it never skips.
//
// A Server can be stopped and started again on the same port and directory
// mid-test, to test what a client does while Redis is down and after it
// returns.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configures Start.
type Options struct {
	// Persistent turns on the append-only file with an fsync per write, so
	// what was written before Stop is there again after Start.
	Persistent bool
}

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	dir  string
	port int
	opts Options

	mu     sync.Mutex
	proc   *os.Process
	exited chan error // receives the running process's exit
}

// startAttempts bounds the retries when the free port found is taken by
// another process before redis-server binds it.
const startAttempts = 5

// Start runs a redis-server for the test and stops it at cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redistest: redis-server not found (run scripts/install-deps): %v", err)
	}
	s := &Server{tb: tb, dir: tb.TempDir(), opts: opts}
	var err error
	for range startAttempts {
		if s.port, err = freePort(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("redistest: starting redis-server: %v", err)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL for database db, the form --state takes.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

// Stop kills the server (SIGTERM, so a persistent server writes its file
// first) and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	<-s.exited
	s.proc, s.exited = nil, nil
}

// Restart starts the server again on the same port and directory after
// Stop; the test fails if it cannot.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		s.tb.Fatalf("redistest: Restart of a running server")
	}
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: restarting redis-server: %v", err)
	}
}

// startTimeout bounds how long start waits for the first PONG.
const startTimeout = 10 * time.Second

// start runs redis-server and waits until it answers PING.
func (s *Server) start() error {
	appendOnly := []string{"--appendonly", "no"}
	if s.opts.Persistent {
		appendOnly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--daemonize", "no", "--logfile", "redis.log"}, appendOnly...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, s.logTail())
		default:
		}
		if ping(s.Addr()) == nil {
			s.mu.Lock()
			s.proc, s.exited = cmd.Process, exited
			s.mu.Unlock()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, startTimeout, s.logTail())
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strconv.Quote(line))
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail is the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
