package hsm_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/softhsm"
)

// childOpenURI makes the test binary, started again with it set, open the
// URI it holds in a fresh process (SoftHSM2 reads its configuration once per
// process) and print the error, or the label of the token it opened.
const childOpenURI = "P11KMS_HSM_CHILD_OPEN_URI"

func runOpenURIChild(uri string) int {
	tok, err := hsm.OpenURI(bg, uri)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer tok.Close()
	fmt.Println("opened", tok.Label())
	return 0
}

// openURIInProcess opens uri in a new process whose environment is env
// (SOFTHSM2_CONF left out unless env names it) and returns what it printed.
func openURIInProcess(t *testing.T, uri string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, childOpenURI+"="+uri)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// uriOf is the URI of tok with the given path attributes, the test
// environment's module and the token's PIN.
func uriOf(tok *softhsmtest.Token, path string) string {
	return fmt.Sprintf("pkcs11:%s?module-path=%s&pin-value=%s", path, tok.Env.ModulePath, tok.PIN)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(" ", "%20", ";", "%3B", "?", "%3F", "%", "%25").Replace(s)
}

// Every RFC 7512 path attribute given must match, in any combination and in
// the forms other tools print; percent-encoding is decoded.
func TestOpenURIMatchesEveryAttribute(t *testing.T) {
	a := softhsmtest.New(t)
	b := softhsmtest.New(t)
	info := a.Info()
	serial, manufacturer, model := a.Serial(), strings.TrimRight(info.ManufacturerID, " "), strings.TrimRight(info.Model, " ")
	lib, err := hsm.LoadLibrary(a.Env.ModulePath)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	li, err := lib.Info()
	if err != nil {
		t.Fatal(err)
	}
	libManufacturer, libDescription := strings.TrimRight(li.ManufacturerID, " "), strings.TrimRight(li.LibraryDescription, " ")
	libVersion := fmt.Sprintf("%d.%d", li.LibraryVersion.Major, li.LibraryVersion.Minor)
	for _, path := range []string{
		"token=" + a.Label + ";serial=" + serial,
		"serial=" + serial,
		// p11tool --list-tokens and pkcs11-tool print this form.
		fmt.Sprintf("model=%s;manufacturer=%s;serial=%s;token=%s", escapeLabel(model), escapeLabel(manufacturer), serial, a.Label),
		fmt.Sprintf("token=%s;slot-id=%d", a.Label, a.SlotID()),
		fmt.Sprintf("slot-id=%d", a.SlotID()),
		// SoftHSM2 names its slots so, and makes them itself.
		fmt.Sprintf("token=%s;slot-description=SoftHSM%%20slot%%20ID%%200x%x;slot-manufacturer=SoftHSM%%20project", a.Label, a.SlotID()),
		fmt.Sprintf("token=%s;library-manufacturer=%s;library-description=%s;library-version=%s",
			a.Label, escapeLabel(libManufacturer), escapeLabel(libDescription), libVersion),
	} {
		tok, err := hsm.OpenURI(bg, uriOf(a, path))
		if err != nil {
			t.Errorf("pkcs11:%s: %v", path, err)
			continue
		}
		if tok.Serial() != serial {
			t.Errorf("pkcs11:%s opened %s (serial %s), want %s", path, tok.Label(), tok.Serial(), a.Label)
		}
		tok.Close()
	}
	// One attribute that does not match is enough to match nothing; the
	// error names the URI's attributes and lists the tokens present in the
	// same form.
	for _, c := range []struct{ path, want string }{
		{"token=" + a.Label + ";serial=" + b.Serial(), "no token matches token=" + a.Label + ";serial=" + b.Serial() + " in module "},
		{"token=" + a.Label + ";model=Luna%20K7", "no token matches token=" + a.Label + ";model=Luna%20K7 "},
		{"token=" + a.Label + ";manufacturer=Thales", "no token matches token=" + a.Label + ";manufacturer=Thales "},
		{fmt.Sprintf("token=%s;slot-id=%d", a.Label, b.SlotID()), fmt.Sprintf("no token matches token=%s;slot-id=%d ", a.Label, b.SlotID())},
		{"token=" + a.Label + ";slot-manufacturer=Thales", "no token matches token=" + a.Label + ";slot-manufacturer=Thales "},
		{"token=" + a.Label + ";slot-description=nope", "no token matches token=" + a.Label + ";slot-description=nope "},
	} {
		_, err := hsm.OpenURI(bg, uriOf(a, c.path))
		present := fmt.Sprintf("token=%s;serial=%s;", a.Label, serial)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokens present: ") || !strings.Contains(err.Error(), present) {
			t.Errorf("pkcs11:%s: %v\nwant %q and tokens present listing %q", c.path, err, c.want, present)
		}
		if err != nil && strings.Contains(err.Error(), a.PIN) {
			t.Errorf("pkcs11:%s: the error shows the PIN", c.path)
		}
	}
	// The module attributes are checked against C_GetInfo; "2" means 2.0.
	_, err = hsm.OpenURI(bg, uriOf(a, "token="+a.Label+";library-version=99"))
	want := fmt.Sprintf("does not match library-version=99.0: it reports library-manufacturer=%s;library-description=%s;library-version=%s",
		escapeLabel(libManufacturer), escapeLabel(libDescription), libVersion)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("library-version=99: %v\nwant %q", err, want)
	}
}

