package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/p11kms/p11kms/internal/state/redistest"
)

// testCA is a throwaway CA for the mutual-TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issue makes a leaf for cn (a server's for localhost when server).
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

const (
	xksTestID     = "AKIDXKSSERVETEST234567ABCD"
	xksTestSecret = "PleaseReplaceThisWithSomeSecretOfLength43To64"
)

// TestServeXKSMutualTLS runs `p11kms serve --xks` with mutual TLS: a
// client certificate from the client CA with an accepted CN gets signed XKS
// answers (and the KMS dialects' port still serves /healthz); a wrong CN,
// another CA or no certificate fails the handshake with handshake_failure;
// the XKS requests are in the metrics and in the audit log with their
// requestMetadata.
// mtlsServe is a running `p11kms serve --xks` with mutual TLS.
type mtlsServe struct {
	base, audit       string
	clientCA, otherCA *testCA
	roots             *x509.CertPool
	stop              func()
}

// startMTLSServe inits a home with the XKS key foo and an xks.json, makes
// the CAs and starts serve with --tls-client-ca (CN cks.kms.*.amazonaws.com).
func startMTLSServe(t *testing.T) *mtlsServe {
	bin := buildBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	for _, args := range [][]string{{"init"}, {"xks", "create-key", "foo"}} {
		if out, err := exec.Command(bin, append([]string{"--home", home}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	xksJSON := `{"uriPrefix":"tenant-1","credentials":[{"accessKeyId":"` + xksTestID + `","secretAccessKey":"` + xksTestSecret + `"}],"keys":{"foo":{}}}`
	if err := os.WriteFile(filepath.Join(home, "xks.json"), []byte(xksJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	serverCA := newCA(t, "server CA")
	m := &mtlsServe{clientCA: newCA(t, "client CA"), otherCA: newCA(t, "other CA"), roots: x509.NewCertPool(),
		audit: filepath.Join(dir, "audit.log")}
	m.roots.AddCert(serverCA.cert)
	srvCert := serverCA.issue(t, "localhost", true)
	writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", srvCert.Certificate[0])
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvCert.PrivateKey)
	writePEM(t, filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(dir, "client-ca.pem"), "CERTIFICATE", m.clientCA.cert.Raw)
	addr := freePort(t)
	cmd := exec.Command(bin, "--home", home, "serve", "--listen", addr, "--sweep-interval", "0", "--xks", "--audit-log", m.audit,
		"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server.key"),
		"--tls-client-ca", filepath.Join(dir, "client-ca.pem"), "--tls-client-cn", "cks.kms.*.amazonaws.com")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	m.stop = func() {
		if !stopped {
			stopped = true
			stopServe(t, cmd)
		}
	}
	t.Cleanup(m.stop)
	m.base = "https://localhost" + addr[strings.LastIndex(addr, ":"):]
	return m
}

// client presents certs[0] (if any) whatever CAs the server names.
func (m *mtlsServe) client(certs ...tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: m.roots, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if len(certs) == 0 {
			return &tls.Certificate{}, nil
		}
		return &certs[0], nil
	}}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// TestServeXKSMutualTLS runs `p11kms serve --xks` with mutual TLS: a
// client certificate from the client CA with an accepted CN gets signed XKS
// answers (and the KMS dialects' port still serves /healthz); a wrong CN,
// another CA or no certificate fails the handshake with handshake_failure;
// the XKS requests are in the metrics and in the audit log with their
// requestMetadata.
func TestServeXKSMutualTLS(t *testing.T) {
	m := startMTLSServe(t)
	kms := m.client(m.clientCA.issue(t, "cks.kms.eu-west-1.amazonaws.com", false))
	base := m.base
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var resp *http.Response
		if resp, err = kms.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
	}
	if err != nil {
		t.Fatalf("mTLS /healthz: %v", err)
	}
	post := func(c *http.Client, path, body string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: xksTestID, SecretAccessKey: xksTestSecret},
			req, hex.EncodeToString(sum[:]), "kms-xks-proxy", "eu-west-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	health := `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"req-health-1"}}`
	if code, body, err := post(kms, "/tenant-1/kms/xks/v1/health", health); err != nil || code != 200 || !strings.Contains(body, `"ACTIVE"`) {
		t.Fatalf("health: %d %s %v", code, body, err)
	}
	enc := `{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::1:user/A","kmsKeyArn":"arn:k","kmsOperation":"Encrypt","kmsRequestId":"req-enc-1"},` +
		`"plaintext":"SGVsbG8=","encryptionAlgorithm":"AES_GCM"}`
	if code, body, err := post(kms, "/tenant-1/kms/xks/v1/keys/foo/encrypt", enc); err != nil || code != 200 || !strings.Contains(body, `"ciphertext"`) {
		t.Fatalf("encrypt: %d %s %v", code, body, err)
	}
	if code, body, _ := post(kms, "/other/kms/xks/v1/health", health); code != 404 || !strings.Contains(body, "InvalidUriPathException") {
		t.Fatalf("wrong prefix: %d %s", code, body)
	}
	for name, c := range map[string]*http.Client{
		"wrong CN":       m.client(m.clientCA.issue(t, "cks.kms.example.com", false)),
		"other CA":       m.client(m.otherCA.issue(t, "cks.kms.eu-west-1.amazonaws.com", false)),
		"no certificate": m.client(),
	} {
		_, _, err := post(c, "/tenant-1/kms/xks/v1/health", health)
		if err == nil || !strings.Contains(err.Error(), "handshake failure") {
			t.Errorf("%s: %v, want a handshake failure", name, err)
		}
	}
	resp, err := kms.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`p11kms_requests_total{action="GetHealthStatus",api="xks",code="OK"} 1`,
		`p11kms_requests_total{action="Encrypt",api="xks",code="OK"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	m.stop()
	log, _ := os.ReadFile(m.audit)
	for _, want := range []string{`"kmsRequestId":"req-enc-1"`, `"awsPrincipalArn":"arn:aws:iam::1:user/A"`, `"api":"xks"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestXKSFlags: bad XKS and mutual-TLS flags and files are refused before
// the port is bound, naming the flag.
func TestXKSFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"credentials":[{"accessKeyId":"short","secretAccessKey":"x"}]}`), 0o600)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"credentials":[{"accessKeyId":"`+xksTestID+`","secretAccessKey":"`+xksTestSecret+`"}]}`), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tls-client-ca", "ca.pem"}, 2, "--tls-client-ca needs --tls-cert and --tls-key"},
		{[]string{"--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca.pem"}, 2, "--tls-client-ca needs --tls-client-cn"},
		{[]string{"--tls-client-cn", "x"}, 2, "--tls-client-cn needs --tls-client-ca"},
		{[]string{"--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", filepath.Join(dir, "none.pem"), "--tls-client-cn", "x"}, 1, "--tls-client-ca: open"},
		{[]string{"--xks-config", filepath.Join(dir, "missing.json")}, 1, "--xks-config: xks: open"},
		{[]string{"--xks-config", bad}, 1, "credentials[0].accessKeyId: accepted 20 to 30 characters A-Z and 2-7"},
		{[]string{"--xks-config", good, "--xks-prefix", "a b"}, 2, "--xks-prefix: uriPrefix"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)
		_, errOut, code := cli(t, args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("serve %v: status %d, want %d with %q:\n%s", c.args, code, c.code, c.want, errOut)
		}
	}
}

