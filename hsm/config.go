package hsm

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pkcs11uri "github.com/stefanberger/go-pkcs11uri"
)

// Default pool settings. SoftHSM2 serialises short calls within a process,
// so sessions beyond a few only add lock contention: with 16 callers on 2
// cores, a pool of 4 cut p99 latency from ~6 ms to ~1.5-2 ms at the same
// throughput (p11kms bench, 2026-11-24), while long calls (RSA private,
// ECDH) still overlap. Raise MaxSessions for HSMs that run calls in parallel.
const (
	DefaultMaxSessions = 4
	DefaultPoolWait    = 10 * time.Second
)

// Config selects and opens one token. Exactly one of TokenLabel, TokenSerial
// and SlotID selects the token; exactly one of PIN, PINFile and PINEnv gives
// the user PIN. The PIN is never printed: Config formats itself with the PIN
// redacted.
type Config struct {
	ModulePath  string // absolute path of the PKCS#11 library
	TokenLabel  string
	TokenSerial string
	SlotID      *uint

	PIN     string // the user PIN itself (tests; prefer PINFile or PINEnv)
	PINFile string // a file whose content (trailing newline removed) is the PIN
	PINEnv  string // an environment variable holding the PIN

	// MaxSessions bounds the session pool (default DefaultMaxSessions, and
	// never more than the token's own read/write session limit).
	MaxSessions int
	// PoolWait bounds how long an operation waits for a free session
	// (default DefaultPoolWait) when the context has no earlier deadline.
	PoolWait time.Duration

	// Wrap, if set, wraps the real module for this token's calls, e.g. to
	// measure token-call latency or to inject faults in tests. The wrapper
	// must forward to the module it is given.
	Wrap func(Module) Module
}

// String formats the config without the PIN.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "module=%s", c.ModulePath)
	switch {
	case c.TokenLabel != "":
		fmt.Fprintf(&b, " token=%q", c.TokenLabel)
	case c.TokenSerial != "":
		fmt.Fprintf(&b, " serial=%q", c.TokenSerial)
	case c.SlotID != nil:
		fmt.Fprintf(&b, " slot=%d", *c.SlotID)
	}
	switch {
	case c.PINFile != "":
		fmt.Fprintf(&b, " pin-file=%s", c.PINFile)
	case c.PINEnv != "":
		fmt.Fprintf(&b, " pin-env=%s", c.PINEnv)
	case c.PIN != "":
		b.WriteString(" pin=<redacted>")
	}
	return b.String()
}

// GoString formats the config for %#v without the PIN.
func (c Config) GoString() string { return "hsm.Config{" + c.String() + "}" }

// LogValue keeps the PIN out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate checks that the config selects exactly one token and one PIN source.
func (c *Config) Validate() error {
	if c.ModulePath == "" {
		return errors.New("hsm: config: ModulePath is empty; give the PKCS#11 module path (URI attribute module-path)")
	}
	n := 0
	for _, set := range []bool{c.TokenLabel != "", c.TokenSerial != "", c.SlotID != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("hsm: config: select the token with exactly one of TokenLabel, TokenSerial, SlotID (URI: token=, serial=, slot-id=); %d given", n)
	}
	n = 0
	for _, set := range []bool{c.PIN != "", c.PINFile != "", c.PINEnv != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("hsm: config: give the user PIN with exactly one of PIN, PINFile, PINEnv (URI: pin-value=, pin-source=file:..., pin-source=env:...); %d given", n)
	}
	if c.MaxSessions < 0 {
		return fmt.Errorf("hsm: config: MaxSessions %d: must be 0 (default %d) or positive", c.MaxSessions, DefaultMaxSessions)
	}
	if c.PoolWait < 0 {
		return fmt.Errorf("hsm: config: PoolWait %s: must be 0 (default %s) or positive", c.PoolWait, DefaultPoolWait)
	}
	return nil
}

