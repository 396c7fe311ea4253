package audit

import (
	"bytes"
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
