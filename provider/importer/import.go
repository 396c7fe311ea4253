package importer

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

type usageDef struct {
	name string
	flag hsm.Usage
	attr uint
}

// usages maps the Usage names to hsm flags, in canonical order.
var usages = []usageDef{
	{"encrypt", hsm.UsageEncrypt, pkcs11.CKA_ENCRYPT},
	{"decrypt", hsm.UsageDecrypt, pkcs11.CKA_DECRYPT},
	{"wrap", hsm.UsageWrap, pkcs11.CKA_WRAP},
	{"unwrap", hsm.UsageUnwrap, pkcs11.CKA_UNWRAP},
	{"sign", hsm.UsageSign, pkcs11.CKA_SIGN},
	{"verify", hsm.UsageVerify, pkcs11.CKA_VERIFY},
}

const usageList = "encrypt, decrypt, wrap, unwrap, sign, verify"

// importInput is a validated ImportDataKeyRequest.
type importInput struct {
	alg         *wrap.Algorithm
	ct          []byte
	keyType     uint
	keyTypeName string
	usage       hsm.Usage
	usageNames  []string
	expected    string // lowercase hex KCV, or ""
}

// parseImport validates every parameter of req before any token call.
func parseImport(req *ImportDataKeyRequest) (*importInput, error) {
	if req == nil {
		return nil, provider.InvalidParam("request", "is required")
	}
	if err := checkLabel("WrappingKeyLabel", req.WrappingKeyLabel); err != nil {
		return nil, err
	}
	if req.WrappingAlgorithm == "" {
		return nil, provider.InvalidParam("WrappingAlgorithm", "is required; accepted: %s", strings.Join(wrap.Algorithms(), ", "))
	}
	alg, err := wrap.LookupAlgorithm(req.WrappingAlgorithm)
	if err != nil {
		return nil, fromParamError(err)
	}
	in := &importInput{alg: alg}
	switch {
	case strings.TrimSpace(req.ExportedDataKey) == "":
		return nil, provider.InvalidParam("ExportedDataKey", "is required: the wrapped data key, base64")
	case len(req.ExportedDataKey) > MaxExportedDataKey:
		return nil, provider.InvalidParam("ExportedDataKey", "is %d characters; accepted: at most %d base64 characters", len(req.ExportedDataKey), MaxExportedDataKey)
	}
	if in.ct, err = decodeBase64("ExportedDataKey", req.ExportedDataKey); err != nil {
		return nil, err
	}
	if err := checkLabel("KeyLabel", req.KeyLabel); err != nil {
		return nil, err
	}
	switch req.KeyType {
	case "", KeyTypeAES:
		in.keyType, in.keyTypeName = pkcs11.CKK_AES, KeyTypeAES
	case KeyTypeGenericSecret:
		in.keyType, in.keyTypeName = pkcs11.CKK_GENERIC_SECRET, KeyTypeGenericSecret
	default:
		return nil, provider.InvalidParam("KeyType", "unknown key type %q; accepted: %s (default), %s", req.KeyType, KeyTypeAES, KeyTypeGenericSecret)
	}
	if req.ExpectedKeyCheckValue != "" {
		v := strings.ToLower(req.ExpectedKeyCheckValue)
		if b, err := hex.DecodeString(v); err != nil || len(b) != 3 {
			return nil, provider.InvalidParam("ExpectedKeyCheckValue", "%q is not a key check value; accepted: 6 hex digits (3 bytes, PKCS#11 CKA_CHECK_VALUE)", req.ExpectedKeyCheckValue)
		}
		in.expected = v
	}
	names := req.Usage
	if len(names) == 0 {
		names = []string{"encrypt", "decrypt"}
		if in.keyType == pkcs11.CKK_GENERIC_SECRET {
			names = []string{"sign", "verify"}
		}
	}
	for _, n := range names {
		i := slices.IndexFunc(usages, func(u usageDef) bool { return strings.EqualFold(u.name, n) })
		if i < 0 {
			return nil, provider.InvalidParam("Usage", "unknown usage %q; accepted: %s", n, usageList)
		}
		in.usage |= usages[i].flag
	}
	for _, u := range usages {
		if in.usage&u.flag != 0 {
			in.usageNames = append(in.usageNames, u.name)
		}
	}
	return in, nil
}

