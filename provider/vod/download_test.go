package vod_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

const (
	appIOS     = "com.example.player"
	appAndroid = "3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5C"
	appDecrypt = "Sup3rSecretKeyAbc"
)

func TestAppIdentificationRules(t *testing.T) {
	for _, c := range []struct {
		in, canonical, kind string
	}{
		{appAndroid, appAndroid, vod.AppAndroid},
		{strings.ToLower(appAndroid), appAndroid, vod.AppAndroid},
		{"com.example.app", "com.example.app", vod.AppIOS},
		{"com.Example.my-app2", "com.Example.my-app2", vod.AppIOS},
		{"io.a", "io.a", vod.AppIOS},
		{"6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff-8b86-d011-b42d-00c04fc964ff", vod.AppWindows},
		{"{6f9619ff-8b86-d011-b42d-00c04fc964ff}", "6f9619ff-8b86-d011-b42d-00c04fc964ff", vod.AppWindows},
	} {
		got, kind, err := vod.NormalizeAppIdentification(c.in)
		if err != nil || got != c.canonical || kind != c.kind {
			t.Errorf("%q: %q %q %v; want %q %q", c.in, got, kind, err, c.canonical, c.kind)
		}
	}
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 68) // 129
	for _, c := range []struct {
		in, rule string
	}{
		{"", "is required"},
		{long, "is 129 characters; at most 128"},
		{"3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1", "20 hex pairs"},          // 19 pairs
		{"3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5C:00", "20 hex pairs"},    // 21 pairs
		{"3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5G", "20 hex pairs"},       // not hex
		{"3B-6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5C", "20 hex pairs"},       // wrong separator
		{"3B6D0A1F229CAE417B8D5F6013C299E40B7AD15C", "Android certificate SHA-1 fingerprint"}, // no colons
		{"example", "Android certificate SHA-1 fingerprint (AA:BB:...:FF), an iOS bundle id"}, // one part
		{"com..app", "part 2 is empty"},
		{".com.app", "part 1 is empty"},
		{"com.app.", "part 3 is empty"},
		{"com.exa mple.app", "part 2 holds a character other than"},
		{"com.exämple.app", "part 2 holds a character other than"},
		{"com.ex_ample.app", "part 2 holds a character other than"},
		{"1com.example", "the first part must start with a letter"},
		{"6F9619FF-8B86-D011-B42D-00C04FC964F", "Windows app GUID"},   // short
		{"6F9619FF-8B86-D011-B42D-00C04FC964FG", "Windows app GUID"},  // not hex
		{"{6F9619FF-8B86-D011-B42D-00C04FC964FF", "Windows app GUID"}, // one brace
		{"6F9619FF8B86D011B42D00C04FC964FF", "Windows app GUID"},      // no dashes
	} {
		_, _, err := vod.NormalizeAppIdentification(c.in)
		e := provider.AsError(err)
		if err == nil || e.Code != provider.CodeInvalidParameter || e.Param != "AppIdentification" ||
			!strings.HasPrefix(e.Message, "AppIdentification: ") || !strings.Contains(e.Message, c.rule) {
			t.Errorf("%q: %v; want InvalidParameter AppIdentification %q", c.in, err, c.rule)
		}
	}
}

