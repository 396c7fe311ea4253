package hsm

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/pkcs11"
)

// Where a module reports the value of a token-selecting attribute.
type attributeSource int

const (
	fromTokenInfo   attributeSource = iota // C_GetSlotList and C_GetTokenInfo
	fromSlotInfo                           // C_GetSlotInfo
	fromLibraryInfo                        // C_GetInfo
)

// slotFacts is what a module reports about one slot with a token.
type slotFacts struct {
	id    uint
	token pkcs11.TokenInfo
	slot  pkcs11.SlotInfo // read only when an attribute needs it
	lib   pkcs11.Info     // read only when an attribute needs it
}

// selector is one RFC 7512 path attribute that selects a token: its name in
// the URI, where the module reports it, the most bytes the PKCS#11 field
// holds (0: no limit checked), the Config field that holds it (nil for
// slot-id, a *uint) and the value the module reports.
type selector struct {
	name   string
	source attributeSource
	max    int
	field  func(*Config) *string
	actual func(*slotFacts) string
}

// selectors lists the path attributes in the order errors print them.
var selectors = []selector{
	{"token", fromTokenInfo, 32, func(c *Config) *string { return &c.TokenLabel }, func(f *slotFacts) string { return f.token.Label }},
	{"serial", fromTokenInfo, 16, func(c *Config) *string { return &c.TokenSerial }, func(f *slotFacts) string { return f.token.SerialNumber }},
	{"manufacturer", fromTokenInfo, 32, func(c *Config) *string { return &c.TokenManufacturer }, func(f *slotFacts) string { return f.token.ManufacturerID }},
	{"model", fromTokenInfo, 16, func(c *Config) *string { return &c.TokenModel }, func(f *slotFacts) string { return f.token.Model }},
	{"slot-id", fromTokenInfo, 0, nil, func(f *slotFacts) string { return strconv.FormatUint(uint64(f.id), 10) }},
	{"slot-description", fromSlotInfo, 64, func(c *Config) *string { return &c.SlotDescription }, func(f *slotFacts) string { return f.slot.SlotDescription }},
	{"slot-manufacturer", fromSlotInfo, 32, func(c *Config) *string { return &c.SlotManufacturer }, func(f *slotFacts) string { return f.slot.ManufacturerID }},
	{"library-manufacturer", fromLibraryInfo, 32, func(c *Config) *string { return &c.LibraryManufacturer }, func(f *slotFacts) string { return f.lib.ManufacturerID }},
	{"library-description", fromLibraryInfo, 32, func(c *Config) *string { return &c.LibraryDescription }, func(f *slotFacts) string { return f.lib.LibraryDescription }},
	{"library-version", fromLibraryInfo, 0, func(c *Config) *string { return &c.LibraryVersion },
		func(f *slotFacts) string {
			return fmt.Sprintf("%d.%d", f.lib.LibraryVersion.Major, f.lib.LibraryVersion.Minor)
		}},
}

func selectorNamed(name string) *selector {
	for i := range selectors {
		if selectors[i].name == name {
			return &selectors[i]
		}
	}
	return nil
}