// A label with spaces and the URI's own separators is found through its
// percent-encoding, and listed percent-encoded when it is not the one asked for.
func TestOpenURIPercentEncodedLabel(t *testing.T) {
	e := softhsmtest.Env(t)
	label := fmt.Sprintf("My Token;a?b%%c %d", os.Getpid()%100000)
	pin := softhsm.RandomPIN()
	if _, err := e.CreateToken(label, softhsm.RandomPIN(), pin); err != nil {
		t.Fatal(err)
	}
	tok := &softhsmtest.Token{Env: e, PIN: pin}
	c, err := hsm.OpenURI(bg, uriOf(tok, "token="+escapeLabel(label)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = hsm.OpenURI(bg, uriOf(tok, "token=My%20Token"))
	if err == nil || !strings.Contains(err.Error(), "no token matches token=My%20Token ") || !strings.Contains(err.Error(), "token="+escapeLabel(label)+";") {
		t.Fatalf("My Token: %v", err)
	}
}

// Each refused URI gets an error that wraps ErrInvalidURI, names what is
// wrong in the URI's words and the accepted form, and never shows a PIN.
func TestParseURIErrorsNameTheAttribute(t *testing.T) {
	module, err := softhsm.FindModule()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ uri, want string }{
		{"token=kms", `does not start with "pkcs11:"; accepted: pkcs11:token=LABEL;serial=SERIAL?module-path=`},
		{"notpkcs11:token=x", `it starts with "notpkcs11:" and does not start with "pkcs11:"`},
		{"pkcs11:token=kms;x-vendor=1", "unknown path attribute x-vendor= (under RFC 7512 a path attribute the reader does not know matches no token); accepted: token, serial, manufacturer, model, slot-id, slot-description, slot-manufacturer, library-manufacturer, library-description, library-version"},
		{"pkcs11:token=kms;vendor=1", "unknown path attribute vendor="},
		{"pkcs11:token=kms;object=k1", "object= names an object, and this URI selects a token: leave out object=, id= and type="},
		{"pkcs11:token=kms;type=secret-key", "type= names an object"},
		{"pkcs11:token=kms?foo=1", "unknown query attribute foo=; accepted: module-path, module-name, pin-source, pin-value"},
		{"pkcs11:token=kms;module-path=/x", `module-path= is a query attribute: put it after "?"`},
		{"pkcs11:?token=kms", `token= is a path attribute: put it before "?"`},
		{"pkcs11:token=kms;;serial=1", `empty path attribute (a stray ";")`},
		{"pkcs11:token=kms;serial", `path attribute "serial" has no "="`},
		{"pkcs11:token=kms?", `nothing follows "?"`},
		{"pkcs11:token=kms?module-path=" + module + "&", `empty query attribute (a stray "&")`},
		{"pkcs11:token=k%zzms", `token=: invalid percent-encoding "%zz": write %XX with two hex digits`},
		{"pkcs11:token=kms;token=device", "token= is given twice: give each attribute once"},
		{"pkcs11:token=", "token= is empty: give a value, or leave token= out"},
		{"pkcs11:slot-id=abc", "slot-id=abc: accepted: a decimal slot number (CK_SLOT_ID)"},
		{"pkcs11:slot-id=-1", "slot-id=-1: accepted: a decimal slot number"},
		{"pkcs11:token=kms;library-version=2.x", "library-version=2.x: accepted: MAJOR or MAJOR.MINOR, e.g. library-version=2.6"},
		{"pkcs11:token=" + strings.Repeat("x", 33), "token=" + strings.Repeat("x", 33) + " is 33 bytes: the PKCS#11 field holds at most 32"},
		{"pkcs11:serial=12345678901234567", "serial=12345678901234567 is 17 bytes: the PKCS#11 field holds at most 16"},
		{"pkcs11:token=x?module-path=relative/lib.so", "module-path=relative/lib.so is not absolute: give the absolute path of the PKCS#11 library"},
		{"pkcs11:token=x?module-path=/nonexistent/lib.so", "module-path=/nonexistent/lib.so: no such file or directory: give the absolute path of an installed PKCS#11 library"},
		{"pkcs11:token=x?module-path=" + filepath.Dir(module), "is a directory: give the library file itself, or add module-name=NAME"},
		{"pkcs11:token=x?module-name=no-such-module", "module-name=no-such-module: no library named no-such-module or no-such-module.* in /usr/lib/"},
		{"pkcs11:token=x?module-path=", "module-path= is empty"},
		{"pkcs11:token=x?pin-value=a&pin-source=file:/x", "pin-source= and pin-value= are both given: give the PIN one way"},
		{"pkcs11:token=x?pin-source=relative", "pin-source=relative: accepted: pin-source=file:/absolute/path or pin-source=env:VARIABLE"},
		{"pkcs11:token=x?pin-source=env:", "pin-source=env: names no variable"},
		{"pkcs11:token=x?pin-value=se%zzcret", "pin-value=: invalid percent-encoding: write %XX"},
		{"pkcs11:token=x?pin-valuesecret", `query attribute 1 has no "="`},
		{"pkcs11:token=x?pin-value=my&secret=pin", "the query goes on after pin-value=: percent-encode"},
		{"pkcs11:token=x?pin-value=my&secret", "the query goes on after pin-value=: percent-encode"},
	} {
		_, err := hsm.ParseURI(c.uri)
		if !errors.Is(err, hsm.ErrInvalidURI) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseURI(%q) = %v\nwant ErrInvalidURI saying %q", c.uri, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pcks11")) {
			t.Errorf("ParseURI(%q): %v shows the PIN or the library's own words", c.uri, err)
		}
	}
}

