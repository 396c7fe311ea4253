package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// buildBinary builds p11kms once for the tests that run it as processes.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "p11kms")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs `p11kms serve` and waits until /healthz answers.
func startServe(t *testing.T, bin, home, addr string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home, "serve", "--listen", addr, "--sweep-interval", "0"}, extra...)...)
	cmd.Env = append(os.Environ(), "P11KMS_HOME="+home)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				t.Logf("serve: %s", sc.Text())
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("serve on %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd
}

// initHome runs `p11kms init` for home and returns its one access key.
func initHome(t *testing.T, bin, home string) (id, secret string) {
	t.Helper()
	out, err := exec.Command(bin, "--home", home, "init").CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	return initPrintedKey(t, string(out)) // the file holds the secret sealed
}

func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Error("serve did not stop on SIGTERM")
	}
}

// Two serve processes on one token are interchangeable: a key created
// through one is used through the other; --processes 2 shares one port.
func TestTwoServeProcessesOneToken(t *testing.T) {
	bin := buildBinary(t)
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "p11kms-serve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "home")
	id, secret := initHome(t, bin, home)
	seed := filepath.Join(dir, "seed.yaml")
	os.WriteFile(seed, []byte("keys:\n  - keyId: key-seeded-0001\n    aliases: [alias/seeded]\n"), 0o600)
	addrA, addrB := freePort(t), freePort(t)
	a := startServe(t, bin, home, addrA, "--seed", seed)
	bProc := startServe(t, bin, home, addrB, "--seed", seed)
	client := func(addr string) *alikms.Client {
		c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
			RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, cb := client(addrA), client(addrB)
	ck, err := ca.CreateKey(&alikms.CreateKeyRequest{Description: tea.String("via A")})
	if err != nil {
		t.Fatal(err)
	}
	keyID := ck.Body.KeyMetadata.KeyId
	g, err := cb.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: keyID})
	if err != nil {
		t.Fatalf("key created through A, used through B: %v", err)
	}
	d, err := ca.Decrypt(&alikms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob})
	if err != nil || tea.StringValue(d.Body.Plaintext) != tea.StringValue(g.Body.Plaintext) {
		t.Fatalf("blob from B decrypted through A: %v", err)
	}
	// The seed (applied by both, idempotently) is usable through either.
	if _, err := cb.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: tea.String("alias/seeded")}); err != nil {
		t.Fatalf("seeded alias: %v", err)
	}
	stopServe(t, a)
	stopServe(t, bProc)
	// --processes 2: two processes accept on one port.
	addr := freePort(t)
	multi := startServe(t, bin, home, addr, "--processes", "2")
	cm := client(addr)
	for i := 0; i < 20; i++ {
		if _, err := cm.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: keyID}); err != nil {
			t.Fatalf("--processes 2, request %d: %v", i, err)
		}
	}
	stopServe(t, multi)
	// Every request left a line, and the chain (written by several processes) holds.
	out, err := exec.Command(bin, "--home", home, "audit", "verify", auditLogFile(home)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chain intact") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	var lines int
	fmt.Sscanf(strings.SplitN(string(out), ": ", 2)[1], "%d", &lines)
	if lines < 24 {
		t.Fatalf("only %d audit lines", lines)
	}
	_ = io.Discard
}

