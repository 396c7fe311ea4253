package xks

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/p11kms/p11kms/internal/atomicfile"
	"github.com/p11kms/p11kms/provider/wire"
)

// SealPurpose is the secretseal purpose of the SigV4 secrets in the file
// (secretseal.Sealer.WithPurpose): a secret sealed for the access-keys
// file does not open here, nor one of this file there.
const SealPurpose = "xks"

// LoadSealedFile reads the configuration at path and opens its sealed
// secrets with s (a sealer for SealPurpose), returning it with every
// SecretAccessKey in plaintext, in memory only.
//
// Plaintext secrets found in the file (written by hand, or by a p11kms
// that did not seal) are sealed in the file first: it is rewritten
// atomically (atomicfile.Update: lock, temporary file with mode 0600,
// rename), every other field kept; sealed says how many. If the file
// cannot be rewritten (a read-only mount), the error names it and the
// command that seals it. If another writer holds its lock, the file is
// used as it is.
func LoadSealedFile(path string, s wire.SecretSealer) (f *File, sealed int, err error) {
	if f, err = LoadFile(path); err != nil {
		return nil, 0, err
	}
	if n := f.plaintext(); n > 0 {
		sealed, err = UpdateFile(path, s, func(*File) error { return nil })
		switch {
		case errors.Is(err, atomicfile.ErrLocked):
			sealed = 0 // a sibling serve is sealing it
		case err != nil:
			return nil, 0, fmt.Errorf("%w (%s holds %d plaintext secretAccessKey: make it writable, "+
				"or seal it where it is with `p11kms xks seal --xks-config FILE`)", err, path, n)
		}
		if f, err = LoadFile(path); err != nil {
			return nil, 0, err
		}
	}
	if err := f.open(s); err != nil {
		return nil, 0, fmt.Errorf("xks: %s: %w", path, err)
	}
	return f, sealed, nil
}

// plaintext counts the credentials whose secret is in plaintext.
func (f *File) plaintext() int {
	n := 0
	for _, c := range f.Credentials {
		if c.SecretAccessKey != "" {
			n++
		}
	}
	return n
}

// open opens every sealed secret in place.
func (f *File) open(s wire.SecretSealer) error {
	for i := range f.Credentials {
		c := &f.Credentials[i]
		if c.SealedSecretAccessKey == "" {
			continue
		}
		secret, err := s.Open(c.AccessKeyID, c.SealedSecretAccessKey)
		if err != nil {
			return fmt.Errorf("credentials[%d].sealedSecretAccessKey (%s): %w", i, c.AccessKeyID, err)
		}
		c.SecretAccessKey, c.SealedSecretAccessKey = string(secret), ""
		clear(secret)
	}
	return nil
}

// seal seals every plaintext secret in place and returns how many.
func (f *File) seal(s wire.SecretSealer) (int, error) {
	n := 0
	for i := range f.Credentials {
		c := &f.Credentials[i]
		if c.SecretAccessKey == "" {
			continue
		}
		sealed, err := s.Seal(c.AccessKeyID, []byte(c.SecretAccessKey))
		if err != nil {
			return 0, fmt.Errorf("credentials[%d] (%s): %w", i, c.AccessKeyID, err)
		}
		c.SealedSecretAccessKey, c.SecretAccessKey = sealed, ""
		n++
	}
	return n, nil
}

// UpdateFile changes the configuration at path under its lock: it reads
// it (a missing file is an empty configuration; the file need not check
// before the change, e.g. "credentials": [] before the first credential
// is created), applies change, seals
// every plaintext secret with s (a new one, or one left in plaintext),
// checks the result and replaces the file atomically with mode 0600.
// Nothing is written unless every step succeeded. It returns how many
// secrets it sealed.
func UpdateFile(path string, s wire.SecretSealer, change func(*File) error) (sealed int, err error) {
	var changeErr error // errors of the change, already naming the file
	err = atomicfile.Update(path, func(old []byte, exists bool) ([]byte, error) {
		f := &File{}
		if exists {
			if f, changeErr = decodeFile(path, old); changeErr != nil {
				return nil, changeErr
			}
		}
		if changeErr = change(f); changeErr != nil {
			return nil, changeErr
		}
		var err error
		if sealed, err = f.seal(s); err == nil {
			err = f.Check()
		}
		if err != nil {
			changeErr = fmt.Errorf("xks: %s: %w", path, err)
			return nil, changeErr
		}
		if f.Keys == nil {
			f.Keys = map[string]Key{}
		}
		b, err := json.MarshalIndent(f, "", "  ")
		return append(b, '\n'), err
	})
	switch {
	case err != nil && changeErr != nil:
		return 0, changeErr
	case err != nil:
		return 0, fmt.Errorf("xks: %w", err)
	}
	return sealed, nil
}