func TestAppDecryptKeyRules(t *testing.T) {
	for _, ok := range []string{"Abcdefgh12345678", "Abcdefgh12345678Abcdefgh12345678", "aB3aB3aB3aB3aB3aB3", "ZZZZZZZZZZZZZZa1"} {
		if err := vod.CheckAppDecryptKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct {
		in, rule string
	}{
		{"", "is required"},
		{"Abcdefgh1234567", "must be 16 to 32 characters, got 15"},
		{"Abcdefgh12345678Abcdefgh123456789", "must be 16 to 32 characters, got 33"},
		{"abcdefgh12345678", "at least one uppercase letter"},
		{"ABCDEFGH12345678", "at least one lowercase letter"},
		{"AbcdefghAbcdefgh", "at least one digit"},
		{"Abcdefgh 12345678", "letters (A-Z, a-z) and digits (0-9) only"},
		{"Abcdefgh\t12345678", "letters (A-Z, a-z) and digits (0-9) only"},
		{"Abcdéfgh12345678", "letters (A-Z, a-z) and digits (0-9) only"},
		{"aB3!@#$%^&*()_+-=", "letters (A-Z, a-z) and digits (0-9) only"}, // the VOD API takes letters and digits only
		{"Abcdefgh_12345678", "letters (A-Z, a-z) and digits (0-9) only"},
	} {
		err := vod.CheckAppDecryptKey(c.in)
		e := provider.AsError(err)
		if err == nil || e.Code != provider.CodeInvalidParameter || e.Param != "AppDecryptKey" || !strings.Contains(e.Message, c.rule) {
			t.Errorf("%q: %v; want %q", c.in, err, c.rule)
		}
		if c.in != "" && err != nil && strings.Contains(e.Message, c.in) {
			t.Errorf("%q: the error echoes the key", c.in)
		}
	}
}

func TestGenerateDownloadSecretKeyValidates(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		req   vod.GenerateDownloadSecretKeyRequest
		param string
	}{
		{vod.GenerateDownloadSecretKeyRequest{AppIdentification: "", AppDecryptKey: appDecrypt}, "AppIdentification"},
		{vod.GenerateDownloadSecretKeyRequest{AppIdentification: "nope", AppDecryptKey: appDecrypt}, "AppIdentification"},
		{vod.GenerateDownloadSecretKeyRequest{AppIdentification: appIOS, AppDecryptKey: "short1A"}, "AppDecryptKey"},
		{vod.GenerateDownloadSecretKeyRequest{AppIdentification: appIOS, AppDecryptKey: "nouppercase12345"}, "AppDecryptKey"},
	} {
		_, err := e.vod.GenerateDownloadSecretKey(bg, &c.req)
		if provider.AsError(err).Param != c.param {
			t.Errorf("%+v: %v, want %s", c.req, err, c.param)
		}
	}
	// Validation comes before any token call: no media key was created.
	if _, err := e.kms.ResolveKeyId(bg, vod.MediaKeyAlias); provider.ErrorCode(err) != provider.CodeAliasNotFound {
		t.Fatalf("media key created by invalid requests: %v", err)
	}
}

// genKeyFile returns an AppEncryptKey for app.
func genKeyFile(t *testing.T, e *env, app string) string {
	t.Helper()
	r, err := e.vod.GenerateDownloadSecretKey(bg, &vod.GenerateDownloadSecretKeyRequest{AppIdentification: app, AppDecryptKey: appDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	return r.AppEncryptKey
}

func TestDownloadKeyRoundTrip(t *testing.T) {
	e := newEnv(t)
	for _, app := range []string{appIOS, appAndroid, "{6F9619FF-8B86-D011-B42D-00C04FC964FF}"} {
		aek := genKeyFile(t, e, app)
		kf, err := vod.ParseKeyFile(aek)
		if err != nil {
			t.Fatal(err)
		}
		if kf.Version != 1 || kf.Format != vod.KeyFileFormat || len(kf.Salt) != 16 {
			t.Fatalf("key file %+v", kf)
		}
		// App side, in pure Go; the app id in any accepted spelling.
		alt := app
		if app == appAndroid {
			alt = strings.ToLower(app)
		}
		o, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: aek, AppIdentification: alt, AppDecryptKey: appDecrypt})
		if err != nil {
			t.Fatalf("%s: %v", app, err)
		}
		dk, _ := base64.StdEncoding.DecodeString(o.DataKey)
		if len(dk) != 32 || o.KeyCheckValue == "" || o.KeyId == "" {
			t.Fatalf("%+v", o)
		}
		// Server side, through the token: the same key.
		sk, _, err := e.vod.RecoverDownloadKey(bg, aek)
		if err != nil || !bytes.Equal(sk.Bytes(), dk) || sk.KeyCheckValue() != o.KeyCheckValue {
			t.Fatalf("RecoverDownloadKey: %v", err)
		}
		// The JSON form is accepted too.
		raw, _ := base64.StdEncoding.DecodeString(aek)
		if _, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: string(raw), AppIdentification: app, AppDecryptKey: appDecrypt}); err != nil {
			t.Fatal(err)
		}
	}
	// Two key files for one app hold different keys.
	a, b := genKeyFile(t, e, appIOS), genKeyFile(t, e, appIOS)
	ka, _ := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: a, AppIdentification: appIOS, AppDecryptKey: appDecrypt})
	kb, _ := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: b, AppIdentification: appIOS, AppDecryptKey: appDecrypt})
	if ka.DataKey == kb.DataKey {
		t.Fatal("two key files share a data key")
	}
}

