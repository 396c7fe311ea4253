package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/wire"
)

// auditLogFile is the log serve writes in home by default.
func auditLogFile(home string) string {
	host, _ := os.Hostname()
	return filepath.Join(home, audit.FileName(host))
}

// writeKeyedLog writes n requests to node's log in dir with the test
// home's token key, as serve does, and closes it (final checkpoint).
func writeKeyedLog(t *testing.T, dir, node string, n int) string {
	t.Helper()
	ctx := context.Background()
	tok, err := (&globals{home: testHome}).openToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	key, err := tok.HMACKey(ctx, audit.HMACKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, audit.FileName(node))
	l, err := audit.OpenKeyed(path, key, audit.Options{Node: node, CheckpointEvery: time.Hour, OnError: func(err error) { t.Error(err) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		l.Observe(wire.Record{Time: time.Now(), RequestId: "r", Action: "Decrypt", KeyId: "k"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// audit verify checks the keyed chain with the home's token: it reports
// each node with its last checkpoint, and names the first bad file and
// line of an edited log (the unkeyed verifier took a re-chained log).
func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	pa := writeKeyedLog(t, dir, "node-a", 6)
	writeKeyedLog(t, dir, "node-b", 2)
	out, errOut, code := cli(t, "audit", "verify", dir)
	if code != 0 || !strings.Contains(out, "node node-a (audit-node-a.log): 7 lines, chain intact; last checkpoint ") ||
		!strings.Contains(out, "at line 7 of audit-node-a.log (0 lines after it can be cut unnoticed); closed cleanly") ||
		!strings.Contains(out, "node node-b (audit-node-b.log): 3 lines, chain intact") {
		t.Fatalf("intact: %d\n%s%s", code, out, errOut)
	}
	b, _ := os.ReadFile(pa)
	ls := strings.SplitAfter(string(b), "\n")
	ls[3] = strings.Replace(ls[3], `"keyId":"k"`, `"keyId":"x"`, 1)
	cut := strings.Join(ls[:5], "") // line 4 edited, lines 6 and 7 (the final checkpoint) cut
	if err := os.WriteFile(pa, []byte(cut), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, "audit", "verify", filepath.Join(dir, "audit-*.log"))
	if code == 0 || !strings.Contains(errOut, "node node-a (audit-node-a.log): audit log chain broken: audit-node-a.log at line 4: its MAC does not verify") ||
		!strings.Contains(out, "node node-b") {
		t.Fatalf("line 4 edited: %d\n%s%s", code, out, errOut)
	}
	ls[3] = strings.Replace(ls[3], `"keyId":"x"`, `"keyId":"k"`, 1)
	os.WriteFile(pa, []byte(strings.Join(ls[:5], "")), 0o600)
	out, errOut, code = cli(t, "audit", "verify", pa)
	if code != 0 || !strings.Contains(out, "5 lines, chain intact; no checkpoint: every line can be cut from the end unnoticed") {
		t.Fatalf("tail cut: %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code = cli(t, "audit", "verify", filepath.Join(dir, "nothing-*.log")); code != 2 || !strings.Contains(errOut, "matches no file") {
		t.Fatalf("empty glob: %d %s", code, errOut)
	}
}

// serve refuses bad audit flags before it opens anything, naming the flag
// and what it accepts.
func TestServeAuditFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-name", "a/b"}, "--node-name: node name \"a/b\": accepted 1 to 63 of A-Z a-z 0-9 . _ -"},
		{[]string{"--audit-max-bytes", "100"}, "--audit-max-bytes 100: accepted 0 (never rotate) or 4096 or more"},
		{[]string{"--audit-checkpoint-interval", "0s"}, "--audit-checkpoint-interval 0s: accepted more than 0"},
	} {
		_, errOut, code := cli(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %s", c.args, code, errOut)
		}
	}
}
