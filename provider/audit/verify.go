package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Result is what Verify found.
type Result struct {
	Lines int
}

// ErrBroken is wrapped by every chain failure Verify and VerifyFiles report.
var ErrBroken = errors.New("audit log chain broken")

// Verify reads an unkeyed (format 1) audit log and checks every line: its
// own hash, and its prev against the hash of the line before it. It
// reports the first bad line (1-based): an edited line by its own number, a
// removed or inserted one at the line after the gap. Lines may be of any
// length. A keyed line needs the token key: see VerifyFiles.
func Verify(r io.Reader) (Result, error) {
	c := &chain{ctx: context.Background(), prev: genesis, rep: &NodeReport{}}
	n, err := c.stream(r, "", false)
	if err != nil {
		return Result{Lines: n - 1}, fmt.Errorf("%w at line %d: %v", ErrBroken, n, err)
	}
	return Result{Lines: n}, nil
}

// Checkpoint is a checkpoint line Verify found.
type Checkpoint struct {
	File  string // base name
	Line  int    // its number in File
	Time  time.Time
	Final bool // written at Close or before rotation
}

// NodeReport is what VerifyFiles found for one node's files.
type NodeReport struct {
	Node         string   // "" for files with no keyed line
	Files        []string // in chain order
	Lines        int      // lines that verified
	UnkeyedLines int      // of Lines, format 1 (not protected against re-chaining)
	// StartsAfter names the file the first given file continues (earlier
	// files were not given, e.g. deleted by retention).
	StartsAfter string
	Last        *Checkpoint // the last checkpoint, nil if none
	// AfterCheckpoint counts the lines after Last: they can be cut unnoticed.
	AfterCheckpoint int
	// Err is the first failure (wrapping ErrBroken for a broken chain),
	// naming the file and line.
	Err error
}

// VerifyFiles verifies audit logs with the token key: it groups the files
// by the node their keyed lines name, puts each group in chain order (a
// file after the one its first line continues; files continuing no given
// file by name), and checks each group as one chain — every line's MAC,
// its prev and number, checkpoints, and that each file continues the one
// before it (a missing or cut middle file fails).
func VerifyFiles(ctx context.Context, key MAC, paths []string) ([]*NodeReport, error) {
	groups := map[string][]fileHead{}
	seen := map[string]bool{}
	for _, p := range paths {
		abs, _ := filepath.Abs(p)
		if seen[abs] {
			continue // given twice (a glob and its directory)
		}
		seen[abs] = true
		h, err := readHead(p)
		if err != nil {
			return nil, err
		}
		groups[h.node] = append(groups[h.node], h)
	}
	var reps []*NodeReport
	for node, files := range groups {
		rep := &NodeReport{Node: node}
		c := &chain{ctx: ctx, key: key, prev: genesis, node: node, rep: rep}
		for i, p := range chainOrder(files) {
			rep.Files = append(rep.Files, filepath.Base(p))
			if err := c.file(p, i == 0); err != nil {
				rep.Err = err
				break
			}
		}
		reps = append(reps, rep)
	}
	sort.Slice(reps, func(i, j int) bool { return reps[i].Node < reps[j].Node })
	return reps, nil
}

// fileHead is what ordering needs of a file: its node, and the file its
// first line continues ("" if none).
type fileHead struct {
	path, node, continues string
}

// chainOrder orders one node's files: each run starts at a file that
// continues no given file (runs by name), then follows the files that
// continue it.
func chainOrder(files []fileHead) []string {
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i].path) < filepath.Base(files[j].path) })
	given, next := map[string]bool{}, map[string][]fileHead{}
	for _, f := range files {
		given[filepath.Base(f.path)] = true
	}
	var heads []fileHead
	for _, f := range files {
		if f.continues == "" || !given[f.continues] {
			heads = append(heads, f)
		} else {
			next[f.continues] = append(next[f.continues], f)
		}
	}
	var out []string
	done := map[string]bool{}
	for _, h := range heads {
		for f := &h; f != nil && !done[f.path]; {
			out, done[f.path] = append(out, f.path), true
			f = nil
			if n := next[filepath.Base(out[len(out)-1])]; len(n) > 0 {
				f = &n[0]
			}
		}
	}
	for _, f := range files { // cycles, or two files continuing one
		if !done[f.path] {
			out = append(out, f.path)
		}
	}
	return out
}

// readHead reads the file's node (of its first keyed line, "" if none) and
// what its first line continues.
func readHead(path string) (fileHead, error) {
	h := fileHead{path: path}
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		var line Line
		if json.Unmarshal(bytes.TrimSuffix(raw, []byte{'\n'}), &line) == nil && line.V == FormatKeyed {
			if n == 1 && line.Kind == KindContinue {
				h.continues = line.PrevFile
			}
			h.node = line.Node
			return h, nil
		}
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return h, err
		}
	}
}

