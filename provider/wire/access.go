package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/p11kms/p11kms/provider"
)

// AccessKey is one credential and what it may do.
//
// In the access-keys file the secret is sealed (SealedSecret, under the
// token's key: internal/secretseal) once a writer with the token has
// written it; AccessKeySecret in the file is the legacy plaintext form,
// sealed on the next load or write that has the token. In memory, after a
// load, AccessKeySecret holds the secret.
type AccessKey struct {
	AccessKeyId     string
	AccessKeySecret string `json:",omitempty"`
	SealedSecret    string `json:",omitempty"`
	Description     string `json:",omitempty"`
	Policy          Policy
}

// SecretSealer seals access-key secrets for the file and opens them
// (internal/secretseal, with the token).
type SecretSealer interface {
	Seal(id string, secret []byte) (string, error)
	Open(id, sealed string) ([]byte, error)
}

// Policy allows actions on keys. Both lists hold patterns with * and ?
// wildcards (path.Match); "*" allows everything. Keys match a key id or
// the alias (alias/...) the request named.
type Policy struct {
	Actions []string
	Keys    []string
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == "*" || p == s {
			return true
		}
		if ok, err := path.Match(p, s); err == nil && ok {
			return true
		}
	}
	return false
}

// AllowsAction reports whether the policy allows the action at all.
func (p *Policy) AllowsAction(action string) bool { return matchAny(p.Actions, action) }

// ReadActions, as an entry of Policy.Actions, allows every action whose
// table row is a read (Action.Write false) and no write: a read-only key
// (`accesskey create --actions @read`).
const ReadActions = "@read"

// AllowsCall reports whether the policy allows a call of the action, a
// write or a read (its row's Action.Write): by the action's name or a
// pattern, or, for a read, by ReadActions.
func (p *Policy) AllowsCall(action string, write bool) bool {
	return p.AllowsAction(action) || (!write && slices.Contains(p.Actions, ReadActions))
}

// AllowsKey reports whether the policy allows any of the names of a key
// (its id, the alias used).
func (p *Policy) AllowsKey(names ...string) bool {
	for _, n := range names {
		if n != "" && matchAny(p.Keys, n) {
			return true
		}
	}
	return false
}

// Visibility is the policy as a listing's provider.Visibility: an alias is
// shown when the policy allows its name or its key's id, a key when it
// allows its id or one of its aliases; nil (everything) when the policy
// allows every key.
func (p *Policy) Visibility() provider.Visibility {
	if matchAny(p.Keys, "*") {
		return nil
	}
	keys := p.Keys
	return func(keyID, alias string) bool { return (&Policy{Keys: keys}).AllowsKey(alias, keyID) }
}

// AccessKeys is the access-keys file, held in memory; safe for concurrent
// use. Reload (and Watch) replace the whole set at once.
type AccessKeys struct {
	mu   sync.RWMutex
	keys map[string]AccessKey
	path string
	// revoked are refused whatever the file says: deleted on another
	// node that shares the state (SetRevoked).
	revoked map[string]bool
	// load reads the file again (nil for an in-memory set).
	load func() (map[string]AccessKey, error)
}

type accessKeysFile struct {
	AccessKeys []AccessKey
}

// LoadAccessKeys reads an access-keys file (strict JSON: unknown fields are
// errors) whose secrets are in plaintext; a sealed secret is an error (use
// LoadSealedAccessKeys).
func LoadAccessKeys(file string) (*AccessKeys, error) { return LoadSealedAccessKeys(file, nil) }

// LoadSealedAccessKeys reads an access-keys file and opens its sealed
// secrets with s. A plaintext secret found in the file is sealed first: the
// file is rewritten (atomically, every entry kept) with it sealed, so a
// home made before sealing existed is migrated on its first load.
// Reload reads it the same way.
func LoadSealedAccessKeys(file string, s SecretSealer) (*AccessKeys, error) {
	load := func() (map[string]AccessKey, error) {
		if s != nil {
			if err := sealPlaintext(file, s); err != nil {
				return nil, err
			}
		}
		return readAccessKeys(file, s)
	}
	keys, err := load()
	if err != nil {
		return nil, err
	}
	return &AccessKeys{keys: keys, path: file, load: load}, nil
}

