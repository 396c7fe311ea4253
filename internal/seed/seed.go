// Package seed applies a seed file to a KMS: keys with fixed KeyIds,
// aliases, versions and states, so integration tests can hard-code them.
// Applying the same seed again changes nothing.
//
// Format (YAML; unknown fields are errors):
//
//	moveAliases: false              # see below (default false)
//	keys:
//	  - keyId: key-payments-0001    # letters, digits, - and _, up to 128
//	    description: payments CMK
//	    keySpec: Aliyun_AES_256     # the only one (default)
//	    versions: 2                 # at least this many versions, 1 to 100 (default 1)
//	    state: Enabled              # Enabled (default), Disabled or PendingDeletion
//	    pendingWindowInDays: 30     # only with PendingDeletion: 7 to 366 (default 30)
//	    rotationInterval: 30d       # optional automatic rotation, 7 to 365 days (30d or 2592000s)
//	    aliases: [alias/payments]
//
// Description, keySpec and rotationInterval are used when the key is
// created; a key that exists keeps its own.
//
// The whole seed is checked before anything is written: every field of
// every entry, duplicate keyIds and aliases inside the file, and each alias
// against the token. An alias that already points to another key is
// refused (Forbidden.AliasExists), because moving it would silently take
// it from the key its users know; with moveAliases: true the seed moves it
// instead and says so in [Result.AliasesMoved]. If anything is refused the
// token is left as it was, and the error names the entry (keys[i] and its
// keyId) and the field.
//
// Apply is not a transaction: a token failure while writing, or another
// process changing the same keys between the check and the writes, can
// leave part of the seed applied; applying it again completes it.
package seed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/p11kms/p11kms/provider"
)

// File is a parsed seed file.
type File struct {
	// MoveAliases lets the seed move an alias that points to another key
	// to the key that names it here. By default such an alias is refused.
	MoveAliases bool  `yaml:"moveAliases"`
	Keys        []Key `yaml:"keys"`
}

// Key is one seeded key.
type Key struct {
	KeyId               string   `yaml:"keyId"`
	Description         string   `yaml:"description"`
	KeySpec             string   `yaml:"keySpec"`
	Versions            int      `yaml:"versions"`
	State               string   `yaml:"state"`
	PendingWindowInDays int      `yaml:"pendingWindowInDays"`
	RotationInterval    string   `yaml:"rotationInterval"`
	Aliases             []string `yaml:"aliases"`
}

// Limits and defaults of a seeded key.
const (
	MaxVersions                = 100
	DefaultPendingWindowInDays = 30
)

// wantState is the state the seed asks for.
func (k *Key) wantState() string {
	if k.State == "" {
		return provider.StateEnabled
	}
	return k.State
}

// wantVersions is the number of versions the seed asks for at least.
func (k *Key) wantVersions() int { return max(k.Versions, 1) }

// pendingWindow is the deletion window the seed asks for.
func (k *Key) pendingWindow() int {
	if k.PendingWindowInDays == 0 {
		return DefaultPendingWindowInDays
	}
	return k.PendingWindowInDays
}

// Load reads a seed file and checks what the file alone can say (see Parse).
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return Parse(b)
}

// Parse decodes a seed strictly and checks what the file alone can say:
// required keyIds, states, versions, deletion windows, alias prefixes and
// duplicates. Apply checks the rest (id, alias and rotation syntax, key
// specs, aliases owned by other keys) against the KMS before it writes.
// The error is InvalidParameter, and joins one error per problem found.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, provider.NewError(provider.CodeInvalidParameter, "seed: %v", err)
	}
	var errs []error
	keyAt := map[string]int{}
	aliasAt := map[string]string{}
	for i := range f.Keys {
		k := &f.Keys[i]
		errs = append(errs, checkFields(i, k)...)
		if j, dup := keyAt[k.KeyId]; dup && k.KeyId != "" {
			errs = append(errs, entryError(provider.CodeInvalidParameter, i, k, "keyId", "also the keyId of keys[%d]: each key appears once", j))
		} else {
			keyAt[k.KeyId] = i
		}
		for n, a := range k.Aliases {
			field := fmt.Sprintf("aliases[%d]", n)
			if first, dup := aliasAt[a]; dup {
				errs = append(errs, entryError(provider.CodeInvalidParameter, i, k, field, "%s is also at %s: an alias names one key", a, first))
				continue
			}
			aliasAt[a] = fmt.Sprintf("keys[%d].%s", i, field)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &f, nil
}

// checkFields checks one entry's fields on their own.
func checkFields(i int, k *Key) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, entryError(provider.CodeInvalidParameter, i, k, field, format, args...))
	}
	if k.KeyId == "" {
		bad("keyId", "is required: letters, digits, - and _, up to 128")
	}
	switch k.State {
	case "", provider.StateEnabled, provider.StateDisabled, provider.StatePendingDeletion:
	default:
		bad("state", "%q: accepted Enabled (default), Disabled, PendingDeletion", truncate(k.State, 32))
	}
	if k.Versions < 0 || k.Versions > MaxVersions {
		bad("versions", "%d: accepted 1 to %d (default 1)", k.Versions, MaxVersions)
	}
	switch {
	case k.PendingWindowInDays == 0:
	case k.wantState() != provider.StatePendingDeletion:
		bad("pendingWindowInDays", "only with state PendingDeletion (the state is %s)", k.wantState())
	case k.PendingWindowInDays < provider.MinPendingWindowDays || k.PendingWindowInDays > provider.MaxPendingWindowDays:
		bad("pendingWindowInDays", "%d: accepted %d to %d (default %d)", k.PendingWindowInDays,
			provider.MinPendingWindowDays, provider.MaxPendingWindowDays, DefaultPendingWindowInDays)
	}
	for n, a := range k.Aliases {
		if !strings.HasPrefix(a, "alias/") {
			bad(fmt.Sprintf("aliases[%d]", n), "%q must start with alias/", truncate(a, 64))
		}
	}
	return errs
}

// entryError is an error in one entry of the seed: its code, the entry
// (index and keyId) and the field, as the seed file names them.
func entryError(code string, i int, k *Key, field, format string, args ...any) *provider.Error {
	name := "no keyId"
	if k.KeyId != "" {
		name = "keyId " + truncate(k.KeyId, 64)
	}
	e := provider.NewError(code, "seed: keys[%d] (%s): %s: %s", i, name, field, fmt.Sprintf(format, args...))
	e.Param = fmt.Sprintf("keys[%d].%s", i, field)
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
