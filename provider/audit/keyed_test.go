package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider/wire"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

var bg = context.Background()

// tokenKey is the audit HMAC key of a fresh SoftHSM2 token.
func tokenKey(t *testing.T) *hsm.HMACKey {
	t.Helper()
	k, err := softhsmtest.New(t).HMACKey(bg, HMACKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyedLog opens node's keyed log in dir; checkpoints only when the test
// writes them (the interval is an hour).
func keyedLog(t *testing.T, dir string, key MAC, node string, maxBytes int64) *Log {
	t.Helper()
	l, err := OpenKeyed(filepath.Join(dir, FileName(node)), key, Options{Node: node, CheckpointEvery: time.Hour, MaxBytes: maxBytes, OnError: func(err error) { t.Error(err) }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func request(l *Log, keyID string) {
	l.Observe(wire.Record{Time: time.Now(), RequestId: "r", Action: "Decrypt", KeyId: keyID, Latency: time.Millisecond})
}

func verifyOne(t *testing.T, key MAC, paths ...string) *NodeReport {
	t.Helper()
	reps, err := VerifyFiles(bg, key, paths)
	if err != nil || len(reps) != 1 {
		t.Fatalf("%d reports, %v", len(reps), err)
	}
	return reps[0]
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLines(t *testing.T, path string, ls []string) {
	t.Helper()
	s := strings.Join(ls, "")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// softMAC is a key an attacker without the token has: HMAC-SHA256 in
// software.
type softMAC []byte

func (k softMAC) Sign(_ context.Context, msg []byte) ([]byte, error) {
	h := hmac.New(sha256.New, k)
	h.Write(msg)
	return h.Sum(nil), nil
}

func (k softMAC) Verify(ctx context.Context, msg, mac []byte) (bool, error) {
	want, _ := k.Sign(ctx, msg)
	return hmac.Equal(want, mac), nil
}

// rechain rewrites every line of a keyed log with key, keeping the
// content (after editing line edit, 1-based): what a writer without the
// token key can do.
func rechain(t *testing.T, path string, key MAC, edit int) {
	t.Helper()
	var out []string
	prev := genesis
	for i, raw := range lines(t, path) {
		body, _, ok := splitSeal([]byte(strings.TrimSuffix(raw, "\n")), macField)
		if !ok {
			t.Fatalf("line %d not keyed", i+1)
		}
		var line Line
		if err := json.Unmarshal(body, &line); err != nil {
			t.Fatal(err)
		}
		if i+1 == edit {
			line.KeyId = "forged"
		}
		line.Prev = prev
		b, _ := json.Marshal(line)
		mac, _ := key.Sign(bg, b)
		sealedLine := sealed(b, macField, mac)
		prev = string(sealedLine[len(sealedLine)-67 : len(sealedLine)-3])
		out = append(out, string(sealedLine))
	}
	writeLines(t, path, out)
}

// An edited middle line fails its MAC and is named; a log re-chained with
// a software key (every MAC recomputed) fails at its first line. The
// unkeyed chain accepted both (issue 17 finding 9: "chain intact").
func TestKeyedChainDetectsEditAndRechain(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	l := keyedLog(t, dir, key, "n1", 0)
	for i := 0; i < 6; i++ {
		request(l, "k")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // a second Close writes nothing
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName("n1"))
	if rep := verifyOne(t, key, path); rep.Err != nil || rep.Lines != 7 || rep.UnkeyedLines != 0 {
		t.Fatalf("intact log: %+v", rep)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	orig := lines(t, path)
	edited := append([]string{}, orig...)
	edited[3] = strings.Replace(edited[3], `"keyId":"k"`, `"keyId":"other"`, 1)
	writeLines(t, path, edited)
	rep := verifyOne(t, key, path)
	if !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 4:") || !strings.Contains(rep.Err.Error(), "MAC") {
		t.Fatalf("line 4 edited: %v", rep.Err)
	}
	writeLines(t, path, orig)
	rechain(t, path, softMAC(make([]byte, 32)), 4)
	if rep := verifyOne(t, softMAC(make([]byte, 32)), path); rep.Err != nil {
		t.Fatalf("the software re-chain is consistent in itself: %v", rep.Err)
	}
	rep = verifyOne(t, key, path)
	if !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 1:") {
		t.Fatalf("re-chained without the token key: %v", rep.Err)
	}
	// Removing a middle line breaks the next line's prev.
	writeLines(t, path, append(append([]string{}, orig[:2]...), orig[3:]...))
	if rep := verifyOne(t, key, path); !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 3:") {
		t.Fatalf("line 3 removed: %v", rep.Err)
	}
}

// Checkpoints bound the tail that can be cut: Close writes a final one,
// so a cut tail shows as "not closed" with the last checkpoint's line, and
// a forged checkpoint fails its MAC. The unkeyed chain verified any cut.
func TestTailCutDetectedUpToCheckpoint(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	l := keyedLog(t, dir, key, "n1", 0)
	for i := 0; i < 5; i++ {
		request(l, "k")
	}
	if err := l.Checkpoint(false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		request(l, "k")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName("n1"))
	rep := verifyOne(t, key, path)
	if rep.Err != nil || rep.Last == nil || !rep.Last.Final || rep.Last.Line != 10 || rep.AfterCheckpoint != 0 {
		t.Fatalf("closed log: %+v %+v", rep, rep.Last)
	}
	if time.Since(rep.Last.Time) > time.Minute {
		t.Fatalf("checkpoint time %v", rep.Last.Time)
	}
	orig := lines(t, path)
	writeLines(t, path, orig[:9]) // the final checkpoint cut
	rep = verifyOne(t, key, path)
	if rep.Err != nil || rep.Last == nil || rep.Last.Final || rep.Last.Line != 6 || rep.AfterCheckpoint != 3 {
		t.Fatalf("tail cut: %+v %+v", rep, rep.Last)
	}
	writeLines(t, path, orig[:6]) // cut back to the checkpoint
	if rep = verifyOne(t, key, path); rep.Err != nil || rep.Last.Final || rep.Last.Line != 6 {
		t.Fatalf("cut to the checkpoint: %+v", rep)
	}
	// A final checkpoint forged after the cut does not verify.
	forged := strings.Replace(orig[9], `"n":10`, `"n":7`, 1)
	forged = strings.Replace(forged, `"lines":10`, `"lines":7`, 1)
	writeLines(t, path, append(append([]string{}, orig[:6]...), forged))
	if rep = verifyOne(t, key, path); !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 7:") {
		t.Fatalf("forged checkpoint: %v", rep.Err)
	}
}

// Rotation continues the chain over three files; removing the middle file,
// or cutting a rotated file's tail, is detected.
func TestRotationChainAcrossFiles(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	l := keyedLog(t, dir, key, "n1", MinMaxBytes)
	var files []string
	for i := 0; len(files) < 3; i++ {
		if i > 200 {
			t.Fatalf("no rotation after %d lines: %v", i, files)
		}
		request(l, strings.Repeat("k", 200))
		files, _ = filepath.Glob(filepath.Join(dir, "audit-n1*.log"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := verifyOne(t, key, files...)
	if rep.Err != nil || len(rep.Files) != 3 || rep.Files[2] != FileName("n1") || rep.StartsAfter != "" || !rep.Last.Final {
		t.Fatalf("three files: %+v", rep)
	}
	if first := lines(t, files[1])[0]; !strings.Contains(first, `"kind":"continue"`) || !strings.Contains(first, filepath.Base(files[0])) {
		t.Fatalf("second file starts %s", first)
	}
	rep = verifyOne(t, key, files[0], files[2])
	if !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), FileName("n1")+" at line 1:") ||
		!strings.Contains(rep.Err.Error(), filepath.Base(files[1])+" is missing") {
		t.Fatalf("middle file removed: %v", rep.Err)
	}
	if rep = verifyOne(t, key, files[1], files[2]); rep.Err != nil || rep.StartsAfter != filepath.Base(files[0]) {
		t.Fatalf("first file not given: %+v", rep)
	}
	mid := lines(t, files[1])
	writeLines(t, files[1], mid[:len(mid)-2])
	if rep = verifyOne(t, key, files...); !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "was cut") {
		t.Fatalf("middle file cut: %v", rep.Err)
	}
}

// Files are verified in chain order, not name order: a log not named
// *.log rotates into <name>.<time>.log, which sorts after it.
func TestRotationOrderFollowsTheChain(t *testing.T) {
	key := tokenKey(t)
	path := filepath.Join(t.TempDir(), "mylog")
	l, err := OpenKeyed(path, key, Options{Node: "n1", CheckpointEvery: time.Hour, MaxBytes: MinMaxBytes, OnError: func(err error) { t.Error(err) }})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for len(files) < 3 {
		request(l, strings.Repeat("k", 200))
		files, _ = filepath.Glob(path + "*")
	}
	l.Close()
	if rep := verifyOne(t, key, append(files, files[0])...); rep.Err != nil || len(rep.Files) != 3 || rep.Files[2] != "mylog" {
		t.Fatalf("%+v", rep)
	}
}

// Four writers (like four processes) on one file, rotating often, keep
// one chain across the files.
func TestConcurrentWritersRotateOneChain(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := keyedLog(t, dir, key, "n1", MinMaxBytes)
			for j := 0; j < 40; j++ {
				request(l, "k")
			}
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	files, _ := filepath.Glob(filepath.Join(dir, "audit-n1*.log"))
	rep := verifyOne(t, key, files...)
	if rep.Err != nil || len(rep.Files) < 3 {
		t.Fatalf("%d files: %+v", len(files), rep)
	}
	requests := 0
	for _, f := range files {
		for _, s := range lines(t, f) {
			if !strings.Contains(s, `"kind"`) {
				requests++
			}
		}
	}
	if requests != 160 {
		t.Fatalf("%d request lines, want 160", requests)
	}
}

// A line whose write was cut short (no newline) is dropped by the next
// writer: the chain continues from the last complete line and verifies.
func TestTornLastLineDropped(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FileName("n1"))
	l := keyedLog(t, dir, key, "n1", 0)
	request(l, "k")
	request(l, "k")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"v":2,"node":"n1","n":3,"time":"2026-`)
	f.Close()
	request(l, "k")
	l.Close()
	rep := verifyOne(t, key, path)
	if rep.Err != nil || rep.Lines != 4 || !rep.Last.Final {
		t.Fatalf("%+v", rep)
	}
}

// Two nodes' logs in one directory verify together, one report each; a
// line moved from one node's log into the other's is detected.
func TestTwoNodesVerifiedTogether(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	a, b := keyedLog(t, dir, key, "node-a", 0), keyedLog(t, dir, key, "node-b", 0)
	for i := 0; i < 4; i++ {
		request(a, "ka")
		request(b, "kb")
	}
	request(b, "kb")
	if err := errors.Join(a.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}
	pa, pb := filepath.Join(dir, FileName("node-a")), filepath.Join(dir, FileName("node-b"))
	reps, err := VerifyFiles(bg, key, []string{pb, pa})
	if err != nil || len(reps) != 2 || reps[0].Node != "node-a" || reps[1].Node != "node-b" ||
		reps[0].Err != nil || reps[1].Err != nil || reps[0].Lines != 5 || reps[1].Lines != 6 {
		t.Fatalf("%v %+v", err, reps)
	}
	la, lb := lines(t, pa), lines(t, pb)
	writeLines(t, pa, append(append([]string{}, la[:2]...), append([]string{lb[2]}, la[2:]...)...))
	reps, _ = VerifyFiles(bg, key, []string{pa, pb})
	if !errors.Is(reps[0].Err, ErrBroken) || !strings.Contains(reps[0].Err.Error(), "at line 3:") || reps[1].Err != nil {
		t.Fatalf("b's line in a's log: %v / %v", reps[0].Err, reps[1].Err)
	}
}

// A failed write is reported to the error callback and makes Healthy
// false until a write succeeds.
func TestHealthyAfterWriteFailure(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	var failures []error
	l, err := OpenKeyed(filepath.Join(dir, FileName("n1")), key, Options{Node: "n1", CheckpointEvery: time.Hour, OnError: func(err error) { failures = append(failures, err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := filepath.Join(dir, FileName("n1"))
	request(l, "k")
	if !l.Healthy() || len(failures) != 0 {
		t.Fatalf("healthy %v, %v", l.Healthy(), failures)
	}
	// The log's path becomes a directory: the next write cannot open it.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	request(l, "k")
	if l.Healthy() || len(failures) != 1 || !strings.Contains(failures[0].Error(), path) {
		t.Fatalf("after a failed write: healthy %v, %v", l.Healthy(), failures)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	request(l, "k")
	if !l.Healthy() || len(failures) != 1 {
		t.Fatalf("after a good write: healthy %v, %v", l.Healthy(), failures)
	}
	if rep := verifyOne(t, key, path); rep.Err != nil || rep.Lines != 1 {
		t.Fatalf("%+v", rep)
	}
}

// A keyed writer continues an unkeyed (format 1) log: the report counts
// its unkeyed lines; an unkeyed line after keyed ones (a downgrade) fails.
func TestKeyedContinuesUnkeyed(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FileName("n1"))
	write(t, path, 3)
	l := keyedLog(t, dir, key, "n1", 0)
	request(l, "k")
	l.Close()
	rep := verifyOne(t, key, path)
	if rep.Err != nil || rep.Lines != 5 || rep.UnkeyedLines != 3 || rep.Node != "n1" {
		t.Fatalf("%+v", rep)
	}
	if rep = verifyOne(t, nil, path); !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 4: a keyed (format 2) line, and no audit key") {
		t.Fatalf("keyed lines without the key: %v", rep.Err)
	}
	write(t, path, 1)
	if rep = verifyOne(t, key, path); !errors.Is(rep.Err, ErrBroken) || !strings.Contains(rep.Err.Error(), "at line 6:") {
		t.Fatalf("unkeyed after keyed: %v", rep.Err)
	}
	var old bytes.Buffer
	for _, s := range lines(t, path)[:3] {
		old.WriteString(s)
	}
	if res, err := Verify(&old); err != nil || res.Lines != 3 {
		t.Fatalf("format 1 alone: %+v %v", res, err)
	}
}

// BenchmarkKeyedAppend is the cost of one audited request: clip, MAC in
// the token, write.
func BenchmarkKeyedAppend(b *testing.B) {
	k, err := softhsmtest.New(b).HMACKey(bg, HMACKeyLabel)
	if err != nil {
		b.Fatal(err)
	}
	if err := k.UseSessionCopy(bg); err != nil {
		b.Fatal(err)
	}
	l, err := OpenKeyed(filepath.Join(b.TempDir(), "a.log"), k, Options{Node: "bench", CheckpointEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for b.Loop() {
		if err := l.Append(wire.Record{Time: time.Now(), RequestId: "r", Action: "Decrypt", KeyId: "key-1234"}); err != nil {
			b.Fatal(err)
		}
	}
}

// A writer killed between the rotation's hard link and its rename leaves
// the log's path and the rotated file as one file. The next writer must
// finish the rotation rather than append to it (which would grow the
// rotated file past its final checkpoint): the rotated file keeps its
// size, the path continues the chain, and the whole log verifies.
func TestRotationKilledBetweenLinkAndRename(t *testing.T) {
	key := tokenKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FileName("n1"))
	l := keyedLog(t, dir, key, "n1", 0)
	request(l, "k1")
	if err := l.Close(); err != nil { // ends with the final checkpoint, as rotateLocked does
		t.Fatal(err)
	}
	rotated := filepath.Join(dir, "audit-n1.20261203T000000.000000000Z.log")
	if err := os.Link(path, rotated); err != nil { // the kill: linked, never renamed
		t.Fatal(err)
	}
	before := lines(t, rotated)
	l = keyedLog(t, dir, key, "n1", 0)
	request(l, "k2")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if after := lines(t, rotated); len(after) != len(before) {
		t.Fatalf("the rotated file grew from %d to %d lines after the restart", len(before), len(after))
	}
	if first := lines(t, path)[0]; !strings.Contains(first, `"kind":"continue"`) || !strings.Contains(first, filepath.Base(rotated)) {
		t.Fatalf("the log's path starts %s, want the continuation of %s", first, filepath.Base(rotated))
	}
	if rep := verifyOne(t, key, rotated, path); rep.Err != nil || len(rep.Files) != 2 {
		t.Fatalf("after the finished rotation: %+v", rep)
	}
}
