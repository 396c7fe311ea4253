package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/tencent"
)

// kmsAction adapts a provider method to an action.
func kmsAction[Req, Resp any](g *globals, name, short string, op func(*provider.Service, context.Context, *Req) (*Resp, error)) action {
	return action{
		Name:  name,
		Short: short,
		New:   func() any { return new(Req) },
		Run: func(ctx context.Context, req any) (any, error) {
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			return op(svc, ctx, req.(*Req))
		},
	}
}

// openService opens the token and the KMS over it.
func (g *globals) openService(ctx context.Context) (*provider.Service, func(), error) {
	tok, err := g.openToken(ctx)
	if err != nil {
		return nil, nil, tokenOpenError(err)
	}
	return provider.New(tok, provider.Options{}), func() { tok.Close() }, nil
}

// tokenOpenError is InternalFailure with its cause in the message: unlike a
// remote client of the wire API, the operator running the command needs to
// know why (no home: run init; a wrong PIN; no such token). The causes name
// paths, labels and PKCS#11 return values, never a PIN.
func tokenOpenError(err error) error {
	e := provider.NewError(provider.CodeInternalFailure, "opening the token failed: %v", err)
	e.Err = err
	return e
}

func newKMSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kms",
		Short: "KMS operations, in the grammar of `aliyun kms <Action> --Param value`",
		Long: `Each subcommand is one KMS API operation. Parameters are flags named exactly
as the API names them; map parameters are JSON (--EncryptionContext '{"k":"v"}');
--PublicKeyBlob and --EncryptionPublicKey also accept @file. The response is
printed as the API's JSON on stdout; an error as {"Code","Message","RequestId"}
on stderr with exit status 1 (2 for usage errors).`,
	}
	cmd.AddCommand(actionCommands([]action{
		kmsAction(g, "CreateKey", "Create a CMK (AES-256 in the token)", (*provider.Service).CreateKey),
		kmsAction(g, "DescribeKey", "Describe a CMK", (*provider.Service).DescribeKey),
		kmsAction(g, "ListKeys", "List CMKs", (*provider.Service).ListKeys),
		kmsAction(g, "EnableKey", "Enable a CMK", (*provider.Service).EnableKey),
		kmsAction(g, "DisableKey", "Disable a CMK", (*provider.Service).DisableKey),
		kmsAction(g, "ScheduleKeyDeletion", "Schedule a CMK's destruction after 7-366 days", (*provider.Service).ScheduleKeyDeletion),
		kmsAction(g, "CancelKeyDeletion", "Cancel a scheduled destruction", (*provider.Service).CancelKeyDeletion),
		kmsAction(g, "UpdateRotationPolicy", "Turn automatic rotation on or off", (*provider.Service).UpdateRotationPolicy),
		kmsAction(g, "CreateKeyVersion", "Create a new primary version (rotate)", (*provider.Service).CreateKeyVersion),
		kmsAction(g, "ListKeyVersions", "List a CMK's versions", (*provider.Service).ListKeyVersions),
		kmsAction(g, "DescribeKeyVersion", "Describe a version", (*provider.Service).DescribeKeyVersion),
		kmsAction(g, "CreateAlias", "Create an alias", (*provider.Service).CreateAlias),
		kmsAction(g, "UpdateAlias", "Point an alias at another key", (*provider.Service).UpdateAlias),
		kmsAction(g, "DeleteAlias", "Delete an alias", (*provider.Service).DeleteAlias),
		kmsAction(g, "ListAliases", "List aliases", (*provider.Service).ListAliases),
		kmsAction(g, "ListAliasesByKeyId", "List a CMK's aliases", (*provider.Service).ListAliasesByKeyId),
		kmsAction(g, "GenerateDataKey", "Generate a data key (Tencent: with EncryptionPublicKey)", generateDataKey),
		kmsAction(g, "GenerateDataKeyWithoutPlaintext", "Generate a data key, returned only under the CMK", (*provider.Service).GenerateDataKeyWithoutPlaintext),
		kmsAction(g, "GenerateAndExportDataKey", "Generate a data key under the CMK and a public key", (*provider.Service).GenerateAndExportDataKey),
		kmsAction(g, "ExportDataKey", "Re-wrap a CiphertextBlob's key under a public key", (*provider.Service).ExportDataKey),
		kmsAction(g, "Encrypt", "Encrypt up to 6 KiB under a CMK", (*provider.Service).Encrypt),
		kmsAction(g, "Decrypt", "Decrypt a CiphertextBlob", (*provider.Service).Decrypt),
		kmsAction(g, "ReEncrypt", "Re-encrypt a CiphertextBlob under another key (never exports the data key)", (*provider.Service).ReEncrypt),
		sweepAction(g),
	})...)
	return cmd
}

// generateDataKeyFlags is the core's GenerateDataKey with Tencent's
// public-key parameters, which the Tencent dialect's parser turns into the
// core's Exporter (the CLI accepts both APIs' forms).
type generateDataKeyFlags struct {
	provider.GenerateDataKeyRequest
	EncryptionPublicKey string `cli:"file" help:"Tencent: PEM public key to encrypt the returned Plaintext under"`
	EncryptionAlgorithm string `help:"Tencent: SM2 (default), SM2_C1C3C2_ASN1, RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256"`
}

// generateDataKey runs GenerateDataKey, under EncryptionPublicKey if given.
func generateDataKey(s *provider.Service, ctx context.Context, req *generateDataKeyFlags) (*provider.GenerateDataKeyResponse, error) {
	ex, err := tencent.ParseExporter(req.EncryptionPublicKey, req.EncryptionAlgorithm)
	if err != nil {
		return nil, err
	}
	r := req.GenerateDataKeyRequest
	r.Exporter = ex
	return s.GenerateDataKey(ctx, &r)
}

// sweepAction runs the periodic work: deletions due, rotations due.
func sweepAction(g *globals) action {
	type sweepRequest struct{}
	return action{
		Name:  "Sweep",
		Short: "Destroy keys whose deletion window passed and rotate keys that are due (any node may run it)",
		New:   func() any { return &sweepRequest{} },
		Run: func(ctx context.Context, _ any) (any, error) {
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			return svc.Sweep(ctx)
		},
	}
}
