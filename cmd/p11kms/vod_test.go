package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider/vod"
)

// vodCLI runs `p11kms vod args...` in-process. Until root.go registers the
// vod command, it runs the same command under a bare root with the test
// home.
func vodCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	if c, _, err := newRootCmd().Find([]string{"vod"}); err == nil && c.Name() == "vod" {
		return cli(t, append([]string{"vod"}, args...)...)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outC, errC := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outC <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errC <- string(b) }()
	g := &globals{home: testHome}
	root := &cobra.Command{Use: "p11kms", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVodCmd(g))
	root.SetArgs(append([]string{"vod"}, args...))
	code := 0
	if err := root.Execute(); err != nil {
		var ok bool
		if code, ok = exitCode(err); !ok {
			code = 1
		}
	}
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	return <-outC, <-errC, code
}

func wantAPIError(t *testing.T, what, errOut string, code int, wantCode, msg string) {
	t.Helper()
	if code != 1 {
		t.Fatalf("%s: exit %d, want 1 (%s)", what, code, errOut)
	}
	e := jsonOut(t, errOut)
	if e["Code"] != wantCode || !strings.Contains(e["Message"].(string), msg) {
		t.Fatalf("%s: %s, want %s %q", what, errOut, wantCode, msg)
	}
}

func TestVodHLSCommands(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := vodCLI(t, "GenerateKMSDataKey")
	if code != 0 {
		t.Fatalf("GenerateKMSDataKey: %s", errOut)
	}
	gk := jsonOut(t, out)
	if pt, err := base64.StdEncoding.DecodeString(gk["Plaintext"].(string)); err != nil || len(pt) != 16 || gk["KeyId"] == "" || gk["RequestId"] == "" {
		t.Fatalf("GenerateKMSDataKey: %s", out)
	}
	ct := gk["CiphertextBlob"].(string)

	// The play-token secret is kept as a blob in the home.
	out, errOut, code = vodCLI(t, "IssuePlayToken", "--Ciphertext", ct, "--Ttl", "10m", "--KeyUri", "http://127.0.0.1:8080/hls/key")
	if code != 0 {
		t.Fatalf("IssuePlayToken: %s", errOut)
	}
	it := jsonOut(t, out)
	if len(it["MtsHlsUriToken"].(string)) != vod.PlayTokenChars || !strings.Contains(it["KeyUri"].(string), "MtsHlsUriToken="+it["MtsHlsUriToken"].(string)) {
		t.Fatalf("IssuePlayToken: %s", out)
	}
	if st, err := os.Stat(filepath.Join(testHome, vod.TokenKeyFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token key file: %v %v", st, err)
	}
	_, errOut, code = vodCLI(t, "IssuePlayToken", "--Ciphertext", ct, "--Ttl", "forever")
	wantAPIError(t, "bad Ttl", errOut, code, "InvalidParameter", "Ttl:")
	_, errOut, code = vodCLI(t, "IssuePlayToken", "--Ciphertext", "AAAA")
	wantAPIError(t, "bad Ciphertext", errOut, code, "InvalidParameter", "Ciphertext:")
	if _, _, code := vodCLI(t, "IssuePlayToken"); code != 2 {
		t.Fatalf("missing --Ciphertext: exit %d, want 2", code)
	}
	if _, _, code := vodCLI(t, "GenerateKMSDataKey", "extra"); code != 2 {
		t.Fatalf("stray argument: exit %d, want 2", code)
	}

	// PackageHls, then a player against the key handler of a server on the
	// same home.
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not installed: run ./scripts/install-deps")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mp4")
	if b, err := exec.Command(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=duration=4:size=320x240:rate=25", "-c:v", "libx264", "-preset", "ultrafast",
		"-pix_fmt", "yuv420p", "-g", "25", src).CombinedOutput(); err != nil {
		t.Fatalf("test video: %v\n%s", err, b)
	}
	g := &globals{home: testHome}
	v, closeFn, err := g.openVod(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	hls := filepath.Join(dir, "hls")
	mux := http.NewServeMux()
	mux.Handle(vod.HLSKeyPattern, v.KeyHandler())
	mux.Handle("/", http.FileServer(http.Dir(hls)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	out, errOut, code = vodCLI(t, "PackageHls", "--Input", src, "--Output", hls, "--KeyUri", srv.URL+vod.HLSKeyPath, "--Ttl", "10m")
	if code != 0 {
		t.Fatalf("PackageHls: %s", errOut)
	}
	p := jsonOut(t, out)
	if p["Playlist"] != filepath.Join(hls, "index.m3u8") || !strings.HasPrefix(p["KeyUri"].(string), srv.URL+vod.HLSKeyPath+"?Ciphertext=") {
		t.Fatalf("PackageHls: %s", out)
	}
	c := exec.Command(ffmpeg, "-nostdin", "-hide_banner", "-stats", "-protocol_whitelist", "file,http,tcp,crypto",
		"-allowed_extensions", "ALL", "-i", srv.URL+"/index.m3u8", "-f", "null", "-")
	b, err := c.CombinedOutput()
	m := regexp.MustCompile(`frame=\s*(\d+)`).FindAllSubmatch(b, -1)
	if err != nil || m == nil || string(m[len(m)-1][1]) != "100" {
		t.Fatalf("playing the CLI's HLS: %v\n%s", err, b)
	}
	// Not again into the same directory without --Force.
	_, errOut, code = vodCLI(t, "PackageHls", "--Input", src, "--Output", hls, "--KeyUri", srv.URL+vod.HLSKeyPath)
	wantAPIError(t, "existing playlist", errOut, code, "InvalidParameter", "exists; pass --Force to replace it")
}

func TestVodDownloadCommands(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.key")
	os.WriteFile(keyFile, []byte("Sup3rSecretKeyAbc\n"), 0o600)
	const app = "com.example.player"

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--AppIdentification", "not-an-app", "--AppDecryptKey", "@" + keyFile}, "AppIdentification:"},
		{[]string{"--AppIdentification", "com..x", "--AppDecryptKey", "@" + keyFile}, "part 2 is empty"},
		{[]string{"--AppIdentification", strings.Repeat("a.", 70), "--AppDecryptKey", "@" + keyFile}, "at most 128"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "Short1a"}, "AppDecryptKey: must be 16 to 32 characters"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "alllowercase1234"}, "uppercase"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "ALLUPPERCASE1234"}, "lowercase"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "NoDigitsAtAllHere"}, "digit"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "Abcdefgh 12345678"}, "letters (A-Z, a-z) and digits (0-9) only"},
		{[]string{"--AppIdentification", app, "--AppDecryptKey", "Abcdefgh-12345678"}, "letters (A-Z, a-z) and digits (0-9) only"},
	} {
		_, errOut, code := vodCLI(t, append([]string{"GenerateDownloadSecretKey"}, c.args...)...)
		wantAPIError(t, strings.Join(c.args, " "), errOut, code, "InvalidParameter", c.msg)
	}
	out, errOut, code := vodCLI(t, "GenerateDownloadSecretKey", "--AppIdentification", app, "--AppDecryptKey", "@"+keyFile)
	if code != 0 {
		t.Fatalf("GenerateDownloadSecretKey: %s", errOut)
	}
	aek := filepath.Join(dir, "aek.txt")
	os.WriteFile(aek, []byte(jsonOut(t, out)["AppEncryptKey"].(string)+"\n"), 0o600)

	// App side: OpenDownloadKey, no token needed.
	out, errOut, code = vodCLI(t, "OpenDownloadKey", "--AppEncryptKey", "@"+aek, "--AppIdentification", app, "--AppDecryptKey", "@"+keyFile)
	if code != 0 {
		t.Fatalf("OpenDownloadKey: %s", errOut)
	}
	if dk, err := base64.StdEncoding.DecodeString(jsonOut(t, out)["DataKey"].(string)); err != nil || len(dk) != 32 {
		t.Fatalf("OpenDownloadKey: %s", out)
	}
	for _, args := range [][]string{
		{"--AppIdentification", "com.example.other", "--AppDecryptKey", "@" + keyFile},
		{"--AppIdentification", app, "--AppDecryptKey", "Sup3rSecretKeyAbd"},
	} {
		_, errOut, code := vodCLI(t, append([]string{"OpenDownloadKey", "--AppEncryptKey", "@" + aek}, args...)...)
		wantAPIError(t, "mismatch", errOut, code, "InvalidParameter", "AppIdentification or AppDecryptKey: does not match the AppEncryptKey")
	}

	// Server side encrypts through the token; the app decrypts in pure Go.
	in, enc, dec := filepath.Join(dir, "in.bin"), filepath.Join(dir, "in.enc"), filepath.Join(dir, "out.bin")
	media := bytes.Repeat([]byte("media bytes "), 20000) // ~240 KiB, several chunks
	os.WriteFile(in, media, 0o600)
	if _, errOut, code := vodCLI(t, "EncryptFile", "--AppEncryptKey", "@"+aek, "--Input", in, "--Output", enc); code != 0 {
		t.Fatalf("EncryptFile: %s", errOut)
	}
	out, errOut, code = vodCLI(t, "DecryptFile", "--AppEncryptKey", "@"+aek, "--AppIdentification", app, "--AppDecryptKey", "@"+keyFile, "--Input", enc, "--Output", dec)
	if code != 0 {
		t.Fatalf("DecryptFile: %s", errOut)
	}
	if got, _ := os.ReadFile(dec); !bytes.Equal(got, media) || jsonOut(t, out)["Output"] != dec {
		t.Fatalf("DecryptFile: %s", out)
	}
	// Never overwritten without --Force.
	_, errOut, code = vodCLI(t, "DecryptFile", "--AppEncryptKey", "@"+aek, "--Input", enc, "--Output", dec)
	wantAPIError(t, "existing output", errOut, code, "InvalidParameter", "exists; pass --Force to replace it")
	if _, errOut, code := vodCLI(t, "DecryptFile", "--AppEncryptKey", "@"+aek, "--Input", enc, "--Output", dec, "--Force"); code != 0 {
		t.Fatalf("--Force: %s", errOut)
	}
	// Tampered: a clear error and no output.
	b, _ := os.ReadFile(enc)
	b[len(b)/2] ^= 0x40
	bad := filepath.Join(dir, "bad.enc")
	os.WriteFile(bad, b, 0o600)
	badOut := filepath.Join(dir, "bad.out")
	_, errOut, code = vodCLI(t, "DecryptFile", "--AppEncryptKey", "@"+aek, "--AppIdentification", app, "--AppDecryptKey", "@"+keyFile, "--Input", bad, "--Output", badOut)
	wantAPIError(t, "tampered", errOut, code, "InvalidCiphertext", "damaged, truncated or reordered: chunk 1 does not authenticate")
	if _, err := os.Stat(badOut); err == nil {
		t.Fatal("output left after a tampered input")
	}
	_, errOut, code = vodCLI(t, "OpenDownloadKey", "--AppEncryptKey", "garbage", "--AppIdentification", app, "--AppDecryptKey", "@"+keyFile)
	wantAPIError(t, "bad key file", errOut, code, "InvalidParameter", "AppEncryptKey:")
}

