package hsm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// Config selects and opens one token. The token attributes each name the
// RFC 7512 URI attribute that sets them: every one that is set must match
// (the token, its slot or its module), and at least one of TokenLabel,
// TokenSerial and SlotID must be set — the others only narrow the choice.
// Exactly one of PIN, PINFile and PINEnv gives the user PIN. The PIN is
// never printed: Config formats itself with the PIN redacted.
type Config struct {
	ModulePath string // absolute path of the PKCS#11 library (URI module-path= or module-name=)

	TokenLabel          string // token=: the token label (CK_TOKEN_INFO label)
	TokenSerial         string // serial=: the token serial number
	TokenManufacturer   string // manufacturer=: the token manufacturer ID
	TokenModel          string // model=: the token model
	SlotID              *uint  // slot-id=: the slot (CK_SLOT_ID)
	SlotDescription     string // slot-description=: CK_SLOT_INFO slotDescription
	SlotManufacturer    string // slot-manufacturer=: CK_SLOT_INFO manufacturerID
	LibraryManufacturer string // library-manufacturer=: the module's CK_INFO manufacturerID
	LibraryDescription  string // library-description=: the module's CK_INFO libraryDescription
	LibraryVersion      string // library-version=: "MAJOR" (meaning MAJOR.0) or "MAJOR.MINOR"

	PIN     string // pin-value=: the user PIN itself (tests; prefer PINFile or PINEnv)
	PINFile string // pin-source=file:/path: a file whose content (trailing newline removed) is the PIN
	PINEnv  string // pin-source=env:NAME: an environment variable holding the PIN

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

// ErrInvalidConfig is wrapped by every error of [Config.Validate].
var ErrInvalidConfig = errors.New("hsm: config")

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// String formats the config without the PIN, in the URI's attribute names.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "module-path=%s", c.ModulePath)
	if want := c.wanted(); len(want) > 0 {
		b.WriteString(" " + formatAttributes(want))
	}
	switch {
	case c.PINFile != "":
		fmt.Fprintf(&b, " pin-source=file:%s", c.PINFile)
	case c.PINEnv != "":
		fmt.Fprintf(&b, " pin-source=env:%s", c.PINEnv)
	case c.PIN != "":
		b.WriteString(" pin-value=<redacted>")
	}
	return b.String()
}

// GoString formats the config for %#v without the PIN.
func (c Config) GoString() string { return "hsm.Config{" + c.String() + "}" }

// LogValue keeps the PIN out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate checks that the config names a module, selects a token with
// well-formed attributes and gives exactly one PIN source. Its errors wrap
// [ErrInvalidConfig] and name the URI attributes.
func (c *Config) Validate() error {
	if c.ModulePath == "" {
		return configError("no PKCS#11 module: give module-path=/absolute/path/of/the/library.so (or module-name=NAME)")
	}
	if c.TokenLabel == "" && c.TokenSerial == "" && c.SlotID == nil {
		return configError("no token selected: give token=LABEL, serial=SERIAL or slot-id=N " +
			"(manufacturer=, model= and the slot-* and library-* attributes only narrow the choice)")
	}
	for _, s := range selectors {
		if s.field == nil {
			continue
		}
		if v := *s.field(c); v != "" {
			if err := s.check(v); err != nil {
				return configError("%v", err)
			}
		}
	}
	n := 0
	for _, set := range []bool{c.PIN != "", c.PINFile != "", c.PINEnv != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return configError("no user PIN: give pin-source=file:/absolute/path, pin-source=env:VARIABLE or pin-value=PIN")
	case n > 1:
		return configError("%d PIN sources given (of pin-value=, pin-source=file:, pin-source=env:): give one", n)
	}
	if c.MaxSessions < 0 {
		return configError("MaxSessions %d: must be 0 (default %d) or positive", c.MaxSessions, DefaultMaxSessions)
	}
	if c.PoolWait < 0 {
		return configError("PoolWait %s: must be 0 (default %s) or positive", c.PoolWait, DefaultPoolWait)
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

// ErrInvalidURI is wrapped by every error of [ParseURI]: the URI itself is
// wrong, as opposed to naming a token that is not there.
var ErrInvalidURI = errors.New("hsm: PKCS#11 URI")

// uriForm is the accepted form, quoted by the errors of [ParseURI].
const uriForm = "pkcs11:token=LABEL;serial=SERIAL?module-path=/absolute/path/of/the/library.so&pin-source=file:/absolute/path"

// The query attributes ParseURI accepts, and the RFC 7512 path attributes
// that name an object (which a token selection cannot use).
var (
	queryAttributes  = []string{"module-path", "module-name", "pin-source", "pin-value"}
	objectAttributes = []string{"object", "id", "type"}
)

func uriError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidURI, fmt.Sprintf(format, args...))
}