// ParseURI fills every attribute, decoded, and the query's module and PIN.
func TestParseURIForms(t *testing.T) {
	module, err := softhsm.FindModule()
	if err != nil {
		t.Fatal(err)
	}
	c, err := hsm.ParseURI("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=a1b2;token=My%20Token;slot-id=7;" +
		"slot-description=d%3Bx;slot-manufacturer=sm;library-manufacturer=lm;library-description=ld;library-version=2" +
		"?module-name=softhsm2&pin-source=env:KMS_PIN")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s|%s|%s|%s|%d|%s|%s|%s|%s|%s|%s", c.TokenModel, c.TokenManufacturer, c.TokenSerial, c.TokenLabel, *c.SlotID,
		c.SlotDescription, c.SlotManufacturer, c.LibraryManufacturer, c.LibraryDescription, c.LibraryVersion, c.PINEnv)
	if want := "SoftHSM v2|SoftHSM project|a1b2|My Token|7|d;x|sm|lm|ld|2|KMS_PIN"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if filepath.Base(c.ModulePath) != "libsofthsm2.so" {
		t.Fatalf("module-name=softhsm2 found %q", c.ModulePath)
	}
	if s := c.String(); !strings.Contains(s, "model=SoftHSM%20v2;slot-id=7;slot-description=d%3Bx;") || !strings.Contains(s, "library-version=2.0 pin-source=env:KMS_PIN") {
		t.Fatalf("String: %s", s)
	}
	c, err = hsm.ParseURI("pkcs11:serial=a1b2?module-path=" + module + "&pin-source=file:/run/kms.pin")
	if err != nil || c.ModulePath != module || c.PINFile != "/run/kms.pin" || c.TokenSerial != "a1b2" {
		t.Fatalf("%+v %v", c, err)
	}
	c, err = hsm.ParseURI("pkcs11:token=kms?pin-value=12%2034")
	if err != nil || c.PIN != "12 34" || strings.Contains(c.String(), "12 34") {
		t.Fatalf("pin-value: %v, %s", err, c)
	}
}

