package wrap

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// testdataDir is the project-level fixture folder for this package.
const testdataDir = "../testdata/wrap"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(readTestdata(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func pemBytes(t testing.TB, name string) []byte {
	t.Helper()
	block, _ := pem.Decode(readTestdata(t, name))
	if block == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return block.Bytes
}

// loadRSAKey reads a PKCS#8 RSA private key from testdata/wrap/keys.
func loadRSAKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(pemBytes(t, "keys/"+name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.(*rsa.PrivateKey)
}

// parseSM2PKCS8PEM parses an SM2 PKCS#8 private key as OpenSSL writes it.
func parseSM2PKCS8PEM(t testing.TB, text string) *sm2.PrivateKey {
	t.Helper()
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		t.Fatal("no PEM block")
	}
	k, err := smx509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("SM2 PKCS#8: %v", err)
	}
	sk, ok := k.(*sm2.PrivateKey)
	if !ok {
		t.Fatalf("SM2 PKCS#8 gave %T", k)
	}
	return sk
}

// sm2KeyFromHex builds an SM2 private key from its scalar in hex.
func sm2KeyFromHex(t testing.TB, d string) *sm2.PrivateKey {
	t.Helper()
	k, err := sm2.NewPrivateKey(unhex(t, d))
	if err != nil {
		t.Fatalf("SM2 key: %v", err)
	}
	return k
}

// wantParamError checks err is a *ParamError for field whose message
// contains every fragment.
func wantParamError(t testing.TB, err error, field Field, fragments ...string) {
	t.Helper()
	var pe *ParamError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParamError", err, err)
	}
	if pe.Field != field {
		t.Errorf("Field = %q, want %q (error %q)", pe.Field, field, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
