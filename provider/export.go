package provider

// PublicKeyExporter encrypts a plaintext under a receiver's public key, as
// GenerateDataKey does with EncryptionPublicKey (a PEM public key) and
// EncryptionAlgorithm (empty means SM2): the one parser and checker of
// that pair, for the wire's Decrypt with EncryptionPublicKey too.
type PublicKeyExporter struct{ ex *exporter }

// NewPublicKeyExporter validates an EncryptionPublicKey and
// EncryptionAlgorithm pair, with errors naming those parameters.
func NewPublicKeyExporter(pemText, alg string) (*PublicKeyExporter, error) {
	if pemText == "" {
		return nil, InvalidParam("EncryptionPublicKey", "is required with EncryptionAlgorithm")
	}
	ex, err := tencentExporter(pemText, alg)
	if err != nil {
		return nil, err
	}
	return &PublicKeyExporter{ex: ex}, nil
}

// Seal encrypts pt under the public key and returns it base64-encoded;
// the caller zeroes pt.
func (p *PublicKeyExporter) Seal(pt []byte) (string, error) {
	if max := p.ex.alg.MaxPlaintext(p.ex.pub); len(pt) > max {
		return "", InvalidParam("EncryptionPublicKey", "the plaintext is %d bytes: %s under this key takes at most %d", len(pt), p.ex.alg.Name, max)
	}
	return p.ex.export(pt)
}
