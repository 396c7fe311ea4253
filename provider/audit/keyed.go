package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// HMACKeyLabel is the CKA_LABEL of the token key that MACs the audit log.
const HMACKeyLabel = "p11kms/audit-hmac"

// Defaults of Options.
const (
	DefaultCheckpointEvery = 10 * time.Second
	DefaultMaxBytes        = 100 << 20
	// MinMaxBytes is the smallest rotation size accepted.
	MinMaxBytes = 4096
)

// Options configure a keyed log.
type Options struct {
	// Node names the writer; it is in every line and in the file name.
	Node string
	// CheckpointEvery is the checkpoint interval (DefaultCheckpointEvery if 0).
	CheckpointEvery time.Duration
	// MaxBytes rotates the file once it reaches this size (0: never).
	MaxBytes int64
	// OnError receives write failures, also of checkpoints; nil ignores them.
	OnError func(error)
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckNode returns an error naming the accepted node names.
func CheckNode(node string) error {
	if !nodeName.MatchString(node) {
		return fmt.Errorf("node name %q: accepted 1 to 63 of A-Z a-z 0-9 . _ - (starting with a letter or digit)", node)
	}
	return nil
}

// FileName is the name of node's current log in the audit directory.
func FileName(node string) string { return "audit-" + node + ".log" }

// OpenKeyed opens (or creates, mode 0600) the keyed log at path (by
// convention FileName(opt.Node) in the audit directory), MACing every line
// with key, and starts the checkpoints. A rotated file keeps the name with
// ".<UTC time>" before ".log".
func OpenKeyed(path string, key MAC, opt Options) (*Log, error) {
	if err := CheckNode(opt.Node); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if opt.CheckpointEvery == 0 {
		opt.CheckpointEvery = DefaultCheckpointEvery
	}
	if opt.CheckpointEvery < 0 {
		return nil, fmt.Errorf("audit: checkpoint interval %v: accepted more than 0 (e.g. 10s)", opt.CheckpointEvery)
	}
	if opt.MaxBytes != 0 && opt.MaxBytes < MinMaxBytes {
		return nil, fmt.Errorf("audit: max bytes %d: accepted 0 (never rotate) or %d or more", opt.MaxBytes, MinMaxBytes)
	}
	if key == nil {
		return nil, fmt.Errorf("audit: a keyed log needs a MAC key")
	}
	l, err := open(path, key, opt)
	if err != nil {
		return nil, err
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.checkpoints()
	return l, nil
}

// checkpoints writes a checkpoint every interval until Close.
func (l *Log) checkpoints() {
	defer close(l.done)
	t := time.NewTicker(l.opt.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.Checkpoint(false); err != nil {
				l.errs(err)
			}
		}
	}
}

// Checkpoint appends a checkpoint line: this file's line count and the
// time, under the chain's MAC. final marks the last line a writer puts in
// a file (at Close, or before rotating).
func (l *Log) Checkpoint(final bool) error {
	if l.key == nil {
		return nil
	}
	return l.write(Line{Kind: KindCheckpoint, Time: time.Now().UTC().Format(time.RFC3339Nano), Final: final})
}

// lockFile takes the exclusive flock on the file at l.path. If another
// process rotated it meanwhile (l.f is no longer the file at the path),
// it reopens the path and locks again.
func (l *Log) lockFile() error {
	for {
		if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		held, err1 := l.f.Stat()
		cur, err2 := os.Stat(l.path)
		if err1 == nil && err2 == nil && os.SameFile(held, cur) {
			return nil
		}
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		l.f.Close()
		l.f = f
	}
}

// rotateLocked closes the current file with a final checkpoint, keeps it
// as <name>.<UTC time>.log (a hard link first, so the path never goes
// missing), and puts in its place a new file whose first line continues the
// chain (continueIn). It returns the new file's tail. A writer killed
// between the link and the rename leaves the path and the rotated file as
// one file; the next write finishes the rotation (finishRotation).
func (l *Log) rotateLocked(t tail) (tail, error) {
	cp := Line{Kind: KindCheckpoint, Time: time.Now().UTC().Format(time.RFC3339Nano), Final: true}
	mac, err := l.appendTo(l.f, t, cp)
	if err != nil {
		return t, err
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	rotated := strings.TrimSuffix(l.path, ".log") + "." + stamp + ".log"
	if err := os.Link(l.path, rotated); err != nil {
		return t, err
	}
	return l.continueIn(tail{prev: mac}, rotated)
}

// continueIn replaces the file at l.path, already kept as rotated, with a
// new file whose first line continues the chain from next. The new file is
// complete and locked before it takes the path, so no other writer sees it
// empty.
func (l *Log) continueIn(next tail, rotated string) (tail, error) {
	tmp, err := os.OpenFile(l.path+".new", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return next, err
	}
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX); err != nil {
		tmp.Close()
		return next, err
	}
	cont := Line{Kind: KindContinue, Time: time.Now().UTC().Format(time.RFC3339Nano), PrevFile: filepath.Base(rotated)}
	if next.prev, err = l.appendTo(tmp, next, cont); err == nil {
		err = os.Rename(tmp.Name(), l.path)
	}
	if err != nil {
		tmp.Close()
		_ = os.Remove(tmp.Name())
		return next, err
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = tmp
	next.lines = 1
	return next, nil
}

// finishRotation finishes a rotation that a killed writer left between its
// link and its rename: the locked file at l.path, whose tail is t, is also
// a rotated file of this log. Writing on would append to the rotated file
// too, after its final checkpoint; instead the path gets its continuation
// file. It reports whether there was a rotation to finish.
func (l *Log) finishRotation(t tail) (tail, bool, error) {
	st, err := l.f.Stat()
	if err != nil {
		return t, false, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Nlink < 2 {
		return t, false, nil
	}
	rotated, err := filepath.Glob(strings.TrimSuffix(l.path, ".log") + ".*.log")
	if err != nil {
		return t, false, err
	}
	for _, r := range rotated {
		if fi, err := os.Stat(r); err == nil && os.SameFile(st, fi) {
			next, err := l.continueIn(tail{prev: t.prev}, r)
			return next, err == nil, err
		}
	}
	return t, false, nil
}

// tail is what the next line chains to.
type tail struct {
	prev  string // MAC (format 2) or SHA-256 (format 1) of the last line
	lines int    // lines in the file
	size  int64
}

// readTail reads the file's last line: its MAC and number if it is keyed,
// else its SHA-256 and, for a keyed writer (keyed: it continues an
// unkeyed file, once), the file's line count.
func readTail(f *os.File, keyed bool) (tail, error) {
	st, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	t := tail{prev: genesis, size: st.Size()}
	if t.size == 0 {
		return t, nil
	}
	last, err := lastLine(f, t.size)
	if err != nil {
		return t, err
	}
	var line Line
	if json.Unmarshal(last, &line) == nil && line.V == FormatKeyed && line.N > 0 {
		if _, mac, ok := splitSeal(last, macField); ok {
			t.prev, t.lines = hex.EncodeToString(mac), line.N
			return t, nil
		}
	}
	sum := sha256.Sum256(last)
	t.prev = hex.EncodeToString(sum[:])
	if keyed {
		t.lines, err = countLines(f)
	}
	return t, err
}

// dropTornTail truncates what follows the file's last newline: the start
// of a line whose write was cut short (a full disk, a crash mid-write). It
// was never a complete line, so no request was acknowledged with it; left
// there, every later line would chain to bytes that verify as "not a JSON
// audit record".
func dropTornTail(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil || last[0] == '\n' {
		return err
	}
	keep := int64(0)
	const chunk = 4096
	for off := st.Size(); off > 0; {
		n := min(int64(chunk), off)
		off -= n
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			keep = off + int64(i) + 1
			break
		}
	}
	return f.Truncate(keep)
}

// lastLine returns the file's last line without its newline.
func lastLine(f *os.File, size int64) ([]byte, error) {
	const chunk = 4096
	var buf []byte
	for off := size; off > 0 && bytes.Count(buf, []byte{'\n'}) < 2; {
		n := min(int64(chunk), off)
		off -= n
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			return nil, err
		}
		buf = append(b, buf...)
	}
	buf = bytes.TrimSuffix(buf, []byte{'\n'})
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	return buf, nil
}

// countLines counts the file's lines (a last line without its newline
// counts).
func countLines(f *os.File) (int, error) {
	r := io.NewSectionReader(f, 0, 1<<62)
	buf := make([]byte, 64<<10)
	n, last := 0, byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++
	}
	return n, nil
}