func selectorNames() string {
	names := make([]string, len(selectors))
	for i, s := range selectors {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

var libraryVersionForm = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,3})?$`)

// check refuses a value the attribute can never have.
func (s *selector) check(v string) error {
	switch {
	case s.name == "slot-id":
		if _, err := strconv.ParseUint(v, 10, 0); err != nil {
			return fmt.Errorf("slot-id=%s: accepted: a decimal slot number (CK_SLOT_ID), e.g. slot-id=0", v)
		}
	case s.name == "library-version":
		if !libraryVersionForm.MatchString(v) {
			return fmt.Errorf("library-version=%s: accepted: MAJOR or MAJOR.MINOR, e.g. library-version=2.6", v)
		}
	case s.max > 0 && len(v) > s.max:
		return fmt.Errorf("%s=%s is %d bytes: the PKCS#11 field holds at most %d, so no token can match", s.name, url.PathEscape(v), len(v), s.max)
	}
	return nil
}

// attributeValue is an attribute a Config asks for, in canonical form.
type attributeValue struct {
	sel   *selector
	value string
}

// wanted lists the attributes c sets, library-version as MAJOR.MINOR.
func (c *Config) wanted() []attributeValue {
	var out []attributeValue
	for i := range selectors {
		s := &selectors[i]
		var v string
		switch {
		case s.field == nil:
			if c.SlotID != nil {
				v = strconv.FormatUint(uint64(*c.SlotID), 10)
			}
		case s.name == "library-version":
			v = canonicalVersion(c.LibraryVersion)
		default:
			v = *s.field(c)
		}
		if v != "" {
			out = append(out, attributeValue{s, v})
		}
	}
	return out
}

// canonicalVersion writes "2" as "2.0" and "2.06" as "2.6": a
// library-version without a minor part means minor 0, as p11-kit reads it.
func canonicalVersion(v string) string {
	if !libraryVersionForm.MatchString(v) {
		return v
	}
	major, minor, _ := strings.Cut(v, ".")
	ma, _ := strconv.Atoi(major)
	mi, _ := strconv.Atoi(minor)
	return fmt.Sprintf("%d.%d", ma, mi)
}

// formatAttributes writes attributes as a URI path: name=value;...,
// values percent-encoded.
func formatAttributes(as []attributeValue) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.sel.name + "=" + url.PathEscape(a.value)
	}
	return strings.Join(parts, ";")
}

// matches reports whether f has every wanted attribute from source.
func matches(want []attributeValue, source attributeSource, f *slotFacts) bool {
	for _, a := range want {
		if a.sel.source == source && trimLabel(a.sel.actual(f)) != a.value {
			return false
		}
	}
	return true
}

func wants(want []attributeValue, source attributeSource) bool {
	for _, a := range want {
		if a.sel.source == source {
			return true
		}
	}
	return false
}

// actualAttributes lists what f reports for the attributes from source
// that a listing shows: token, serial, slot-id and the library-* attributes
// always, the others when wanted.
func actualAttributes(want []attributeValue, source attributeSource, f *slotFacts) []attributeValue {
	var out []attributeValue
	for i := range selectors {
		s := &selectors[i]
		if s.source != source {
			continue
		}
		shown := s.source == fromLibraryInfo || s.name == "token" || s.name == "serial" || s.name == "slot-id"
		for _, a := range want {
			shown = shown || a.sel == s
		}
		if shown {
			out = append(out, attributeValue{s, trimLabel(s.actual(f))})
		}
	}
	return out
}

// checkLibrary checks the library-* attributes wanted against the module.
func checkLibrary(lib *Library, want []attributeValue) error {
	var asked []attributeValue
	for _, a := range want {
		if a.sel.source == fromLibraryInfo {
			asked = append(asked, a)
		}
	}
	if len(asked) == 0 {
		return nil
	}
	info, err := lib.Info()
	if err != nil {
		return err
	}
	f := slotFacts{lib: info}
	if matches(asked, fromLibraryInfo, &f) {
		return nil
	}
	return fmt.Errorf("hsm: module %s does not match %s: it reports %s", lib.path,
		formatAttributes(asked), formatAttributes(actualAttributes(want, fromLibraryInfo, &f)))
}

// selectSlot returns the one initialised token of lib that has every
// attribute the config sets. Its errors name the URI attributes and list
// the tokens present.
func (c *Config) selectSlot(lib *Library, slots []Slot) (Slot, error) {
	want := c.wanted()
	var f slotFacts
	if err := checkLibrary(lib, want); err != nil {
		return Slot{}, err
	}
	var found []Slot
	var all, matched []string
	for _, s := range slots {
		if s.Token.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		f.id, f.token = s.ID, s.Token
		if wants(want, fromSlotInfo) {
			si, err := lib.ctx.GetSlotInfo(s.ID)
			if err != nil {
				return Slot{}, ckr("C_GetSlotInfo", err)
			}
			f.slot = si
		}
		shown := actualAttributes(want, fromTokenInfo, &f)
		shown = append(shown, actualAttributes(want, fromSlotInfo, &f)...)
		all = append(all, formatAttributes(shown))
		if matches(want, fromTokenInfo, &f) && matches(want, fromSlotInfo, &f) {
			found = append(found, s)
			matched = append(matched, formatAttributes(shown))
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		present := "none"
		if len(all) > 0 {
			present = strings.Join(all, ", ")
		}
		return Slot{}, fmt.Errorf("hsm: no token matches %s in module %s; tokens present: %s%s",
			formatAttributes(want), lib.path, present, softHSMHint(lib, len(all)))
	}
	return Slot{}, fmt.Errorf("hsm: %d tokens match %s in module %s: %s; add serial= or slot-id= to choose one",
		len(found), formatAttributes(want), lib.path, strings.Join(matched, ", "))
}

// isSoftHSM reports whether lib is SoftHSM2, by its manufacturer or file name.
func isSoftHSM(lib *Library) bool {
	if strings.Contains(strings.ToLower(filepath.Base(lib.path)), "softhsm") {
		return true
	}
	info, err := lib.Info()
	return err == nil && strings.HasPrefix(trimLabel(info.ManufacturerID), "SoftHSM")
}

// softHSMHint explains, for SoftHSM2, why the token asked for is not there:
// SoftHSM2 reads the token directory from SOFTHSM2_CONF, or from its
// built-in default (/etc/softhsm/softhsm2.conf on Debian) when that is unset.
func softHSMHint(lib *Library, tokens int) string {
	if !isSoftHSM(lib) {
		return ""
	}
	conf := os.Getenv("SOFTHSM2_CONF")
	switch {
	case conf == "":
		return "; SoftHSM2 found no p11kms configuration: SOFTHSM2_CONF is not set, so it read its system default " +
			"(e.g. /etc/softhsm/softhsm2.conf): set SOFTHSM2_CONF to the softhsm2.conf of a p11kms home (p11kms init makes one), " +
			"or leave module-path= and module-name= out to use the p11kms home"
	case tokens == 0:
		return fmt.Sprintf("; SoftHSM2 reads SOFTHSM2_CONF=%s, whose token directory holds no initialised token: "+
			"run p11kms init for that home, or point SOFTHSM2_CONF at another softhsm2.conf", conf)
	}
	return ""
}

// softHSMLoadHint explains a SoftHSM2 that fails C_Initialize, which it
// does (CKR_GENERAL_ERROR) when it cannot read its configuration file.
func softHSMLoadHint(path string, err error) error {
	if !IsCode(err, pkcs11.CKR_GENERAL_ERROR) || !strings.Contains(strings.ToLower(filepath.Base(path)), "softhsm") {
		return err
	}
	conf := os.Getenv("SOFTHSM2_CONF")
	which := "SOFTHSM2_CONF is not set and its default configuration (e.g. /etc/softhsm/softhsm2.conf) is missing or unreadable"
	if conf != "" {
		which = fmt.Sprintf("SOFTHSM2_CONF=%s is missing or unreadable, or names a token directory that is", conf)
	}
	return fmt.Errorf("%w; SoftHSM2 found no configuration: %s: set SOFTHSM2_CONF to the softhsm2.conf of a p11kms home "+
		"(p11kms init makes one), or leave module-path= and module-name= out to use the p11kms home", err, which)
}
