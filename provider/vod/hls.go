package vod

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// PlaylistName is the playlist PackageHls writes in its Output directory;
// segments are segment-00000.ts, segment-00001.ts, ...
const PlaylistName = "index.m3u8"

// PackageHls packages a media file as HLS encrypted with AES-128:
//
//  1. a data key from GenerateKMSDataKey and a play token for its
//     CiphertextBlob, valid for Ttl (default 24h);
//  2. ffmpeg's key-info file (-hls_key_info_file) in a private temporary
//     directory (on /dev/shm where it exists, so the key is never on disk):
//     line 1 the key URI (KeyUri?Ciphertext=...&MtsHlsUriToken=..., what the
//     playlist's #EXT-X-KEY names), line 2 the path of a 0600 file holding
//     the 16 key bytes, line 3 a random IV in hex;
//  3. ffmpeg -i Input -c copy (or, with Reencode, H.264 with a key frame every HlsTime
//     seconds and AAC)
//     -f hls -hls_time HlsTime -hls_playlist_type vod
//     -hls_key_info_file ... Output/index.m3u8;
//  4. the key file is overwritten with zeros and both files deleted,
//     whether ffmpeg succeeded or not.
//
// The token in the playlist expires after Ttl; issue fresh key URIs with
// IssuePlayToken (e.g. by rewriting the playlist per viewer) for longer
// use. An existing playlist is replaced only with Force.
func (s *Service) PackageHls(ctx context.Context, req *PackageHlsRequest) (*PackageHlsResponse, error) {
	p, err := s.checkPackageHls(req)
	if err != nil {
		return nil, err
	}
	dk, err := s.GenerateKMSDataKey(ctx, &GenerateKMSDataKeyRequest{})
	if err != nil {
		return nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(dk.CiphertextBlob)
	if err != nil {
		return nil, provider.Internal("generating the HLS key", err)
	}
	exp := s.now().Add(p.ttl).Truncate(time.Second)
	tok, err := s.mint(ctx, ct, exp)
	if err != nil {
		return nil, err
	}
	uri, err := keyURI("KeyUri", req.KeyUri, dk.CiphertextBlob, tok)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(dk.Plaintext)
	defer wrap.ZeroBytes(key)
	if err != nil || len(key) != HLSKeyBytes {
		return nil, provider.Internal("generating the HLS key", errors.New("bad data key"))
	}

	if err := s.runFFmpeg(ctx, p.ffmpeg, req, p.hlsTime, uri, key, p.playlist); err != nil {
		return nil, err
	}
	segments, err := countSegments(p.playlist)
	if err != nil {
		return nil, err
	}
	return &PackageHlsResponse{Playlist: p.playlist, KeyUri: uri, KeyId: dk.KeyId, CiphertextBlob: dk.CiphertextBlob,
		Expiration: exp.UTC().Format(time.RFC3339), Segments: segments, RequestId: provider.NewRequestID()}, nil
}

// hlsPlan is a checked PackageHls request: what it will run and write.
type hlsPlan struct {
	ttl      time.Duration
	hlsTime  int
	ffmpeg   string // the ffmpeg executable's path
	playlist string
}

// checkPackageHls validates req and prepares its output directory; it
// writes nothing to the token.
func (s *Service) checkPackageHls(req *PackageHlsRequest) (*hlsPlan, error) {
	if req.Input == "" {
		return nil, provider.InvalidParam("Input", "is required")
	}
	if st, err := os.Stat(req.Input); err != nil {
		return nil, provider.InvalidParam("Input", "cannot be read: %v", pathErr(err))
	} else if st.IsDir() {
		return nil, provider.InvalidParam("Input", "%s is a directory; give a media file", req.Input)
	}
	if req.Output == "" {
		return nil, provider.InvalidParam("Output", "is required")
	}
	if st, err := os.Stat(req.Output); err == nil && !st.IsDir() {
		return nil, provider.InvalidParam("Output", "%s exists and is not a directory", req.Output)
	}
	ttl, err := parseTTL("Ttl", req.Ttl, min(DefaultPackageTTL, s.maxTTL), s.maxTTL)
	if err != nil {
		return nil, err
	}
	p := &hlsPlan{ttl: ttl, hlsTime: 2, playlist: filepath.Join(req.Output, PlaylistName)}
	if req.HlsTime != nil {
		if p.hlsTime = *req.HlsTime; p.hlsTime < 1 || p.hlsTime > 60 {
			return nil, provider.InvalidParam("HlsTime", "must be 1 to 60 seconds (default 2), got %d", p.hlsTime)
		}
	}
	if _, err := keyURI("KeyUri", req.KeyUri, "x", "x"); err != nil {
		return nil, err
	}
	ffmpeg := s.cfg.FFmpeg
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	if p.ffmpeg, err = exec.LookPath(ffmpeg); err != nil {
		return nil, provider.NewError(provider.CodeUnsupportedOp, "ffmpeg is needed to package HLS and was not found (%v); install it (scripts/install-deps)", err)
	}
	if _, err := os.Lstat(p.playlist); err == nil && !req.Force {
		return nil, outputExists(&OutputExistsError{Path: p.playlist})
	}
	if err := os.MkdirAll(req.Output, 0o755); err != nil {
		return nil, provider.InvalidParam("Output", "cannot be created: %v", pathErr(err))
	}
	return p, nil
}

// countSegments checks the playlist ffmpeg wrote and counts its segments.
func countSegments(playlist string) (int, error) {
	text, err := os.ReadFile(playlist)
	if err != nil {
		return 0, provider.NewError(provider.CodeInternalFailure, "ffmpeg wrote no playlist: %v", pathErr(err))
	}
	if !bytes.Contains(text, []byte("#EXT-X-KEY:METHOD=AES-128")) {
		return 0, provider.NewError(provider.CodeInternalFailure, "ffmpeg wrote a playlist without #EXT-X-KEY:METHOD=AES-128")
	}
	segments := 0
	for _, line := range strings.Split(string(text), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			segments++
		}
	}
	return segments, nil
}