// chain is the state of one node's chain across its files.
type chain struct {
	ctx      context.Context
	key      MAC
	prev     string
	keyed    bool
	node     string
	prevFile string // base name of the file verified before
	rep      *NodeReport
}

// file verifies one file of the chain; first says no file came before it.
func (c *chain) file(path string, first bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	base := filepath.Base(path)
	n, err := c.stream(f, base, !first)
	if err != nil {
		return fmt.Errorf("%w: %s at line %d: %v", ErrBroken, base, n, err)
	}
	c.prevFile = base
	return nil
}

// stream checks every line of r; continues says a file came before it. It
// returns the number of lines read, or the number of the bad line.
func (c *chain) stream(r io.Reader, file string, continues bool) (int, error) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if err == io.EOF && len(raw) == 0 {
			return n - 1, nil
		}
		if err != nil && err != io.EOF {
			return n, err
		}
		raw = bytes.TrimSuffix(raw, []byte{'\n'})
		if err := c.line(raw, file, n, continues); err != nil {
			return n, err
		}
		c.rep.Lines++
	}
}

// line checks one line, n of its file, and moves the chain past it.
func (c *chain) line(raw []byte, file string, n int, continues bool) error {
	var line Line
	if err := json.Unmarshal(raw, &line); err != nil {
		return fmt.Errorf("not a JSON audit record: %v", err)
	}
	if n == 1 && continues && (line.V != FormatKeyed || line.Kind != KindContinue) {
		return fmt.Errorf("it does not continue %s, the file before it (a file between them is missing, or they are not one chain)", c.prevFile)
	}
	if line.V != FormatKeyed {
		return c.unkeyed(raw, line)
	}
	if c.key == nil {
		return fmt.Errorf("a keyed (format 2) line, and no audit key to check it (the token has no %s key: open the token that wrote the log)", HMACKeyLabel)
	}
	body, mac, ok := splitSeal(raw, macField)
	if !ok {
		return errors.New("its mac field is missing or malformed (it was edited)")
	}
	valid, err := c.key.Verify(c.ctx, body, mac)
	if err != nil {
		return fmt.Errorf("the token could not verify its MAC: %w", err)
	}
	if !valid {
		return errors.New("its MAC does not verify with the token key (it was edited, or written without the token key)")
	}
	if err := c.links(line, n, continues); err != nil {
		return err
	}
	c.prev, c.keyed = hex.EncodeToString(mac), true
	if line.Kind == KindCheckpoint {
		t, _ := time.Parse(time.RFC3339Nano, line.Time)
		c.rep.Last = &Checkpoint{File: file, Line: n, Time: t, Final: line.Final}
		c.rep.AfterCheckpoint = 0
	} else {
		c.rep.AfterCheckpoint++
	}
	return nil
}

// links checks how a keyed line (its MAC verified) fits the chain: its
// prev, its number, its node, and a continue line's previous file.
func (c *chain) links(line Line, n int, continues bool) error {
	if line.Kind == KindContinue {
		switch {
		case n != 1:
			return errors.New("a continue line that is not its file's first")
		case continues && line.PrevFile != c.prevFile:
			return fmt.Errorf("it continues %s, but the file before it is %s (%s is missing)", line.PrevFile, c.prevFile, line.PrevFile)
		case continues && line.Prev != c.prev:
			return fmt.Errorf("it continues %s from a line that is not that file's last (%s was cut or changed)", c.prevFile, c.prevFile)
		case !continues:
			c.rep.StartsAfter, c.prev = line.PrevFile, line.Prev
		}
	}
	switch {
	case line.Prev != c.prev:
		return errors.New("its prev is not the MAC of the line before it (a line was removed or inserted before it)")
	case line.N != n:
		return fmt.Errorf("it says it is line %d of its file (lines were removed or inserted)", line.N)
	case line.Node != c.node:
		return fmt.Errorf("it is of node %q, its chain of node %q", line.Node, c.node)
	case line.Kind == KindCheckpoint && line.Lines != n:
		return fmt.Errorf("a checkpoint counting %d lines at line %d", line.Lines, n)
	}
	return nil
}

// unkeyed checks a format-1 line: its own hash and its prev.
func (c *chain) unkeyed(raw []byte, line Line) error {
	if c.keyed {
		return errors.New("an unkeyed line after keyed ones (the log was rewritten without the token key)")
	}
	if body, sum, ok := splitHash(raw); ok {
		if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
			return errors.New("the line does not match its own hash (it was edited)")
		}
	} else if bytes.Contains(raw, []byte(`,"hash":`)) {
		return errors.New("its hash field is malformed (it was edited)")
	}
	if line.Prev != c.prev {
		return errors.New("it names a previous line that is not the one before it (a line was removed or inserted before it)")
	}
	sum := sha256.Sum256(raw)
	c.prev = hex.EncodeToString(sum[:])
	c.rep.UnkeyedLines++
	return nil
}
