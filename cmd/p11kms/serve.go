package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/internal/seed"
	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
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
	region, account, expectedHost                           string
	processes                                               int

	audit auditFlags    // --audit-dir, --node-name, --audit-max-bytes, --audit-checkpoint-interval
	aws   awsServeFlags // --aws-attestation-roots, --aws-accept-unsigned-attestation-for-tests
	state stateFlags    // --state, --max-rate, --clock-skew
	tls   tlsFlags      // --tls-client-ca, --tls-client-cn (tls.go)
	xks   xksFlags      // --xks, --xks-config, --xks-prefix (xks.go)
	pprof pprofFlags    // --pprof (pprof.go)
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the Alibaba-, Tencent- and AWS-compatible KMS APIs on one port",
		Long: `serve answers the official Alibaba Cloud KMS, Tencent Cloud KMS and AWS KMS
SDKs (and the AWS CLI and Encryption SDK), unchanged, pointed at --listen:
requests are routed by how they are signed.
Every request is authenticated with the API's own signature against the
access-keys file, checked against that key's policy, rate limited, and
appended to the hash-chained audit log. /healthz, /readyz and /metrics
(Prometheus) are served on the same port. SIGTERM or SIGINT stops it
gracefully: requests in flight finish. Several serve processes on one token
are interchangeable. Changes to the access-keys file (p11kms accesskey
create/delete) take effect within 1 s in every running serve (file watch
and a check every second); SIGHUP reloads at once. A malformed file is
logged and the last good set stays in force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.xks.check(cmd.Flags())
			return serve(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.accessKeys, "access-keys", "", "access-keys file (default $P11KMS_HOME/access-keys.json)")
	fl.StringVar(&f.auditLog, "audit-log", "", "this node's audit log file (default <audit-dir>/audit-<node-name>.log; \"-\" disables)")
	f.audit.register(fl)
	f.state.register(fl)
	f.tls.register(fl)
	f.xks.register(fl)
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key serves HTTPS")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.StringVar(&f.seedFile, "seed", "", "YAML seed file applied (idempotently) at start-up, once the port is bound; checked whole before anything is written (an alias of another key is refused unless the file says moveAliases: true)")
	fl.Float64Var(&f.rate, "rate", 0, "requests per second allowed per access key (0: unlimited)")
	fl.IntVar(&f.burst, "burst", 0, "burst per access key (default: rate)")
	fl.Int64Var(&f.maxBody, "max-body", 64<<10, "largest request body in bytes")
	fl.DurationVar(&f.readTimeout, "read-timeout", 10*time.Second, "HTTP read timeout")
	fl.DurationVar(&f.writeTimeout, "write-timeout", 30*time.Second, "HTTP write timeout")
	fl.DurationVar(&f.sweepEvery, "sweep-interval", time.Hour, "how often to destroy keys past their deletion window and rotate due keys (0: never)")
	fl.DurationVar(&f.shutdownWait, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take after SIGTERM")
	fl.StringVar(&f.region, "region", "cn-hangzhou", "region used in ARNs")
	fl.StringVar(&f.account, "account", "1234567890123456", "account id used in ARNs")
	fl.StringVar(&f.expectedHost, "expected-host", "", "the only Host signed requests may name (name: any port; name:port); a request signed for another host is refused with the API's signature error (default: any)")
	f.aws.register(fl)
	f.pprof.register(fl)
	fl.IntVar(&f.processes, "processes", 1, "serve processes sharing the port (SO_REUSEPORT); SoftHSM2 serialises calls within a process, so use one per core")
	return cmd
}

// check refuses bad flags before serve opens anything.
func (f *serveFlags) check() error {
	bad := func(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return bad("--tls-cert and --tls-key go together")
	case f.processes < 1 || f.processes > 256:
		return bad("--processes %d: accepted 1 to 256", f.processes)
	case f.rate < 0:
		return bad("--rate %v: accepted 0 (unlimited) or more", f.rate)
	case f.burst < 0:
		return bad("--burst %d: accepted 0 (the rate) or more", f.burst)
	case f.maxBody < 1:
		return bad("--max-body %d: accepted 1 or more (bytes)", f.maxBody)
	case strings.ContainsAny(f.expectedHost, "/@?# \t"):
		return bad("--expected-host %q: accepted a host name or host:port as clients sign it (kms.example.com, kms.example.com:8443), no scheme or path", truncate(f.expectedHost, 80))
	}
	if err := f.audit.check(); err != nil {
		return err
	}
	if err := f.tls.check(f.tlsCert != ""); err != nil {
		return err
	}
	if err := f.pprof.check(); err != nil {
		return err
	}
	if err := f.state.check(); err != nil {
		return err
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--read-timeout", f.readTimeout}, {"--write-timeout", f.writeTimeout}, {"--sweep-interval", f.sweepEvery}, {"--shutdown-timeout", f.shutdownWait}} {
		if d.v < 0 {
			return bad("%s %v: accepted 0 or more (e.g. 30s)", d.flag, d.v)
		}
	}
	return nil
}

// serve checks its flags and files, binds the port, and only then opens the
// token and applies the seed: a bad flag or a busy port writes nothing.
func serve(ctx context.Context, g *globals, f *serveFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := f.check(); err != nil {
		return err
	}
	holdHUP() // from now on SIGHUP never ends serve: it reloads (once the reloaders listen) or does nothing
	isChild := isServeChild()
	var sf *seed.File
	if f.seedFile != "" && !isChild {
		var err error
		if sf, err = seed.Load(f.seedFile); err != nil {
			return fmt.Errorf("--seed %s: %w", f.seedFile, err)
		}
	}
	if err := f.loadTLSAndXKS(g); err != nil {
		return err
	}
	ln, err := listen(ctx, f)
	if err != nil {
		return err
	}
	defer ln.Close()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if !isChild {
		stopPprof, err := f.pprof.start(ctx, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tok, err := openInstrumented(ctx, g, reg)
	if err != nil {
		return err
	}
	defer tok.Close()
	keys, err := loadAccessKeys(ctx, g, f, tok)
	if err != nil {
		return err
	}
	kms := provider.New(tok, provider.Options{Region: f.region, Account: f.account})
	if sf != nil {
		if err := applySeed(ctx, kms, sf, f.seedFile, log); err != nil {
			return err
		}
	}
	st, err := openState(ctx, f, tok, log)
	if err != nil {
		return err
	}
	defer st.Close()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchSharedAccessKeys(watchCtx, st, keys, log)
	handler, closeAudit, err := newHandler(ctx, g, f, kms, keys, st, reg, log)
	if err != nil {
		return err
	}
	defer closeAudit()
	watchAccessKeys(ctx, keys, log)
	if !isChild {
		stopChildren, err := startChildren(f.processes)
		defer stopChildren()
		if err != nil {
			return err
		}
	}
	return runServer(ctx, f, handler, ln, kms, tok, log)
}

// listen binds --listen, shared with the other processes (SO_REUSEPORT)
// when there are several.
func listen(ctx context.Context, f *serveFlags) (net.Listener, error) {
	lc := net.ListenConfig{}
	if f.processes > 1 {
		lc.Control = reusePort
	}
	return lc.Listen(ctx, "tcp", f.listen)
}

// openInstrumented opens the token with every module call observed in reg.
func openInstrumented(ctx context.Context, g *globals, reg *prometheus.Registry) (*hsm.Token, error) {
	tokenCalls := server.TokenCallObserver(reg)
	cfg, err := softhsm.ResolveToken(g.token, g.home)
	if err != nil {
		return nil, err
	}
	cfg.Wrap = func(m hsm.Module) hsm.Module { return hsm.Instrument(m, tokenCalls) }
	return hsm.Open(ctx, cfg)
}

// applySeed applies the seed file and logs what it changed.
func applySeed(ctx context.Context, kms *provider.Service, sf *seed.File, path string, log *slog.Logger) error {
	res, err := seed.Apply(ctx, kms, sf)
	if err != nil {
		return fmt.Errorf("--seed %s: %w", path, err)
	}
	moved := make([]string, len(res.AliasesMoved))
	for i, m := range res.AliasesMoved {
		moved[i] = m.String()
	}
	log.Info("seed applied", "file", path, "keysCreated", res.Created, "versionsAdded", res.VersionsAdded,
		"aliasesCreated", res.AliasesCreated, "aliasesMoved", moved, "statesChanged", res.StatesChanged)
	return nil
}

// newHandler opens the audit log and the media keys and composes the
// server's handler; closeAudit closes the audit log.
func newHandler(ctx context.Context, g *globals, f *serveFlags, kms *provider.Service, keys *wire.AccessKeys,
	st *state.State, reg *prometheus.Registry, log *slog.Logger) (handler http.Handler, closeAudit func(), err error) {
	closeAudit = func() {}
	auditLog, err := openAuditLog(ctx, g, f.auditLog, f.audit, kms.Token(), log)
	if err != nil {
		return nil, closeAudit, err
	}
	if auditLog != nil {
		closeAudit = func() {
			if err := auditLog.Close(); err != nil {
				log.Error("AUDIT LOG: final checkpoint failed", "err", err)
			}
		}
	}
	media, err := vod.New(vod.Config{KMS: kms, TokenKeyFile: filepath.Join(g.home, vod.TokenKeyFileName), Logger: log})
	if err != nil {
		return nil, closeAudit, err
	}
	if err := media.Init(ctx); err != nil {
		return nil, closeAudit, fmt.Errorf("media keys: %w", err)
	}
	attestation, err := f.aws.verifier()
	if err != nil {
		return nil, closeAudit, err
	}
	scfg := server.Config{KMS: kms, Keys: keys, State: st, ClockSkew: f.state.clockSkew, MaxBodyBytes: f.maxBody, Metrics: reg,
		HLSKeys: media.KeyHandler(), Log: log, AWSAttestation: attestation, ExpectedHost: f.expectedHost}
	if auditLog != nil {
		scfg.Audit = auditLog
	}
	srv := server.New(scfg)
	if f.xks.file == nil {
		return srv, closeAudit, nil
	}
	handler, err = withXKS(ctx, kms, srv, scfg.Audit, f, st, log)
	return handler, closeAudit, err
}

// startChildren starts the other processes of --processes; stop signals
// and waits for them (each also dies with this one).
func startChildren(processes int) (stop func(), err error) {
	var children []*exec.Cmd
	stop = func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			_ = c.Wait()
		}
	}
	for i := 1; i < processes; i++ {
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Env = append(os.Environ(), childEnv+"=1")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the parent
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Start(); err != nil {
			return stop, fmt.Errorf("starting serve process %d: %w", i+1, err)
		}
		children = append(children, c)
	}
	stopHUP, stopChildren := forwardHUP(children), stop
	return func() { stopHUP(); stopChildren() }, nil
}

// holdHUP subscribes to SIGHUP with a channel no one reads, so that a
// SIGHUP arriving before the reloaders subscribe (access keys, XKS) is
// dropped instead of ending the process (Go's default for SIGHUP).
func holdHUP() { signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP) }

// forwardHUP passes every SIGHUP this process gets to the --processes
// children, so that `kill -HUP <serve pid>` reloads the access keys and
// the XKS configuration in every process; stop ends it.
func forwardHUP(children []*exec.Cmd) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				for _, c := range children {
					_ = c.Process.Signal(syscall.SIGHUP)
				}
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// runServer serves on ln until the server fails or SIGINT/SIGTERM, then
// lets the requests in flight finish (up to --shutdown-timeout).
func runServer(ctx context.Context, f *serveFlags, handler http.Handler, ln net.Listener, kms *provider.Service, tok *hsm.Token, log *slog.Logger) error {
	isChild := isServeChild()
	srv := &http.Server{Handler: handler, ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout,
		ReadHeaderTimeout: f.readTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if f.tlsCert != "" {
		srv.TLSConfig = f.tls.cfg
		ln = f.tls.listener(ln)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.sweepEvery > 0 && !isChild {
		go sweepLoop(ctx, kms, f.sweepEvery, log)
	}
	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("serving", "listen", ln.Addr().String(), "token", tok.Label(), "module", tok.ModulePath(), "tls", f.tlsCert != "", "pid", os.Getpid())
	if !isChild {
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

// loadAccessKeys reads the access-keys file, its secrets opened with the
// token (plaintext ones sealed first: internal/secretseal).
func loadAccessKeys(ctx context.Context, g *globals, f *serveFlags, tok *hsm.Token) (*wire.AccessKeys, error) {
	sealer, err := secretseal.New(ctx, tok)
	if err != nil {
		return nil, err
	}
	keys, err := wire.LoadSealedAccessKeys(g.accessKeysPath(f.accessKeys), sealer)
	if err != nil {
		return nil, fmt.Errorf("%w (create one with `p11kms init` or `p11kms accesskey create`)", err)
	}
	return keys, nil
}

// watchAccessKeys keeps keys equal to the access-keys file while serve
// runs: a file watch, a check every wire.WatchInterval, and SIGHUP.
func watchAccessKeys(ctx context.Context, keys *wire.AccessKeys, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go keys.Watch(ctx, wire.WatchInterval, hup, log)
}

// childEnv marks a serve process started by another for --processes.
const childEnv = "P11KMS_SERVE_CHILD"

// isServeChild reports whether this process was started by another serve
// (it neither seeds, sweeps nor starts processes).
func isServeChild() bool { return os.Getenv(childEnv) != "" }

// reusePort sets SO_REUSEPORT so several processes accept on one port.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
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
