// Package seed applies a seed file to a KMS: keys with fixed KeyIds,
// aliases, versions and states, so integration tests can hard-code them.
// Applying the same seed again changes nothing.
//
// Format (YAML; unknown fields are errors):
//
//	keys:
//	  - keyId: key-payments-0001      # letters, digits, - and _
//	    description: payments CMK
//	    versions: 2                   # at least this many versions (default 1)
//	    state: Enabled                # Enabled (default), Disabled or PendingDeletion
//	    pendingWindowInDays: 30       # with PendingDeletion (default 30)
//	    rotationInterval: 30d         # optional automatic rotation
//	    aliases: [alias/payments]
package seed

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/p11kms/p11kms/provider"
)

// File is a parsed seed file.
type File struct {
	Keys []Key `yaml:"keys"`
}

// Key is one seeded key.
type Key struct {
	KeyId               string   `yaml:"keyId"`
	Description         string   `yaml:"description"`
	Versions            int      `yaml:"versions"`
	State               string   `yaml:"state"`
	PendingWindowInDays int      `yaml:"pendingWindowInDays"`
	RotationInterval    string   `yaml:"rotationInterval"`
	Aliases             []string `yaml:"aliases"`
}

// Load reads and validates a seed file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return Parse(b)
}

// Parse decodes a seed strictly and validates it.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	seen := map[string]bool{}
	for i, k := range f.Keys {
		if k.KeyId == "" {
			return nil, fmt.Errorf("seed: keys[%d]: keyId is required", i)
		}
		if seen[k.KeyId] {
			return nil, fmt.Errorf("seed: keyId %s appears twice", k.KeyId)
		}
		seen[k.KeyId] = true
		switch k.State {
		case "", provider.StateEnabled, provider.StateDisabled, provider.StatePendingDeletion:
		default:
			return nil, fmt.Errorf("seed: key %s: state %q: accepted Enabled, Disabled, PendingDeletion", k.KeyId, k.State)
		}
		if k.Versions < 0 || k.Versions > 100 {
			return nil, fmt.Errorf("seed: key %s: versions %d: accepted 1 to 100", k.KeyId, k.Versions)
		}
	}
	return &f, nil
}

// Result says what Apply did.
type Result struct {
	Created, VersionsAdded, AliasesCreated, StatesChanged int
}

// Apply makes the KMS match the seed: missing keys, versions and aliases
// are created and states set; what already matches is left alone.
func Apply(ctx context.Context, s *provider.Service, f *File) (*Result, error) {
	res := &Result{}
	for _, k := range f.Keys {
		d, err := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: k.KeyId})
		if provider.ErrorCode(err) == provider.CodeKeyNotFound {
			req := &provider.CreateKeyRequest{KeyId: k.KeyId, Description: k.Description}
			if k.RotationInterval != "" {
				req.EnableAutomaticRotation, req.RotationInterval = true, k.RotationInterval
			}
			if _, err := s.CreateKey(ctx, req); err != nil {
				return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
			}
			res.Created++
			d, err = s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: k.KeyId})
		}
		if err != nil {
			return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
		}
		state := d.KeyMetadata.KeyState
		want := max(k.Versions, 1)
		vs, err := s.ListKeyVersions(ctx, &provider.ListKeyVersionsRequest{KeyId: k.KeyId, PageSize: new(100)})
		if err != nil {
			return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
		}
		if vs.TotalCount < want && state != provider.StateEnabled {
			if _, err := s.EnableKey(ctx, &provider.KeyIdRequest{KeyId: k.KeyId}); err != nil {
				return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
			}
			state = provider.StateEnabled
		}
		for n := vs.TotalCount; n < want; n++ {
			if _, err := s.CreateKeyVersion(ctx, &provider.KeyIdRequest{KeyId: k.KeyId}); err != nil {
				return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
			}
			res.VersionsAdded++
		}
		for _, a := range k.Aliases {
			_, err := s.CreateAlias(ctx, &provider.AliasRequest{AliasName: a, KeyId: k.KeyId})
			switch provider.ErrorCode(err) {
			case "":
				res.AliasesCreated++
			case provider.CodeAliasExists:
				// Idempotent: make sure it points here.
				if _, err := s.UpdateAlias(ctx, &provider.AliasRequest{AliasName: a, KeyId: k.KeyId}); err != nil {
					return res, fmt.Errorf("seed: alias %s: %w", a, err)
				}
			default:
				return res, fmt.Errorf("seed: alias %s: %w", a, err)
			}
		}
		wantState := k.State
		if wantState == "" {
			wantState = provider.StateEnabled
		}
		if state == wantState {
			continue
		}
		if state == provider.StatePendingDeletion {
			if _, err := s.CancelKeyDeletion(ctx, &provider.KeyIdRequest{KeyId: k.KeyId}); err != nil {
				return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
			}
		}
		switch wantState {
		case provider.StateEnabled:
			_, err = s.EnableKey(ctx, &provider.KeyIdRequest{KeyId: k.KeyId})
		case provider.StateDisabled:
			_, err = s.DisableKey(ctx, &provider.KeyIdRequest{KeyId: k.KeyId})
		case provider.StatePendingDeletion:
			days := k.PendingWindowInDays
			if days == 0 {
				days = 30
			}
			_, err = s.ScheduleKeyDeletion(ctx, &provider.ScheduleKeyDeletionRequest{KeyId: k.KeyId, PendingWindowInDays: days})
		}
		if err != nil {
			return res, fmt.Errorf("seed: key %s: %w", k.KeyId, err)
		}
		res.StatesChanged++
	}
	return res, nil
}
