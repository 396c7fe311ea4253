package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/p11kms/p11kms/hsm"
)

// Token data-object applications.
const (
	appKeys    = "p11kms"
	appAliases = "p11kms-alias"
)

// Key states.
const (
	StateEnabled         = "Enabled"
	StateDisabled        = "Disabled"
	StatePendingDeletion = "PendingDeletion"
)

// keyMeta is the JSON stored in a key's metadata object.
type keyMeta struct {
	KeyId             string
	Description       string
	KeySpec           string
	KeyUsage          string
	KeyState          string
	Origin            string
	ProtectionLevel   string
	Creator           string
	CreationDate      time.Time
	DeleteDate        time.Time `json:",omitzero"`
	PrimaryKeyVersion string
	Versions          []versionMeta
	AutomaticRotation bool
	RotationInterval  int64             `json:",omitempty"` // seconds
	LastRotationDate  time.Time         `json:",omitzero"`
	Tags              map[string]string `json:",omitempty"` // see tags.go
}

type versionMeta struct {
	KeyVersionId string
	CreationDate time.Time
}

// aliasMeta is the JSON stored in an alias object.
type aliasMeta struct {
	KeyId        string
	CreationDate time.Time
}

const isoTime = "2006-01-02T15:04:05Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(isoTime)
}

func (s *Service) arn(keyID string) string {
	return fmt.Sprintf("acs:kms:%s:%s:key/%s", s.opt.Region, s.opt.Account, keyID)
}

func (s *Service) aliasArn(alias string) string {
	return fmt.Sprintf("acs:kms:%s:%s:%s", s.opt.Region, s.opt.Account, alias)
}

// metadata converts stored metadata to the API's KeyMetadata.
func (s *Service) metadata(m *keyMeta) KeyMetadata {
	km := KeyMetadata{
		KeyId: m.KeyId, Arn: s.arn(m.KeyId), CreationDate: fmtTime(m.CreationDate), Creator: m.Creator,
		Description: m.Description, KeySpec: m.KeySpec, KeyUsage: m.KeyUsage, KeyState: m.KeyState,
		Origin: m.Origin, ProtectionLevel: m.ProtectionLevel, PrimaryKeyVersion: m.PrimaryKeyVersion,
		AutomaticRotation: "Disabled", DeleteDate: fmtTime(m.DeleteDate),
		LastRotationDate: fmtTime(m.LastRotationDate),
	}
	if m.AutomaticRotation {
		km.AutomaticRotation = "Enabled"
		km.RotationInterval = fmt.Sprintf("%ds", m.RotationInterval)
		km.NextRotationDate = fmtTime(m.LastRotationDate.Add(time.Duration(m.RotationInterval) * time.Second))
	}
	return km
}

// loadKey reads a key's metadata by key id (not alias).
func (s *Service) loadKey(ctx context.Context, keyID string) (*keyMeta, *hsm.DataObject, error) {
	obj, err := s.tok.FindData(ctx, appKeys, keyID)
	if errors.Is(err, hsm.ErrNotFound) {
		return nil, nil, NewError(CodeKeyNotFound, "the key %s does not exist", keyID)
	}
	if err != nil {
		return nil, nil, Internal("reading key metadata", err)
	}
	var m keyMeta
	if err := json.Unmarshal(obj.Value, &m); err != nil {
		return nil, nil, Internal("decoding key metadata", err)
	}
	return &m, obj, nil
}

// maxUpdateAttempts bounds the re-read/re-apply loop of a metadata update.
// Writers of one host never conflict (hsm.UpdateData holds the token's
// object lock); the loop is for writers on other hosts sharing a token.
const maxUpdateAttempts = 32

// updateKey applies change to the key's metadata and writes it back, with
// no other writer of this host in between; on a concurrent change from
// another host it re-reads and re-applies, so no update is lost.
func (s *Service) updateKey(ctx context.Context, keyID string, change func(*keyMeta) error) (*keyMeta, error) {
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		var m *keyMeta
		var refused error // from change, or the metadata cannot be coded: nothing written
		nobj, err := s.tok.UpdateData(ctx, appKeys, keyID, func(cur *hsm.DataObject) ([]byte, error) {
			m = new(keyMeta)
			if err := json.Unmarshal(cur.Value, m); err != nil {
				refused = Internal("decoding key metadata", err)
				return nil, refused
			}
			if refused = change(m); refused != nil {
				return nil, refused
			}
			b, err := json.Marshal(m)
			if err != nil {
				refused = Internal("encoding key metadata", err)
			}
			return b, refused
		})
		switch {
		case refused != nil:
			return nil, refused
		case errors.Is(err, hsm.ErrConflict):
			backoff(ctx, attempt)
			continue
		case errors.Is(err, hsm.ErrNotFound):
			s.cache.dropKey(keyID)
			return nil, NewError(CodeKeyNotFound, "the key %s does not exist", keyID)
		case err != nil:
			s.cache.dropKey(keyID)
			return nil, Internal("writing key metadata", err)
		}
		s.cache.putKey(m, nobj)
		return m, nil
	}
	e := NewError(CodeConflict, "the key %s is being changed concurrently; retry", keyID)
	e.Err = hsm.ErrNotWritten // every attempt lost and removed its write
	return nil, e
}

// backoff sleeps a growing, jittered time between conflicting writes:
// 1 ms doubling to 64 ms, plus up to as much again at random, so writers in
// several processes spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) {
	d := time.Millisecond << min(attempt, 6)
	d += time.Duration(mrand.Int64N(int64(d) + 1))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// listKeys reads every key's metadata, sorted by key id.
func (s *Service) listKeys(ctx context.Context) ([]*keyMeta, error) {
	objs, err := s.tok.ListData(ctx, appKeys)
	if err != nil {
		return nil, Internal("listing keys", err)
	}
	out := make([]*keyMeta, 0, len(objs))
	for _, o := range objs {
		var m keyMeta
		if err := json.Unmarshal(o.Value, &m); err != nil {
			continue
		}
		out = append(out, &m)
	}
	return out, nil
}
