package provider

import (
	"net/http"
	"strings"
)

// Key origins.
const (
	OriginKMS      = "Aliyun_KMS" // the key material was made in the token
	OriginExternal = "EXTERNAL"   // the key material is imported (BYOK)
)

// StatePendingImport is the state of an EXTERNAL key without usable key
// material: never imported, deleted (DeleteKeyMaterial), or expired.
const StatePendingImport = "PendingImport"

// CodePendingImport is Alibaba's error for a key without key material.
const CodePendingImport = "Rejected.PendingImport"

// pendingImport is the error of an operation that needs key material.
func pendingImport(keyID string) *Error {
	e := NewError(CodePendingImport, "the key %s has no key material: import it (GetParametersForImport, ImportKeyMaterial) first", keyID)
	e.HTTPStatus = http.StatusConflict
	return e
}

// checkOrigin validates CreateKey's Origin into nk.
func checkOrigin(origin string, nk *newKey) error {
	switch origin {
	case "", OriginKMS:
		nk.origin = OriginKMS
	case OriginExternal:
		if nk.asym != nil {
			return InvalidParam("Origin", "%s with KeySpec %s: imported key material is accepted for %s keys only", OriginExternal, nk.spec, KeySpecAES256)
		}
		nk.origin = OriginExternal
	default:
		return InvalidParam("Origin", "%q: accepted %s", Clip(origin, 32), strings.Join([]string{OriginKMS, OriginExternal}, ", "))
	}
	return nil
}

// IsReservedLabel reports whether a token object's CKA_LABEL is one of the
// core's own: a CMK version, key pair or service key ("p11kms/..."), a
// BYOK wrapping key ("p11kms-import/...") or the import-token key.
// Sibling services (the importer) neither list nor create such objects.
func IsReservedLabel(label string) bool {
	return strings.HasPrefix(label, "p11kms/") || strings.HasPrefix(label, "p11kms-import")
}

// materialExpired reports whether an imported key's material has expired
// (on the service's clock).
func (s *Service) materialExpired(m *keyMeta) bool {
	return m.Origin == OriginExternal && m.KeyState == StateEnabled && !m.MaterialExpire.IsZero() && !s.now().Before(m.MaterialExpire)
}

// usableNow is usable with imported key material's expiry: an EXTERNAL key
// whose material expired is PendingImport.
func (s *Service) usableNow(m *keyMeta) error {
	if err := usable(m); err != nil {
		return err
	}
	if s.materialExpired(m) {
		return pendingImport(m.KeyId)
	}
	return nil
}
