// Package audit writes the server's audit log: one JSON line per request,
// chained so that Verify detects a removed, inserted or edited line and
// names it. Lines never hold a plaintext, a key, a PIN or a secret: only
// the fields of wire.Record, each clipped to MaxFieldBytes of printable
// UTF-8, so no request can make a line large.
//
// Two formats (docs/DESIGN.md, "Audit log"):
//
//   - Format 2, keyed (OpenKeyed, what serve writes): every line carries
//     "v":2, its node, its number in the file ("n"), the previous line's
//     MAC ("prev") and its own "mac", the HMAC-SHA256 — computed in the
//     token with a key that never leaves it — of the line without its mac
//     field. Nobody without the token can edit, insert, remove or re-chain
//     a line unnoticed. Checkpoint lines, at a fixed interval and at Close,
//     bound how much of the tail can be cut unnoticed; size-based rotation
//     continues the chain into the next file.
//   - Format 1, unkeyed (Open; logs written before format 2): "prev" and
//     "hash" are plain SHA-256. They detect accidents and edits by hand, not
//     a writer who recomputes every hash. Verify reports such a log as
//     unkeyed, not as tampered.
//
// Several processes may append to one file: each append takes an exclusive
// flock, reads the previous line from the file's tail, and writes.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/p11kms/p11kms/provider/wire"
)

// Line is one audit record as written.
type Line struct {
	V            int    `json:"v,omitempty"`    // 2: keyed; absent: format 1
	Kind         string `json:"kind,omitempty"` // "" a request, KindCheckpoint, KindContinue
	Node         string `json:"node,omitempty"`
	N            int    `json:"n,omitempty"` // the line's number in its file (format 2)
	Time         string `json:"time"`
	RequestId    string `json:"requestId,omitempty"`
	AccessKeyId  string `json:"accessKeyId,omitempty"`
	SourceAddr   string `json:"sourceAddr,omitempty"`
	API          string `json:"api,omitempty"`
	Action       string `json:"action,omitempty"`
	KeyId        string `json:"keyId,omitempty"`
	KeyVersionId string `json:"keyVersionId,omitempty"`
	Write        bool   `json:"write,omitempty"` // the action changes stored state (wire.Action.Write)
	Code         string `json:"code,omitempty"`  // "OK" on success
	HTTPStatus   int    `json:"httpStatus,omitempty"`
	LatencyMs    string `json:"latencyMs,omitempty"`
	Lines        int    `json:"lines,omitempty"`    // a checkpoint: the lines of this file, itself included
	Final        bool   `json:"final,omitempty"`    // a checkpoint written by Close or before rotation
	PrevFile     string `json:"prevFile,omitempty"` // a continue line: the file this one continues
	// Metadata is the wire API's request context (XKS requestMetadata),
	// names and values clipped like every field.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Prev is the previous line's MAC (format 2) or SHA-256 (format 1), in
	// hex; 64 zeros on the first line of a chain.
	Prev string `json:"prev"`
}

// Line kinds of format 2.
const (
	// KindCheckpoint marks a checkpoint: the line count of the file so far.
	KindCheckpoint = "checkpoint"
	// KindContinue is the first line of a file rotated into: it names the
	// previous file and carries that file's last MAC as its prev.
	KindContinue = "continue"
)

// FormatKeyed is the "v" of keyed lines.
const FormatKeyed = 2

// MaxFieldBytes bounds every string field of a line (a KeyId, an access
// key id or an action as a client sent it).
const MaxFieldBytes = 256

// hashField ends every format-1 line written since 2026-12-03:
// ,"hash":"<64 hex>"} — the SHA-256 of the line with this field left out.
// Older lines have none and are checked through the next line's prev only.
const hashField = `,"hash":"`

// macField ends every format-2 line: ,"mac":"<64 hex>"}.
const macField = `,"mac":"`

// genesis is the Prev of the first line.
var genesis = hex.EncodeToString(make([]byte, 32))

// MAC computes and checks the keyed chain's tags; *hsm.HMACKey is one.
type MAC interface {
	Sign(ctx context.Context, msg []byte) ([]byte, error)
	Verify(ctx context.Context, msg, mac []byte) (bool, error)
}

// Log appends records to a file. It implements wire.Observer.
type Log struct {
	mu       sync.Mutex
	f        *os.File
	path     string
	errs     func(error)
	key      MAC // nil: format 1
	opt      Options
	healthy  atomic.Bool
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once
	closeErr error
}

// Open opens (or creates, mode 0600) an unkeyed (format 1) audit log at
// path for appending. onError receives write failures (Observe has no
// error to return); nil ignores them.
func Open(path string, onError func(error)) (*Log, error) {
	return open(path, nil, Options{OnError: onError})
}

func open(path string, key MAC, opt Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if opt.OnError == nil {
		opt.OnError = func(error) {}
	}
	l := &Log{f: f, path: path, errs: opt.OnError, key: key, opt: opt}
	l.healthy.Store(true)
	return l, nil
}

