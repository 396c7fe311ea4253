// Package audit writes the server's audit log: one JSON line per request,
// each carrying the SHA-256 of the line before it ("prev") and of itself
// ("hash", over the line without that field), so that Verify detects a
// removed, inserted or edited line and names it: an edited line fails its
// own hash, a removed or inserted one breaks the next line's prev. Lines
// never hold a plaintext, a key, a PIN or a secret: only the fields of
// wire.Record, each clipped to MaxFieldBytes of printable UTF-8, so no
// request can make a line large.
//
// The chain is not keyed: whoever can write the file can rewrite it whole
// and re-chain it. It detects accidents and edits by hand, not a writer
// who recomputes every hash (docs/SECURITY.md).
//
// Several processes may append to one file: each append takes an exclusive
// flock, reads the previous line's hash from the file's tail, and writes.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/p11kms/p11kms/provider/wire"
)

// Line is one audit record as written.
type Line struct {
	Time         string `json:"time"`
	RequestId    string `json:"requestId"`
	AccessKeyId  string `json:"accessKeyId,omitempty"`
	SourceAddr   string `json:"sourceAddr,omitempty"`
	API          string `json:"api,omitempty"`
	Action       string `json:"action"`
	KeyId        string `json:"keyId,omitempty"`
	KeyVersionId string `json:"keyVersionId,omitempty"`
	Code         string `json:"code"` // "OK" on success
	HTTPStatus   int    `json:"httpStatus,omitempty"`
	LatencyMs    string `json:"latencyMs"`
	Prev         string `json:"prev"` // hex SHA-256 of the previous line (without its newline); 64 zeros first
}

// MaxFieldBytes bounds every string field of a line (a KeyId, an access
// key id or an action as a client sent it).
const MaxFieldBytes = 256

// hashField ends every line written since 2026-12-03: ,"hash":"<64 hex>"}
// — the SHA-256 of the line with this field left out. Older lines have
// none and are checked through the next line's prev only.
const hashField = `,"hash":"`

// genesis is the Prev of the first line.
var genesis = hex.EncodeToString(make([]byte, 32))

// Log appends records to a file. It implements wire.Observer.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	errs func(error)
}

// Open opens (or creates, mode 0600) the audit log at path for appending.
// onError receives write failures (Observe has no error to return); nil
// ignores them.
func Open(path string, onError func(error)) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if onError == nil {
		onError = func(error) {}
	}
	return &Log{f: f, errs: onError}, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

// Observe appends one record.
func (l *Log) Observe(r wire.Record) {
	if err := l.Append(r); err != nil {
		l.errs(err)
	}
}

// Append writes one record after the current last line.
func (l *Log) Append(r wire.Record) error {
	code := r.Code
	if code == "" {
		code = "OK"
	}
	c := clipField
	line := Line{Time: r.Time.UTC().Format(time.RFC3339Nano), RequestId: c(r.RequestId), AccessKeyId: c(r.AccessKeyId),
		SourceAddr: c(r.SourceAddr), API: c(r.API), Action: c(r.Action), KeyId: c(r.KeyId), KeyVersionId: c(r.KeyVersionId),
		Code: c(code), HTTPStatus: r.HTTPStatus, LatencyMs: fmt.Sprintf("%.3f", float64(r.Latency.Microseconds())/1000)}
	l.mu.Lock()
	defer l.mu.Unlock()
	fd := int(l.f.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("audit: lock: %w", err)
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	prev, err := lastLineHash(l.f)
	if err != nil {
		return err
	}
	line.Prev = prev
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	if _, err := l.f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	_, err = l.f.Write(withHash(b))
	return err
}

// withHash returns the JSON object b with its own hash as a last field,
// and a newline.
func withHash(b []byte) []byte {
	sum := sha256.Sum256(b)
	out := make([]byte, 0, len(b)+len(hashField)+68)
	out = append(out, b[:len(b)-1]...)
	out = append(out, hashField...)
	out = hex.AppendEncode(out, sum[:])
	return append(out, '"', '}', '\n')
}

// splitHash returns the line as it was hashed and the hash it carries, or
// ok false for a line without a well-formed hash field.
func splitHash(raw []byte) (body []byte, sum []byte, ok bool) {
	const tail = 64 + len(`"}`)
	i := len(raw) - tail - len(hashField)
	if i < 1 || !bytes.Equal(raw[i:i+len(hashField)], []byte(hashField)) || !bytes.HasSuffix(raw, []byte(`"}`)) {
		return nil, nil, false
	}
	sum, err := hex.DecodeString(string(raw[i+len(hashField) : len(raw)-2]))
	if err != nil {
		return nil, nil, false
	}
	body = append(append([]byte{}, raw[:i]...), '}')
	return body, sum, true
}

// clipField makes a client-controlled string safe and small for the log:
// at most MaxFieldBytes, valid UTF-8, control characters as U+FFFD.
func clipField(s string) string {
	if len(s) <= MaxFieldBytes && isPlain(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > MaxFieldBytes-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// lastLineHash returns the hash of the file's last line, or genesis.
func lastLineHash(f *os.File) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	if size == 0 {
		return genesis, nil
	}
	// Read backwards in chunks until the previous newline.
	const chunk = 4096
	var tail []byte
	for off := size; off > 0 && bytes.Count(tail, []byte{'\n'}) < 2; {
		n := int64(chunk)
		if off < n {
			n = off
		}
		off -= n
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return "", err
		}
		tail = append(buf, tail...)
		if off == 0 {
			break
		}
	}
	tail = bytes.TrimSuffix(tail, []byte{'\n'})
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	sum := sha256.Sum256(tail)
	return hex.EncodeToString(sum[:]), nil
}

// Result is what Verify found.
type Result struct {
	Lines int
}

// ErrBroken is wrapped by every chain failure Verify reports.
var ErrBroken = errors.New("audit log chain broken")

// Verify reads an audit log and checks every line: its own hash, and its
// prev against the hash of the line before it. It reports the first bad
// line (1-based): an edited line by its own number, a removed or inserted
// one at the line after the gap. Lines may be of any length.
func Verify(r io.Reader) (Result, error) {
	br := bufio.NewReader(r)
	prev := genesis
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if err == io.EOF && len(raw) == 0 {
			return Result{Lines: n - 1}, nil
		}
		if err != nil && err != io.EOF {
			return Result{Lines: n - 1}, err
		}
		raw = bytes.TrimSuffix(raw, []byte{'\n'})
		if err := checkLine(raw, prev); err != nil {
			return Result{Lines: n - 1}, fmt.Errorf("%w at line %d: %v", ErrBroken, n, err)
		}
		sum := sha256.Sum256(raw)
		prev = hex.EncodeToString(sum[:])
	}
}

// checkLine checks one line against its own hash and the previous line's.
func checkLine(raw []byte, prev string) error {
	var line Line
	if err := json.Unmarshal(raw, &line); err != nil {
		return fmt.Errorf("not a JSON audit record: %v", err)
	}
	if body, sum, ok := splitHash(raw); ok {
		if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
			return errors.New("the line does not match its own hash (it was edited)")
		}
	} else if bytes.Contains(raw, []byte(`,"hash":`)) {
		return errors.New("its hash field is malformed (it was edited)")
	}
	if line.Prev != prev {
		return errors.New("it names a previous line that is not the one before it (a line was removed or inserted before it)")
	}
	return nil
}
