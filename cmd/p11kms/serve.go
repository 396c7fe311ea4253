package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/seed"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/vod"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/softhsm"
)

type serveFlags struct {
	listen, accessKeys, auditLog, tlsCert, tlsKey, seedFile string
	rate                                                    float64
	burst                                                   int
	maxBody                                                 int64
	readTimeout, writeTimeout, sweepEvery, shutdownWait     time.Duration
	region, account                                         string
	processes                                               int
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the Alibaba- and Tencent-compatible KMS APIs on one port",
		Long: `serve answers the official Alibaba Cloud KMS and Tencent Cloud KMS SDKs,
unchanged, pointed at --listen: requests are routed by how they are signed.
Every request is authenticated with the API's own signature against the
access-keys file, checked against that key's policy, rate limited, and
appended to the hash-chained audit log. /healthz, /readyz and /metrics
(Prometheus) are served on the same port. SIGTERM or SIGINT stops it
gracefully: requests in flight finish. Several serve processes on one token
are interchangeable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.accessKeys, "access-keys", "", "access-keys file (default $P11KMS_HOME/access-keys.json)")
	fl.StringVar(&f.auditLog, "audit-log", "", "audit log file (default $P11KMS_HOME/audit.log; \"-\" disables)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key serves HTTPS")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.StringVar(&f.seedFile, "seed", "", "YAML seed file applied (idempotently) at start-up")
	fl.Float64Var(&f.rate, "rate", 0, "requests per second allowed per access key (0: unlimited)")
	fl.IntVar(&f.burst, "burst", 0, "burst per access key (default: rate)")
	fl.Int64Var(&f.maxBody, "max-body", 64<<10, "largest request body in bytes")
	fl.DurationVar(&f.readTimeout, "read-timeout", 10*time.Second, "HTTP read timeout")
	fl.DurationVar(&f.writeTimeout, "write-timeout", 30*time.Second, "HTTP write timeout")
	fl.DurationVar(&f.sweepEvery, "sweep-interval", time.Hour, "how often to destroy keys past their deletion window and rotate due keys (0: never)")
	fl.DurationVar(&f.shutdownWait, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take after SIGTERM")
	fl.StringVar(&f.region, "region", "cn-hangzhou", "region used in ARNs")
	fl.StringVar(&f.account, "account", "1234567890123456", "account id used in ARNs")
	fl.IntVar(&f.processes, "processes", 1, "serve processes sharing the port (SO_REUSEPORT); SoftHSM2 serialises calls within a process, so use one per core")
	return cmd
}

func serve(ctx context.Context, g *globals, f *serveFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	keys, err := wire.LoadAccessKeys(g.accessKeysPath(f.accessKeys))
	if err != nil {
		return fmt.Errorf("%w (create one with `p11kms init` or `p11kms accesskey create`)", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tokenCalls := server.TokenCallObserver(reg)
	cfg, err := softhsm.ResolveToken(g.token, g.home)
	if err != nil {
		return err
	}
	cfg.Wrap = func(m hsm.Module) hsm.Module { return hsm.Instrument(m, tokenCalls) }
	tok, err := hsm.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer tok.Close()
	kms := provider.New(tok, provider.Options{Region: f.region, Account: f.account})
	isChild := os.Getenv(childEnv) != ""
	if f.seedFile != "" && !isChild {
		sf, err := seed.Load(f.seedFile)
		if err != nil {
			return err
		}
		res, err := seed.Apply(ctx, kms, sf)
		if err != nil {
			return err
		}
		log.Info("seed applied", "file", f.seedFile, "keysCreated", res.Created, "versionsAdded", res.VersionsAdded,
			"aliasesCreated", res.AliasesCreated, "statesChanged", res.StatesChanged)
	}
	var auditLog *audit.Log
	if f.auditLog != "-" {
		path := f.auditLog
		if path == "" {
			path = filepath.Join(g.home, "audit.log")
		}
		if auditLog, err = audit.Open(path, func(err error) { log.Error("audit log write failed", "err", err) }); err != nil {
			return err
		}
		defer auditLog.Close()
	}
	media, err := vod.New(vod.Config{KMS: kms, TokenKeyFile: filepath.Join(g.home, vod.TokenKeyFileName), Logger: log})
	if err != nil {
		return err
	}
	if err := media.Init(ctx); err != nil {
		return fmt.Errorf("media keys: %w", err)
	}
	scfg := server.Config{KMS: kms, Keys: keys, Rate: f.rate, Burst: f.burst, MaxBodyBytes: f.maxBody, Metrics: reg,
		HLSKeys: media.KeyHandler(), Log: log}
	if auditLog != nil {
		scfg.Audit = auditLog
	}
	handler := server.New(scfg)
	if f.processes < 1 || f.processes > 256 {
		return usageError{fmt.Errorf("--processes %d: accepted 1 to 256", f.processes)}
	}
	var children []*exec.Cmd
	if f.processes > 1 && os.Getenv(childEnv) == "" {
		for i := 1; i < f.processes; i++ {
			c := exec.Command(os.Args[0], os.Args[1:]...)
			c.Env = append(os.Environ(), childEnv+"=1")
			c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the parent
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Start(); err != nil {
				return fmt.Errorf("starting serve process %d: %w", i+1, err)
			}
			children = append(children, c)
		}
		defer func() {
			for _, c := range children {
				_ = c.Process.Signal(syscall.SIGTERM)
			}
			for _, c := range children {
				_ = c.Wait()
			}
		}()
	}
	lc := net.ListenConfig{}
	if f.processes > 1 {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(ctx, "tcp", f.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout,
		ReadHeaderTimeout: f.readTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if f.tlsCert != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.sweepEvery > 0 && !isChild {
		go sweepLoop(ctx, kms, f.sweepEvery, log)
	}
	errc := make(chan error, 1)
	go func() {
		scheme := "http"
		if f.tlsCert != "" {
			scheme = "https"
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
		_ = scheme
	}()
	log.Info("serving", "listen", ln.Addr().String(), "token", tok.Label(), "module", tok.ModulePath(), "tls", f.tlsCert != "", "pid", os.Getpid())
	if os.Getenv(childEnv) == "" {
		fmt.Fprintf(os.Stdout, "p11kms serve: listening on %s (%d process(es))\n", ln.Addr(), f.processes)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// childEnv marks a serve process started by another for --processes.
const childEnv = "P11KMS_SERVE_CHILD"

// reusePort sets SO_REUSEPORT so several processes accept on one port.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func sweepLoop(ctx context.Context, kms *provider.Service, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			res, err := kms.Sweep(ctx)
			if err != nil {
				log.Error("sweep failed", "err", err)
				continue
			}
			if len(res.Deleted)+len(res.Rotated) > 0 {
				log.Info("sweep", "deleted", res.Deleted, "rotated", res.Rotated)
			}
		}
	}
}
