package hsm_test

import (
	"crypto/aes"
	"crypto/cipher"
	"io"
)

func goGCMOpen(key, iv, ct, aad []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, iv, ct, aad)
}

func readFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }
