package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/bench"
	"github.com/p11kms/p11kms/internal/state/redistest"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode runs `p11kms serve` with its stdout collected and waits until
// /healthz answers; it is stopped (SIGTERM) at cleanup.
func startNode(t *testing.T, bin, home, addr string, extra ...string) *lockedBuffer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "serve", "--listen", addr, "--sweep-interval", "0"}, extra...)...)
	cmd.Env = append(os.Environ(), "P11KMS_HOME="+home)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServe(t, cmd) })
	waitUntil(t, "serve on "+addr+" answers /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return out
}

// waitUntil polls cond every 20 ms; 60 s is a hang guard, not a claim.
func waitUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s: not after 60 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// newHome initialises a home (token and admin access key) and returns it
// with the admin key.
func newHome(t *testing.T, bin string) (home, id, secret string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "home")
	id, secret = initHome(t, bin, home)
	return home, id, secret
}

// signed is one signed request, sent as it is (a replay when sent again).
type signed struct {
	req  *http.Request
	body []byte
}

// sign signs ListKeys for the node at host with a fresh nonce.
func sign(t *testing.T, scheme bench.Signature, host, id, secret string) signed {
	t.Helper()
	s := bench.Signer{Scheme: scheme, Host: host, AccessKeyId: id, AccessKeySecret: secret}
	req, err := s.Sign("ListKeys", map[string]string{}, time.Now(), bench.NewNonce())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return signed{req, body}
}

// sendTo sends the request, unchanged (its Host header is the node it was
// signed for), to the node at addr, and returns the answer's error code
// ("" on success) and HTTP status.
func (s signed) sendTo(t *testing.T, addr string) (string, int) {
	t.Helper()
	r := s.req.Clone(s.req.Context())
	r.URL.Host = addr
	r.Body = io.NopCloser(bytes.NewReader(s.body))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Code     string
		Response struct{ Error struct{ Code string } } // Tencent's, with HTTP 200
	}
	if err := json.Unmarshal(b, &e); err != nil || (resp.StatusCode != http.StatusOK && e.Code == "") {
		t.Fatalf("HTTP %d without a code: %.200s", resp.StatusCode, b)
	}
	return e.Code + e.Response.Error.Code, resp.StatusCode
}

// readyz returns /readyz's status.
func readyz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// In process (no --state), serve says at start-up how much memory the
// replay store holds, sized from the window and --max-rate.
func TestServePrintsReplayMemory(t *testing.T) {
	bin := buildBinary(t)
	home, _, _ := newHome(t, bin)
	out := startNode(t, bin, home, freePort(t), "--max-rate", "200", "--node-name", "solo")
	waitUntil(t, "the start-up line", func() bool { return strings.Contains(out.String(), "listening on") })
	if want := "state: in process; replay memory 10 MiB for 360000 requests (30m0s × 200/s)"; !strings.Contains(out.String(), want) {
		t.Fatalf("serve's start-up output lacks %q:\n%s", want, out)
	}
}

// twoNodes is two serve processes sharing one token and one Redis (with
// persistence, so the nonces survive a Redis restart). Node B reads its
// own copy of the access-keys file, as a second host would.
type twoNodes struct {
	bin, home, id, secret string
	a, b                  string // host:port
	fileA, fileB          string // access-keys files
	redis                 *redistest.Server
}