// Validate names the URI attributes, not the Go fields.
func TestValidateNamesURIAttributes(t *testing.T) {
	for _, c := range []struct {
		cfg  hsm.Config
		want string
	}{
		{hsm.Config{TokenLabel: "x", PIN: "1"}, "no PKCS#11 module: give module-path="},
		{hsm.Config{ModulePath: "/m", TokenModel: "SoftHSM v2", PIN: "1"}, "no token selected: give token=LABEL, serial=SERIAL or slot-id=N (manufacturer=, model="},
		{hsm.Config{ModulePath: "/m", TokenLabel: "x"}, "no user PIN: give pin-source=file:/absolute/path, pin-source=env:VARIABLE or pin-value=PIN"},
		{hsm.Config{ModulePath: "/m", TokenLabel: "x", PIN: "1", PINEnv: "V"}, "2 PIN sources given (of pin-value=, pin-source=file:, pin-source=env:): give one"},
		{hsm.Config{ModulePath: "/m", TokenLabel: "x", LibraryVersion: "v2", PIN: "1"}, "library-version=v2: accepted: MAJOR or MAJOR.MINOR"},
		{hsm.Config{ModulePath: "/m", TokenLabel: "x", TokenModel: strings.Repeat("m", 17), PIN: "1"}, "is 17 bytes: the PKCS#11 field holds at most 16"},
	} {
		err := c.cfg.Validate()
		if !errors.Is(err, hsm.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%v) = %v\nwant %q", c.cfg, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "TokenLabel") || strings.Contains(err.Error(), "PINFile")) {
			t.Errorf("Validate(%v) = %v names Go fields", c.cfg, err)
		}
	}
}

// A SoftHSM2 whose configuration is not p11kms's says so instead of only
// "tokens present: none"; two tokens with one label are told apart by serial.
func TestOpenURISoftHSMConfigurationHints(t *testing.T) {
	module, err := softhsm.FindModule()
	if err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=kms?module-path=" + module + "&pin-value=1234"
	out, err := openURIInProcess(t, uri) // no SOFTHSM2_CONF
	if err == nil || !strings.Contains(out, "SOFTHSM2_CONF is not set") || !strings.Contains(out, "p11kms init") {
		t.Errorf("without SOFTHSM2_CONF: %v\n%s", err, out)
	}
	out, err = openURIInProcess(t, uri, "SOFTHSM2_CONF=/nonexistent/softhsm2.conf")
	if err == nil || !strings.Contains(out, "CKR_GENERAL_ERROR; SoftHSM2 found no configuration: SOFTHSM2_CONF=/nonexistent/softhsm2.conf is missing or unreadable") {
		t.Errorf("SOFTHSM2_CONF=/nonexistent: %v\n%s", err, out)
	}
	empty, err := softhsm.NewEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err = openURIInProcess(t, uri, "SOFTHSM2_CONF="+empty.ConfPath)
	if err == nil || !strings.Contains(out, "tokens present: none; SoftHSM2 reads SOFTHSM2_CONF="+empty.ConfPath+", whose token directory holds no initialised token") {
		t.Errorf("empty token directory: %v\n%s", err, out)
	}
	// softhsm2-util (unlike C_InitToken through hsm) makes a second token with a label in use.
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Fatal("softhsm2-util not installed: run ./scripts/install-deps")
	}
	for range 2 {
		init := exec.Command(util, "--init-token", "--free", "--label", "dup", "--so-pin", "5678", "--pin", "1234")
		init.Env = append(os.Environ(), "SOFTHSM2_CONF="+empty.ConfPath)
		if b, err := init.CombinedOutput(); err != nil {
			t.Fatalf("softhsm2-util: %v\n%s", err, b)
		}
	}
	out, err = openURIInProcess(t, "pkcs11:token=dup?module-path="+module+"&pin-value=1234", "SOFTHSM2_CONF="+empty.ConfPath)
	if err == nil || !strings.Contains(out, "2 tokens match token=dup in module ") || !strings.Contains(out, "; add serial= or slot-id= to choose one") ||
		strings.Count(out, "token=dup;serial=") != 2 {
		t.Errorf("two tokens labelled dup: %v\n%s", err, out)
	}
	serial := out[strings.Index(out, "token=dup;serial=")+len("token=dup;serial="):]
	serial = serial[:strings.IndexByte(serial, ';')]
	out, err = openURIInProcess(t, "pkcs11:token=dup;serial="+serial+"?module-path="+module+"&pin-value=1234", "SOFTHSM2_CONF="+empty.ConfPath)
	if err != nil || !strings.Contains(out, "opened dup") {
		t.Errorf("token=dup;serial=%s: %v\n%s", serial, err, out)
	}
}
