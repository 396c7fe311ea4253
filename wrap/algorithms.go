package wrap

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/emmansun/gmsm/sm2"
)

// AlgorithmName is a wrapping algorithm's name exactly as the cloud APIs
// spell it (Alibaba WrappingAlgorithm, Tencent EncryptionAlgorithm).
type AlgorithmName string

// The wrapping algorithms. Names are case-sensitive.
const (
	// AlgRSAOAEPSHA1 is RSAES-OAEP with SHA-1 and MGF1-SHA-1, empty label.
	AlgRSAOAEPSHA1 AlgorithmName = "RSAES_OAEP_SHA_1"
	// AlgRSAOAEPSHA256 is RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label.
	AlgRSAOAEPSHA256 AlgorithmName = "RSAES_OAEP_SHA_256"
	// AlgRSAPKCS1v15 is RSAES-PKCS1-v1_5 (Tencent only). It is legacy: a
	// receiver that reveals whether the padding was valid is a
	// Bleichenbacher oracle (1998; ROBOT, 2017), and the padding check
	// cannot be made oracle-free in general. It exists only because
	// Tencent's GenerateDataKey offers it; prefer OAEP or SM2.
	AlgRSAPKCS1v15 AlgorithmName = "RSAES_PKCS1_V1_5"
	// AlgSM2PKE is SM2 public-key encryption (GB/T 32918.4) as Alibaba
	// names it: C1‖C3‖C2 with C1 uncompressed (04‖x‖y).
	AlgSM2PKE AlgorithmName = "SM2PKE"
	// AlgSM2 is Tencent's name for the same bytes as AlgSM2PKE.
	AlgSM2 AlgorithmName = "SM2"
	// AlgSM2ASN1 is Tencent's SM2 in the GM/T 0009 ASN.1 form
	// SEQUENCE{x INTEGER, y INTEGER, C3 OCTET STRING, C2 OCTET STRING}.
	AlgSM2ASN1 AlgorithmName = "SM2_C1C3C2_ASN1"
)

// Kind is the family of a wrapping algorithm.
type Kind int

// The algorithm families.
const (
	KindRSAOAEP  Kind = iota + 1 // RSAES-OAEP
	KindRSAPKCS1                 // RSAES-PKCS1-v1_5
	KindSM2                      // SM2 public-key encryption
)

// String returns the family name.
func (k Kind) String() string {
	switch k {
	case KindRSAOAEP:
		return "RSAES-OAEP"
	case KindRSAPKCS1:
		return "RSAES-PKCS1-v1_5"
	case KindSM2:
		return "SM2"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// SM2Encoding is the byte layout of an SM2 ciphertext. It is always chosen
// by the algorithm (or the caller), never guessed from the bytes.
type SM2Encoding int

// The SM2 ciphertext layouts.
const (
	// SM2C1C3C2 is C1‖C3‖C2 with C1 = 04‖x‖y (65 bytes) and C3 32 bytes.
	SM2C1C3C2 SM2Encoding = iota + 1
	// SM2ASN1 is GM/T 0009 SEQUENCE{x INTEGER, y INTEGER, C3 OCTET STRING,
	// C2 OCTET STRING} in strict DER.
	SM2ASN1
)

// String names the layout.
func (e SM2Encoding) String() string {
	switch e {
	case SM2C1C3C2:
		return "C1C3C2"
	case SM2ASN1:
		return "GM/T 0009 ASN.1"
	}
	return fmt.Sprintf("SM2Encoding(%d)", int(e))
}

// MaxSM2Plaintext is the largest plaintext Encrypt accepts for the SM2
// algorithms. SM2 itself has no small limit; this bounds what a data-key
// export can ask for (Alibaba's NumberOfBytes is at most 1024).
const MaxSM2Plaintext = 1024

// Algorithm is one entry of the closed table of wrapping algorithms.
// Values returned by LookupAlgorithm are copies: changing one does not
// change the table.
type Algorithm struct {
	// Name is the API spelling, one of the AlgorithmName constants.
	Name string
	// Kind is the algorithm family.
	Kind Kind
	// Hash is the OAEP hash, also used for MGF1 (KindRSAOAEP only).
	Hash crypto.Hash
	// SM2Encoding is the ciphertext layout (KindSM2 only).
	SM2Encoding SM2Encoding
	// Legacy marks algorithms kept only for compatibility (PKCS#1 v1.5).
	Legacy bool
}

// algorithms is the closed, static table. Order is the order Algorithms
// and error messages list names in.
var algorithms = [...]Algorithm{
	{Name: string(AlgRSAOAEPSHA1), Kind: KindRSAOAEP, Hash: crypto.SHA1},
	{Name: string(AlgRSAOAEPSHA256), Kind: KindRSAOAEP, Hash: crypto.SHA256},
	{Name: string(AlgRSAPKCS1v15), Kind: KindRSAPKCS1, Legacy: true},
	{Name: string(AlgSM2PKE), Kind: KindSM2, SM2Encoding: SM2C1C3C2},
	{Name: string(AlgSM2), Kind: KindSM2, SM2Encoding: SM2C1C3C2},
	{Name: string(AlgSM2ASN1), Kind: KindSM2, SM2Encoding: SM2ASN1},
}

// LookupAlgorithm returns the algorithm with the given API name (exact,
// case-sensitive). An unknown name is a *ParamError for FieldAlgorithm
// that lists the valid names.
func LookupAlgorithm(name string) (*Algorithm, error) {
	for _, a := range algorithms {
		if a.Name == name {
			return &a, nil
		}
	}
	return nil, paramErr(FieldAlgorithm, "unknown algorithm %q; valid: %s", name, strings.Join(Algorithms(), ", "))
}

// Algorithms returns every algorithm name, in table order.
func Algorithms() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.Name
	}
	return names
}