// sealPlaintext rewrites the file with its plaintext secrets sealed, if it
// has any.
func sealPlaintext(file string, s SecretSealer) error {
	f, err := readFile(file)
	if err != nil || !slices.ContainsFunc(f.AccessKeys, func(k AccessKey) bool { return k.AccessKeySecret != "" }) {
		return err
	}
	err = UpdateSealedAccessKeysFile(file, s, func(*[]AccessKey) error { return nil })
	if errors.Is(err, os.ErrExist) {
		return nil // another writer holds the lock (a sibling serve migrating): use the file as it is
	}
	return err
}

// ReadAccessKeysFile returns the entries of an access-keys file, sorted by
// id, without their secrets (sealed or not): for listing, without the token.
func ReadAccessKeysFile(file string) ([]AccessKey, error) {
	f, err := readFile(file)
	if err != nil {
		return nil, err
	}
	for i := range f.AccessKeys {
		f.AccessKeys[i].AccessKeySecret, f.AccessKeys[i].SealedSecret = "", ""
	}
	sortKeys(f.AccessKeys)
	return f.AccessKeys, nil
}

// readFile reads and decodes an access-keys file strictly.
func readFile(file string) (*accessKeysFile, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("access keys: %w", err)
	}
	var f accessKeysFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("access keys: %s: %w", file, err)
	}
	return &f, nil
}

// readAccessKeys reads and checks an access-keys file, opening sealed
// secrets with s.
func readAccessKeys(file string, s SecretSealer) (map[string]AccessKey, error) {
	f, err := readFile(file)
	if err != nil {
		return nil, err
	}
	keys := map[string]AccessKey{}
	for _, k := range f.AccessKeys {
		if k.AccessKeyId == "" || (k.AccessKeySecret == "") == (k.SealedSecret == "") {
			return nil, fmt.Errorf("access keys: %s: an entry lacks AccessKeyId, or has not exactly one of AccessKeySecret and SealedSecret", file)
		}
		if _, dup := keys[k.AccessKeyId]; dup {
			return nil, fmt.Errorf("access keys: %s: AccessKeyId %s appears twice", file, provider.Clip(k.AccessKeyId, 64))
		}
		if k.SealedSecret != "" {
			if s == nil {
				return nil, fmt.Errorf("access keys: %s: the secret of %s is sealed: it opens only with the token (p11kms serve, accesskey)", file, provider.Clip(k.AccessKeyId, 64))
			}
			secret, err := s.Open(k.AccessKeyId, k.SealedSecret)
			if err != nil {
				return nil, fmt.Errorf("access keys: %s: %w", file, err)
			}
			k.AccessKeySecret, k.SealedSecret = string(secret), ""
			clear(secret)
		}
		keys[k.AccessKeyId] = k
	}
	return keys, nil
}

// Reload reads the file the set was loaded from again and, if it is valid,
// replaces the set with it and returns the number of keys. If the file is
// missing or malformed, the set keeps its last good keys and the error is
// returned. An in-memory set (NewAccessKeys) has nothing to reload.
func (a *AccessKeys) Reload() (int, error) {
	if a.load == nil {
		return 0, errors.New("access keys: an in-memory set has no file to reload")
	}
	keys, err := a.load()
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	a.keys = keys
	a.mu.Unlock()
	return len(keys), nil
}

// Path is the file the set was loaded from ("" for an in-memory set).
func (a *AccessKeys) Path() string { return a.path }

// NewAccessKeys makes an in-memory set (tests, embedding).
func NewAccessKeys(keys ...AccessKey) *AccessKeys {
	ak := &AccessKeys{keys: map[string]AccessKey{}}
	for _, k := range keys {
		ak.keys[k.AccessKeyId] = k
	}
	return ak
}

