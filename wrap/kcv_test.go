package wrap

import (
	"bytes"
	"testing"
)

func TestKCV(t *testing.T) {
	// AES of the zero block under an all-zero key (FIPS-197 style known
	// answers): 66e94bd4…, aae06992…, dc95c078….
	for n, want := range map[int]string{16: "66e94b", 24: "aae069", 32: "dc95c0"} {
		got, err := KCV(make([]byte, n))
		if err != nil || got != want {
			t.Errorf("AES-%d zero key: %q %v, want %q", n*8, got, err, want)
		}
	}
	// FIPS-197 Appendix C.1 key 000102…0f: AES(key, 0¹⁶) = c6a13b37….
	key := make([]byte, 16)
	for i := range key {
		key[i] = byte(i)
	}
	if got, _ := KCV(key); got != "c6a13b" {
		t.Errorf("KCV(00..0f) = %s, want c6a13b", got)
	}
	for _, n := range []int{0, 8, 15, 17, 33, 64} {
		_, err := KCV(make([]byte, n))
		wantParamError(t, err, FieldKey, "accepted: 16, 24, 32")
	}
}

func TestZeroBytes(t *testing.T) {
	b := bytes.Repeat([]byte{0xAB}, 40)
	ZeroBytes(b)
	if !bytes.Equal(b, make([]byte, 40)) {
		t.Error("not zeroed")
	}
	ZeroBytes(nil)
}

func TestKCVGenericSecret(t *testing.T) {
	// SHA-1("abc") = a9993e36...: the KCV is its first 3 bytes.
	got, err := KCVGenericSecret([]byte("abc"))
	if err != nil || got != "a9993e" {
		t.Fatalf("KCVGenericSecret(abc) = %q, %v", got, err)
	}
	for _, n := range []int{0, MaxGenericSecret + 1} {
		if _, err := KCVGenericSecret(make([]byte, n)); err == nil {
			t.Errorf("%d-byte generic secret accepted", n)
		}
	}
	if _, err := KCVGenericSecret(make([]byte, MaxGenericSecret)); err != nil {
		t.Fatal(err)
	}
}