// CompatibleWith checks that the algorithm can wrap under a key of spec:
// RSA algorithms need an RSA spec, SM2 algorithms need EC_SM2. A mismatch
// (or an unknown spec) is a *ParamError.
func (a *Algorithm) CompatibleWith(spec KeySpec) error {
	if !spec.valid() {
		return checkSpecArg(spec)
	}
	switch a.Kind {
	case KindRSAOAEP, KindRSAPKCS1:
		if spec.IsRSA() {
			return nil
		}
		return paramErr(FieldAlgorithm, "%s needs an RSA key; the key spec is %s", a.Name, spec)
	case KindSM2:
		if spec == SpecSM2 {
			return nil
		}
		return paramErr(FieldAlgorithm, "%s needs an EC_SM2 key; the key spec is %s", a.Name, spec)
	}
	return paramErr(FieldAlgorithm, "algorithm %q is not in the table", a.Name)
}

// MaxPlaintext returns the longest plaintext Encrypt accepts under pub:
// k−2·hLen−2 bytes for OAEP (190 for RSA-2048 with SHA-256), k−11 for
// PKCS#1 v1.5, MaxSM2Plaintext for SM2. It returns 0 when pub is not a key
// this algorithm can use.
func (a *Algorithm) MaxPlaintext(pub crypto.PublicKey) int {
	spec, err := SpecOf(pub)
	if err != nil || a.CompatibleWith(spec) != nil {
		return 0
	}
	switch a.Kind {
	case KindRSAOAEP:
		return spec.RSABits()/8 - 2*a.Hash.Size() - 2
	case KindRSAPKCS1:
		return spec.RSABits()/8 - 11
	case KindSM2:
		return MaxSM2Plaintext
	}
	return 0
}