func TestDownloadKeyMismatchIsOneError(t *testing.T) {
	e := newEnv(t)
	aek := genKeyFile(t, e, appIOS)
	var msgs []string
	for _, c := range []struct{ app, key string }{
		{"com.example.other", appDecrypt},        // another app
		{appAndroid, appDecrypt},                 // another kind
		{"not an app id", appDecrypt},            // not even valid
		{appIOS, "Sup3rSecretKeyAbd"},            // wrong key
		{appIOS, "x"},                            // a key breaking the rules
		{"com.example.other", "WrongKey1234567"}, // both wrong
	} {
		_, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: aek, AppIdentification: c.app, AppDecryptKey: c.key})
		if !errors.Is(err, vod.ErrKeyMismatch) || provider.ErrorCode(err) != provider.CodeInvalidParameter {
			t.Fatalf("%+v: %v", c, err)
		}
		msgs = append(msgs, err.Error())
	}
	for _, m := range msgs {
		if m != msgs[0] {
			t.Fatalf("different errors: %q", msgs)
		}
	}
	if !strings.Contains(msgs[0], "AppIdentification or AppDecryptKey") {
		t.Fatalf("unclear: %s", msgs[0])
	}
	// A key file altered after it was made fails the same way, or as malformed.
	kf, _ := vod.ParseKeyFile(aek)
	kf2 := *kf
	kf2.KeyId = "00000000-0000-4000-8000-000000000000"
	_, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: kf2.Marshal(), AppIdentification: appIOS, AppDecryptKey: appDecrypt})
	if !errors.Is(err, vod.ErrKeyMismatch) {
		t.Fatal(err)
	}
	kf2 = *kf
	kf2.AppIdentification = "com.example.other"
	// The server side refuses it too: the blob's context names the app.
	_, _, err = e.vod.RecoverDownloadKey(bg, kf2.Marshal())
	wantCode(t, err, provider.CodeInvalidCiphertext)
}

func TestParseKeyFileRefuses(t *testing.T) {
	e := newEnv(t)
	aek := genKeyFile(t, e, appIOS)
	raw, _ := base64.StdEncoding.DecodeString(aek)
	js := string(raw)
	for _, c := range []struct {
		in   string
		want error
		msg  string
	}{
		{"", vod.ErrKeyFileMalformed, "not the key-file JSON"},
		{"!!!", vod.ErrKeyFileMalformed, "not base64"},
		{strings.Repeat("A", 9000), vod.ErrKeyFileMalformed, "at most"},
		{strings.Replace(js, `"Version":1`, `"Version":2`, 1), vod.ErrKeyFileVersion, "unsupported version 2"},
		{strings.Replace(js, `"Format":"p11kms-vod-download-key"`, `"Format":"x"`, 1), vod.ErrKeyFileMalformed, "Format"},
		{strings.Replace(js, `{`, `{"Extra":1,`, 1), vod.ErrKeyFileMalformed, "JSON"},
		{js + `{}`, vod.ErrKeyFileMalformed, "trailing"},
		{strings.Replace(js, `"AppIdentification":"com.example.player"`, `"AppIdentification":"bad"`, 1), vod.ErrKeyFileMalformed, "AppIdentification"},
		{strings.Replace(js, `"KeyId":"`, `"KeyId":"`+strings.Repeat("k", 200), 1), vod.ErrKeyFileMalformed, "KeyId"},
	} {
		_, err := vod.ParseKeyFile(c.in)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%.60q: %v; want %v %q", c.in, err, c.want, c.msg)
		}
	}
	// Every field's length is checked.
	kf, _ := vod.ParseKeyFile(aek)
	for name, mod := range map[string]func(k *vod.KeyFile){
		"Salt":           func(k *vod.KeyFile) { k.Salt = k.Salt[:15] },
		"Nonce":          func(k *vod.KeyFile) { k.Nonce = append(k.Nonce, 0) },
		"EncryptedKey":   func(k *vod.KeyFile) { k.EncryptedKey = k.EncryptedKey[1:] },
		"CiphertextBlob": func(k *vod.KeyFile) { k.CiphertextBlob = k.CiphertextBlob[:10] },
	} {
		k := *kf
		mod(&k)
		if _, err := vod.ParseKeyFile(k.Marshal()); !errors.Is(err, vod.ErrKeyFileMalformed) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// As a request parameter: InvalidParameter naming AppEncryptKey.
	_, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: "!!!", AppIdentification: appIOS, AppDecryptKey: appDecrypt})
	if e := provider.AsError(err); e.Code != provider.CodeInvalidParameter || e.Param != "AppEncryptKey" {
		t.Fatalf("%v", err)
	}
}

