package vod

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Encrypted media file format, v1 (STREAM construction over AES-256-GCM):
//
//	header = magic "p11kvodf" (8) ‖ version 0x01 (1) ‖ chunkSize uint32 BE (4)
//	       ‖ salt (32) ‖ noncePrefix (4) ‖ keyCheck (16)                 = 65 bytes
//	chunk i = AES-256-GCM(fileKey, noncePrefix ‖ uint64 BE i, plaintext_i,
//	                      AAD = header ‖ last) ‖ tag (16)
//
// fileKey ‖ keyCheck = HKDF-SHA256(dataKey, salt, "p11kms/vod/file/v1"), 48
// bytes: every file has its own AES key, so nonces never repeat under a key
// however many files one data key protects. Every chunk but the last holds
// exactly chunkSize plaintext bytes (StreamChunkSize when written here); the
// last holds 0 to chunkSize and has last = 0x01 in its AAD (0x00 for the
// others). Reordered chunks fail (the index is in the nonce), truncation at a
// chunk boundary fails (the new last chunk was sealed with last = 0x00),
// appended data fails, and a wrong key is told apart by keyCheck before any
// chunk is read. Readers accept chunk sizes from 1 KiB to 1 MiB, so memory
// stays bounded whatever the file's size.
const (
	StreamMagic     = "p11kvodf"
	StreamVersion1  = 0x01
	StreamChunkSize = 64 << 10

	streamHeaderSize = 8 + 1 + 4 + 32 + 4 + 16
	minChunkSize     = 1 << 10
	maxChunkSize     = 1 << 20
	streamTagSize    = 16
)

// Errors of encrypted files.
var (
	ErrStreamFormat  = errors.New("vod: not a p11kms encrypted media file")
	ErrStreamVersion = errors.New("vod: unsupported encrypted media file version")
	ErrStreamKey     = errors.New("vod: the key does not match this encrypted file (or its header was altered)")
	ErrStreamDamaged = errors.New("vod: the encrypted file is damaged, truncated or reordered")
	ErrOutputExists  = errors.New("vod: the output file exists")
)

// streamKeys derives the per-file AEAD and key check.
func streamKeys(dataKey, salt []byte) (cipher.AEAD, []byte, error) {
	okm, err := hkdf.Key(sha256.New, dataKey, salt, "p11kms/vod/file/v1", 48)
	if err != nil {
		return nil, nil, err
	}
	defer wrap.ZeroBytes(okm[:32])
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, okm[32:], nil
}

// EncryptStream encrypts src to dst in the v1 format, in StreamChunkSize
// chunks; memory use does not depend on the input's size. It returns the
// bytes written.
func (k *DataKey) EncryptStream(dst io.Writer, src io.Reader) (int64, error) {
	return encryptStream(dst, src, k.b, StreamChunkSize)
}

func encryptStream(dst io.Writer, src io.Reader, key []byte, chunkSize int) (int64, error) {
	return encryptStreamWith(dst, src, key, chunkSize, randomBytes(32), randomBytes(4))
}

// encryptStreamWith is encryptStream with a given salt and nonce prefix
// (deterministic test vectors).
func encryptStreamWith(dst io.Writer, src io.Reader, key []byte, chunkSize int, salt, prefix []byte) (int64, error) {
	if len(key) != DownloadKeyBytes {
		return 0, fmt.Errorf("vod: a download data key is %d bytes", DownloadKeyBytes)
	}
	if chunkSize < minChunkSize || chunkSize > maxChunkSize || len(salt) != 32 || len(prefix) != 4 {
		return 0, errors.New("vod: bad stream parameters")
	}
	hdr := make([]byte, 0, streamHeaderSize+1)
	hdr = append(hdr, StreamMagic...)
	hdr = append(hdr, StreamVersion1)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(chunkSize))
	hdr = append(hdr, salt...)
	hdr = append(hdr, prefix...)
	aead, check, err := streamKeys(key, salt)
	if err != nil {
		return 0, err
	}
	hdr = append(hdr, check...)
	var written int64
	n, err := dst.Write(hdr)
	written += int64(n)
	if err != nil {
		return written, err
	}
	aad := append(hdr, 0)
	nonce := make([]byte, 12)
	copy(nonce, prefix)
	br := bufio.NewReaderSize(src, 4096)
	pt := make([]byte, chunkSize)
	defer wrap.ZeroBytes(pt)
	ct := make([]byte, 0, chunkSize+streamTagSize)
	for i := uint64(0); ; i++ {
		m, err := io.ReadFull(br, pt)
		last := false
		switch err {
		case nil:
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return written, perr
			}
		case io.EOF, io.ErrUnexpectedEOF:
			last = true
		default:
			return written, err
		}
		aad[streamHeaderSize] = 0
		if last {
			aad[streamHeaderSize] = 1
		}
		binary.BigEndian.PutUint64(nonce[4:], i)
		ct = aead.Seal(ct[:0], nonce, pt[:m], aad)
		n, err := dst.Write(ct)
		written += int64(n)
		if err != nil {
			return written, err
		}
		if last {
			return written, nil
		}
	}
}

