package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// initKeyLine is one line of the admin key `p11kms init` prints.
var initKeyLine = regexp.MustCompile(`(?m)^\s+(AccessKeyId|AccessKeySecret)\s+(\S+)$`)

// env is the run's home (token, access key) and its redis-server.
type env struct {
	o          options
	dir, home  string
	id, secret string
	redisAddr  string
	redis      *exec.Cmd
}

// newEnv initialises a home and starts a redis-server on a free loopback
// port (no persistence: the sustain run does not restart it).
func newEnv(ctx context.Context, o options, dir string) (*env, error) {
	e := &env{o: o, dir: dir, home: filepath.Join(dir, "home")}
	out, err := exec.CommandContext(ctx, o.bin, "--home", e.home, "init").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("p11kms init: %v\n%s", err, out)
	}
	// The file holds the secret sealed; init prints the admin key once.
	for _, m := range initKeyLine.FindAllStringSubmatch(string(out), -1) {
		if m[1] == "AccessKeyId" {
			e.id = m[2]
		} else {
			e.secret = m[2]
		}
	}
	if e.id == "" || e.secret == "" {
		return nil, fmt.Errorf("p11kms init printed no admin key:\n%s", out)
	}
	if e.redisAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(e.redisAddr)
	e.redis = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := e.redis.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (run scripts/install-deps): %w", err)
	}
	return e, waitFor("redis-server", func() bool {
		c, err := net.Dial("tcp", e.redisAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (e *env) close() {
	if e.redis != nil && e.redis.Process != nil {
		e.redis.Process.Signal(syscall.SIGTERM)
		e.redis.Wait()
	}
}

// node is one running serve process.
type node struct {
	addr     string
	cmd      *exec.Cmd
	estimate string // its start-up line about the state
}

// startNode runs serve on a free port and waits for its start-up lines.
func (e *env) startNode(name string, redis bool) (*node, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--home", e.home, "serve", "--listen", addr, "--sweep-interval", "0", "--audit-log", "-",
		"--node-name", name, "--max-rate", strconv.FormatFloat(e.o.maxRate, 'f', -1, 64), "--clock-skew", e.o.clockSkew.String()}
	if redis {
		args = append(args, "--state", "redis://"+e.redisAddr+"/0")
	}
	n := &node{addr: addr, cmd: exec.Command(e.o.bin, args...)}
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "state:") {
			n.estimate = strings.TrimPrefix(line, "p11kms serve: ")
		}
		if strings.Contains(line, "listening on") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return n, waitFor("serve "+name, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
}

// stop sends SIGTERM and waits.
func (n *node) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.cmd.Wait()
}

// rssMiB reads the process's resident set size (VmRSS) in MiB.
func (n *node) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// ceilingMiB is the most serve said at start-up it should hold under load
// ("estimated at most N MiB"); 0 if it did not say.
func (n *node) ceilingMiB() float64 {
	var mib float64
	const at = "estimated at most "
	if i := strings.Index(n.estimate, at); i >= 0 {
		fmt.Sscanf(n.estimate[i+len(at):], "%g MiB", &mib)
	}
	return mib
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitFor polls cond every 20 ms for up to 60 s.
func waitFor(what string, cond func() bool) error {
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 60*time.Second {
			return fmt.Errorf("%s did not start within 60 s", what)
		}
	}
	return nil
}