// userPIN resolves the PIN from its source. A PIN file that cannot be read,
// an unset variable or an empty PIN is an error, never an empty PIN.
func (c *Config) userPIN() (string, error) {
	switch {
	case c.PIN != "":
		return c.PIN, nil
	case c.PINFile != "":
		b, err := os.ReadFile(c.PINFile)
		if err != nil {
			return "", fmt.Errorf("hsm: reading PIN file: %w", err)
		}
		pin := strings.TrimRight(string(b), "\r\n")
		clear(b)
		if pin == "" {
			return "", fmt.Errorf("hsm: PIN file %s is empty", c.PINFile)
		}
		return pin, nil
	case c.PINEnv != "":
		pin, ok := os.LookupEnv(c.PINEnv)
		if !ok || pin == "" {
			return "", fmt.Errorf("hsm: PIN environment variable %s is not set or empty", c.PINEnv)
		}
		return pin, nil
	}
	return "", errors.New("hsm: no PIN source configured")
}

// ModuleSearchDirs are the directories where a URI's module-name is looked
// up when it gives no module-path.
var ModuleSearchDirs = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib/aarch64-linux-gnu/pkcs11",
	"/usr/lib/x86_64-linux-gnu/softhsm", "/usr/lib/aarch64-linux-gnu/softhsm",
	"/usr/lib/softhsm", "/usr/lib64/pkcs11", "/usr/lib/pkcs11", "/usr/local/lib/softhsm",
	"/usr/lib64", "/usr/local/lib",
}

// ParseURI turns an RFC 7512 PKCS#11 URI into a Config, e.g.
//
//	pkcs11:token=kms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/kms.pin
//
// Path attributes: token, serial, slot-id. Query attributes: module-path or
// module-name, and pin-value, pin-source=file:/abs/path or (our extension)
// pin-source=env:VARIABLE. Missing parts stay empty so a caller can fill them
// from defaults before [Config.Validate].
func ParseURI(s string) (Config, error) {
	var c Config
	u := pkcs11uri.New()
	if err := u.Parse(s); err != nil {
		return c, fmt.Errorf("hsm: PKCS#11 URI: %w", err)
	}
	if err := u.Validate(); err != nil {
		return c, fmt.Errorf("hsm: PKCS#11 URI: %w", err)
	}
	c.TokenLabel, _ = u.GetPathAttribute("token", false)
	c.TokenSerial, _ = u.GetPathAttribute("serial", false)
	if v, ok := u.GetPathAttribute("slot-id", false); ok {
		n, err := strconv.ParseUint(v, 10, 0)
		if err != nil {
			return c, fmt.Errorf("hsm: PKCS#11 URI: slot-id %q is not a number", v)
		}
		id := uint(n)
		c.SlotID = &id
	}
	if _, ok := u.GetQueryAttribute("module-path", false); ok {
		u.SetAllowAnyModule(true)
		p, err := u.GetModule()
		if err != nil {
			return c, fmt.Errorf("hsm: PKCS#11 URI: %w", err)
		}
		c.ModulePath = p
	} else if _, ok := u.GetQueryAttribute("module-name", false); ok {
		u.SetModuleDirectories(ModuleSearchDirs)
		u.SetAllowAnyModule(true)
		p, err := u.GetModule()
		if err != nil {
			return c, fmt.Errorf("hsm: PKCS#11 URI: %w", err)
		}
		c.ModulePath = p
	}
	if src, ok := u.GetQueryAttribute("pin-source", false); ok {
		switch {
		case strings.HasPrefix(src, "env:"):
			c.PINEnv = strings.TrimPrefix(src, "env:")
		default:
			p := strings.TrimPrefix(src, "file:")
			if !filepath.IsAbs(p) {
				return c, fmt.Errorf("hsm: PKCS#11 URI: pin-source %q: accepted: file:/absolute/path or env:VARIABLE", src)
			}
			c.PINFile = p
		}
	}
	if v, ok := u.GetQueryAttribute("pin-value", false); ok {
		c.PIN = v
	}
	return c, nil
}
