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
	file   *xks.File // loaded by loadTLSAndXKS
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

// load reads the XKS configuration (nil when XKS is off).
func (x *xksFlags) load(g *globals) (*xks.File, error) {
	if !x.on {
		return nil, nil
	}
	p := x.config
	if p == "" {
		p = filepath.Join(g.home, xksFileName)
	}
	x.path = p
	f, err := xks.LoadFile(p)
	if err != nil {
		return nil, fmt.Errorf("--xks-config: %w", err)
	}
	if x.set {
		f.URIPrefix = strings.Trim(x.prefix, "/")
		if err := f.Check(); err != nil {
			return nil, usageError{fmt.Errorf("--xks-prefix: %w", err)}
		}
	}
	return f, nil
}

// withXKS mounts the XKS handler beside the KMS dialects: a path holding
// /kms/xks/v1/ goes to XKS (which answers a wrong prefix with
// InvalidUriPathException), everything else to kmsHandler. XKS requests
// are counted in the server's metrics (api="xks") and audited.
func withXKS(ctx context.Context, f *xks.File, kms *provider.Service, kmsHandler *server.Server, audit wire.Observer,
	sf *serveFlags, g *globals, log *slog.Logger) (http.Handler, error) {
	obs := observers{kmsHandler.Metrics()}
	if audit != nil {
		obs = append(obs, audit)
	}
	var lim wire.Limiter
	if sf.rate > 0 {
		l, err := state.NewLocalLimiter(sf.rate, sf.burst, len(f.Credentials))
		if err != nil {
			return nil, usageError{fmt.Errorf("--rate/--burst: %w", err)}
		}
		lim = l // wire.Limiter is state.RateLimiter
	}
	h, err := xks.New(ctx, xks.Config{Token: kms.Token(), KMS: kms, File: f, Observer: obs, Limiter: lim, MaxBodyBytes: sf.maxBody,
		Model: "p11kms XKS proxy (XKS Proxy API v1.0.3)", ExpectedHost: sf.expectedHost})
	if err != nil {
		return nil, err
	}
	go reloadOnHUP(ctx, h, &sf.xks, g, log)
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
func reloadOnHUP(ctx context.Context, h *xks.Handler, x *xksFlags, g *globals, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		f, err := x.load(g)
		if err == nil {
			err = h.Reload(f)
		}
		if err != nil {
			log.Error("XKS configuration not reloaded: the running one stays", "file", x.path, "err", err)
			continue
		}
		log.Info("XKS configuration reloaded", "file", x.path, "credentials", len(f.Credentials), "keys", len(f.Keys))
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

// newXKSCmd is `p11kms xks`: the token keys an XKS proxy serves.
func newXKSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "xks", Short: "AWS KMS External Key Store keys in the token (see `serve --xks`)"}
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
