package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

func write(t *testing.T, path string, n int) {
	t.Helper()
	l, err := Open(path, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < n; i++ {
		l.Observe(wire.Record{Time: time.Now(), RequestId: "r", Action: "GenerateDataKey", KeyId: "k", Latency: time.Millisecond})
	}
}

func TestChainVerifiesAndDetectsTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	write(t, path, 5)
	write(t, path, 3) // reopened: the chain continues
	b, _ := os.ReadFile(path)
	if res, err := Verify(bytes.NewReader(b)); err != nil || res.Lines != 8 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	lines := strings.SplitAfter(string(b), "\n")
	removed := strings.Join(append(append([]string{}, lines[:3]...), lines[4:]...), "")
	if _, err := Verify(strings.NewReader(removed)); !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("removed line: %v", err)
	}
	edited := strings.Replace(string(b), `"keyId":"k"`, `"keyId":"x"`, 1)
	if _, err := Verify(strings.NewReader(edited)); !errors.Is(err, ErrBroken) {
		t.Fatalf("edited line: %v", err)
	}
	swapped := strings.Join(append([]string{lines[1], lines[0]}, lines[2:]...), "")
	if _, err := Verify(strings.NewReader(swapped)); !errors.Is(err, ErrBroken) {
		t.Fatalf("swapped lines: %v", err)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); write(t, path, 50) }() // four independent Log handles, like four processes
	}
	wg.Wait()
	f, _ := os.Open(path)
	defer f.Close()
	if res, err := Verify(f); err != nil || res.Lines != 200 {
		t.Fatalf("%+v %v", res, err)
	}
}

// An edited line is reported by its own number (it was reported at the
// line after it); a removed line at the line after the gap.
func TestVerifyNamesTheEditedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	write(t, path, 6)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[3] = strings.Replace(lines[3], `"keyId":"k"`, `"keyId":"other-key"`, 1)
	_, err := Verify(strings.NewReader(strings.Join(lines, "")))
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "at line 4:") || !strings.Contains(err.Error(), "edited") {
		t.Fatalf("line 4 edited: %v", err)
	}
}

// Every client-controlled field is clipped, so a 1.1 MB KeyId makes a line
// of a few hundred bytes, and the line still verifies.
func TestFieldsAreClipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("A", 1100<<10)
	l.Observe(wire.Record{Time: time.Now(), RequestId: "r", AccessKeyId: "ak\n\x00" + huge, Action: huge, KeyId: huge})
	l.Close()
	b, _ := os.ReadFile(path)
	if len(b) > 4*MaxFieldBytes+512 {
		t.Fatalf("a line of %d bytes", len(b))
	}
	if bytes.ContainsAny(b[:len(b)-1], "\n\x00") {
		t.Fatal("a control character reached the log")
	}
	if res, err := Verify(bytes.NewReader(b)); err != nil || res.Lines != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}

// Lines longer than any buffer still verify (an old log with an unclipped
// 1.1 MB KeyId made bufio.Scanner stop: "token too long"), and lines
// written before lines carried their own hash verify by their chain.
func TestVerifyLinesOfAnyLength(t *testing.T) {
	var log bytes.Buffer
	prev := genesis
	for _, keyID := range []string{"k", strings.Repeat("B", 3<<20), "k2"} {
		b, err := json.Marshal(Line{Time: "2026-12-01T00:00:00Z", RequestId: "r", Action: "Decrypt", KeyId: keyID, Code: "OK", LatencyMs: "1.000", Prev: prev})
		if err != nil {
			t.Fatal(err)
		}
		log.Write(b)
		log.WriteByte('\n')
		sum := sha256.Sum256(b)
		prev = hex.EncodeToString(sum[:])
	}
	if res, err := Verify(bytes.NewReader(log.Bytes())); err != nil || res.Lines != 3 {
		t.Fatalf("%+v %v", res, err)
	}
}
