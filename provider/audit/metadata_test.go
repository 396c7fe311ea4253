package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

// TestMetadataIsAuditedClipped: a record's request context (XKS
// requestMetadata) is in its line, each name and value clipped like every
// field, and the chain still verifies and catches an edit of it.
func TestMetadataIsAuditedClipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 3000) + "\n"
	l.Observe(wire.Record{Time: time.Now(), API: "xks", Action: "Encrypt",
		Metadata: map[string]string{"kmsRequestId": "4112f4d6", "awsPrincipalArn": long}})
	l.Close()
	b, _ := os.ReadFile(path)
	var line Line
	if err := json.Unmarshal(bytes.TrimSpace(b), &line); err != nil {
		t.Fatal(err)
	}
	if line.Metadata["kmsRequestId"] != "4112f4d6" || len(line.Metadata["awsPrincipalArn"]) > MaxFieldBytes ||
		strings.Contains(line.Metadata["awsPrincipalArn"], "\n") {
		t.Fatalf("metadata %q", line.Metadata)
	}
	if _, err := Verify(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(strings.NewReader(strings.Replace(string(b), "4112f4d6", "4112f4d7", 1))); err == nil {
		t.Fatal("an edited requestMetadata verifies")
	}
}