// DecryptStream decrypts a v1 file from src to dst, chunk by chunk, with
// bounded memory. Chunks are written as they authenticate, so on an error
// dst may hold a verified prefix of the plaintext: discard it (DecryptFile
// does). A damaged, truncated or reordered file is ErrStreamDamaged
// (wrapped, naming the chunk); a wrong key is ErrStreamKey.
func (k *DataKey) DecryptStream(dst io.Writer, src io.Reader) (int64, error) {
	return decryptStream(dst, src, k.b)
}

func decryptStream(dst io.Writer, src io.Reader, key []byte) (int64, error) {
	hdr := make([]byte, streamHeaderSize+1)
	if _, err := io.ReadFull(src, hdr[:streamHeaderSize]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: shorter than its %d-byte header", ErrStreamFormat, streamHeaderSize)
		}
		return 0, err
	}
	if string(hdr[:8]) != StreamMagic {
		return 0, fmt.Errorf("%w: bad magic", ErrStreamFormat)
	}
	if hdr[8] != StreamVersion1 {
		return 0, fmt.Errorf("%w 0x%02x (supported: 0x%02x)", ErrStreamVersion, hdr[8], StreamVersion1)
	}
	chunkSize := int(binary.BigEndian.Uint32(hdr[9:13]))
	if chunkSize < minChunkSize || chunkSize > maxChunkSize {
		return 0, fmt.Errorf("%w: chunk size %d outside %d to %d", ErrStreamFormat, chunkSize, minChunkSize, maxChunkSize)
	}
	if len(key) != DownloadKeyBytes {
		return 0, fmt.Errorf("vod: a download data key is %d bytes", DownloadKeyBytes)
	}
	aead, check, err := streamKeys(key, hdr[13:45])
	if err != nil {
		return 0, err
	}
	if subtle.ConstantTimeCompare(check, hdr[49:65]) != 1 {
		return 0, ErrStreamKey
	}
	nonce := make([]byte, 12)
	copy(nonce, hdr[45:49])
	aad := hdr
	br := bufio.NewReaderSize(src, 4096)
	ct := make([]byte, chunkSize+streamTagSize)
	pt := make([]byte, 0, chunkSize)
	defer wrap.ZeroBytes(pt[:cap(pt)])
	var written int64
	for i := uint64(0); ; i++ {
		m, err := io.ReadFull(br, ct)
		last := false
		switch err {
		case nil:
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return written, perr
			}
		case io.ErrUnexpectedEOF:
			last = true
		case io.EOF:
			return written, fmt.Errorf("%w: chunk %d is missing (the file ends early)", ErrStreamDamaged, i)
		default:
			return written, err
		}
		aad[streamHeaderSize] = 0
		if last {
			aad[streamHeaderSize] = 1
		}
		binary.BigEndian.PutUint64(nonce[4:], i)
		if m < streamTagSize {
			return written, fmt.Errorf("%w: chunk %d is cut short", ErrStreamDamaged, i)
		}
		out, err := aead.Open(pt[:0], nonce, ct[:m], aad)
		if err != nil {
			return written, fmt.Errorf("%w: chunk %d does not authenticate", ErrStreamDamaged, i)
		}
		n, err := dst.Write(out)
		written += int64(n)
		if err != nil {
			return written, err
		}
		if last {
			return written, nil
		}
	}
}

// writeFileAtomic runs fill on a new temporary file next to out and renames
// it to out once fill succeeds; on any error nothing is left behind. An
// existing out is refused (ErrOutputExists) unless force.
func writeFileAtomic(out string, force bool, fill func(io.Writer) (int64, error)) (int64, error) {
	if st, err := os.Stat(out); err == nil {
		if st.IsDir() {
			return 0, fmt.Errorf("vod: the output %s is a directory", out)
		}
		if !force {
			return 0, &OutputExistsError{Path: out}
		}
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename or a link, removes nothing or the spare name
	n, err := fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if force {
		return n, os.Rename(tmp, out)
	}
	// Link fails if out appeared meanwhile: never overwrite without force.
	if err := os.Link(tmp, out); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return n, &OutputExistsError{Path: out}
		}
		return n, err
	}
	return n, nil
}