// uriAttribute is one attribute of a URI, its value percent-decoded.
type uriAttribute struct{ name, value string }

// ParseURI turns an RFC 7512 PKCS#11 URI into a Config, e.g.
//
//	pkcs11:token=kms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/kms.pin
//	pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=1a2b3c4d5e6f7a8b;token=My%20Token
//
// Path attributes (values percent-decoded, each given at most once) select
// the token, and every one given must match: token, serial, manufacturer,
// model, slot-id, slot-description, slot-manufacturer, library-manufacturer,
// library-description, library-version — the forms p11tool --list-tokens
// and pkcs11-tool print. An empty value is refused (it could only match an
// empty field). Query attributes: module-path or module-name, and
// pin-value, pin-source=file:/abs/path or (our extension)
// pin-source=env:VARIABLE. Missing parts stay empty so a caller can fill
// them from defaults before [Config.Validate].
//
// Refused, each with an error naming the attribute and wrapping
// [ErrInvalidURI]: a path attribute RFC 7512 does not define, vendor "x-"
// attributes included — RFC 7512 section 2.5 has an unrecognised path
// attribute make the URI match nothing, so such a URI could never open a
// token and is better refused with its name than answered "no token
// matches"; the object attributes object, id and type (this URI selects a
// token, not an object); and a query attribute other than the four above
// (RFC 7512 lets a consumer refuse those; a mistyped pin-source would
// otherwise fall back silently to another PIN).
//
// The attributes are split here rather than by go-pkcs11uri's Parse, which
// cannot list the attributes it found (so it cannot refuse unknown ones)
// and whose errors name neither the attribute nor the accepted form; the
// library still finds the module a module-name names.
func ParseURI(s string) (Config, error) {
	var c Config
	path, query, err := splitURI(s)
	if err != nil {
		return c, err
	}
	for _, a := range path {
		if err := c.setPathAttribute(a); err != nil {
			return c, err
		}
	}
	q := map[string]string{}
	for _, a := range query {
		if err := checkQueryAttribute(a); err != nil {
			return c, err
		}
		q[a.name] = a.value
	}
	if c.ModulePath, err = resolveModule(q); err != nil {
		return c, err
	}
	return c, c.setPIN(q)
}

// splitURI checks the scheme and splits the path (";") and the query ("&")
// into percent-decoded attributes, each name at most once per part.
func splitURI(s string) (path, query []uriAttribute, err error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		start := "it"
		if scheme, _, found := strings.Cut(s, ":"); found && !strings.ContainsAny(scheme, "=;?&") && len(scheme) <= 20 {
			start = fmt.Sprintf("it starts with %q and", scheme+":")
		}
		return nil, nil, uriError("%s does not start with \"pkcs11:\"; accepted: %s (RFC 7512)", start, uriForm)
	}
	p, q, hasQuery := strings.Cut(rest, "?")
	if path, err = splitAttributes(p, ";", "path"); err != nil {
		return nil, nil, err
	}
	if hasQuery {
		if q == "" {
			return nil, nil, uriError("nothing follows \"?\": give query attributes (module-path=, pin-source=, ...) or leave \"?\" out; accepted: %s", uriForm)
		}
		query, err = splitAttributes(q, "&", "query")
	}
	return path, query, err
}

func splitAttributes(s, sep, part string) ([]uriAttribute, error) {
	if s == "" {
		return nil, nil
	}
	var out []uriAttribute
	for i, kv := range strings.Split(s, sep) {
		name, raw, hasValue := strings.Cut(kv, "=")
		switch {
		case part == "query" && !slices.Contains(queryAttributes, name) &&
			slices.ContainsFunc(out, func(a uriAttribute) bool { return a.name == "pin-value" }):
			// After pin-value=, a name we do not know may be the rest of a
			// PIN holding a raw "&": never echo it.
			return nil, uriError("the query goes on after pin-value=: percent-encode \"&\" in a PIN as %%26, or put pin-value= last, or use pin-source=: %s", uriForm)
		case kv == "":
			return nil, uriError("empty %s attribute (a stray %q); write name=value pairs separated by %q: %s", part, sep, sep, uriForm)
		case !hasValue && part == "path":
			return nil, uriError("path attribute %q has no \"=\"; write name=value pairs separated by \";\": %s", kv, uriForm)
		case !hasValue:
			// Not echoed: a query attribute without "=" may be a PIN.
			return nil, uriError("query attribute %d has no \"=\"; write name=value pairs separated by \"&\": %s", i+1, uriForm)
		}
		for _, a := range out {
			if a.name == name {
				return nil, uriError("%s= is given twice: give each attribute once", name)
			}
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			bad := ""
			var esc url.EscapeError
			if errors.As(err, &esc) && name != "pin-value" {
				bad = fmt.Sprintf(" %q", string(esc))
			}
			return nil, uriError("%s=: invalid percent-encoding%s: write %%XX with two hex digits, e.g. token=My%%20Token for \"My Token\"", name, bad)
		}
		out = append(out, uriAttribute{name, v})
	}
	return out, nil
}

