package sigv4_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider/sigv4"
)

type suiteContext struct {
	Credentials struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		Token           string `json:"token"`
	} `json:"credentials"`
	Normalize bool   `json:"normalize"`
	Region    string `json:"region"`
	Service   string `json:"service"`
	Timestamp string `json:"timestamp"`
}

// TestAWSTestSuite verifies every signed request of the AWS SigV4 test
// suite (testdata/aws-sig-v4-test-suite) and checks that changing one
// signature nibble makes each one fail.
func TestAWSTestSuite(t *testing.T) {
	dirs, err := filepath.Glob("testdata/aws-sig-v4-test-suite/*/context.json")
	if err != nil || len(dirs) < 30 {
		t.Fatalf("suite vectors: %d found, %v", len(dirs), err)
	}
	for _, ctxFile := range dirs {
		dir := filepath.Dir(ctxFile)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "header-signed-request.txt"))
			if err != nil {
				t.Fatal(err)
			}
			err = verifySuite(t, ctxFile, string(raw))
			if filepath.Base(dir) == "post-sts-header-after" {
				var e *sigv4.Error
				if !errors.As(err, &e) || e.Part != sigv4.HeaderSecurityToken || e.Kind != sigv4.Incomplete {
					t.Fatalf("unsigned session token: got %v, want an Incomplete error naming X-Amz-Security-Token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			i := strings.Index(string(raw), "Signature=") + len("Signature=")
			flipped := []byte(raw)
			flipped[i] = "01"[map[bool]int{true: 1}[flipped[i] == '0']]
			var e *sigv4.Error
			if err := verifySuite(t, ctxFile, string(flipped)); !errors.As(err, &e) || e.Kind != sigv4.Mismatch || e.Part != "Signature" {
				t.Fatalf("changed signature: got %v, want a Signature mismatch", err)
			}
		})
	}
}

func verifySuite(t *testing.T, ctxFile, raw string) error {
	t.Helper()
	var c suiteContext
	b, err := os.ReadFile(ctxFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	ts, err := time.Parse(time.RFC3339, c.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	r, body := readRequest(t, raw)
	v, err := sigv4.New(sigv4.Config{
		Service: c.Service, Region: c.Region, NormalizePath: c.Normalize,
		Now: func() time.Time { return ts },
		Lookup: func(id string) (sigv4.Key, bool) {
			return sigv4.Key{Secret: c.Credentials.SecretAccessKey, SessionToken: c.Credentials.Token}, id == c.Credentials.AccessKeyID
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(r, body)
	return err
}

func readRequest(t *testing.T, raw string) (*httpRequest, []byte) {
	t.Helper()
	if !strings.HasSuffix(raw, "\n") {
		raw += "\n"
	}
	head, body, _ := strings.Cut(raw, "\n\n")
	r, err := readHTTP(bufio.NewReader(strings.NewReader(strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body)))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	got, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, got
}
