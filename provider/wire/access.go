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
	"strings"
	"sync"
)

// AccessKey is one credential and what it may do.
type AccessKey struct {
	AccessKeyId     string
	AccessKeySecret string
	Description     string `json:",omitempty"`
	Policy          Policy
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

// AccessKeys is the access-keys file, held in memory; safe for concurrent use.
type AccessKeys struct {
	mu      sync.RWMutex
	keys    map[string]AccessKey
	path    string
	revoked map[string]bool // deleted on another node (SetRevoked)
}

type accessKeysFile struct {
	AccessKeys []AccessKey
}

// LoadAccessKeys reads an access-keys file (strict JSON: unknown fields are errors).
func LoadAccessKeys(file string) (*AccessKeys, error) {
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
	ak := &AccessKeys{keys: map[string]AccessKey{}, path: file}
	for _, k := range f.AccessKeys {
		if k.AccessKeyId == "" || k.AccessKeySecret == "" {
			return nil, fmt.Errorf("access keys: %s: an entry lacks AccessKeyId or AccessKeySecret", file)
		}
		if _, dup := ak.keys[k.AccessKeyId]; dup {
			return nil, fmt.Errorf("access keys: %s: AccessKeyId %s appears twice", file, k.AccessKeyId)
		}
		ak.keys[k.AccessKeyId] = k
	}
	return ak, nil
}

// Reload reads the access-keys file again and, if it is valid, replaces
// the keys in place (requests in flight keep the key they looked up); an
// invalid file leaves the keys as they were and returns the error. A set
// not loaded from a file (NewAccessKeys) has nothing to reload.
func (a *AccessKeys) Reload() error {
	if a.path == "" {
		return fmt.Errorf("access keys: not loaded from a file: nothing to reload")
	}
	fresh, err := LoadAccessKeys(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys = fresh.keys
	return nil
}

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
		k.AccessKeySecret = ""
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

// NewAccessKey returns a fresh random access key with the policy. prefix
// is "LTAI" for Alibaba-style or "AKID" for Tencent-style ids.
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
// temporary file with mode 0600, fsync, rename).
func UpdateAccessKeysFile(file string, change func(keys *[]AccessKey) error) error {
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