// writePattern writes n pseudo-random bytes to path, streamed, and returns
// their SHA-256.
func writePattern(t *testing.T, path string, n int64) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for n > 0 {
		m := min(int64(len(buf)), n)
		rand.Read(buf[:m])
		f.Write(buf[:m])
		h.Write(buf[:m])
		n -= m
	}
	return h.Sum(nil)
}

func fileSum(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return h.Sum(nil)
}

// allocated reports the bytes allocated while fn ran.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A 50 MiB file goes through the server side (EncryptFile through the
// token) and the app side (DecryptFile with AppDecryptKey) with memory far
// below its size.
func TestFileRoundTrip50MiB(t *testing.T) {
	e := newEnv(t)
	aek := genKeyFile(t, e, appAndroid)
	dir := t.TempDir()
	in, enc, dec := filepath.Join(dir, "in.mp4"), filepath.Join(dir, "in.mp4.enc"), filepath.Join(dir, "out.mp4")
	const size = 50 << 20
	sum := writePattern(t, in, size)

	var err error
	var er *vod.FileResponse
	encAlloc := allocated(func() {
		er, err = e.vod.EncryptFile(bg, &vod.FileRequest{AppEncryptKey: aek, Input: in, Output: enc})
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(enc)
	chunks := int64((size + vod.StreamChunkSize - 1) / vod.StreamChunkSize) // the last chunk is full
	if want := int64(65) + size + 16*chunks; er.Bytes != want || st.Size() != want || st.Mode().Perm() != 0o600 {
		t.Fatalf("encrypted size %d (%d reported), want %d; mode %v", st.Size(), er.Bytes, want, st.Mode())
	}
	var dr *vod.FileResponse
	decAlloc := allocated(func() {
		dr, err = vod.DecryptFile(&vod.FileRequest{AppEncryptKey: aek, AppIdentification: appAndroid, AppDecryptKey: appDecrypt, Input: enc, Output: dec})
	})
	if err != nil {
		t.Fatal(err)
	}
	if dr.Bytes != size || !bytes.Equal(fileSum(t, dec), sum) {
		t.Fatal("round trip changed the file")
	}
	t.Logf("allocated: encrypt %d KiB, decrypt %d KiB for a %d MiB file", encAlloc>>10, decAlloc>>10, size>>20)
	if encAlloc > 4<<20 || decAlloc > 4<<20 {
		t.Fatalf("allocated %d / %d bytes: memory is not bounded", encAlloc, decAlloc)
	}
	// OpenDownloadKey's data key decrypts it too, as a DataKey.
	o, err := vod.OpenDownloadKey(&vod.OpenDownloadKeyRequest{AppEncryptKey: aek, AppIdentification: appAndroid, AppDecryptKey: appDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(o.DataKey)
	dk, err := vod.NewDataKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	dec1 := filepath.Join(dir, "out1.mp4")
	dkAlloc := allocated(func() { _, err = dk.DecryptFile(enc, dec1, false) })
	if err != nil || dkAlloc > 4<<20 || !bytes.Equal(fileSum(t, dec1), sum) {
		t.Fatalf("DataKey.DecryptFile: %v, %d bytes allocated", err, dkAlloc)
	}
	// Server-side decryption works as well.
	dec2 := filepath.Join(dir, "out2.mp4")
	if _, err := e.vod.DecryptFile(bg, &vod.FileRequest{AppEncryptKey: aek, Input: enc, Output: dec2}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileSum(t, dec2), sum) {
		t.Fatal("server-side decrypt differs")
	}
}

func TestFileOutputRules(t *testing.T) {
	e := newEnv(t)
	aek := genKeyFile(t, e, appIOS)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	os.WriteFile(in, []byte("media"), 0o600)
	os.WriteFile(out, []byte("precious"), 0o600)
	req := vod.FileRequest{AppEncryptKey: aek, AppIdentification: appIOS, AppDecryptKey: appDecrypt, Input: in, Output: out}
	_, err := vod.EncryptFile(&req)
	if e := provider.AsError(err); e.Param != "Output" || !errors.Is(err, vod.ErrOutputExists) || !strings.Contains(e.Message, "exists; set Force to true to replace it") {
		t.Fatalf("existing output: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("output overwritten")
	}
	req.Force = true
	if _, err := vod.EncryptFile(&req); err != nil {
		t.Fatal(err)
	}
	// A directory is never an output; a missing input is named.
	req.Output = dir
	if _, err := vod.EncryptFile(&req); err == nil {
		t.Fatal("directory output accepted")
	}
	req.Output, req.Input = filepath.Join(dir, "x"), filepath.Join(dir, "absent")
	if _, err := vod.EncryptFile(&req); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("missing input: %v", err)
	}
	// Without AppDecryptKey the package-level form needs it.
	req = vod.FileRequest{AppEncryptKey: aek, AppIdentification: appIOS, Input: in, Output: filepath.Join(dir, "y")}
	if _, err := vod.EncryptFile(&req); provider.AsError(err).Param != "AppDecryptKey" {
		t.Fatalf("%v", err)
	}
	// The server side reads the app from the key file: an AppIdentification
	// beside it would be ignored, so it is refused.
	if _, err := e.vod.EncryptFile(bg, &req); err == nil || provider.AsError(err).Param != "AppIdentification" || !strings.Contains(err.Error(), "only with AppDecryptKey") {
		t.Fatalf("server side with AppIdentification: %v", err)
	}
	if _, err := os.Stat(req.Output); err == nil {
		t.Fatal("an output was written for a refused request")
	}
	req.AppIdentification = ""
	if _, err := e.vod.EncryptFile(bg, &req); err != nil {
		t.Fatalf("server side: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

// Every kind of damage is a clear error and leaves no output.
func TestFileTamper(t *testing.T) {
	e := newEnv(t)
	aek := genKeyFile(t, e, appIOS)
	dir := t.TempDir()
	in, enc := filepath.Join(dir, "in"), filepath.Join(dir, "enc")
	const chunks = 5
	writePattern(t, in, chunks*vod.StreamChunkSize-1000) // 4 full chunks and a short one
	req := vod.FileRequest{AppEncryptKey: aek, AppIdentification: appIOS, AppDecryptKey: appDecrypt, Input: in, Output: enc}
	if _, err := vod.EncryptFile(&req); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(enc)
	const hdr, ck = 65, vod.StreamChunkSize + 16
	chunk := func(b []byte, i int) []byte { return b[hdr+i*ck : min(hdr+(i+1)*ck, len(b))] }
	swap := func(b []byte, i, j int) []byte {
		out := bytes.Clone(b)
		copy(out[hdr+i*ck:], chunk(b, j))
		copy(out[hdr+j*ck:], chunk(b, i))
		return out
	}
	flip := func(b []byte, at int) []byte { out := bytes.Clone(b); out[at] ^= 1; return out }
	cases := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"flip a byte in chunk 2", flip(good, hdr+2*ck+100), vod.ErrStreamDamaged, "chunk 2 does not authenticate"},
		{"flip a tag byte of the last chunk", flip(good, len(good)-1), vod.ErrStreamDamaged, "chunk 4 does not authenticate"},
		{"flip the chunk size", flip(good, 11), vod.ErrStreamDamaged, "chunk 0"},
		{"flip the salt", flip(good, 20), vod.ErrStreamKey, "does not match"},
		{"flip the nonce prefix", flip(good, 46), vod.ErrStreamDamaged, "chunk 0"},
		{"flip the key check", flip(good, 60), vod.ErrStreamKey, "does not match"},
		{"bad magic", flip(good, 0), vod.ErrStreamFormat, "bad magic"},
		{"unknown version", func() []byte { b := bytes.Clone(good); b[8] = 2; return b }(), vod.ErrStreamVersion, "unsupported"},
		{"truncated at a chunk boundary", good[:hdr+3*ck], vod.ErrStreamDamaged, "chunk 2 does not authenticate"},
		{"last chunk dropped", good[:hdr+4*ck], vod.ErrStreamDamaged, "chunk 3 does not authenticate"},
		{"truncated inside a chunk", good[:hdr+2*ck+500], vod.ErrStreamDamaged, "chunk 2"},
		{"truncated to the header", good[:hdr], vod.ErrStreamDamaged, "chunk 0 is missing"},
		{"truncated inside the header", good[:30], vod.ErrStreamFormat, "header"},
		{"tag cut short", good[:hdr+4*ck+10], vod.ErrStreamDamaged, "chunk 4 is cut short"},
		{"chunks 1 and 2 swapped", swap(good, 1, 2), vod.ErrStreamDamaged, "chunk 1 does not authenticate"},
		{"chunk 0 repeated", append(append(bytes.Clone(good[:hdr+ck]), chunk(good, 0)...), good[hdr+ck:]...), vod.ErrStreamDamaged, "chunk 1"},
		{"data appended", append(bytes.Clone(good), 0), vod.ErrStreamDamaged, "chunk 4"},
		{"a chunk appended", append(bytes.Clone(good), chunk(good, 3)...), vod.ErrStreamDamaged, "chunk 4"},
	}
	for _, c := range cases {
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, c.data, 0o600)
		out := filepath.Join(dir, "out")
		_, err := vod.DecryptFile(&vod.FileRequest{AppEncryptKey: aek, AppIdentification: appIOS, AppDecryptKey: appDecrypt, Input: bad, Output: out})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) || provider.ErrorCode(err) != provider.CodeInvalidCiphertext {
			t.Errorf("%s: %v; want %v %q", c.name, err, c.want, c.msg)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: output left behind", c.name)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	// A file of another key file (another data key) is told apart.
	other := genKeyFile(t, e, appIOS)
	_, err := vod.DecryptFile(&vod.FileRequest{AppEncryptKey: other, AppIdentification: appIOS, AppDecryptKey: appDecrypt, Input: enc, Output: filepath.Join(dir, "o")})
	if !errors.Is(err, vod.ErrStreamKey) {
		t.Fatalf("other key: %v", err)
	}
}

func TestStreamEdgeSizes(t *testing.T) {
	k, err := vod.NewDataKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vod.NewDataKey(make([]byte, 16)); err == nil {
		t.Fatal("16-byte download key accepted")
	}
	for _, n := range []int{0, 1, vod.StreamChunkSize - 1, vod.StreamChunkSize, vod.StreamChunkSize + 1, 3 * vod.StreamChunkSize} {
		pt := make([]byte, n)
		rand.Read(pt)
		var ct, back bytes.Buffer
		if _, err := k.EncryptStream(&ct, bytes.NewReader(pt)); err != nil {
			t.Fatal(err)
		}
		if want := 65 + n + 16*(n/vod.StreamChunkSize+1); n%vod.StreamChunkSize == 0 && n > 0 {
			if ct.Len() != 65+n+16*(n/vod.StreamChunkSize) {
				t.Fatalf("%d: %d bytes", n, ct.Len())
			}
		} else if ct.Len() != want {
			t.Fatalf("%d: %d bytes, want %d", n, ct.Len(), want)
		}
		// Byte-at-a-time readers are fine.
		if _, err := k.DecryptStream(&back, io.LimitReader(oneByteReader{bytes.NewReader(ct.Bytes())}, int64(ct.Len()))); err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if !bytes.Equal(back.Bytes(), pt) {
			t.Fatalf("%d: round trip differs", n)
		}
		// A full last chunk cut off at the boundary is caught.
		if n >= 2*vod.StreamChunkSize {
			_, err := k.DecryptStream(io.Discard, bytes.NewReader(ct.Bytes()[:65+vod.StreamChunkSize+16]))
			if !errors.Is(err, vod.ErrStreamDamaged) {
				t.Fatalf("boundary truncation: %v", err)
			}
		}
	}
	k.Destroy()
	if !bytes.Equal(k.Bytes(), make([]byte, 32)) {
		t.Fatal("Destroy did not zero the key")
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
