package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/provider/xks"
)

// xksFileName is the XKS configuration in the home.
const xksFileName = "xks.json"

// xksFlags are serve's XKS proxy flags.
type xksFlags struct {
	on     bool
	config string
	prefix string
	set    bool      // --xks-prefix given
	file   *xks.File // checked by loadTLSAndXKS (secrets still sealed)
	path   string    // the file loaded (for SIGHUP)
}

func (x *xksFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&x.on, "xks", false, "also serve the AWS KMS External Key Store proxy API (docs/XKS.md) under [/prefix]/kms/xks/v1")
	fl.StringVar(&x.config, "xks-config", "", "XKS configuration: SigV4 credentials and external keys (default $P11KMS_HOME/xks.json; implies --xks)")
	fl.StringVar(&x.prefix, "xks-prefix", "", "XKS URI path prefix before /kms/xks/v1, overriding the file's uriPrefix")
}

// check notes whether --xks-prefix was given; the file is checked when
// serve loads it.
func (x *xksFlags) check(fl *pflag.FlagSet) {
	x.set = fl.Changed("xks-prefix")
	x.on = x.on || x.config != "" || x.set
}

// load reads and checks the XKS configuration before the token is open
// (nil when XKS is off): a bad file writes nothing. Its sealed secrets are
// opened later, by open.
func (x *xksFlags) load(g *globals) (*xks.File, error) {
	if !x.on {
		return nil, nil
	}
	x.path = x.filePath(g)
	f, err := xks.LoadFile(x.path)
	if err != nil {
		return nil, fmt.Errorf("--xks-config: %w", err)
	}
	return f, x.override(f)
}

// filePath is --xks-config or the home's xks.json.
func (x *xksFlags) filePath(g *globals) string {
	if x.config != "" {
		return x.config
	}
	return filepath.Join(g.home, xksFileName)
}

// override applies --xks-prefix to the file's configuration.
func (x *xksFlags) override(f *xks.File) error {
	if !x.set {
		return nil
	}
	f.URIPrefix = strings.Trim(x.prefix, "/")
	if err := f.Check(); err != nil {
		return usageError{fmt.Errorf("--xks-prefix: %w", err)}
	}
	return nil
}

// open reads the XKS configuration with its secrets opened by the token;
// plaintext secrets in the file are sealed in it first, and logged.
func (x *xksFlags) open(s wire.SecretSealer, log *slog.Logger) (*xks.File, error) {
	f, sealed, err := xks.LoadSealedFile(x.path, s)
	if err != nil {
		return nil, fmt.Errorf("--xks-config: %w", err)
	}
	if sealed > 0 {
		log.Warn("XKS: plaintext SigV4 secrets in the file are now sealed under the token's key; a copy of the file "+
			"made before now still holds them: rotate those credentials (docs/XKS.md)", "file", x.path, "sealed", sealed)
	}
	return f, x.override(f)
}

// xksSealer seals and opens the XKS SigV4 secrets with the token.
func xksSealer(ctx context.Context, tok *hsm.Token) (*secretseal.Sealer, error) {
	s, err := secretseal.New(ctx, tok)
	if err != nil {
		return nil, err
	}
	return s.WithPurpose(xks.SealPurpose)
}

// withXKS mounts the XKS handler beside the KMS dialects: a path holding
// /kms/xks/v1/ goes to XKS (which answers a wrong prefix with
// InvalidUriPathException), everything else to kmsHandler. XKS requests
// are counted in the server's metrics (api="xks") and audited, and share
// the node's replay memory and rate limits (st: in process or --state).
func withXKS(ctx context.Context, kms *provider.Service, kmsHandler *server.Server, audit wire.Observer,
	sf *serveFlags, st *state.State, log *slog.Logger) (http.Handler, error) {
	obs := observers{kmsHandler.Metrics()}
	if audit != nil {
		obs = append(obs, audit)
	}
	sealer, err := xksSealer(ctx, kms.Token())
	if err != nil {
		return nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before the file is read: a SIGHUP from now on reloads it
	f, err := sf.xks.open(sealer, log)
	if err != nil {
		signal.Stop(hup)
		return nil, err
	}
	var lim wire.Limiter
	if st.Limiter != nil {
		lim = st.Limiter
	}
	h, err := xks.New(ctx, xks.Config{Token: kms.Token(), KMS: kms, File: f, Observer: obs, Limiter: lim, Replay: st.Replay,
		MaxBodyBytes: sf.maxBody, Model: "p11kms XKS proxy (XKS Proxy API v1.0.3)", ExpectedHost: sf.expectedHost})
	if err != nil {
		signal.Stop(hup)
		return nil, err
	}
	go reloadOnHUP(ctx, hup, h, &sf.xks, sealer, log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, xks.APIRoot) {
			h.ServeHTTP(w, r)
			return
		}
		kmsHandler.ServeHTTP(w, r)
	}), nil
}

