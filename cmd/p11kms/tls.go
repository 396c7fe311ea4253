package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strings"

	"github.com/spf13/pflag"

	"github.com/p11kms/p11kms/provider"
)

// tlsFlags are serve's optional mutual-TLS flags (--tls-cert and
// --tls-key are serveFlags').
type tlsFlags struct {
	clientCA  string
	clientCNs []string
	cfg       *tls.Config // made by loadTLSAndXKS
}

func (t *tlsFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.clientCA, "tls-client-ca", "", "require client certificates chained to these CA certificates (PEM): mutual TLS on the whole port")
	fl.StringSliceVar(&t.clientCNs, "tls-client-cn", nil, "with --tls-client-ca: the client certificate subject CNs accepted (* and ? wildcards; AWS KMS presents cks.kms.<region>.amazonaws.com)")
}

// check refuses inconsistent TLS flags.
func (t *tlsFlags) check(tlsOn bool) error {
	switch {
	case t.clientCA != "" && !tlsOn:
		return usageError{errors.New("--tls-client-ca needs --tls-cert and --tls-key")}
	case t.clientCA != "" && len(t.clientCNs) == 0:
		return usageError{errors.New("--tls-client-ca needs --tls-client-cn: the subject CNs to accept (e.g. cks.kms.eu-west-1.amazonaws.com)")}
	case t.clientCA == "" && len(t.clientCNs) > 0:
		return usageError{errors.New("--tls-client-cn needs --tls-client-ca")}
	}
	for _, p := range t.clientCNs {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return usageError{fmt.Errorf("--tls-client-cn %q: not a CN pattern (letters, digits, '.', '-', '*', '?')", p)}
		}
	}
	return nil
}

// config is the server's TLS configuration: TLS 1.2 or later and, with
// --tls-client-ca, a client certificate that chains to those CAs and whose
// subject CN is one of --tls-client-cn, or the handshake fails.
func (t *tlsFlags) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.clientCA == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(t.clientCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", t.clientCA)
	}
	cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
	// TLS 1.2 under mutual TLS: the refusal of a client certificate is then
	// a plaintext alert during the handshake, which handshakeFailureConn
	// can send as the handshake_failure AWS's compliance client expects
	// (in TLS 1.3 it is encrypted, after the server's Finished). The
	// spec's TLS 1.2 suites (ECDHE with AES-256-GCM) are among Go's.
	cfg.MaxVersion = tls.VersionTLS12
	cns := t.clientCNs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return errors.New("tls: no verified client certificate")
		}
		if cn := cs.VerifiedChains[0][0].Subject.CommonName; !cnAllowed(cns, cn) {
			return fmt.Errorf("tls: client certificate CN %q is not one of --tls-client-cn", provider.Clip(cn, 128))
		}
		return nil
	}
	return cfg, nil
}

// cnAllowed reports whether cn matches one of the patterns.
func cnAllowed(patterns []string, cn string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(cn)); ok {
			return true
		}
	}
	return false
}

// alertListener wraps every accepted connection in handshakeFailureConn.
type alertListener struct{ net.Listener }

// Accept wraps the next connection.
func (l alertListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeFailureConn{Conn: c}, nil
}

// handshakeFailureConn sends a plaintext fatal alert refusing the client's
// certificate (bad_certificate, unsupported_certificate,
// certificate_expired, certificate_unknown, unknown_ca) as
// handshake_failure: the alert a TLS server sends when it refuses the
// handshake, and what AWS's XKS compliance client checks for (Go's TLS
// server names the certificate problem instead). Only a record of exactly
// two bytes is plaintext — an encrypted alert carries its AEAD overhead —
// so nothing after the handshake is touched.
type handshakeFailureConn struct{ net.Conn }

// Write sends b, a refused-certificate alert as handshake_failure.
func (c *handshakeFailureConn) Write(b []byte) (int, error) {
	const alertRecord, fatal, handshakeFailure = 21, 2, 40
	if len(b) == 7 && b[0] == alertRecord && b[3] == 0 && b[4] == 2 && b[5] == fatal {
		switch b[6] {
		case 42, 43, 45, 46, 48: // the certificate alerts of RFC 5246 section 7.2
			b = append([]byte(nil), b...)
			b[6] = handshakeFailure
		}
	}
	return c.Conn.Write(b)
}

// listener is ln, with client-certificate refusals sent as
// handshake_failure under mutual TLS.
func (t *tlsFlags) listener(ln net.Listener) net.Listener {
	if t.clientCA == "" {
		return ln
	}
	return alertListener{ln}
}