// imported is the outcome of one import path: the final key, or the
// pending key a persistent import promotes (see replace.go).
type imported struct {
	handle  hsm.ObjectHandle
	kcv     string
	path    string
	pending bool
}

// fitsWrappingKey checks that alg can unwrap under the wrapping key. The
// error names the importer's own parameters: WrappingAlgorithm, and the key
// by its WrappingKeyLabel (the importer takes no WrappingKeySpec).
func fitsWrappingKey(alg *wrap.Algorithm, wk *wrappingKey) error {
	if alg.CompatibleWith(wk.spec) == nil {
		return nil
	}
	need := "an RSA"
	if alg.Kind == wrap.KindSM2 {
		need = "an EC_SM2"
	}
	return provider.InvalidParam("WrappingAlgorithm", "%s needs %s wrapping key; the WrappingKeyLabel %q names an %s key",
		alg.Name, need, wk.label, wk.spec)
}

// ImportDataKey imports an ExportedDataKey into the token as a sensitive,
// non-extractable secret key labelled KeyLabel, along the path the
// algorithm and the token allow (see the package documentation), and
// returns the path, the key's CKA_ID and its KCV.
//
// Errors: InvalidParameter for a bad or inconsistent parameter (naming it);
// Forbidden.KeyNotFound for an unknown WrappingKeyLabel; Rejected.Conflict
// for a KeyLabel in use (without Replace, or not an imported key);
// UnsupportedOperation when the token cannot unwrap with the algorithm and
// AllowHostDecode is not set; InvalidCiphertext — one message, one cause —
// for every ExportedDataKey that does not decrypt to a key of KeyType;
// InternalFailure for a token fault. On every error the token holds what it
// held before. A persistent import killed at any point leaves the label
// with its old key or the new one, never both: the label's next import,
// deletion or lookup settles it (see replace.go).
func (s *Service) ImportDataKey(ctx context.Context, req *ImportDataKeyRequest) (*ImportDataKeyResponse, error) {
	in, err := parseImport(req)
	if err != nil {
		return nil, err
	}
	unlock := s.labels.lock(req.KeyLabel)
	defer unlock()
	if !req.Ephemeral {
		unlockHost, err := s.lockLabelOnHost(req.KeyLabel)
		if err != nil {
			return nil, err
		}
		defer unlockHost()
	}

	wk, err := s.loadWrapping(ctx, "WrappingKeyLabel", req.WrappingKeyLabel, false)
	if err != nil {
		return nil, err
	}
	if err := fitsWrappingKey(in.alg, wk); err != nil {
		return nil, err
	}
	var old []hsm.ObjectHandle
	if req.Ephemeral {
		old, err = s.replaceableSession(ctx, req.KeyLabel, req.Replace)
	} else {
		old, err = s.replaceable(ctx, req.KeyLabel, req.Replace)
	}
	if err != nil {
		return nil, err
	}
	opt := hsm.SecretKeyOptions{ID: newID(), Label: req.KeyLabel, Ephemeral: req.Ephemeral, Usage: in.usage}
	epoch := s.tok.SessionEpoch()
	replacing := !req.Ephemeral && len(old) > 0
	res, err := s.importWith(ctx, wk, in, req.AllowHostDecode, opt, replacing)
	if err != nil && isStale(err) {
		// The cached wrapping key was destroyed (here or by another
		// process): look the label up again, once.
		s.forgetWrapping(req.WrappingKeyLabel)
		if wk, err = s.loadWrapping(ctx, "WrappingKeyLabel", req.WrappingKeyLabel, true); err != nil {
			return nil, err
		}
		if err := fitsWrappingKey(in.alg, wk); err != nil {
			return nil, err
		}
		res, err = s.importWith(ctx, wk, in, req.AllowHostDecode, opt, replacing)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case req.Ephemeral:
		// No other process sees this process's session keys, and this
		// service imports one label at a time: nothing to settle.
		for _, o := range old {
			_ = s.tok.DestroySessionObject(context.WithoutCancel(ctx), o)
		}
	case res.pending:
		if res.handle, err = s.promote(ctx, res.handle, opt, old); err != nil {
			return nil, err
		}
	}
	s.setKey(req.KeyLabel, importedKey{h: res.handle, session: req.Ephemeral, epoch: epoch})
	return &ImportDataKeyResponse{
		Path:          res.path,
		KeyLabel:      req.KeyLabel,
		KeyId:         hex.EncodeToString(opt.ID),
		KeyType:       in.keyTypeName,
		KeyCheckValue: res.kcv,
		Usage:         in.usageNames,
		Ephemeral:     req.Ephemeral,
		RequestId:     uuid.NewString(),
	}, nil
}

