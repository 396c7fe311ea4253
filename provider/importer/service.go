package importer

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Service is the receiving side over one token. It is safe for concurrent
// use; see the package documentation for the concurrency contract.
type Service struct {
	tok *hsm.Token

	mu       sync.Mutex
	wrapping map[string]*wrappingKey // wrapping keys, by label
	keys     map[string]importedKey  // imported keys, by label

	labels labelLocks
}

// New returns the receiving side over tok. The caller keeps ownership of
// tok and closes it after the last call.
func New(tok *hsm.Token) *Service {
	return &Service{tok: tok, wrapping: map[string]*wrappingKey{}, keys: map[string]importedKey{}}
}

// Token returns the token the service uses.
func (s *Service) Token() *hsm.Token { return s.tok }

// labelLocks serialises operations on one label within a Service. Entries
// exist only while someone holds or waits for them.
type labelLocks struct {
	mu sync.Mutex
	m  map[string]*labelLock
}

type labelLock struct {
	mu      sync.Mutex
	waiters int
}

// lock takes the lock of label and returns its release.
func (l *labelLocks) lock(label string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*labelLock{}
	}
	e := l.m[label]
	if e == nil {
		e = &labelLock{}
		l.m[label] = e
	}
	e.waiters++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.waiters--; e.waiters == 0 {
			delete(l.m, label)
		}
		l.mu.Unlock()
	}
}

// errDecryption is the one cause behind every InvalidCiphertext error, so
// that not even errors.Is on the cause tells failures apart.
var errDecryption = wrap.ErrDecryption

// invalidExportedKey is the one answer to every ExportedDataKey that cannot
// be imported. Neither message nor cause depends on why.
func invalidExportedKey() error {
	e := provider.NewError(provider.CodeInvalidCiphertext,
		"ExportedDataKey cannot be imported: it is malformed or altered, or it was not made for this wrapping key and WrappingAlgorithm")
	e.Param = "ExportedDataKey"
	e.Err = errDecryption
	return e
}

// invalidBlob is the one answer to every CiphertextBlob Decrypt refuses.
func invalidBlob() error {
	e := provider.NewError(provider.CodeInvalidCiphertext,
		"CiphertextBlob is invalid or does not match the key or AAD")
	e.Param = "CiphertextBlob"
	e.Err = errDecryption
	return e
}

// conflict is a Rejected.Conflict error about a label.
func conflict(param, format string, args ...any) error {
	e := provider.NewError(provider.CodeConflict, "%s: "+format, append([]any{param}, args...)...)
	e.Param = param
	return e
}

// unsupported is an UnsupportedOperation error about a parameter.
func unsupported(param, format string, args ...any) error {
	e := provider.NewError(provider.CodeUnsupportedOp, "%s: "+format, append([]any{param}, args...)...)
	e.Param = param
	return e
}

// keyNotFound is a Forbidden.KeyNotFound error naming the label.
func keyNotFound(param, what, label string) error {
	e := provider.NewError(provider.CodeKeyNotFound, "%s: no %s labelled %q in this token", param, what, label)
	e.Param = param
	return e
}

// fromParamError turns a wrap.ParamError into InvalidParameter.
func fromParamError(err error) error {
	var pe *wrap.ParamError
	if errors.As(err, &pe) {
		return provider.FromWrap(err) // the core's parameter names
	}
	return provider.Internal("validating the request", err)
}

// internal wraps a token failure; a context error stays recognisable.
func internal(op string, err error) error {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	return provider.Internal(op, err)
}

// isStale reports whether err means a cached handle no longer names an
// object (destroyed here or by another process).
func isStale(err error) bool {
	return hsm.IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) || hsm.IsCode(err, pkcs11.CKR_KEY_HANDLE_INVALID) ||
		hsm.IsCode(err, pkcs11.CKR_UNWRAPPING_KEY_HANDLE_INVALID)
}

// reservedImportPrefix starts the labels of the KMS's BYOK wrapping keys
// and its import-token key (provider.IsReservedLabel).
const reservedImportPrefix = "p11kms-import"

// checkLabel validates a KeyLabel or WrappingKeyLabel.
func checkLabel(param, label string) error {
	switch {
	case label == "":
		return provider.InvalidParam(param, "is required: 1 to %d bytes of printable UTF-8", MaxLabelBytes)
	case len(label) > MaxLabelBytes:
		return provider.InvalidParam(param, "is %d bytes; accepted: 1 to %d bytes of printable UTF-8", len(label), MaxLabelBytes)
	case !utf8.ValidString(label):
		return provider.InvalidParam(param, "is not valid UTF-8; accepted: 1 to %d bytes of printable UTF-8", MaxLabelBytes)
	case provider.IsReservedLabel(label):
		return provider.InvalidParam(param, "labels starting with %q or %q are reserved for the KMS's own keys (CMK versions, key pairs, import wrapping keys)", ReservedLabelPrefix, reservedImportPrefix)
	}
	for _, r := range label {
		if !unicode.IsPrint(r) {
			return provider.InvalidParam(param, "contains the non-printable character %U; accepted: 1 to %d bytes of printable UTF-8", r, MaxLabelBytes)
		}
	}
	return nil
}

// decodeBase64 decodes a standard, padded base64 parameter; ASCII white
// space (line breaks of `base64` output, a file's trailing newline) is
// ignored.
func decodeBase64(param, s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, provider.InvalidParam(param, "is not valid base64 (standard alphabet, padded): %v", err)
	}
	return b, nil
}

// newID returns a fresh 16-byte CKA_ID (a random UUID's bytes).
func newID() []byte {
	u := uuid.New()
	return u[:]
}

