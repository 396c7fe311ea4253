package hsm_test

import (
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

func BenchmarkRandom44(b *testing.B) {
	tok := softhsmtest.New(b)
	for b.Loop() {
		if _, err := tok.Random(bg, 44); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGCM(b *testing.B, session bool) {
	tok := softhsmtest.New(b)
	k, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		b.Fatal(err)
	}
	if session {
		if k, err = tok.CopyToSession(bg, k); err != nil {
			b.Fatal(err)
		}
	}
	iv, msg, aad := make([]byte, 12), make([]byte, 32), make([]byte, 29)
	b.SetBytes(32)
	for b.Loop() {
		if _, err := tok.EncryptGCM(bg, k, iv, msg, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGCMEncrypt32TokenKey uses the CMK as a private token object.
func BenchmarkGCMEncrypt32TokenKey(b *testing.B) { benchGCM(b, false) }

// BenchmarkGCMEncrypt32SessionCopy uses a session-object copy of it.
func BenchmarkGCMEncrypt32SessionCopy(b *testing.B) { benchGCM(b, true) }

func BenchmarkSessionCheckout(b *testing.B) {
	tok := softhsmtest.New(b)
	fn := func(*hsm.Session) (int, error) { return 0, nil }
	for b.Loop() {
		if _, err := hsm.Do(bg, tok.Token, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionCheckoutParallel(b *testing.B) {
	tok := softhsmtest.New(b)
	fn := func(*hsm.Session) (int, error) { return 0, nil }
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := hsm.Do(bg, tok.Token, fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