// replaceable returns the imported keys labelled label that the import
// will replace, once what an interrupted import left is settled. Any object
// with the label is a conflict unless replace is set and every such object
// is a secret key. The caller holds the label's locks.
func (s *Service) replaceable(ctx context.Context, label string, replace bool) ([]hsm.ObjectHandle, error) {
	objs, err := s.repairLabel(ctx, label)
	if err != nil {
		return nil, err
	}
	var old []hsm.ObjectHandle
	for _, o := range objs {
		if o.class != pkcs11.CKO_SECRET_KEY {
			return nil, conflict("KeyLabel", "%q is the label of a %s in this token, which an import never replaces; choose another label", label, className(o.class))
		}
		old = append(old, o.h)
	}
	if len(old) > 0 && !replace {
		return nil, conflict("KeyLabel", "a key labelled %q already exists in this token; set Replace (CLI: --Replace) to replace it, or choose another label", label)
	}
	return old, nil
}

// replaceableSession is replaceable for an Ephemeral import, whose label
// lives among this service's session keys (see the package documentation,
// Labels): a session key it imported under label, if any, is a conflict
// unless replace is set.
func (s *Service) replaceableSession(ctx context.Context, label string, replace bool) ([]hsm.ObjectHandle, error) {
	k, ok := s.cachedKey(label)
	if !ok || !s.isOwnSessionKey(ctx, k, label) {
		return nil, nil
	}
	if !replace {
		return nil, conflict("KeyLabel", "a session key labelled %q was already imported by this process; set Replace (CLI: --Replace) to replace it, DeleteKey it, or choose another label", label)
	}
	return []hsm.ObjectHandle{k.h}, nil
}

func className(class uint) string {
	switch class {
	case pkcs11.CKO_PRIVATE_KEY:
		return "private key"
	case pkcs11.CKO_PUBLIC_KEY:
		return "public key"
	case pkcs11.CKO_DATA:
		return "data object"
	}
	return fmt.Sprintf("object of class %#x", class)
}

// rsaMechanism is the token mechanism of an RSA wrapping algorithm.
func rsaMechanism(alg *wrap.Algorithm) hsm.RSAMechanism {
	if alg.Kind == wrap.KindRSAPKCS1 {
		return hsm.RSAMechanism{Kind: hsm.RSAPKCS1v15}
	}
	return hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: alg.Hash}
}