// Encrypt wraps plaintext under pub, giving the bytes the APIs return as
// ExportedDataKey: the raw RSA ciphertext (k bytes) for the RSA algorithms,
// the SM2 ciphertext in the algorithm's layout for SM2.
//
// pub must be acceptable to SpecOf and compatible with the algorithm.
// An empty plaintext, or one longer than MaxPlaintext, is a *ParamError
// for FieldPlaintext. rand is the entropy source for SM2 (nil means
// crypto/rand.Reader); since Go 1.26 crypto/rsa ignores it and always uses
// its own secure source.
func (a *Algorithm) Encrypt(rand io.Reader, pub crypto.PublicKey, plaintext []byte) ([]byte, error) {
	spec, err := SpecOf(pub)
	if err != nil {
		return nil, err
	}
	if err := a.CompatibleWith(spec); err != nil {
		return nil, err
	}
	if len(plaintext) == 0 {
		return nil, paramErr(FieldPlaintext, "is empty; %s needs at least 1 byte", a.Name)
	}
	if max := a.MaxPlaintext(pub); len(plaintext) > max {
		return nil, paramErr(FieldPlaintext, "%s with an %s key carries at most %d bytes; got %d", a.Name, spec, max, len(plaintext))
	}
	if rand == nil {
		rand = defaultRand
	}
	switch a.Kind {
	case KindRSAOAEP:
		h, err := oaepHash(a.Hash)
		if err != nil {
			return nil, err
		}
		return rsa.EncryptOAEP(h, rand, pub.(*rsa.PublicKey), plaintext, nil)
	case KindRSAPKCS1:
		// Legacy, Tencent compatibility only: see AlgRSAPKCS1v15.
		//lint:ignore SA1019 the Tencent API offers RSAES_PKCS1_V1_5
		return rsa.EncryptPKCS1v15(rand, pub.(*rsa.PublicKey), plaintext)
	case KindSM2:
		return encryptSM2(rand, pub.(*ecdsa.PublicKey), plaintext, a.SM2Encoding)
	}
	return nil, fmt.Errorf("wrap: algorithm %q is not in the table", a.Name)
}

// Decrypt is the fully software receiver: it unwraps a ciphertext made by
// Encrypt with a Go private key (*rsa.PrivateKey for the RSA algorithms;
// *sm2.PrivateKey, or an *ecdsa.PrivateKey on the SM2 curve, for SM2).
// The SM2 layout is the algorithm's; it is never guessed. Every failure
// is ErrDecryption (wrapped with a reason only when the key itself is
// unusable, which says nothing about the ciphertext).
func (a *Algorithm) Decrypt(priv crypto.PrivateKey, ciphertext []byte) ([]byte, error) {
	switch a.Kind {
	case KindRSAOAEP, KindRSAPKCS1:
		k, ok := priv.(*rsa.PrivateKey)
		if !ok || k == nil {
			return nil, fmt.Errorf("%w: %s needs an *rsa.PrivateKey, got %T", ErrDecryption, a.Name, priv)
		}
		var (
			out []byte
			err error
		)
		if a.Kind == KindRSAOAEP {
			h, herr := oaepHash(a.Hash)
			if herr != nil {
				return nil, fmt.Errorf("%w: %v", ErrDecryption, herr)
			}
			out, err = rsa.DecryptOAEP(h, nil, k, ciphertext, nil)
		} else {
			//lint:ignore SA1019 the Tencent API offers RSAES_PKCS1_V1_5
			out, err = rsa.DecryptPKCS1v15(nil, k, ciphertext)
		}
		if err != nil {
			return nil, ErrDecryption
		}
		return out, nil
	case KindSM2:
		k, err := sm2PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrDecryption, a.Name, err)
		}
		return decryptSM2(k, ciphertext, a.SM2Encoding)
	}
	return nil, fmt.Errorf("%w: algorithm %q is not in the table", ErrDecryption, a.Name)
}

// defaultRand is the entropy source used when Encrypt gets nil.
var defaultRand io.Reader = rand.Reader

// oaepHash returns a fresh hash for the OAEP hashes this table uses.
func oaepHash(h crypto.Hash) (hash.Hash, error) {
	switch h {
	case crypto.SHA1:
		return sha1.New(), nil
	case crypto.SHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("wrap: OAEP hash %v is not supported", h)
}

// sm2PrivateKey accepts *sm2.PrivateKey or an *ecdsa.PrivateKey on the SM2 curve.
func sm2PrivateKey(priv crypto.PrivateKey) (*sm2.PrivateKey, error) {
	switch k := priv.(type) {
	case *sm2.PrivateKey:
		if k != nil {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if k != nil && k.Curve != nil && k.Curve.Params() == sm2.P256().Params() {
			return new(sm2.PrivateKey).FromECPrivateKey(k)
		}
	}
	return nil, fmt.Errorf("needs an *sm2.PrivateKey, got %T", priv)
}
