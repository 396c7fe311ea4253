package hsm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

// TestCMKKeyPairsSignAndVerify generates a signing key pair of each kind
// in the token, signs a digest there, checks the signature with Go's
// verifier (RSA, P-256) and with the token's (every curve), and refuses a
// flipped signature and a digest of the wrong size.
func TestCMKKeyPairsSignAndVerify(t *testing.T) {
	ctx := context.Background()
	tok := softhsmtest.New(t).Token
	digest := sha256.Sum256([]byte("message"))
	cases := []struct {
		name   string
		opt    hsm.CMKKeyPairOptions
		scheme hsm.SignScheme
	}{
		{"RSA-PSS", hsm.CMKKeyPairOptions{Bits: 2048, Sign: true}, hsm.SignRSAPSS},
		{"RSA-PKCS1", hsm.CMKKeyPairOptions{Bits: 2048, Sign: true}, hsm.SignRSAPKCS1},
		{"P-256", hsm.CMKKeyPairOptions{Curve: hsm.CurveP256, Sign: true}, hsm.SignECDSA},
		{"secp256k1", hsm.CMKKeyPairOptions{Curve: hsm.CurveSecp256k1, Sign: true}, hsm.SignECDSA},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opt.ID, c.opt.Label = []byte{byte(i), 1, 2, 3}, "test/"+c.name
			kp, err := tok.GenerateCMKKeyPair(ctx, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if sens, _ := tok.BoolAttribute(ctx, kp.Private, pkcs11.CKA_SENSITIVE); !sens {
				t.Error("private half is not sensitive")
			}
			if ext, _ := tok.BoolAttribute(ctx, kp.Private, pkcs11.CKA_EXTRACTABLE); ext {
				t.Error("private half is extractable")
			}
			sig, err := tok.SignDigest(ctx, kp.Private, c.scheme, c.opt.Curve, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.VerifyDigest(ctx, kp.Public, c.scheme, c.opt.Curve, digest[:], sig); err != nil {
				t.Fatalf("token verify: %v", err)
			}
			goVerify(t, tok, kp, c.opt, c.scheme, digest[:], sig)
			bad := append([]byte(nil), sig...)
			bad[len(bad)-1] ^= 1
			if err := tok.VerifyDigest(ctx, kp.Public, c.scheme, c.opt.Curve, digest[:], bad); !errors.Is(err, hsm.ErrBadSignature) {
				t.Errorf("flipped signature: %v, want ErrBadSignature", err)
			}
			if _, err := tok.SignDigest(ctx, kp.Private, c.scheme, c.opt.Curve, digest[:31]); err == nil {
				t.Error("a 31-byte digest was signed")
			}
		})
	}
}

// goVerify checks sig with crypto/rsa or crypto/ecdsa where Go has the key.
func goVerify(t *testing.T, tok *hsm.Token, kp hsm.KeyPair, opt hsm.CMKKeyPairOptions, scheme hsm.SignScheme, digest, sig []byte) {
	t.Helper()
	ctx := context.Background()
	switch {
	case opt.Bits != 0:
		pub, err := tok.PublicKey(ctx, kp.Public)
		if err != nil {
			t.Fatal(err)
		}
		if scheme == hsm.SignRSAPSS {
			err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig)
		}
		if err != nil {
			t.Errorf("Go verify: %v", err)
		}
	case opt.Curve == hsm.CurveP256:
		ec, err := tok.ReadECPublicKey(ctx, kp.Public)
		if err != nil {
			t.Fatal(err)
		}
		der, err := ec.MarshalPKIX()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest, sig) {
			t.Error("Go verify: ECDSA signature does not verify")
		}
	}
}