// importWith runs the path the algorithm and the token allow. A persistent
// import on the token-unwrap path always makes a pending key (it is
// verified in the token); on a host path, only when it replaces a key.
func (s *Service) importWith(ctx context.Context, wk *wrappingKey, in *importInput, allowHost bool, opt hsm.SecretKeyOptions, replacing bool) (*imported, error) {
	switch in.alg.Kind {
	case wrap.KindRSAOAEP, wrap.KindRSAPKCS1:
		if len(in.ct) != wk.k {
			return nil, invalidExportedKey()
		}
		mech := rsaMechanism(in.alg)
		ok, err := s.tok.SupportsRSA(ctx, wk.pair, mech)
		if err != nil {
			return nil, wrappingKeyFault(wk, "probing the token's RSA mechanisms", err)
		}
		if ok {
			res, err := s.unwrapInToken(ctx, wk, mech, in, opt)
			if !errors.Is(err, hsm.ErrMechanismUnsupported) {
				return res, err
			}
			// The token encrypts with the mechanism but will not unwrap
			// with it: the same rules as for a token without it.
		}
		if in.alg.Kind != wrap.KindRSAOAEP {
			return nil, unsupported("WrappingAlgorithm", "token %q cannot unwrap with %s (%s); have the sender use RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 or SM2PKE",
				s.tok.Label(), in.alg.Name, mech)
		}
		if !allowHost {
			return nil, unsupported("WrappingAlgorithm", "token %q cannot unwrap %s in the token (it refuses %s); set AllowHostDecode (CLI: --AllowHostDecode) to decrypt with raw RSA (CKM_RSA_X_509) in the token and decode OAEP on this host, which puts the data key in this process's memory until it is imported, or have the sender use RSAES_OAEP_SHA_1",
				s.tok.Label(), in.alg.Name, mech)
		}
		return s.hostOAEP(ctx, wk, in, opt, replacing)
	case wrap.KindSM2:
		return s.hostSM2(ctx, wk, in, opt, replacing)
	}
	return nil, provider.InvalidParam("WrappingAlgorithm", "%q is not supported; accepted: %s", in.alg.Name, strings.Join(wrap.Algorithms(), ", "))
}

// unwrapInToken is PathTokenUnwrap: C_UnwrapKey, then a check in the
// token (AES: its KCV, which fails unless the key is 16, 24 or 32 bytes).
// A persistent import unwraps into a pending token key (replace.go): never
// into a session key copied to the token after, since SoftHSM2's
// C_CopyObject first writes the copy with the source's attributes (a
// session object's CKA_TOKEN false, no label) and its value, and applies
// the template in a second write — a kill in between left key material in
// the token that no label named. An Ephemeral import unwraps into a
// session key without a label, made with its final attributes, which after
// the check only needs its label (and, for an AES key whose Usage lacks
// encrypt, CKA_ENCRYPT taken away: the KCV needs it), set with
// C_SetAttributeValue; a session key is visible to this process only, and
// this process imports one label at a time.
func (s *Service) unwrapInToken(ctx context.Context, wk *wrappingKey, mech hsm.RSAMechanism, in *importInput, opt hsm.SecretKeyOptions) (*imported, error) {
	kOpt := opt
	if opt.Ephemeral {
		kOpt.Label = ""
	} else {
		kOpt.ID = pendingID(opt.ID)
	}
	if in.keyType == pkcs11.CKK_AES {
		kOpt.Usage |= hsm.UsageEncrypt // for the KCV
	}
	h, kcv, err := s.unwrapChecked(ctx, wk, mech, in, kOpt)
	if err != nil {
		return nil, err
	}
	bg := context.WithoutCancel(ctx)
	if opt.Ephemeral {
		final := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, opt.Label)}
		if in.keyType == pkcs11.CKK_AES && opt.Usage&hsm.UsageEncrypt == 0 {
			final = append(final, pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false))
		}
		if err := s.tok.SetAttributes(ctx, h, final); err != nil {
			_ = s.tok.DestroySessionObject(bg, h)
			return nil, internal("labelling the imported key", err)
		}
		return &imported{handle: h, kcv: kcv, path: PathTokenUnwrap}, nil
	}
	return &imported{handle: h, kcv: kcv, path: PathTokenUnwrap, pending: true}, nil
}

