package provider

import (
	"crypto"
	"crypto/sha256"
	"sync"

	"github.com/p11kms/p11kms/wrap"
)

// PublicKeyExporter is a receiver's validated public key with the
// algorithm to encrypt under it: what GenerateDataKeyRequest.Exporter
// takes, so that the core returns the data key encrypted for that
// receiver. Each dialect parses its own parameters into one (Tencent's
// EncryptionPublicKey and EncryptionAlgorithm); the core knows none.
type PublicKeyExporter struct {
	ex    *exporter
	param string
}

// NewPublicKeyExporter returns the exporter of pub under alg, which the
// caller has checked fit each other (wrap.Algorithm.CompatibleWith). param
// is the wire parameter that errors about the plaintext's size name.
func NewPublicKeyExporter(param string, alg *wrap.Algorithm, pub crypto.PublicKey) *PublicKeyExporter {
	return &PublicKeyExporter{ex: &exporter{alg: alg, pub: pub}, param: param}
}

// Seal encrypts pt under the public key and returns it base64-encoded;
// the caller zeroes pt.
func (p *PublicKeyExporter) Seal(pt []byte) (string, error) {
	if max := p.ex.alg.MaxPlaintext(p.ex.pub); len(pt) > max {
		return "", InvalidParam(p.param, "the plaintext is %d bytes: %s under this key takes at most %d", len(pt), p.ex.alg.Name, max)
	}
	return p.ex.export(pt)
}

// exporterCache keeps parsed, validated public keys by the hash of what
// the request said, so a busy caller's key is parsed once.
var exporterCache = struct {
	sync.Mutex
	m map[[32]byte]*PublicKeyExporter
}{m: map[[32]byte]*PublicKeyExporter{}}

const maxCachedExporters = 4096

// CachedExporter returns the exporter parse makes of the request
// parameters parts, parsing each distinct set once (up to 4,096 kept; a
// failed parse is not kept). parts must name the dialect first, so that
// two dialects' parameters never share an entry.
func CachedExporter(parts []string, parse func() (*PublicKeyExporter, error)) (*PublicKeyExporter, error) {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	exporterCache.Lock()
	e, ok := exporterCache.m[k]
	exporterCache.Unlock()
	if ok {
		return e, nil
	}
	e, err := parse()
	if err != nil {
		return nil, err
	}
	exporterCache.Lock()
	if len(exporterCache.m) >= maxCachedExporters {
		clear(exporterCache.m)
	}
	exporterCache.m[k] = e
	exporterCache.Unlock()
	return e, nil
}