// serve --tls-cert/--tls-key serves HTTPS; a plain-HTTP client is refused.
func TestServeTLS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if out, err := exec.Command(bin, "--home", home, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "--home", home, "serve", "--listen", addr, "--sweep-interval", "0", "--tls-cert", cert, "--tls-key", key)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stopServe(t, cmd)
	pemBytes, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err = client.Get("https://" + addr + "/healthz"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https /healthz: %d tls=%v", resp.StatusCode, resp.TLS != nil)
	}
	if r, err := http.Get("http://" + addr + "/healthz"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

// totalCount runs a listing action of `p11kms kms` and returns its TotalCount.
func totalCount(t *testing.T, action string) int {
	t.Helper()
	out, errOut, code := cli(t, "kms", action, "--PageSize", "100")
	var resp struct{ TotalCount int }
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil {
		t.Fatalf("kms %s: %d %s%s", action, code, out, errOut)
	}
	return resp.TotalCount
}

// A serve with a seed on a busy port exits with the bind error and writes
// nothing to the token: it used to apply the seed (and create the media
// key) first, then fail to bind.
func TestServeSeedOnBusyPortWritesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	seedFile := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seedFile, []byte("keys:\n  - keyId: key-busy-port-0001\n    aliases: [alias/busy-port]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, aliases := totalCount(t, "ListKeys"), totalCount(t, "ListAliases")
	_, errOut, code := cli(t, "serve", "--listen", busy.Addr().String(), "--seed", seedFile, "--sweep-interval", "0", "--audit-log", "-")
	if code != 1 || !strings.Contains(errOut, "address already in use") || strings.Contains(errOut, "seed applied") {
		t.Fatalf("serve on a busy port: status %d\n%s", code, errOut)
	}
	if k, a := totalCount(t, "ListKeys"), totalCount(t, "ListAliases"); k != keys || a != aliases {
		t.Fatalf("after serve on a busy port: %d keys and %d aliases, %d and %d before", k, a, keys, aliases)
	}
	if _, errOut, _ := cli(t, "kms", "DescribeKey", "--KeyId", "key-busy-port-0001"); !strings.Contains(errOut, "Forbidden.KeyNotFound") {
		t.Fatalf("the seeded key exists: %s", errOut)
	}
}

// serve checks its flags and its seed file before it opens the token (here
// one that does not exist), with a usage error naming the flag.
func TestServeChecksFlagsBeforeOpeningTheToken(t *testing.T) {
	badSeed := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(badSeed, []byte("keys:\n  - keyId: key-a\n    state: Frozen\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--processes", "0"}, 2, "--processes 0: accepted 1 to 256"},
		{[]string{"--processes", "257"}, 2, "--processes 257: accepted 1 to 256"},
		{[]string{"--tls-cert", "c.pem"}, 2, "--tls-cert and --tls-key go together"},
		{[]string{"--rate", "-1"}, 2, "--rate -1: accepted 0 (unlimited) or more"},
		{[]string{"--burst", "-1"}, 2, "--burst -1: accepted 0"},
		{[]string{"--max-body", "0"}, 2, "--max-body 0: accepted 1 or more"},
		{[]string{"--expected-host", "https://kms.example.com/"}, 2, `--expected-host "https://kms.example.com/": accepted a host name or host:port`},
		{[]string{"--read-timeout", "-1s"}, 2, "--read-timeout -1s: accepted 0 or more"},
		{[]string{"--shutdown-timeout", "-1s"}, 2, "--shutdown-timeout -1s: accepted 0 or more"},
		{[]string{"--max-rate", "0"}, 2, "--max-rate 0: accepted a positive number of requests per second"},
		{[]string{"--clock-skew", "10ms"}, 2, "--clock-skew 10ms: accepted 0 (each API's own) or 1s to 1h"},
		{[]string{"--state", "http://127.0.0.1:6379/0"}, 2, `--state: scheme "http" is not supported; the accepted form is redis://`},
		{[]string{"--state", "redis://:hunter2@/0"}, 2, "the accepted form is redis://"},
		{[]string{"--seed", badSeed}, 1, `--seed ` + badSeed + `: InvalidParameter: seed: keys[0] (keyId key-a): state: "Frozen"`},
	} {
		args := append([]string{"--token", "pkcs11:token=no-such-token", "serve", "--listen", "127.0.0.1:0"}, c.args...)
		_, errOut, code := cli(t, args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("serve %v: status %d, want %d with %q:\n%s", c.args, code, c.code, c.want, errOut)
		}
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("serve %v: the --state password is echoed:\n%s", c.args, errOut)
		}
	}
}