// runFFmpeg writes the key and key-info files, runs ffmpeg and always
// zeroes and deletes the key file.
func (s *Service) runFFmpeg(ctx context.Context, ffmpeg string, req *PackageHlsRequest, hlsTime int, uri string, key []byte, playlist string) (err error) {
	dir, err := os.MkdirTemp(secretTempDir(), "p11kms-vod-hls-")
	if err != nil {
		return provider.NewError(provider.CodeInternalFailure, "creating a temporary directory: %v", err)
	}
	keyPath := filepath.Join(dir, "key.bin")
	defer func() {
		if zerr := zeroFile(keyPath, len(key)); zerr != nil && err == nil {
			err = provider.NewError(provider.CodeInternalFailure, "erasing the temporary key file: %v", zerr)
		}
		os.RemoveAll(dir)
	}()
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return provider.NewError(provider.CodeInternalFailure, "writing the temporary key file: %v", err)
	}
	_, err = kf.Write(key)
	if cerr := kf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return provider.NewError(provider.CodeInternalFailure, "writing the temporary key file: %v", err)
	}
	info := uri + "\n" + keyPath + "\n" + hex.EncodeToString(randomBytes(16)) + "\n"
	infoPath := filepath.Join(dir, "key.info")
	if err := os.WriteFile(infoPath, []byte(info), 0o600); err != nil {
		return provider.NewError(provider.CodeInternalFailure, "writing the key-info file: %v", err)
	}
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", req.Input}
	if req.Reencode {
		// A key frame at every segment boundary, so segments are HlsTime long.
		args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
			"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", hlsTime), "-c:a", "aac")
	} else {
		args = append(args, "-c", "copy")
	}
	args = append(args, "-f", "hls", "-hls_time", strconv.Itoa(hlsTime), "-hls_playlist_type", "vod",
		"-hls_key_info_file", infoPath,
		"-hls_segment_filename", filepath.Join(req.Output, "segment-%05d.ts"), playlist)
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return provider.NewError(provider.CodeInternalFailure, "ffmpeg failed (%v): %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// secretTempDir is where short-lived key files go: /dev/shm (memory) when it
// is usable, else the system's temporary directory.
func secretTempDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".p11kms-probe-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
}

// zeroFile overwrites the first n bytes of path with zeros and syncs it.
func zeroFile(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, n))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pathErr drops the "open " prefix noise of a *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
