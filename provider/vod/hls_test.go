package vod_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

// tools returns ffmpeg and ffprobe; their absence fails the test.
func tools(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not installed: run ./scripts/install-deps")
	}
	ffprobe, err = exec.LookPath("ffprobe")
	if err != nil {
		t.Fatal("ffprobe not installed: run ./scripts/install-deps")
	}
	return ffmpeg, ffprobe
}

// testVideo makes a 4-second 320x240 25 fps H.264 MP4 (100 frames) with a
// key frame every second.
func testVideo(t *testing.T, ffmpeg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "in.mp4")
	c := exec.Command(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=duration=4:size=320x240:rate=25",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", out)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("making the test video: %v\n%s", err, b)
	}
	return out
}

var frameRE = regexp.MustCompile(`frame=\s*(\d+)`)

// play decodes an HLS URL with ffmpeg and returns the frames decoded and
// whether ffmpeg exited 0.
func play(t *testing.T, ffmpeg, u string) (int, bool, string) {
	t.Helper()
	c := exec.Command(ffmpeg, "-nostdin", "-hide_banner", "-stats", "-loglevel", "warning",
		"-protocol_whitelist", "file,http,tcp,crypto", "-allowed_extensions", "ALL",
		"-i", u, "-f", "null", "-")
	b, err := c.CombinedOutput()
	frames := 0
	if m := frameRE.FindAllStringSubmatch(string(b), -1); m != nil {
		frames, _ = strconv.Atoi(m[len(m)-1][1])
	}
	return frames, err == nil, string(b)
}

