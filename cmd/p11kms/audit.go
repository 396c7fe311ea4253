package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider/audit"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check the server's audit log"}
	cmd.AddCommand(&cobra.Command{
		Use:   "verify FILE|DIR|GLOB...",
		Short: "Verify audit logs with the token's key (detects removed, inserted, edited or re-chained lines, a cut tail up to the last checkpoint, a missing rotated file)",
		Long: `verify checks audit logs with the token's audit HMAC key: every line's MAC,
its link to the line before it, the checkpoints, and that each rotated file
continues the one before it. A directory means its audit-*.log files. Files
are grouped by the node that wrote them, one report per node; the first bad
line is named by file and number. Lines after the last checkpoint can be cut
unnoticed: verify says how many and how old that checkpoint is.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s takes one or more FILE, DIR or GLOB arguments", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditVerify(cmd.Context(), g, args, cmd.OutOrStdout())
		},
	})
	return cmd
}

// auditFiles expands the arguments of audit verify: a directory to its
// audit-*.log files, a glob to its matches, a file to itself.
func auditFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(a, "audit-*.log"))
			if len(m) == 0 {
				return nil, fmt.Errorf("%s: no audit-*.log file in this directory", a)
			}
			files = append(files, m...)
			continue
		} else if err == nil || !strings.ContainsAny(a, "*?[") {
			files = append(files, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil || len(m) == 0 {
			return nil, usageError{fmt.Errorf("%s: matches no file", a)}
		}
		files = append(files, m...)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func auditVerify(ctx context.Context, g *globals, args []string, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	files, err := auditFiles(args)
	if err != nil {
		return err
	}
	tok, err := g.openToken(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	var key audit.MAC
	if k, err := tok.FindHMACKey(ctx, audit.HMACKeyLabel); err == nil {
		key = k
	} else if !errors.Is(err, hsm.ErrNotFound) {
		return err
	} // no key: only unkeyed logs can verify; keyed lines say they need it
	reps, err := audit.VerifyFiles(ctx, key, files)
	if err != nil {
		return err
	}
	var bad []string
	for _, r := range reps {
		if r.Err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v (%s lines before it verified)", nodeTitle(r), r.Err, commas(r.Lines)))
			continue
		}
		fmt.Fprintln(out, describeReport(r, time.Now()))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "\n"))
	}
	return nil
}

func nodeTitle(r *audit.NodeReport) string {
	if r.Node == "" {
		return fmt.Sprintf("unkeyed log (%s)", strings.Join(r.Files, ", "))
	}
	return fmt.Sprintf("node %s (%s)", r.Node, strings.Join(r.Files, ", "))
}

// describeReport is one verified node's line, e.g. "node a (audit-a.log):
// 1,204 lines, chain intact; last checkpoint 2026-12-03T13:40:02Z (3s ago)
// at line 1,200 of audit-a.log (4 lines after it can be cut unnoticed)".
func describeReport(r *audit.NodeReport, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s lines, chain intact", nodeTitle(r), commas(r.Lines))
	if r.UnkeyedLines > 0 {
		fmt.Fprintf(&b, "; %s of them unkeyed (format 1: protected against edits, not against re-chaining)", commas(r.UnkeyedLines))
	}
	if r.StartsAfter != "" {
		fmt.Fprintf(&b, "; continues %s (not given)", r.StartsAfter)
	}
	switch {
	case r.Last == nil && r.Node != "":
		b.WriteString("; no checkpoint: every line can be cut from the end unnoticed")
	case r.Last != nil:
		fmt.Fprintf(&b, "; last checkpoint %s (%s ago) at line %s of %s (%s lines after it can be cut unnoticed)",
			r.Last.Time.UTC().Format(time.RFC3339), now.Sub(r.Last.Time).Round(time.Second), commas(r.Last.Line), r.Last.File, commas(r.AfterCheckpoint))
		if r.Last.Final && r.AfterCheckpoint == 0 {
			b.WriteString("; closed cleanly")
		} else {
			b.WriteString("; not closed: its writer is running, stopped without closing, or the tail after the last checkpoint was cut")
		}
	}
	return b.String()
}

// commas writes n with thousands separators: 1,204.
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// auditFlags are serve's audit log flags.
type auditFlags struct {
	dir, node       string
	maxBytes        int64
	checkpointEvery time.Duration
}

func (a *auditFlags) register(fl *pflag.FlagSet) {
	host, _ := os.Hostname()
	fl.StringVar(&a.dir, "audit-dir", "", "directory of the per-node audit logs (default $P11KMS_HOME)")
	fl.StringVar(&a.node, "node-name", host, "this node's name, in every audit line and in its log's file name")
	fl.Int64Var(&a.maxBytes, "audit-max-bytes", audit.DefaultMaxBytes, "rotate the audit log at this size; the chain continues into the next file (0: never)")
	fl.DurationVar(&a.checkpointEvery, "audit-checkpoint-interval", audit.DefaultCheckpointEvery, "how often a signed checkpoint is written (lines after the last one can be cut unnoticed)")
}

// check refuses bad audit flags, naming the flag and what it accepts.
func (a *auditFlags) check() error {
	if err := audit.CheckNode(a.node); err != nil {
		return usageError{fmt.Errorf("--node-name: %w", err)}
	}
	if a.maxBytes != 0 && a.maxBytes < audit.MinMaxBytes {
		return usageError{fmt.Errorf("--audit-max-bytes %d: accepted 0 (never rotate) or %d or more", a.maxBytes, audit.MinMaxBytes)}
	}
	if a.checkpointEvery <= 0 {
		return usageError{fmt.Errorf("--audit-checkpoint-interval %v: accepted more than 0 (e.g. 10s)", a.checkpointEvery)}
	}
	return nil
}

// openAuditLog opens this node's keyed audit log (file, --audit-log, or by
// default audit-<node>.log in the audit directory), MACed with the token's
// audit key (created on first use), or nil for --audit-log -. A failed
// write is logged loudly, every time: the server should refuse requests
// while the log is not Healthy.
func openAuditLog(ctx context.Context, g *globals, file string, a auditFlags, tok *hsm.Token, log *slog.Logger) (*audit.Log, error) {
	if file == "-" {
		return nil, nil
	}
	path := file
	if path == "" {
		dir := a.dir
		if dir == "" {
			dir = g.home
		}
		path = filepath.Join(dir, audit.FileName(a.node))
	}
	key, err := tok.HMACKey(ctx, audit.HMACKeyLabel)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if err := key.UseSessionCopy(ctx); err != nil {
		log.Warn("audit key: no session copy, MACs use the token object (slower)", "err", err)
	}
	onError := func(err error) {
		log.Error("AUDIT LOG WRITE FAILED: requests are not being audited", "path", path, "err", err)
	}
	l, err := audit.OpenKeyed(path, key, audit.Options{Node: a.node, MaxBytes: a.maxBytes, CheckpointEvery: a.checkpointEvery, OnError: onError})
	if err != nil {
		return nil, err
	}
	log.Info("audit log", "path", path, "node", a.node, "maxBytes", a.maxBytes, "checkpointEvery", a.checkpointEvery.String())
	return l, nil
}
