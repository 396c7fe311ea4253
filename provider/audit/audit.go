// Package audit writes the server's audit log: one JSON line per request,
// each carrying the SHA-256 of the line before it, so that Verify detects a
// removed, inserted or edited line. Lines never hold a plaintext, a key, a
// PIN or a secret: only the fields of wire.Record.
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
	"sync"
	"syscall"
	"time"

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
	line := Line{Time: r.Time.UTC().Format(time.RFC3339Nano), RequestId: r.RequestId, AccessKeyId: r.AccessKeyId,
		SourceAddr: r.SourceAddr, API: r.API, Action: r.Action, KeyId: r.KeyId, KeyVersionId: r.KeyVersionId,
		Code: code, HTTPStatus: r.HTTPStatus, LatencyMs: fmt.Sprintf("%.3f", float64(r.Latency.Microseconds())/1000)}
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
	_, err = l.f.Write(append(b, '\n'))
	return err
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

// Verify reads an audit log and checks every line's Prev against the hash
// of the line before it. It reports the first broken line (1-based).
func Verify(r io.Reader) (Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prev := genesis
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		var line Line
		if err := json.Unmarshal(raw, &line); err != nil {
			return Result{Lines: n - 1}, fmt.Errorf("%w at line %d: not a JSON audit record: %v", ErrBroken, n, err)
		}
		if line.Prev != prev {
			return Result{Lines: n - 1}, fmt.Errorf("%w at line %d: it names a previous line that is not the one before it (a line was removed, inserted or edited)", ErrBroken, n)
		}
		sum := sha256.Sum256(raw)
		prev = hex.EncodeToString(sum[:])
	}
	if err := sc.Err(); err != nil {
		return Result{Lines: n}, err
	}
	return Result{Lines: n}, nil
}