// reloadOnHUP reads the XKS configuration again on every SIGHUP (until ctx
// ends): new credentials and keys take effect without a restart; a file
// that does not load is logged and the running configuration kept.
func reloadOnHUP(ctx context.Context, hup chan os.Signal, h *xks.Handler, x *xksFlags, s wire.SecretSealer, log *slog.Logger) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		f, err := x.open(s, log)
		if err == nil {
			err = h.Reload(f)
		}
		if err != nil {
			log.Error("XKS configuration not reloaded: the running one stays", "file", x.path, "err", err)
			continue
		}
		log.Info("XKS configuration reloaded", "file", x.path, "credentials", len(f.Credentials), "keys", len(f.Keys), "pid", os.Getpid())
	}
}

// observers are the XKS requests' metrics and audit log.
type observers []wire.Observer

// Observe offers the record to each.
func (o observers) Observe(r wire.Record) {
	for _, x := range o {
		x.Observe(r)
	}
}

// Healthy is false while the audit log cannot be written: the pipeline
// then refuses signed XKS requests too (wire.Health).
func (o observers) Healthy() bool {
	for _, x := range o {
		if h, ok := x.(wire.Health); ok && !h.Healthy() {
			return false
		}
	}
	return true
}

// newXKSCmd is `p11kms xks`: the token keys an XKS proxy serves and its
// configuration file (xksfile.go).
func newXKSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "xks", Short: "AWS KMS External Key Store: token keys, SigV4 credentials and key status (see `serve --xks`)"}
	var usage []string
	create := &cobra.Command{
		Use:   "create-key LABEL",
		Short: "Generate a 256-bit AES key in the token (sensitive, not extractable) for use as an XKS external key",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := parseUsage(usage)
			if err != nil {
				return err
			}
			tok, err := g.openToken(cmd.Context())
			if err != nil {
				return err
			}
			defer tok.Close()
			if _, err := tok.FindSecretKeyByLabel(cmd.Context(), args[0]); err == nil {
				return fmt.Errorf("the token already holds a secret key labelled %q", args[0])
			} else if !errors.Is(err, hsm.ErrNotFound) {
				return err
			}
			rnd, err := tok.Random(cmd.Context(), 16)
			if err != nil {
				return err
			}
			id := append([]byte(xks.KeyIDPrefix), rnd...)
			if _, err := tok.GenerateAESKey(cmd.Context(), 256, hsm.SecretKeyOptions{ID: id, Label: args[0], Usage: u}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created AES-256 key %q (usage: %s)\n", args[0], strings.Join(usage, ","))
			return nil
		},
	}
	create.Flags().StringSliceVar(&usage, "usage", []string{"encrypt", "decrypt"}, "what the key may do: encrypt, decrypt (comma-separated, both by default) or none")
	cmd.AddCommand(create)
	addXKSFileCmds(cmd, g)
	return cmd
}

// parseUsage turns --usage into token usage flags.
func parseUsage(list []string) (hsm.Usage, error) {
	var u hsm.Usage
	for _, s := range list {
		switch s {
		case "encrypt":
			u |= hsm.UsageEncrypt
		case "decrypt":
			u |= hsm.UsageDecrypt
		case "none":
		default:
			return 0, usageError{fmt.Errorf("--usage %q: accepted encrypt, decrypt, none", s)}
		}
	}
	if u != 0 && len(list) > 0 && slices.Contains(list, "none") {
		return 0, usageError{errors.New("--usage none cannot be combined with encrypt or decrypt")}
	}
	return u, nil
}

// loadTLSAndXKS reads the client CA and the XKS configuration before
// serve binds its port: a bad file writes nothing.
func (f *serveFlags) loadTLSAndXKS(g *globals) error {
	cfg, err := f.tls.config()
	if err != nil {
		return err
	}
	f.tls.cfg = cfg
	f.xks.file, err = f.xks.load(g)
	return err
}
