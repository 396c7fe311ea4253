package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

// openVod opens the token, the KMS and the VOD service over it. The
// play-token secret's blob is kept in the home (vod.TokenKeyFileName).
func (g *globals) openVod(ctx context.Context) (*vod.Service, func(), error) {
	svc, closeFn, err := g.openService(ctx)
	if err != nil {
		return nil, nil, err
	}
	v, err := vod.New(vod.Config{KMS: svc, TokenKeyFile: filepath.Join(g.home, vod.TokenKeyFileName)})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return v, closeFn, nil
}

// vodAction adapts a vod.Service method to an action.
func vodAction[Req, Resp any](g *globals, name, short string, op func(*vod.Service, context.Context, *Req) (*Resp, error)) action {
	return action{
		Name:  name,
		Short: short,
		New:   func() any { return new(Req) },
		Run: func(ctx context.Context, req any) (any, error) {
			v, closeFn, err := g.openVod(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			resp, err := op(v, ctx, req.(*Req))
			return resp, flagError(err)
		},
	}
}

// flagError says an API error's remedy in the CLI's terms: an existing
// Output is replaced with the --Force flag (the library names the Force
// parameter, as the API does).
func flagError(err error) error {
	var oe *vod.OutputExistsError
	if errors.As(err, &oe) {
		e := provider.InvalidParam("Output", "%s exists; pass --Force to replace it", oe.Path)
		e.Err = err
		return e
	}
	return err
}

// vodFileAction encrypts or decrypts a file: on the app side (pure Go, no
// token) when --AppDecryptKey is given, else on the server side through the
// token.
func vodFileAction(g *globals, name, short string, local func(*vod.FileRequest) (*vod.FileResponse, error), server func(*vod.Service, context.Context, *vod.FileRequest) (*vod.FileResponse, error)) action {
	return action{
		Name:  name,
		Short: short,
		New:   func() any { return new(vod.FileRequest) },
		Run: func(ctx context.Context, req any) (any, error) {
			r := req.(*vod.FileRequest)
			if r.AppDecryptKey != "" {
				resp, err := local(r)
				return resp, flagError(err)
			}
			v, closeFn, err := g.openVod(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			resp, err := server(v, ctx, r)
			return resp, flagError(err)
		},
	}
}

func newVodCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vod",
		Short: "ApsaraVideo VOD media keys: HLS encryption keys and secure-download key files",
		Long: `Media-key operations built on the KMS, in the grammar of
'aliyun vod <Action> --Param value'. Keys are made under the media CMK
(alias/p11kms-vod, created on first use); the play-token secret is kept as a
CiphertextBlob in $P11KMS_HOME/` + vod.TokenKeyFileName + `.

HLS encryption (AES-128):
  p11kms vod GenerateKMSDataKey
  p11kms vod PackageHls --Input in.mp4 --Output hls/ --KeyUri http://127.0.0.1:8080/hls/key
  p11kms vod IssuePlayToken --Ciphertext <CiphertextBlob> --Ttl 10m
Players fetch the key from 'p11kms serve' at
GET /hls/key?Ciphertext=<CiphertextBlob>&MtsHlsUriToken=<token>.

Secure download:
  p11kms vod GenerateDownloadSecretKey --AppIdentification com.example.app --AppDecryptKey @app.key
  p11kms vod EncryptFile --AppEncryptKey @aek.txt --Input in.mp4 --Output in.mp4.enc
  p11kms vod OpenDownloadKey --AppEncryptKey @aek.txt --AppIdentification com.example.app --AppDecryptKey @app.key
  p11kms vod DecryptFile --AppEncryptKey @aek.txt --AppIdentification com.example.app --AppDecryptKey @app.key --Input in.mp4.enc --Output out.mp4
OpenDownloadKey, and EncryptFile/DecryptFile with --AppDecryptKey, run on the
app side in pure Go without a token; without --AppDecryptKey the KMS recovers
the key. Outputs are never overwritten without --Force. The response is the
API's JSON on stdout; an error is {"Code","Message","RequestId"} on stderr
with exit status 1 (2 for usage errors).`,
	}
	cmd.AddCommand(actionCommands([]action{
		vodAction(g, "GenerateKMSDataKey", "Generate a 16-byte HLS data key under the media CMK", (*vod.Service).GenerateKMSDataKey),
		vodAction(g, "IssuePlayToken", "Issue an expiring MtsHlsUriToken for one Ciphertext", (*vod.Service).IssuePlayToken),
		vodAction(g, "PackageHls", "Package a media file as AES-128 encrypted HLS with ffmpeg", (*vod.Service).PackageHls),
		vodAction(g, "GenerateDownloadSecretKey", "Make an AppEncryptKey (secure-download key file) bound to an app", (*vod.Service).GenerateDownloadSecretKey),
		{
			Name:  "OpenDownloadKey",
			Short: "Recover an AppEncryptKey's data key on the app side (no token)",
			New:   func() any { return new(vod.OpenDownloadKeyRequest) },
			Run: func(_ context.Context, req any) (any, error) {
				return vod.OpenDownloadKey(req.(*vod.OpenDownloadKeyRequest))
			},
		},
		vodFileAction(g, "EncryptFile", "Encrypt a media file with an AppEncryptKey's data key (streamed AES-256-GCM)", vod.EncryptFile, (*vod.Service).EncryptFile),
		vodFileAction(g, "DecryptFile", "Decrypt a media file made by EncryptFile", vod.DecryptFile, (*vod.Service).DecryptFile),
	})...)
	return cmd
}
