// Command democheck is the demo's independent check: it opens an AES-GCM
// ciphertext made in a token (base64 of iv‖ciphertext‖tag, as `p11kms
// importer Encrypt` prints it) with a plaintext data key given in base64,
// using only Go's standard library, and prints the plaintext.
//
//	go run ./scripts/democheck KEY_B64 CIPHERTEXT_B64 AAD
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: democheck KEY_B64 CIPHERTEXT_B64 AAD")
		os.Exit(2)
	}
	key, err1 := base64.StdEncoding.DecodeString(os.Args[1])
	ct, err2 := base64.StdEncoding.DecodeString(os.Args[2])
	if err1 != nil || err2 != nil || len(ct) < 12+16 {
		fmt.Fprintln(os.Stderr, "democheck: bad base64 input")
		os.Exit(1)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "democheck:", err)
		os.Exit(1)
	}
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, ct[:12], ct[12:], []byte(os.Args[3]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "democheck: the data key does not open the ciphertext:", err)
		os.Exit(1)
	}
	os.Stdout.Write(pt)
}