// unwrapChecked unwraps the data key into a key made with opt (a session
// key, or a pending token key) and returns it with its check value once
// the checks pass (the token's KCV for an AES key, the one it reports
// otherwise; ExpectedKeyCheckValue). A key that fails a check is destroyed.
func (s *Service) unwrapChecked(ctx context.Context, wk *wrappingKey, mech hsm.RSAMechanism, in *importInput, opt hsm.SecretKeyOptions) (hsm.ObjectHandle, string, error) {
	h, _, err := s.tok.UnwrapRSAAnyLength(ctx, wk.pair.Private, mech, in.ct, in.keyType, opt)
	switch {
	case errors.Is(err, hsm.ErrDecryption):
		return 0, "", invalidExportedKey()
	case errors.Is(err, hsm.ErrMechanismUnsupported):
		return 0, "", err
	case err != nil:
		return 0, "", wrappingKeyFault(wk, "unwrapping the data key", err)
	}
	kcv, err := s.checkUnwrapped(ctx, h, in)
	if err != nil {
		if opt.Ephemeral {
			_ = s.tok.DestroySessionObject(context.WithoutCancel(ctx), h)
		} else {
			s.destroyPending(context.WithoutCancel(ctx), h)
		}
		return 0, "", err
	}
	return h, kcv, nil
}

// checkUnwrapped computes an unwrapped key's check value and compares it
// with ExpectedKeyCheckValue.
func (s *Service) checkUnwrapped(ctx context.Context, h hsm.ObjectHandle, in *importInput) (string, error) {
	if in.keyType != pkcs11.CKK_AES {
		kcv := s.tokenCheckValue(ctx, h)
		return kcv, checkExpected(in, kcv)
	}
	b, err := s.tok.KCV(ctx, h)
	if errors.Is(err, hsm.ErrDecryption) {
		return "", invalidExportedKey()
	}
	if err != nil {
		return "", internal("checking the unwrapped key", err)
	}
	kcv := hex.EncodeToString(b)
	return kcv, checkExpected(in, kcv)
}

// tokenCheckValue returns the CKA_CHECK_VALUE the token reports for a key,
// or "" if it reports none.
func (s *Service) tokenCheckValue(ctx context.Context, h hsm.ObjectHandle) string {
	a, err := s.tok.Attributes(ctx, h, pkcs11.CKA_CHECK_VALUE)
	if err != nil || len(a[pkcs11.CKA_CHECK_VALUE]) != 3 {
		return ""
	}
	return hex.EncodeToString(a[pkcs11.CKA_CHECK_VALUE])
}

// finalTemplate is what C_CopyObject changes on the temporary key.
func finalTemplate(opt hsm.SecretKeyOptions) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, !opt.Ephemeral),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, opt.Label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, opt.ID),
	}
	for _, u := range usages {
		t = append(t, pkcs11.NewAttribute(u.attr, opt.Usage&u.flag != 0))
	}
	return t
}

// identity finds what a failed creation of the final key may have left.
func identity(opt hsm.SecretKeyOptions) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, opt.ID), pkcs11.NewAttribute(pkcs11.CKA_LABEL, opt.Label)}
}

// checkExpected compares the KCV with ExpectedKeyCheckValue, if given.
func checkExpected(in *importInput, kcv string) error {
	if in.expected == "" {
		return nil
	}
	if kcv == "" {
		return unsupported("ExpectedKeyCheckValue", "the token reports no check value for a %s it unwrapped (SoftHSM2 reports neither its length nor CKA_CHECK_VALUE), so it cannot be compared; omit ExpectedKeyCheckValue, import as AES, or use an SM2 wrapping key", in.keyTypeName)
	}
	if subtle.ConstantTimeCompare([]byte(kcv), []byte(in.expected)) != 1 {
		return provider.InvalidParam("ExpectedKeyCheckValue", "is %s but the key in ExportedDataKey has check value %s; nothing was imported", in.expected, kcv)
	}
	return nil
}