// TestXKSCreateKey: `p11kms xks create-key` makes a non-extractable AES-256
// key with the usage asked for, refuses a label in use and a bad --usage.
func TestXKSCreateKey(t *testing.T) {
	if out, errOut, code := cli(t, "xks", "create-key", "xks-enc-only", "--usage", "encrypt"); code != 0 || !strings.Contains(out, "usage: encrypt") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := cli(t, "xks", "create-key", "xks-enc-only"); code != 1 || !strings.Contains(errOut, "already holds") {
		t.Fatalf("duplicate: %d %s", code, errOut)
	}
	if _, errOut, code := cli(t, "xks", "create-key", "x2", "--usage", "sign"); code != 2 || !strings.Contains(errOut, `--usage "sign": accepted encrypt, decrypt, none`) {
		t.Fatalf("bad usage: %d %s", code, errOut)
	}
	if _, errOut, code := cli(t, "xks", "create-key", "x3", "--usage", "none,encrypt"); code != 2 || !strings.Contains(errOut, "cannot be combined") {
		t.Fatalf("none with encrypt: %d %s", code, errOut)
	}
}

// TestServeXKSReloadsOnHUP rotates the SigV4 credentials of a running
// serve: after the file lists only a new credential and serve gets SIGHUP,
// the new one is accepted and the old one refused (a broken file is
// refused by Handler.Reload: TestReloadRefusesABrokenFile).
func TestServeXKSReloadsOnHUP(t *testing.T) {
	bin := buildBinary(t)
	home := filepath.Join(t.TempDir(), "home")
	if out, err := exec.Command(bin, "--home", home, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	const newID, newSecret = "AKIDXKSROTATEDKEY234567ABC", "AnotherSecretOfFortyThreeCharactersOrMore12345"
	write := func(id, secret string) {
		t.Helper()
		j := `{"credentials":[{"accessKeyId":"` + id + `","secretAccessKey":"` + secret + `"}]}`
		if err := os.WriteFile(filepath.Join(home, "xks.json"), []byte(j), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(xksTestID, xksTestSecret)
	addr := freePort(t)
	cmd := startServe(t, bin, home, addr, "--xks", "--audit-log", "-")
	defer stopServe(t, cmd)
	health := func(id, secret string) int {
		body := `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"` + rand.Text() + `"}}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/kms/xks/v1/health", strings.NewReader(body))
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), "kms-xks-proxy", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := health(xksTestID, xksTestSecret); c != 200 {
		t.Fatalf("old credential before the reload: %d", c)
	}
	write(newID, newSecret)
	cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); health(newID, newSecret) != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new credential was never accepted after SIGHUP")
		}
	}
	if c := health(xksTestID, xksTestSecret); c != 401 {
		t.Fatalf("old credential after the reload: %d, want 401", c)
	}
}

// xksSigned is one signed XKS request, sent as it is (a replay when sent
// again, to any node).
type xksSigned struct {
	req  *http.Request
	body string
}

// xksNoReuse opens a new connection for every request, so that with
// --processes each request may land on any process.
var xksNoReuse = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// signXKS signs body for path on host with aws-sdk-go-v2's SigV4 signer.
func signXKS(t *testing.T, host, path, body, id, secret string) xksSigned {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+host+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), "kms-xks-proxy", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return xksSigned{req, body}
}

// xksHealthBody is a GetHealthStatus body, unique per call.
func xksHealthBody() string {
	return `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"` + rand.Text() + `"}}`
}

// xksHealth signs a fresh health request for addr.
func xksHealth(t *testing.T, addr, id, secret string) xksSigned {
	return signXKS(t, addr, "/kms/xks/v1/health", xksHealthBody(), id, secret)
}

// sendTo sends the request unchanged (its Host is the node it was signed
// for) to addr on a new connection: the HTTP status and the body.
func (s xksSigned) sendTo(t *testing.T, addr string) (int, string) {
	t.Helper()
	r := s.req.Clone(t.Context())
	r.URL.Host = addr
	r.Body = io.NopCloser(strings.NewReader(s.body))
	resp, err := xksNoReuse.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// xksHome is an initialised home with the XKS key foo and an xks.json
// listing it and the credentials (id → secret), in plaintext as written
// by hand (serve seals them).
func xksHome(t *testing.T, bin string, creds map[string]string) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	for _, args := range [][]string{{"init"}, {"xks", "create-key", "foo"}} {
		if out, err := exec.Command(bin, append([]string{"--home", home}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	var list []string
	for id, secret := range creds {
		list = append(list, `{"accessKeyId":"`+id+`","secretAccessKey":"`+secret+`"}`)
	}
	j := `{"credentials":[` + strings.Join(list, ",") + `],"keys":{"foo":{}}}`
	if err := os.WriteFile(filepath.Join(home, "xks.json"), []byte(j), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// startXKSNode runs `p11kms serve --xks` with stdout and stderr (the JSON
// log, of every process) collected, and waits until /healthz answers.
// Without --audit-dir in extra it audits nothing (--audit-log -).
func startXKSNode(t *testing.T, bin, home, addr string, extra ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	if !slices.Contains(extra, "--audit-dir") {
		extra = append(extra, "--audit-log", "-")
	}
	cmd := exec.Command(bin, append([]string{"--home", home, "serve", "--listen", addr, "--sweep-interval", "0", "--xks"}, extra...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // not stopped by the test
			stopServe(t, cmd)
		}
	})
	waitUntil(t, "serve on "+addr+" answers /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return cmd, out
}

// The attack of issue 17 finding 12 on xks.json: whoever reads the file
// signs XKS requests with what it holds. A plaintext secret written by hand
// is sealed by serve's first load (and logged); `p11kms xks credential
// create` writes it sealed; what the file then holds signs nothing, while
// the secret itself still does.
func TestXKSSecretsSealedAtRest(t *testing.T) {
	bin := buildBinary(t)
	home := xksHome(t, bin, map[string]string{xksTestID: xksTestSecret})
	addr := freePort(t)
	cmd, out := startXKSNode(t, bin, home, addr)
	file := filepath.Join(home, "xks.json")
	attack := func(honestID, honestSecret string) {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), honestSecret) {
			t.Errorf("xks.json holds the secret of %s in plaintext:\n%s", honestID, b)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Errorf("xks.json mode %v, want 0600", fi.Mode().Perm())
		}
		var f struct{ Credentials []map[string]string }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		for _, c := range f.Credentials {
			for field, v := range c {
				if field == "accessKeyId" {
					continue
				}
				if code, body := xksHealth(t, addr, c["accessKeyId"], v).sendTo(t, addr); code != 401 || !strings.Contains(body, "AuthenticationFailedException") {
					t.Errorf("signed with %s of %s as read from xks.json: %d %s, want 401", field, c["accessKeyId"], code, body)
				}
			}
		}
		if code, body := xksHealth(t, addr, honestID, honestSecret).sendTo(t, addr); code != 200 {
			t.Errorf("the honest client %s: %d %s", honestID, code, body)
		}
	}
	attack(xksTestID, xksTestSecret)
	if want := "plaintext SigV4 secrets in the file are now sealed"; !strings.Contains(out.String(), want) {
		t.Errorf("serve's log does not say it sealed the file (%q):\n%s", want, out)
	}
	created, err := exec.Command(bin, "--home", home, "xks", "credential", "create").Output()
	if err != nil {
		t.Fatalf("xks credential create: %v", err)
	}
	var c struct{ AccessKeyID, SecretAccessKey string }
	if err := json.Unmarshal(created, &c); err != nil || c.SecretAccessKey == "" {
		t.Fatalf("xks credential create printed %s: %v", created, err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the created credential accepted after SIGHUP", func() bool {
		code, _ := xksHealth(t, addr, c.AccessKeyID, c.SecretAccessKey).sendTo(t, addr)
		return code == 200
	})
	attack(c.AccessKeyID, c.SecretAccessKey)
}

// XKS shares the node's state: with --state redis:// a signed XKS request
// accepted by one node is refused as a replay by the other, either way
// round, and --rate is one limit per credential across both nodes. Each
// node audits its XKS requests in its own log of the shared --audit-dir,
// and `audit verify DIR` checks both, one report per node.
func TestXKSTwoNodesShareReplayMemoryAndRate(t *testing.T) {
	const limitedID, limitedSecret = "AKIDXKSRATELIMITED234567AB", "YetAnotherSecretOfFortyThreeCharactersOrMore12"
	bin := buildBinary(t)
	redis := redistest.Start(t, redistest.Options{})
	home := xksHome(t, bin, map[string]string{xksTestID: xksTestSecret, limitedID: limitedSecret})
	a, b := freePort(t), freePort(t)
	auditDir := t.TempDir()
	common := []string{"--state", redis.URL(2), "--rate", "0.001", "--burst", "3", "--audit-dir", auditDir}
	nodeA, _ := startXKSNode(t, bin, home, a, append([]string{"--node-name", "a"}, common...)...)
	nodeB, _ := startXKSNode(t, bin, home, b, append([]string{"--node-name", "b"}, common...)...)
	for _, first := range []string{a, b} {
		other := map[string]string{a: b, b: a}[first]
		r := xksHealth(t, first, xksTestID, xksTestSecret)
		if code, body := r.sendTo(t, first); code != 200 {
			t.Fatalf("to %s: %d %s", first, code, body)
		}
		if code, body := r.sendTo(t, other); code != 401 || !strings.Contains(body, "already received") {
			t.Fatalf("replayed to the other node %s: %d %s, want 401 already received", other, code, body)
		}
	}
	accepted, throttled := 0, 0
	for i := range 8 {
		node := []string{a, b}[i%2]
		switch code, body := xksHealth(t, node, limitedID, limitedSecret).sendTo(t, node); {
		case code == 200:
			accepted++
		case code == 429 && strings.Contains(body, "ThrottlingException"):
			throttled++
		default:
			t.Fatalf("%s: %d %s", node, code, body)
		}
	}
	if accepted != 3 || throttled != 5 {
		t.Fatalf("--rate 0.001 --burst 3 on two nodes: %d accepted, %d throttled; want 3 and 5 (one limit across the nodes)", accepted, throttled)
	}
	stopServe(t, nodeA)
	stopServe(t, nodeB)
	out, err := exec.Command(bin, "--home", home, "audit", "verify", auditDir).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	for _, node := range []string{"a", "b"} {
		if want := "node " + node + " (audit-" + node + ".log): "; !strings.Contains(string(out), want) ||
			strings.Count(string(out), "chain intact") != 2 || strings.Count(string(out), "closed cleanly") != 2 {
			t.Fatalf("audit verify does not report node %s intact and closed:\n%s", node, out)
		}
		log, _ := os.ReadFile(filepath.Join(auditDir, "audit-"+node+".log"))
		if !strings.Contains(string(log), `"api":"xks"`) || !strings.Contains(string(log), `"kmsOperation":"KmsHealthCheck"`) {
			t.Errorf("node %s's audit log lacks its XKS requests", node)
		}
	}
}

// In process (no --state) XKS's replay memory is the node's bounded one,
// sized by --max-rate: a credential flooding it is throttled, and another
// credential is still served.
func TestXKSReplayFloodThrottlesOnlyTheFlooder(t *testing.T) {
	const otherID, otherSecret = "AKIDXKSOTHERCREDENTIAL2345", "YetAnotherSecretOfFortyThreeCharactersOrMore12"
	bin := buildBinary(t)
	home := xksHome(t, bin, map[string]string{xksTestID: xksTestSecret, otherID: otherSecret})
	addr := freePort(t)
	_, out := startXKSNode(t, bin, home, addr, "--max-rate", "0.1")
	if want := "(30m0s × 0.1/s)"; !strings.Contains(out.String(), want) {
		t.Fatalf("serve's start-up output lacks %q:\n%s", want, out)
	}
	throttledAfter := 0
	for i := 1; i <= 400 && throttledAfter == 0; i++ {
		code, body := xksHealth(t, addr, xksTestID, xksTestSecret).sendTo(t, addr)
		switch {
		case code == 429 && strings.Contains(body, "over its share of the replay memory"):
			throttledAfter = i
		case code != 200:
			t.Fatalf("flooding request %d: %d %s", i, code, body)
		}
	}
	if throttledAfter == 0 {
		t.Fatal("400 requests of one credential were all remembered: the replay memory is not the node's, sized by --max-rate 0.1 (capacity 180)")
	}
	t.Logf("the flooder was throttled at request %d", throttledAfter)
	if code, body := xksHealth(t, addr, otherID, otherSecret).sendTo(t, addr); code != 200 {
		t.Fatalf("the other credential while one floods: %d %s", code, body)
	}
}

// `kill -HUP` of `serve --processes 2 --xks` reloads the XKS configuration
// in both processes: after `xks credential create`, `credential delete` of
// the old one and `xks disable-key foo`, every request (each on a new
// connection, so on either process) takes the new credential, refuses the
// old and sees foo DISABLED. With --clock-skew 1s the replay memory still
// covers XKS's 10-minute window: a request is served once, not refused as
// "replay memory unavailable".
func TestXKSSIGHUPReachesEveryProcess(t *testing.T) {
	bin := buildBinary(t)
	home := xksHome(t, bin, map[string]string{xksTestID: xksTestSecret})
	addr := freePort(t)
	cmd, out := startXKSNode(t, bin, home, addr, "--processes", "2", "--clock-skew", "1s")
	waitUntil(t, "both processes serving", func() bool { return strings.Count(out.String(), `"msg":"serving"`) == 2 })
	r := xksHealth(t, addr, xksTestID, xksTestSecret)
	if code, body := r.sendTo(t, addr); code != 200 {
		t.Fatalf("with --clock-skew 1s: %d %s", code, body)
	}
	created, err := exec.Command(bin, "--home", home, "xks", "credential", "create").Output()
	if err != nil {
		t.Fatalf("xks credential create: %v", err)
	}
	var c struct{ AccessKeyID, SecretAccessKey string }
	if err := json.Unmarshal(created, &c); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"xks", "credential", "delete", xksTestID}, {"xks", "disable-key", "foo"}} {
		if o, err := exec.Command(bin, append([]string{"--home", home}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, o)
		}
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "both processes reloaded", func() bool { return strings.Count(out.String(), "XKS configuration reloaded") == 2 })
	metadata := `{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::1:user/A","kmsOperation":"DescribeKey","kmsRequestId":"`
	for i := range 24 {
		if code, body := xksHealth(t, addr, c.AccessKeyID, c.SecretAccessKey).sendTo(t, addr); code != 200 {
			t.Fatalf("request %d with the new credential: %d %s", i, code, body)
		}
		if code, _ := xksHealth(t, addr, xksTestID, xksTestSecret).sendTo(t, addr); code != 401 {
			t.Fatalf("request %d with the deleted credential: %d, want 401", i, code)
		}
		r := signXKS(t, addr, "/kms/xks/v1/keys/foo/metadata", metadata+rand.Text()+`"}}`, c.AccessKeyID, c.SecretAccessKey)
		if code, body := r.sendTo(t, addr); code != 200 || !strings.Contains(body, `"keyStatus":"DISABLED"`) {
			t.Fatalf("request %d, foo's metadata: %d %s", i, code, body)
		}
	}
}