// Lookup returns the access key with that id.
func (a *AccessKeys) Lookup(id string) (AccessKey, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.revoked[id] {
		return AccessKey{}, false
	}
	k, ok := a.keys[id]
	return k, ok
}

// SetRevoked replaces the ids refused whatever the file says: access keys
// deleted on another node that shares the state (state.Changes.Revoked).
func (a *AccessKeys) SetRevoked(ids []string) {
	r := make(map[string]bool, len(ids))
	for _, id := range ids {
		r[id] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = r
}

// List returns the keys sorted by id, secrets removed.
func (a *AccessKeys) List() []AccessKey {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]AccessKey, 0, len(a.keys))
	for _, k := range a.keys {
		k.AccessKeySecret, k.SealedSecret = "", ""
		out = append(out, k)
	}
	sortKeys(out)
	return out
}

func sortKeys(ks []AccessKey) {
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j].AccessKeyId < ks[j-1].AccessKeyId; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
}

// sealAll seals the plaintext secrets of keys with s (nil: none).
func sealAll(keys []AccessKey, s SecretSealer) error {
	if s == nil {
		return nil
	}
	for i := range keys {
		if k := &keys[i]; k.AccessKeySecret != "" {
			sealed, err := s.Seal(k.AccessKeyId, []byte(k.AccessKeySecret))
			if err != nil {
				return err
			}
			k.SealedSecret, k.AccessKeySecret = sealed, ""
		}
	}
	return nil
}

// NewAccessKey returns a fresh random access key with the policy. prefix
// is "LTAI" for Alibaba-style, "AKID" for Tencent-style or "AKIA" for
// AWS-style ids.
func NewAccessKey(prefix string, p Policy) AccessKey {
	id := make([]byte, 12)
	sec := make([]byte, 24)
	_, _ = rand.Read(id)
	_, _ = rand.Read(sec)
	return AccessKey{AccessKeyId: prefix + strings.ToUpper(hex.EncodeToString(id)),
		AccessKeySecret: base64.RawURLEncoding.EncodeToString(sec), Policy: p}
}

// ErrAccessKeyExists and ErrAccessKeyNotFound are returned by Add and Delete.
var (
	ErrAccessKeyExists   = errors.New("access key already exists")
	ErrAccessKeyNotFound = errors.New("access key not found")
)

// UpdateAccessKeysFile changes the file under a lock file: it reads it (or
// starts empty), applies change, and replaces it atomically (write a
// temporary file with mode 0600, fsync, rename). Secrets stay as they are
// (plaintext ones in plaintext); UpdateSealedAccessKeysFile seals them.
func UpdateAccessKeysFile(file string, change func(keys *[]AccessKey) error) error {
	return UpdateSealedAccessKeysFile(file, nil, change)
}

// UpdateSealedAccessKeysFile is UpdateAccessKeysFile that, with s, seals
// every plaintext secret (new or old) before the file is written: nothing
// is written unless every one sealed.
func UpdateSealedAccessKeysFile(file string, s SecretSealer, change func(keys *[]AccessKey) error) error {
	lock := file + ".lock"
	lf, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("access keys: %s is locked by another writer (remove %s if stale): %w", file, lock, err)
	}
	lf.Close()
	defer os.Remove(lock)
	var f accessKeysFile
	if b, err := os.ReadFile(file); err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("access keys: %s: %w", file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("access keys: %w", err)
	}
	if err := change(&f.AccessKeys); err != nil {
		return err
	}
	if err := sealAll(f.AccessKeys, s); err != nil {
		return err
	}
	sortKeys(f.AccessKeys)
	if f.AccessKeys == nil {
		f.AccessKeys = []AccessKey{}
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(file), ".access-keys-*")
	if err != nil {
		return fmt.Errorf("access keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