// Healthy reports whether the last write succeeded: false after a failed
// write until one succeeds. A server that must not answer unaudited
// requests refuses them while it is false (fail closed).
func (l *Log) Healthy() bool { return l.healthy.Load() }

// Close stops the checkpoints, writes a final checkpoint (format 2) and
// closes the file. Closing again returns the first Close's result.
func (l *Log) Close() error {
	l.closed.Do(func() {
		var err error
		if l.stop != nil {
			close(l.stop)
			<-l.done
			err = l.Checkpoint(true)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closeErr = errors.Join(err, l.f.Close())
	})
	return l.closeErr
}

// Observe appends one record; a failure goes to the error callback.
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
		Write: r.Write, Code: c(code), HTTPStatus: r.HTTPStatus, LatencyMs: fmt.Sprintf("%.3f", float64(r.Latency.Microseconds())/1000)}
	if len(r.Metadata) > 0 {
		line.Metadata = make(map[string]string, len(r.Metadata))
		for k, v := range r.Metadata {
			line.Metadata[c(k)] = c(v)
		}
	}
	return l.write(line)
}

// write appends line under the file lock, sealing it with the chain, and
// records the outcome for Healthy.
func (l *Log) write(line Line) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.writeLocked(line)
	l.healthy.Store(err == nil)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", l.path, err)
	}
	return nil
}

// writeLocked appends line under the file's flock: after dropping a torn
// tail, rotating if the file is full, and chaining to the last line.
func (l *Log) writeLocked(line Line) error {
	if err := l.lockFile(); err != nil {
		return err
	}
	defer func() { _ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) }()
	if l.key != nil {
		if err := dropTornTail(l.f); err != nil {
			return err
		}
	}
	t, err := readTail(l.f, l.key != nil)
	if err != nil {
		return err
	}
	if l.key != nil {
		if t, _, err = l.finishRotation(t); err != nil {
			return fmt.Errorf("finishing an interrupted rotation: %w", err)
		}
	}
	if l.key != nil && l.opt.MaxBytes > 0 && t.size >= l.opt.MaxBytes && line.Kind == "" {
		if t, err = l.rotateLocked(t); err != nil {
			return fmt.Errorf("rotation: %w", err)
		}
	}
	_, err = l.appendTo(l.f, t, line)
	return err
}

// appendTo seals line after tail t and writes it at the end of f; it
// returns the new line's MAC (format 2) or hash (format 1) in hex.
func (l *Log) appendTo(f *os.File, t tail, line Line) (string, error) {
	line.Prev = t.prev
	if l.key != nil {
		line.V, line.Node, line.N = FormatKeyed, l.opt.Node, t.lines+1
		if line.Kind == KindCheckpoint {
			line.Lines = line.N
		}
	}
	b, err := json.Marshal(line)
	if err != nil {
		return "", err
	}
	var out []byte
	if l.key == nil {
		out = withHash(b)
	} else if out, err = l.withMAC(b); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return "", err
	}
	if _, err := f.Write(out); err != nil {
		return "", err
	}
	if l.key == nil {
		sum := sha256.Sum256(out[:len(out)-1])
		return hex.EncodeToString(sum[:]), nil
	}
	return string(out[len(out)-len(`"}`)-1-64 : len(out)-len(`"}`)-1]), nil
}

// withMAC returns the JSON object b with its token MAC as a last field, and
// a newline.
func (l *Log) withMAC(b []byte) ([]byte, error) {
	mac, err := l.key.Sign(context.Background(), b)
	if err != nil {
		return nil, fmt.Errorf("MAC in the token: %w", err)
	}
	return sealed(b, macField, mac), nil
}

// withHash returns the JSON object b with its own hash as a last field,
// and a newline.
func withHash(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sealed(b, hashField, sum[:])
}

// sealed returns the JSON object b with field (hashField or macField) set
// to sum in hex as a last field, and a newline.
func sealed(b []byte, field string, sum []byte) []byte {
	out := make([]byte, 0, len(b)+len(field)+68)
	out = append(out, b[:len(b)-1]...)
	out = append(out, field...)
	out = hex.AppendEncode(out, sum)
	return append(out, '"', '}', '\n')
}

// splitHash returns the line as it was hashed and the hash it carries, or
// ok false for a line without a well-formed hash field.
func splitHash(raw []byte) (body []byte, sum []byte, ok bool) { return splitSeal(raw, hashField) }

// splitSeal returns the line without its last field (hashField or
// macField) and that field's value, or ok false if it is not well formed.
func splitSeal(raw []byte, field string) (body []byte, sum []byte, ok bool) {
	const tail = 64 + len(`"}`)
	i := len(raw) - tail - len(field)
	if i < 1 || !bytes.Equal(raw[i:i+len(field)], []byte(field)) || !bytes.HasSuffix(raw, []byte(`"}`)) {
		return nil, nil, false
	}
	sum, err := hex.DecodeString(string(raw[i+len(field) : len(raw)-2]))
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
