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
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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
