package awskms_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/p11kms/p11kms/internal/seed"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/awskms"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// TestAuditAndMetrics: each AWS request leaves one audit line and one
// count, under api "aws", with the action, the key id used (an alias
// resolved), the RequestId the SDK saw and AWS's error name; what an
// unauthenticated caller sends names no action and no series.
func TestAuditAndMetrics(t *testing.T) {
	tok := softhsmtest.New(t)
	svc := provider.New(tok.Token, provider.Options{Region: region, Account: account})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(logPath, func(err error) { t.Errorf("audit: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(server.New(server.Config{KMS: svc, Keys: keys, Audit: log}))
	defer srv.Close()
	e := &env{srv: srv, kms: svc, obs: &recorder{}, clock: &clock{}}
	c := e.admin()

	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	must[*kms.CreateAliasOutput](t, "CreateAlias")(c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/audited"), TargetKeyId: id}))
	enc := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: aws.String("alias/audited"), Plaintext: []byte("x")}))
	reqID, _ := awsmiddleware.GetRequestIDMetadata(enc.ResultMetadata)
	_, err = c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("alias/missing")})
	wantErr(t, "DescribeKey of a missing alias", err, "NotFoundException", 404)
	for i := 0; i < 3; i++ {
		_, err = e.client(accessID, "wrong", withTarget("TrentService.Attacker"+strings.Repeat("x", i))).ListKeys(ctx(), &kms.ListKeysInput{})
		wantErr(t, "bad signature", err, "InvalidSignatureException", 400)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	lines := readAudit(t, logPath)
	if len(lines) != 7 {
		t.Fatalf("%d audit lines, want 7", len(lines))
	}
	encLine := lines[2]
	if encLine.API != "aws" || encLine.Action != "Encrypt" || encLine.KeyId != aws.ToString(id) || encLine.KeyVersionId == "" ||
		encLine.RequestId != reqID || reqID == "" || encLine.AccessKeyId != accessID || encLine.HTTPStatus != 200 {
		t.Fatalf("Encrypt's audit line: %+v (SDK RequestId %q)", encLine, reqID)
	}
	if l := lines[3]; l.Action != "DescribeKey" || l.Code != "NotFoundException" || l.HTTPStatus != 404 {
		t.Fatalf("DescribeKey's audit line: %+v", l)
	}
	for _, l := range lines[4:] {
		if l.Action != "" || l.Code != "InvalidSignatureException" || l.AccessKeyId != accessID {
			t.Fatalf("a refused signature's audit line: %+v", l)
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{
		`p11kms_requests_total{action="Encrypt",api="aws",code="OK"} 1`,
		`p11kms_requests_total{action="DescribeKey",api="aws",code="NotFoundException"} 1`,
		`p11kms_requests_total{action="",api="aws",code="InvalidSignatureException"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "Attacker") {
		t.Fatal("an unauthenticated X-Amz-Target made a metric series")
	}
}

func readAudit(t *testing.T, path string) []audit.Line {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l audit.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if l.Kind == "" {
			out = append(out, l)
		}
	}
	return out
}

// TestSeededKeys: keys and aliases of the seeded test mode (fixed UUIDs)
// are reachable by their fixed ids, ARNs and aliases through the SDK.
func TestSeededKeys(t *testing.T) {
	e := newEnv(t)
	const keyID = "6f1c2a3b-0000-4000-8000-00000000aa01"
	f, err := seed.Parse([]byte("keys:\n  - keyId: " + keyID + "\n    versions: 2\n    aliases: [alias/seeded]\n  - keyId: 6f1c2a3b-0000-4000-8000-00000000aa02\n    state: Disabled\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Apply(ctx(), e.kms, f); err != nil {
		t.Fatal(err)
	}
	c := e.admin()
	arn := "arn:aws:kms:" + region + ":" + account + ":key/" + keyID
	d := must[*kms.DescribeKeyOutput](t, "DescribeKey")(c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String(arn)}))
	if aws.ToString(d.KeyMetadata.KeyId) != keyID || !d.KeyMetadata.Enabled {
		t.Fatalf("seeded key: %+v", d.KeyMetadata)
	}
	enc := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: aws.String("alias/seeded"), Plaintext: []byte("seeded")}))
	if aws.ToString(enc.KeyId) != arn {
		t.Fatalf("Encrypt under alias/seeded: %s", aws.ToString(enc.KeyId))
	}
	rot := must[*kms.ListKeyRotationsOutput](t, "ListKeyRotations")(c.ListKeyRotations(ctx(), &kms.ListKeyRotationsInput{KeyId: aws.String(keyID)}))
	if len(rot.Rotations) != 1 {
		t.Fatalf("a seeded key of 2 versions: %d rotations", len(rot.Rotations))
	}
	_, err = c.Encrypt(ctx(), &kms.EncryptInput{KeyId: aws.String("6f1c2a3b-0000-4000-8000-00000000aa02"), Plaintext: []byte("x")})
	wantErr(t, "Encrypt under the seeded disabled key", err, "DisabledException", 409)
}

// sick is an Observer whose health is false (an audit log that cannot write).
type sick struct{}

func (sick) Observe(wire.Record) {}
func (sick) Healthy() bool       { return false }

type refuseAll struct{}

func (refuseAll) Allow(context.Context, string) (bool, error) { return false, nil }

// TestPipelineRefusals: the pipeline's own refusals in AWS's words: an
// audit log that cannot write is DependencyTimeoutException (503, fail
// closed); a rate limit is ThrottlingException.
func TestPipelineRefusals(t *testing.T) {
	tok := softhsmtest.New(t)
	svc := provider.New(tok.Token, provider.Options{Region: region, Account: account})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	for _, cs := range []struct {
		cfg    awskms.Config
		code   string
		status int
	}{
		{awskms.Config{Config: wire.Config{KMS: svc, Keys: keys, Observer: sick{}}}, "DependencyTimeoutException", 503},
		{awskms.Config{Config: wire.Config{KMS: svc, Keys: keys, Limiter: refuseAll{}}}, "ThrottlingException", 400},
	} {
		srv := httptest.NewServer(awskms.New(cs.cfg))
		e := &env{srv: srv}
		_, err := e.admin().ListKeys(ctx(), &kms.ListKeysInput{})
		srv.Close()
		wantErr(t, cs.code, err, cs.code, cs.status)
	}
}