func TestPackageHlsPlaysOverHTTP(t *testing.T) {
	ffmpeg, ffprobe := tools(t)
	e := newEnv(t)
	src := testVideo(t, ffmpeg)
	out := filepath.Join(t.TempDir(), "hls")

	var keyOK, keyRefused atomic.Int32
	keys := e.vod.KeyHandler()
	mux := http.NewServeMux()
	mux.Handle(vod.HLSKeyPattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		keys.ServeHTTP(rec, r)
		if rec.Code == 200 {
			keyOK.Add(1)
		} else {
			keyRefused.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	var badPlaylist atomic.Value
	mux.HandleFunc("GET /bad.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Write(badPlaylist.Load().([]byte))
	})
	mux.Handle("/", http.FileServer(http.Dir(out)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	r, err := e.vod.PackageHls(bg, &vod.PackageHlsRequest{Input: src, Output: out, KeyUri: srv.URL + vod.HLSKeyPath, Ttl: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Playlist != filepath.Join(out, vod.PlaylistName) || r.Segments < 2 || !strings.Contains(r.KeyUri, "MtsHlsUriToken=") || !strings.Contains(r.KeyUri, "Ciphertext=") {
		t.Fatalf("response %+v", r)
	}
	text, err := os.ReadFile(r.Playlist)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`#EXT-X-KEY:METHOD=AES-128,URI="` + regexp.QuoteMeta(r.KeyUri) + `",IV=0x[0-9a-f]{32}`).Match(text) {
		t.Fatalf("playlist has no AES-128 key line for %s:\n%s", r.KeyUri, text)
	}
	// Segments are encrypted: not MPEG-TS (sync byte 0x47) in the clear.
	segs, _ := filepath.Glob(filepath.Join(out, "segment-*.ts"))
	if len(segs) != r.Segments {
		t.Fatalf("%d segment files, playlist lists %d", len(segs), r.Segments)
	}
	for _, s := range segs {
		b, _ := os.ReadFile(s)
		if len(b) == 0 || len(b)%16 != 0 || b[0] == 0x47 && b[188] == 0x47 {
			t.Fatalf("%s does not look encrypted", s)
		}
	}

	// A player over HTTP fetches the key and decodes every frame.
	frames, ok, log := play(t, ffmpeg, srv.URL+"/"+vod.PlaylistName)
	if !ok || frames < 90 || keyOK.Load() == 0 {
		t.Fatalf("play: ok=%v frames=%d keys=%d\n%s", ok, frames, keyOK.Load(), log)
	}
	c := exec.Command(ffprobe, "-v", "error", "-protocol_whitelist", "file,http,tcp,crypto", "-allowed_extensions", "ALL",
		"-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames,width,height", "-of", "default=nw=1",
		srv.URL+"/"+vod.PlaylistName)
	b, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "width=320") || !strings.Contains(string(b), "nb_read_frames=100") {
		t.Fatalf("ffprobe: %v\n%s", err, b)
	}

	// With a bad token the key is refused and nothing decodes.
	tok := regexp.MustCompile(`MtsHlsUriToken=([A-Za-z0-9_-]+)`).FindSubmatch(text)[1]
	bad := bytes.Clone(tok)
	bad[20] = 'A' // another base64url character: another byte in the token
	if tok[20] == 'A' {
		bad[20] = 'B'
	}
	badPlaylist.Store(bytes.ReplaceAll(text, tok, bad))
	refused := keyRefused.Load()
	frames, ok, log = play(t, ffmpeg, srv.URL+"/bad.m3u8")
	if (ok && frames > 0) || keyRefused.Load() == refused {
		t.Fatalf("bad token played: ok=%v frames=%d\n%s", ok, frames, log)
	}
	// Nor after the token expires.
	e.clk.Add(11 * time.Minute)
	refused = keyRefused.Load()
	frames, ok, log = play(t, ffmpeg, srv.URL+"/"+vod.PlaylistName)
	if (ok && frames > 0) || keyRefused.Load() == refused {
		t.Fatalf("expired token played: ok=%v frames=%d\n%s", ok, frames, log)
	}

	// The playlist is not replaced without Force; with Force it is.
	_, err = e.vod.PackageHls(bg, &vod.PackageHlsRequest{Input: src, Output: out, KeyUri: srv.URL + vod.HLSKeyPath})
	wantCode(t, err, provider.CodeInvalidParameter)
	if msg := provider.AsError(err).Message; !errors.Is(err, vod.ErrOutputExists) || !strings.Contains(msg, "exists; set Force to true to replace it") {
		t.Fatalf("existing playlist: %q should name the Force parameter as the API does", msg)
	}
	r2, err := e.vod.PackageHls(bg, &vod.PackageHlsRequest{Input: src, Output: out, KeyUri: srv.URL + vod.HLSKeyPath, Force: true, HlsTime: new(1), Reencode: true})
	if err != nil || r2.CiphertextBlob == r.CiphertextBlob || r2.Segments <= r.Segments {
		t.Fatalf("Force: %+v %v", r2, err)
	}
	frames, ok, log = play(t, ffmpeg, srv.URL+"/"+vod.PlaylistName)
	if !ok || frames < 90 {
		t.Fatalf("re-packaged: ok=%v frames=%d\n%s", ok, frames, log)
	}
}

func TestPackageHlsValidation(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mp4")
	os.WriteFile(src, []byte("not a video"), 0o600)
	good := vod.PackageHlsRequest{Input: src, Output: filepath.Join(dir, "out"), KeyUri: "http://127.0.0.1:1/hls/key"}
	for _, c := range []struct {
		mod   func(*vod.PackageHlsRequest)
		param string
	}{
		{func(r *vod.PackageHlsRequest) { r.Input = "" }, "Input"},
		{func(r *vod.PackageHlsRequest) { r.Input = filepath.Join(dir, "absent.mp4") }, "Input"},
		{func(r *vod.PackageHlsRequest) { r.Input = dir }, "Input"},
		{func(r *vod.PackageHlsRequest) { r.Output = "" }, "Output"},
		{func(r *vod.PackageHlsRequest) { r.Output = src }, "Output"},
		{func(r *vod.PackageHlsRequest) { r.KeyUri = "127.0.0.1:8080/hls/key" }, "KeyUri"},
		{func(r *vod.PackageHlsRequest) { r.KeyUri = "http://h/k#frag" }, "KeyUri"},
		{func(r *vod.PackageHlsRequest) { r.Ttl = "1000h" }, "Ttl"},
		{func(r *vod.PackageHlsRequest) { r.HlsTime = new(61) }, "HlsTime"},
		{func(r *vod.PackageHlsRequest) { r.HlsTime = new(-1) }, "HlsTime"},
		{func(r *vod.PackageHlsRequest) { r.HlsTime = new(0) }, "HlsTime"}, // a given 0 is a value, not the default
	} {
		req := good
		c.mod(&req)
		_, err := e.vod.PackageHls(bg, &req)
		if provider.ErrorCode(err) != provider.CodeInvalidParameter || !strings.HasPrefix(provider.AsError(err).Message, c.param+":") {
			t.Errorf("%+v: %v, want InvalidParameter naming %s", req, err, c.param)
		}
	}
	// An existing playlist: the error names Force as the API does.
	existing := good
	existing.Output = filepath.Join(dir, "existing")
	os.Mkdir(existing.Output, 0o755)
	os.WriteFile(filepath.Join(existing.Output, vod.PlaylistName), []byte("#EXTM3U\n"), 0o600)
	_, err := e.vod.PackageHls(bg, &existing)
	if e := provider.AsError(err); err == nil || e.Param != "Output" || !errors.Is(err, vod.ErrOutputExists) ||
		!strings.Contains(e.Message, "exists; set Force to true to replace it") {
		t.Errorf("existing playlist: %v", err)
	}
	// ffmpeg's failure is reported, and no key file is left behind.
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "p11kms-vod-hls-*"))
	shmBefore, _ := filepath.Glob("/dev/shm/p11kms-vod-hls-*")
	_, err = e.vod.PackageHls(bg, &good)
	if provider.ErrorCode(err) != provider.CodeInternalFailure || !strings.Contains(err.Error(), "ffmpeg failed") {
		t.Fatalf("bad input: %v", err)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "p11kms-vod-hls-*"))
	shmAfter, _ := filepath.Glob("/dev/shm/p11kms-vod-hls-*")
	if len(after) > len(before) || len(shmAfter) > len(shmBefore) {
		t.Fatalf("temporary key directory left: %v %v", after, shmAfter)
	}
	// A missing ffmpeg is a clear error.
	v, _ := vod.New(vod.Config{KMS: e.kms, TokenKeyFile: e.kfile, FFmpeg: "/nonexistent/ffmpeg"})
	_, err = v.PackageHls(bg, &good)
	if provider.ErrorCode(err) != provider.CodeUnsupportedOp || !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("missing ffmpeg: %v", err)
	}
}