func startTwoNodes(t *testing.T, extra ...string) *twoNodes {
	t.Helper()
	n := &twoNodes{bin: buildBinary(t), redis: redistest.Start(t, redistest.Options{Persistent: true})}
	n.home, n.id, n.secret = newHome(t, n.bin)
	n.fileA = filepath.Join(n.home, "access-keys.json")
	n.fileB = filepath.Join(t.TempDir(), "access-keys-b.json")
	b, err := os.ReadFile(n.fileA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.fileB, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n.a, n.b = freePort(t), freePort(t)
	common := append([]string{"--state", n.redis.URL(1)}, extra...)
	outA := startNode(t, n.bin, n.home, n.a, append([]string{"--node-name", "a", "--access-keys", n.fileA}, common...)...)
	startNode(t, n.bin, n.home, n.b, append([]string{"--node-name", "b", "--access-keys", n.fileB}, common...)...)
	waitUntil(t, "node a's start-up line", func() bool { return strings.Contains(outA.String(), "listening on") })
	if want := "state: shared on Redis redis://127.0.0.1:"; !strings.Contains(outA.String(), want) {
		t.Fatalf("serve --state output lacks %q:\n%s", want, outA)
	}
	return n
}

// A request accepted by one node is refused as a replay by the other, for
// both Alibaba signatures; the access key deleted through one host (with
// --state) stops working on the other, whose own file still lists it.
func TestTwoNodesShareReplayMemoryAndRevocations(t *testing.T) {
	n := startTwoNodes(t)
	for _, scheme := range []bench.Signature{bench.SignatureACS3, bench.SignatureRPC} {
		for _, first := range []string{n.a, n.b} {
			other := map[string]string{n.a: n.b, n.b: n.a}[first]
			r := sign(t, scheme, first, n.id, n.secret)
			if code, status := r.sendTo(t, first); code != "" {
				t.Fatalf("%s to %s: %s (HTTP %d)", scheme, first, code, status)
			}
			if code, status := r.sendTo(t, other); code != "SignatureNonceUsed" || status != http.StatusBadRequest {
				t.Fatalf("%s replayed to the other node: %q (HTTP %d), want SignatureNonceUsed", scheme, code, status)
			}
		}
	}
	out, err := exec.Command(n.bin, "--home", n.home, "accesskey", "create", "--access-keys", n.fileA, "--state", n.redis.URL(1)).Output()
	if err != nil {
		t.Fatalf("accesskey create: %v\n%s", err, out)
	}
	var k struct{ AccessKeyId, AccessKeySecret string }
	if err := json.Unmarshal(out, &k); err != nil {
		t.Fatalf("accesskey create output: %v\n%s", err, out)
	}
	// Node A reloads its file on the announcement; B's file lacks the key.
	waitUntil(t, "the new key works on node a", func() bool {
		code, _ := sign(t, bench.SignatureACS3, n.a, k.AccessKeyId, k.AccessKeySecret).sendTo(t, n.a)
		return code == ""
	})
	if code, _ := sign(t, bench.SignatureACS3, n.b, n.id, n.secret).sendTo(t, n.b); code != "" {
		t.Fatalf("admin key on node b before the delete: %q", code)
	}
	out, err = exec.Command(n.bin, "--home", n.home, "accesskey", "delete", "--access-keys", n.fileA, "--state", n.redis.URL(1), n.id).CombinedOutput()
	if err != nil {
		t.Fatalf("accesskey delete: %v\n%s", err, out)
	}
	deleted := time.Now()
	for _, node := range []string{n.a, n.b} {
		took := waitUntil(t, "the deleted key refused on "+node, func() bool {
			code, _ := sign(t, bench.SignatureACS3, node, n.id, n.secret).sendTo(t, node)
			return code == "InvalidAccessKeyId.NotFound"
		})
		t.Logf("deleted key refused on %s %v after the delete (%v after the command returned)", node, time.Since(deleted), took)
	}
	if b, _ := os.ReadFile(n.fileB); !strings.Contains(string(b), n.id) {
		t.Fatal("node b's own file was changed: the test no longer shows the revocation reaching another host")
	}
}

// --rate holds across both nodes: one GCRA per access key on Redis, not
// one token bucket per process (which allowed twice the rate).
func TestTwoNodesShareTheRateLimit(t *testing.T) {
	const rate, burst = 40, 4
	n := startTwoNodes(t, "--rate", "40", "--burst", "4")
	var mu sync.Mutex
	accepted, throttled := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		node := []string{n.a, n.b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 4*time.Second {
				code, _ := sign(t, bench.SignatureACS3, node, n.id, n.secret).sendTo(t, node)
				mu.Lock()
				switch code {
				case "":
					accepted++
				case "Rejected.Throttling":
					throttled++
				default:
					t.Errorf("%s: %q", node, code)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	want := rate*elapsed.Seconds() + burst
	t.Logf("%d accepted, %d throttled in %v across two nodes; the limit allows %.0f", accepted, throttled, elapsed, want)
	if throttled < accepted {
		t.Fatalf("the clients sent only %d beyond the limit: not enough load to test it", throttled)
	}
	if f := float64(accepted); f > want*1.1 || f < want*0.9 {
		t.Fatalf("%d accepted across two nodes, want %.0f ± 10%%", accepted, want)
	}
}

// Redis stopped mid-run: both nodes fail closed (HTTP 503
// ServiceUnavailable, Tencent ServiceUnavailable) and /readyz says not
// ready; restarted: service resumes by itself, and nothing accepted
// before, or refused while it was down, is accepted twice.
func TestTwoNodesFailClosedWhileRedisIsDown(t *testing.T) {
	n := startTwoNodes(t, "--rate", "1000") // the shared limiter fails closed too
	var accepted []signed
	send := func(r signed, node string) string {
		code, _ := r.sendTo(t, node)
		if code == "" {
			accepted = append(accepted, r)
		}
		return code
	}
	for i := range 6 {
		node := []string{n.a, n.b}[i%2]
		if code := send(sign(t, bench.SignatureACS3, node, n.id, n.secret), node); code != "" {
			t.Fatalf("before the stop: %q", code)
		}
	}
	n.redis.Stop()
	var refused []signed
	for _, node := range []string{n.a, n.b} {
		for _, scheme := range []bench.Signature{bench.SignatureACS3, bench.SignatureRPC, bench.SignatureTC3} {
			r := sign(t, scheme, node, n.id, n.secret)
			if code, status := r.sendTo(t, node); code != "ServiceUnavailable" || (scheme != bench.SignatureTC3 && status != http.StatusServiceUnavailable) {
				t.Fatalf("%s to %s with Redis down: %q (HTTP %d), want ServiceUnavailable", scheme, node, code, status)
			}
			refused = append(refused, r)
		}
		if got := readyz(t, node); got != http.StatusServiceUnavailable {
			t.Fatalf("/readyz on %s with Redis down: %d, want 503", node, got)
		}
	}
	n.redis.Restart()
	for _, node := range []string{n.a, n.b} {
		waitUntil(t, "service on "+node+" after Redis returned", func() bool {
			return send(sign(t, bench.SignatureACS3, node, n.id, n.secret), node) == ""
		})
		if got := readyz(t, node); got != http.StatusOK {
			t.Fatalf("/readyz on %s after Redis returned: %d", node, got)
		}
	}
	// What was refused while Redis was down was never accepted: it may be
	// accepted once now (Alibaba; a TC3 repeat is an honest one), not twice.
	for i, r := range refused {
		node := []string{n.a, n.b}[i/3]
		if code := send(r, node); code != "" {
			t.Fatalf("request refused while Redis was down, sent after: %q", code)
		}
		if r.req.Header.Get("Authorization") != "" && strings.HasPrefix(r.req.Header.Get("Authorization"), "TC3-") {
			accepted = accepted[:len(accepted)-1]
		}
	}
	for _, r := range accepted {
		for _, node := range []string{n.a, n.b} {
			if code, _ := r.sendTo(t, node); code != "SignatureNonceUsed" {
				t.Fatalf("a request accepted before was sent again to %s after the Redis restart: %q, want SignatureNonceUsed", node, code)
			}
		}
	}
}

// accesskey delete --state revokes on Redis before it changes the file: with
// Redis down the key stays (and the command can be run again); a bad
// --state URL is a usage error, before anything is written.
func TestAccessKeyDeleteWithStateDownChangesNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ak.json")
	out, errOut, code := cli(t, "accesskey", "create", "--access-keys", file)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	id := jsonOut(t, out)["AccessKeyId"].(string)
	down := "redis://" + freePort(t) + "/0"
	if _, errOut, code := cli(t, "accesskey", "delete", "--access-keys", file, "--state", down, id); code != 1 ||
		!strings.Contains(errOut, "not deleted: the other nodes could not be told") {
		t.Fatalf("delete with Redis down: %d %s", code, errOut)
	}
	if _, errOut, code := cli(t, "accesskey", "delete", "--access-keys", file, "--state", "http://x/0", id); code != 2 ||
		!strings.Contains(errOut, `--state: scheme "http" is not supported`) {
		t.Fatalf("delete with a bad --state: %d %s", code, errOut)
	}
	if out, _, _ := cli(t, "accesskey", "list", "--access-keys", file); !strings.Contains(out, id) {
		t.Fatalf("the key is gone from the file after failed deletes:\n%s", out)
	}
}