// The CLI's help for AppDecryptKey states the rule the check applies (the
// ApsaraVideo VOD API's: letters and digits only), and the refusal says the
// same.
func TestVodAppDecryptKeyHelpMatchesCheck(t *testing.T) {
	const rule = "letters (A-Z, a-z) and digits (0-9)"
	out, errOut, _ := vodCLI(t, "GenerateDownloadSecretKey", "--help")
	if !strings.Contains(out+errOut, rule) || strings.Contains(out+errOut, "printable ASCII") {
		t.Fatalf("GenerateDownloadSecretKey --help does not state the AppDecryptKey rule %q:\n%s%s", rule, out, errOut)
	}
	for _, key := range []string{"Abcdefgh 12345678", "aB3!@#$%^&*()_+-=", "Abcdefgh.12345678"} {
		_, errOut, code := vodCLI(t, "GenerateDownloadSecretKey", "--AppIdentification", "com.example.app", "--AppDecryptKey", key)
		wantAPIError(t, key, errOut, code, "InvalidParameter", "AppDecryptKey: must be "+rule)
	}
}

// PackageHls refuses an existing playlist with the CLI's flag (--Force) and
// a given --HlsTime 0 (not taken as the default).
func TestVodPackageHlsFlags(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.mp4"), filepath.Join(dir, "hls")
	os.WriteFile(in, []byte("not a video"), 0o600)
	os.Mkdir(out, 0o755)
	os.WriteFile(filepath.Join(out, vod.PlaylistName), []byte("#EXTM3U\n"), 0o600)
	args := []string{"PackageHls", "--Input", in, "--Output", out, "--KeyUri", "http://127.0.0.1:1/hls/key"}
	_, errOut, code := vodCLI(t, args...)
	wantAPIError(t, "existing playlist", errOut, code, "InvalidParameter", "exists; pass --Force to replace it")
	_, errOut, code = vodCLI(t, append(args, "--HlsTime", "0")...)
	wantAPIError(t, "HlsTime 0", errOut, code, "InvalidParameter", "HlsTime: must be 1 to 60 seconds")
	if b, _ := os.ReadFile(filepath.Join(out, vod.PlaylistName)); string(b) != "#EXTM3U\n" {
		t.Fatal("the playlist was replaced without --Force")
	}
}
