// Package cms builds the one CMS (RFC 5652) message p11kms sends: an
// EnvelopedData whose content is encrypted with a fresh AES-256-CBC key
// wrapped with RSAES-OAEP-SHA-256 (RFC 8017, MGF1-SHA-256, RFC 4055
// parameters) to one recipient's RSA public key, as AWS KMS returns
// CiphertextForRecipient. `openssl cms -decrypt -inform DER -inkey key.pem`
// opens it. Pure Go (crypto/aes, crypto/cipher, crypto/rsa through
// wrap's RSAES_OAEP_SHA_256, encoding/asn1); it holds no state.
package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/p11kms/p11kms/wrap"
)

// Object identifiers of the message.
var (
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// oaepParams is RSAES-OAEP-params with SHA-256 and MGF1-SHA-256 (the
// pSourceFunc default, empty label, left out).
type oaepParams struct {
	Hash algorithmIdentifier `asn1:"explicit,tag:0"`
	MGF  algorithmIdentifier `asn1:"explicit,tag:1"`
}

type keyTransRecipientInfo struct {
	Version                int
	SubjectKeyIdentifier   []byte `asn1:"tag:0"`
	KeyEncryptionAlgorithm algorithmIdentifier
	EncryptedKey           []byte
}

type encryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm algorithmIdentifier
	EncryptedContent           []byte `asn1:"tag:0"`
}

type envelopedData struct {
	Version              int
	RecipientInfos       []keyTransRecipientInfo `asn1:"set"`
	EncryptedContentInfo encryptedContentInfo
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     envelopedData `asn1:"explicit,tag:0"`
}

// MinRSABits is the smallest recipient key accepted.
const MinRSABits = 2048

// Envelope returns the DER ContentInfo of an EnvelopedData holding
// plaintext for the RSA key pub. The recipient is named by its subject
// key identifier (SHA-1 of the public key bits, RFC 5280 4.2.1.2 (1)).
// The content-encryption key is cleared before it returns.
func Envelope(pub *rsa.PublicKey, plaintext []byte) ([]byte, error) {
	if pub == nil || pub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("cms: the recipient must be an RSA key of at least %d bits", MinRSABits)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	skid, err := subjectKeyID(spki)
	if err != nil {
		return nil, err
	}
	cek := make([]byte, 32)
	defer clear(cek)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(cek); err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	oaep, err := wrap.LookupAlgorithm(string(wrap.AlgRSAOAEPSHA256))
	if err != nil {
		return nil, err
	}
	wrapped, err := oaep.Encrypt(rand.Reader, pub, cek)
	if err != nil {
		return nil, fmt.Errorf("cms: wrapping the content key: %w", err)
	}
	content, err := encryptCBC(cek, iv, plaintext)
	if err != nil {
		return nil, err
	}
	kea, cea, err := algorithms(iv)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(contentInfo{ContentType: oidEnvelopedData, Content: envelopedData{
		Version:              2, // a version 2 KeyTransRecipientInfo (subjectKeyIdentifier)
		RecipientInfos:       []keyTransRecipientInfo{{Version: 2, SubjectKeyIdentifier: skid, KeyEncryptionAlgorithm: kea, EncryptedKey: wrapped}},
		EncryptedContentInfo: encryptedContentInfo{ContentType: oidData, ContentEncryptionAlgorithm: cea, EncryptedContent: content},
	}})
}

// subjectKeyID is SHA-1 over the subjectPublicKey BIT STRING's bytes.
func subjectKeyID(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm algorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}

// algorithms are the key-encryption (RSAES-OAEP, SHA-256, MGF1-SHA-256)
// and content-encryption (AES-256-CBC with its IV) identifiers.
func algorithms(iv []byte) (kea, cea algorithmIdentifier, err error) {
	null := asn1.RawValue{Tag: asn1.TagNull}
	sha256 := algorithmIdentifier{Algorithm: oidSHA256, Parameters: null}
	shaDER, err := asn1.Marshal(sha256)
	if err != nil {
		return kea, cea, err
	}
	params, err := asn1.Marshal(oaepParams{Hash: sha256, MGF: algorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: shaDER}}})
	if err != nil {
		return kea, cea, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return kea, cea, err
	}
	return algorithmIdentifier{Algorithm: oidRSAESOAEP, Parameters: asn1.RawValue{FullBytes: params}},
		algorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}}, nil
}

// encryptCBC is AES-CBC with PKCS#7 padding (RFC 5652 6.3).
func encryptCBC(key, iv, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf, nil
}

// ErrNotRSA is returned by RecipientKey for a key that is not RSA.
var ErrNotRSA = errors.New("cms: the recipient key is not an RSA key")

// RecipientKey parses a DER SubjectPublicKeyInfo as an RSA recipient key
// of at least MinRSABits.
func RecipientKey(der []byte) (*rsa.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("cms: the recipient key is not a DER SubjectPublicKeyInfo: %w", err)
	}
	rpub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, ErrNotRSA
	}
	if _, err := wrap.SpecOf(rpub); err != nil || rpub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("cms: the recipient key must be RSA 2048, 3072 or 4096 bits (got %d)", rpub.N.BitLen())
	}
	return rpub, nil
}
