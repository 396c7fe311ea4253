package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/spf13/pflag"
)

// pprofFlags is serve's --pprof: Go's profiling endpoints (net/http/pprof)
// on a loopback address of their own, off by default. They are never on
// the API port: a profile shows what the process does and holds, so only
// this machine may ask.
type pprofFlags struct {
	addr string
}

func (p *pprofFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&p.addr, "pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (off by default; loopback only; with --processes, the first process's)")
}

// check accepts no address (off) or host:port with a loopback host
// (127.0.0.0/8, ::1, localhost).
func (p *pprofFlags) check() error {
	if p.addr == "" {
		return nil
	}
	if err := loopbackOnly(p.addr); err != nil {
		return usageError{fmt.Errorf("--pprof %q: %w; accepted a loopback host:port such as 127.0.0.1:6060, [::1]:6060 or localhost:6060", p.addr, err)}
	}
	return nil
}

// loopbackOnly reports why addr is not a loopback host:port.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not a host:port")
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address")
	}
	return nil
}

// start serves the profiling endpoints until ctx ends; stop closes them.
// Off (no address) it does nothing.
func (p *pprofFlags) start(ctx context.Context, log *slog.Logger) (stop func(), err error) {
	if p.addr == "" {
		return func() {}, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof %s: %w", p.addr, err)
	}
	// A host name is resolved when binding: refuse what it did not bind
	// to loopback (localhost mapped elsewhere).
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("--pprof %s: bound %s, not a loopback address", p.addr, ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiling endpoints", "listen", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