// hostOAEP is PathHostOAEP: CKM_RSA_X_509 in the token, OAEP decoded here
// in constant time, the key created from the plaintext, which is zeroed.
func (s *Service) hostOAEP(ctx context.Context, wk *wrappingKey, in *importInput, opt hsm.SecretKeyOptions, pending bool) (*imported, error) {
	raw, err := s.tok.DecryptRSA(ctx, wk.pair.Private, hsm.RSAMechanism{Kind: hsm.RSARaw}, in.ct)
	switch {
	case errors.Is(err, hsm.ErrDecryption):
		return nil, invalidExportedKey()
	case errors.Is(err, hsm.ErrMechanismUnsupported):
		return nil, unsupported("WrappingAlgorithm", "token %q can neither unwrap %s nor decrypt raw RSA (CKM_RSA_X_509); have the sender use RSAES_OAEP_SHA_1 or SM2PKE", s.tok.Label(), in.alg.Name)
	case err != nil:
		return nil, wrappingKeyFault(wk, "decrypting the data key", err)
	}
	pt, err := wrap.DecodeOAEP(in.alg.Hash, raw, wk.k, nil)
	wrap.ZeroBytes(raw)
	if err != nil {
		return nil, invalidExportedKey()
	}
	defer wrap.ZeroBytes(pt)
	return s.createFromPlaintext(ctx, pt, in, opt, PathHostOAEP, pending)
}

// hostSM2 is PathHostSM2: x2 = x([d]C1) from CKM_ECDH1_DERIVE in the token,
// SM2 finished here (C3 checked in constant time), the key created from the
// plaintext; x2 and the plaintext are zeroed.
func (s *Service) hostSM2(ctx context.Context, wk *wrappingKey, in *importInput, opt hsm.SecretKeyOptions, pending bool) (*imported, error) {
	c, err := wrap.ParseSM2Ciphertext(in.ct, in.alg.SM2Encoding) // C1 on the curve, not infinity
	if err != nil {
		return nil, invalidExportedKey()
	}
	x2, err := s.tok.DeriveECDH1(ctx, wk.pair.Private, c.C1, 32)
	if err != nil {
		return nil, wrappingKeyFault(wk, "deriving the SM2 shared point", err)
	}
	pt, err := c.FinishWithSharedX(x2)
	wrap.ZeroBytes(x2)
	if err != nil {
		return nil, invalidExportedKey()
	}
	defer wrap.ZeroBytes(pt)
	return s.createFromPlaintext(ctx, pt, in, opt, PathHostSM2, pending)
}

// createFromPlaintext checks a decrypted key's length and KCV, then creates
// it: the final key, or if pending is set the pending key of a Replace
// (replace.go). The caller zeroes pt.
func (s *Service) createFromPlaintext(ctx context.Context, pt []byte, in *importInput, opt hsm.SecretKeyOptions, path string, pending bool) (*imported, error) {
	var kcv string
	var err error
	if in.keyType == pkcs11.CKK_AES {
		kcv, err = wrap.KCV(pt) // fails unless 16, 24 or 32 bytes
	} else {
		kcv, err = wrap.KCVGenericSecret(pt) // fails unless 1 to 1024 bytes
	}
	if err != nil {
		return nil, invalidExportedKey()
	}
	if err := checkExpected(in, kcv); err != nil {
		return nil, err
	}
	kOpt := opt
	if pending {
		kOpt.ID = pendingID(opt.ID)
	}
	h, err := s.tok.CreateSecretKey(ctx, in.keyType, pt, kOpt)
	if err != nil {
		return nil, internal("storing the imported key", err)
	}
	return &imported{handle: h, kcv: kcv, path: path, pending: pending}, nil
}

// wrappingKeyFault maps a token failure while using the wrapping key: a
// key pair that may not unwrap, decrypt or derive (made by another tool) is
// InvalidParameter for WrappingKeyLabel; anything else is InternalFailure
// (and stays recognisable as a stale handle).
func wrappingKeyFault(wk *wrappingKey, op string, err error) error {
	if hsm.IsCode(err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED) || hsm.IsCode(err, pkcs11.CKR_KEY_TYPE_INCONSISTENT) {
		return provider.InvalidParam("WrappingKeyLabel", "the key pair labelled %q may not be used for %s (its private key lacks CKA_UNWRAP, CKA_DECRYPT or CKA_DERIVE); use a wrapping key made by CreateWrappingKey", wk.label, op)
	}
	return internal(op, err)
}