// objectsLabelled returns every object of the token (and this process's
// session objects) whose CKA_LABEL is label — only those of class, if
// given — with its class and CKA_ID.
func (s *Service) objectsLabelled(ctx context.Context, label string, class ...uint) ([]labelled, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}
	for _, c := range class {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_CLASS, c))
	}
	hs, err := s.tok.FindObjects(ctx, tmpl)
	if err != nil {
		return nil, err
	}
	out := make([]labelled, 0, len(hs))
	for _, h := range hs {
		a, err := s.tok.Attributes(ctx, h, pkcs11.CKA_CLASS, pkcs11.CKA_ID)
		if err != nil {
			if isStale(err) { // destroyed meanwhile
				continue
			}
			return nil, err
		}
		c, ok := ulongValue(a[pkcs11.CKA_CLASS])
		if !ok {
			return nil, fmt.Errorf("importer: CKA_CLASS of %d bytes", len(a[pkcs11.CKA_CLASS]))
		}
		out = append(out, labelled{h: h, class: c, id: a[pkcs11.CKA_ID]})
	}
	return out, nil
}

// hexID reads an object's CKA_ID as hex.
func (s *Service) hexID(ctx context.Context, h hsm.ObjectHandle) (string, error) {
	a, err := s.tok.Attributes(ctx, h, pkcs11.CKA_ID)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(a[pkcs11.CKA_ID]), nil
}

// wrappingKey is a cached wrapping key pair.
type wrappingKey struct {
	label string
	pair  hsm.KeyPair
	id    string // hex CKA_ID
	spec  wrap.KeySpec
	pub   crypto.PublicKey
	k     int // RSA modulus bytes; 0 for SM2
}

func (s *Service) cachedWrapping(label string) *wrappingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrapping[label]
}

func (s *Service) forgetWrapping(label string) {
	s.mu.Lock()
	delete(s.wrapping, label)
	s.mu.Unlock()
}

// loadWrapping returns the wrapping key labelled label, from the cache
// unless fresh is set.
func (s *Service) loadWrapping(ctx context.Context, param, label string, fresh bool) (*wrappingKey, error) {
	if !fresh {
		if wk := s.cachedWrapping(label); wk != nil {
			return wk, nil
		}
	}
	kp, err := s.tok.FindKeyPair(ctx, label)
	switch {
	case errors.Is(err, hsm.ErrNotFound):
		return nil, keyNotFound(param, "wrapping key", label)
	case errors.Is(err, hsm.ErrAmbiguous):
		return nil, conflict(param, "more than one key pair is labelled %q; delete the extra ones", label)
	case err != nil:
		return nil, internal("finding the wrapping key", err)
	}
	pub, err := s.tok.PublicKey(ctx, kp.Public)
	if _, fromToken := hsm.CodeOf(err); fromToken {
		return nil, internal("reading the wrapping key", err)
	}
	if err != nil {
		return nil, provider.InvalidParam(param, "the key pair labelled %q is not a wrapping key (%v); accepted: RSA_2048, RSA_3072, RSA_4096, EC_SM2", label, err)
	}
	spec, err := wrap.SpecOf(pub)
	if err != nil {
		return nil, provider.InvalidParam(param, "the key pair labelled %q is not a wrapping key (%v)", label, err)
	}
	id, err := s.hexID(ctx, kp.Private)
	if err != nil {
		return nil, internal("reading the wrapping key", err)
	}
	wk := &wrappingKey{label: label, pair: kp, id: id, spec: spec, pub: pub, k: spec.RSABits() / 8}
	s.mu.Lock()
	s.wrapping[label] = wk
	s.mu.Unlock()
	return wk, nil
}

// importedKey is a cached imported key: its handle, and whether this
// service imported it as a session key (Ephemeral), in which session epoch
// of the token (hsm.Token.SessionEpoch, read before it was made).
type importedKey struct {
	h       hsm.ObjectHandle
	session bool
	epoch   uint64
}

func (s *Service) cachedKey(label string) (importedKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[label]
	return k, ok
}

func (s *Service) setKey(label string, k importedKey) {
	s.mu.Lock()
	s.keys[label] = k
	s.mu.Unlock()
}

func (s *Service) forgetKey(label string) {
	s.mu.Lock()
	delete(s.keys, label)
	s.mu.Unlock()
}

// loadKey returns the imported secret key labelled label, from the cache
// unless fresh is set. A label that holds anything but one settled key (an
// import of it is under way in some process, or one was interrupted) is
// looked at again under the label's locks, once repaired (repairLabel).
func (s *Service) loadKey(ctx context.Context, label string, fresh bool) (hsm.ObjectHandle, error) {
	if !fresh {
		if k, ok := s.cachedKey(label); ok {
			return k.h, nil
		}
	}
	keys, err := s.objectsLabelled(ctx, label, pkcs11.CKO_SECRET_KEY)
	if err != nil {
		return 0, internal("finding the key", err)
	}
	h, ok := settledKey(keys)
	if !ok && len(keys) > 0 {
		unlock, err := s.lockLabel(label)
		if err != nil {
			return 0, err
		}
		defer unlock()
		objs, err := s.repairLabel(ctx, label)
		if err != nil {
			return 0, err
		}
		keys = secretKeys(objs)
		h, ok = settledKey(keys)
	}
	switch {
	case len(keys) == 0:
		return 0, keyNotFound("KeyLabel", "secret key", label)
	case !ok:
		return 0, conflict("KeyLabel", "%d secret keys are labelled %q and none is marked as the one an import put there (another tool or an older p11kms made them): DeleteKey removes them all, or ImportDataKey with Replace replaces them with one", len(keys), label)
	}
	s.setKey(label, importedKey{h: h})
	return h, nil
}