// EncryptFile encrypts the file in to out with k (see EncryptStream),
// through a temporary file renamed into place.
func (k *DataKey) EncryptFile(in, out string, force bool) (int64, error) {
	return k.fileOp(in, out, force, k.EncryptStream)
}

// DecryptFile decrypts the file in to out with k (see DecryptStream). On any
// error, including a damaged file found after some chunks, no output is
// left.
func (k *DataKey) DecryptFile(in, out string, force bool) (int64, error) {
	return k.fileOp(in, out, force, k.DecryptStream)
}

func (k *DataKey) fileOp(in, out string, force bool, op func(io.Writer, io.Reader) (int64, error)) (int64, error) {
	src, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	return writeFileAtomic(out, force, func(w io.Writer) (int64, error) { return op(w, src) })
}

// OutputExistsError is an output that exists and was not replaced because
// Force was not set. It matches [ErrOutputExists].
type OutputExistsError struct{ Path string }

// Error says which output exists.
func (e *OutputExistsError) Error() string { return "vod: the output " + e.Path + " exists" }

// Is reports whether target is ErrOutputExists.
func (e *OutputExistsError) Is(target error) bool { return target == ErrOutputExists }

// outputExists is an OutputExistsError as the API's error: InvalidParameter
// naming Output, and Force as the request names it.
func outputExists(oe *OutputExistsError) error {
	e := provider.InvalidParam("Output", "%s exists; set Force to true to replace it", oe.Path)
	e.Err = oe
	return e
}

// fileError turns a file operation's error into an API error.
func fileError(err error) error {
	var pe *fs.PathError
	var oe *OutputExistsError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe):
		return outputExists(oe)
	case errors.Is(err, ErrStreamDamaged), errors.Is(err, ErrStreamKey), errors.Is(err, ErrStreamFormat), errors.Is(err, ErrStreamVersion):
		e := provider.NewError(provider.CodeInvalidCiphertext, "Input: %s", strings.TrimPrefix(err.Error(), "vod: "))
		e.Err = err
		return e
	case errors.As(err, &pe):
		e := provider.NewError(provider.CodeInvalidParameter, "%s %s: %v", pe.Op, pe.Path, pe.Err)
		e.Err = err
		return e
	}
	e := provider.NewError(provider.CodeInternalFailure, "%v", err)
	e.Err = err
	return e
}

// fileRequest runs a FileRequest with an opened key.
func fileRequest(req *FileRequest, dk *DataKey, encrypt bool) (*FileResponse, error) {
	if req.Input == "" {
		return nil, provider.InvalidParam("Input", "is required")
	}
	if req.Output == "" {
		return nil, provider.InvalidParam("Output", "is required")
	}
	op := dk.DecryptFile
	if encrypt {
		op = dk.EncryptFile
	}
	n, err := op(req.Input, req.Output, req.Force)
	if err != nil {
		return nil, fileError(err)
	}
	return &FileResponse{Output: req.Output, Bytes: n, RequestId: provider.NewRequestID()}, nil
}

// EncryptFile encrypts a media file on the app side: the AppEncryptKey is
// opened with AppIdentification and AppDecryptKey, in pure Go.
func EncryptFile(req *FileRequest) (*FileResponse, error) { return localFile(req, true) }

// DecryptFile decrypts a media file on the app side (see EncryptFile).
func DecryptFile(req *FileRequest) (*FileResponse, error) { return localFile(req, false) }

func localFile(req *FileRequest, encrypt bool) (*FileResponse, error) {
	dk, _, err := openLocal(req.AppEncryptKey, req.AppIdentification, req.AppDecryptKey)
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	return fileRequest(req, dk, encrypt)
}

// EncryptFile encrypts a media file with an AppEncryptKey's data key: opened
// here with AppDecryptKey if given (as the package-level EncryptFile), else
// recovered through the KMS (RecoverDownloadKey).
func (s *Service) EncryptFile(ctx context.Context, req *FileRequest) (*FileResponse, error) {
	return s.file(ctx, req, true)
}

// DecryptFile decrypts a media file (see Service.EncryptFile).
func (s *Service) DecryptFile(ctx context.Context, req *FileRequest) (*FileResponse, error) {
	return s.file(ctx, req, false)
}

func (s *Service) file(ctx context.Context, req *FileRequest, encrypt bool) (*FileResponse, error) {
	if req.AppDecryptKey != "" {
		return localFile(req, encrypt)
	}
	if req.AppIdentification != "" { // the server side reads it from the key file: it would be ignored
		return nil, provider.InvalidParam("AppIdentification", "is accepted only with AppDecryptKey (the app side); the server side takes the AppEncryptKey alone")
	}
	dk, _, err := s.RecoverDownloadKey(ctx, req.AppEncryptKey)
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	return fileRequest(req, dk, encrypt)
}