// setPathAttribute sets the Config field a path attribute names.
func (c *Config) setPathAttribute(a uriAttribute) error {
	s := selectorNamed(a.name)
	switch {
	case s == nil && slices.Contains(objectAttributes, a.name):
		return uriError("%s= names an object, and this URI selects a token: leave out object=, id= and type=", a.name)
	case s == nil && slices.Contains(queryAttributes, a.name):
		return uriError("%s= is a query attribute: put it after \"?\", e.g. pkcs11:token=LABEL?%s=...", a.name, a.name)
	case s == nil:
		return uriError("unknown path attribute %s= (under RFC 7512 a path attribute the reader does not know matches no token); accepted: %s",
			a.name, selectorNames())
	case a.value == "":
		return uriError("%s= is empty: give a value, or leave %s= out", a.name, a.name)
	}
	if err := s.check(a.value); err != nil {
		return uriError("%v", err)
	}
	if s.field == nil { // slot-id, checked to be a number
		n, _ := strconv.ParseUint(a.value, 10, 0)
		id := uint(n)
		c.SlotID = &id
		return nil
	}
	*s.field(c) = a.value
	return nil
}

// checkQueryAttribute refuses an unknown, misplaced or empty query attribute.
func checkQueryAttribute(a uriAttribute) error {
	switch {
	case selectorNamed(a.name) != nil || slices.Contains(objectAttributes, a.name):
		return uriError("%s= is a path attribute: put it before \"?\", e.g. pkcs11:%s=...?module-path=...", a.name, a.name)
	case !slices.Contains(queryAttributes, a.name):
		return uriError("unknown query attribute %s=; accepted: %s", a.name, strings.Join(queryAttributes, ", "))
	case a.value == "":
		return uriError("%s= is empty: give a value, or leave %s= out", a.name, a.name)
	}
	return nil
}

// resolveModule returns the library module-path names, or the one
// module-name names in module-path (a directory) or in ModuleSearchDirs.
func resolveModule(q map[string]string) (string, error) {
	path, hasPath := q["module-path"]
	name, hasName := q["module-name"]
	if !hasPath && !hasName {
		return "", nil
	}
	dirs := ModuleSearchDirs
	if hasPath {
		if !filepath.IsAbs(path) {
			return "", uriError("module-path=%s is not absolute: give the absolute path of the PKCS#11 library, e.g. module-path=/usr/lib/softhsm/libsofthsm2.so", path)
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			reason := err
			var pe *fs.PathError
			if errors.As(err, &pe) {
				reason = pe.Err
			}
			return "", uriError("module-path=%s: %v: give the absolute path of an installed PKCS#11 library", path, reason)
		case st.Mode().IsRegular():
			return path, nil
		case !st.IsDir():
			return "", uriError("module-path=%s is neither a file nor a directory: give the PKCS#11 library file", path)
		case !hasName:
			return "", uriError("module-path=%s is a directory: give the library file itself, or add module-name=NAME (e.g. module-name=softhsm2) to pick it in the directory", path)
		}
		dirs = []string{path}
	}
	u := pkcs11uri.New()
	u.SetQueryAttributeUnencoded("module-name", []byte(name))
	u.SetModuleDirectories(dirs)
	u.SetAllowAnyModule(true)
	p, err := u.GetModule()
	if err != nil {
		return "", uriError("module-name=%s: no library named %s or %s.* in %s: give module-path=/absolute/path/of/the/library.so instead",
			name, name, name, strings.Join(dirs, ", "))
	}
	return p, nil
}

// setPIN sets the PIN source from pin-value or pin-source.
func (c *Config) setPIN(q map[string]string) error {
	src, hasSource := q["pin-source"]
	if v, ok := q["pin-value"]; ok {
		if hasSource {
			return uriError("pin-source= and pin-value= are both given: give the PIN one way")
		}
		c.PIN = v
		return nil
	}
	if !hasSource {
		return nil
	}
	if env, ok := strings.CutPrefix(src, "env:"); ok {
		if env == "" {
			return uriError("pin-source=env: names no variable; accepted: pin-source=env:VARIABLE or pin-source=file:/absolute/path")
		}
		c.PINEnv = env
		return nil
	}
	p := strings.TrimPrefix(src, "file:")
	if !filepath.IsAbs(p) {
		return uriError("pin-source=%s: accepted: pin-source=file:/absolute/path or pin-source=env:VARIABLE", src)
	}
	c.PINFile = p
	return nil
}
