package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider/importer"
)

// importerAction adapts an importer method to an action. The token is the
// one --token selects (the receiving token, e.g. pkcs11:token=device).
func importerAction[Req, Resp any](g *globals, name, short string, op func(*importer.Service, context.Context, *Req) (*Resp, error)) action {
	return action{
		Name:  name,
		Short: short,
		New:   func() any { return new(Req) },
		Run: func(ctx context.Context, req any) (any, error) {
			tok, err := g.openToken(ctx)
			if err != nil {
				return nil, tokenOpenError(err)
			}
			defer tok.Close()
			return op(importer.New(tok), ctx, req.(*Req))
		},
	}
}

func newImporterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "importer",
		Short: "Receive exported data keys into this token (the receiving side)",
		Long: `The receiving side of GenerateAndExportDataKey: create a wrapping key pair in
this token, give its PublicKeyBlob to the exporting KMS, and import the
ExportedDataKey it returns as a sensitive, non-extractable key. Select the
receiving token with --token (e.g. --token pkcs11:token=device).

  p11kms importer CreateWrappingKey --WrappingKeySpec RSA_2048 --KeyLabel wrap1
  p11kms importer ImportDataKey --WrappingKeyLabel wrap1 \
      --WrappingAlgorithm RSAES_OAEP_SHA_1 --ExportedDataKey @exported.b64 \
      --KeyLabel dk1 --ExpectedKeyCheckValue 1a2b3c
  p11kms importer Encrypt --KeyLabel dk1 --Plaintext aGVsbG8=

RSAES_OAEP_SHA_256 on a token without OAEP-SHA-256 (SoftHSM2 2.6.1) needs
--AllowHostDecode: raw RSA in the token, OAEP decoded on this host. The
result's Path says how the key got in: token-unwrap, token-raw-rsa+host-oaep
or token-ecdh+host-sm2. Parameters are flags named as the API names them;
--Usage is a JSON list; --ExportedDataKey, --Plaintext and --CiphertextBlob
also accept @file.`,
	}
	cmd.AddCommand(actionCommands([]action{
		importerAction(g, "CreateWrappingKey", "Generate a wrapping key pair (RSA_2048|RSA_3072|RSA_4096|EC_SM2) in the token", (*importer.Service).CreateWrappingKey),
		importerAction(g, "GetWrappingPublicKey", "Show a wrapping key's PublicKeyBlob and PEM", (*importer.Service).GetWrappingPublicKey),
		importerAction(g, "ListWrappingKeys", "List the token's wrapping keys", (*importer.Service).ListWrappingKeys),
		importerAction(g, "DeleteWrappingKey", "Destroy a wrapping key pair", (*importer.Service).DeleteWrappingKey),
		importerAction(g, "ImportDataKey", "Import an ExportedDataKey as a non-extractable key", (*importer.Service).ImportDataKey),
		importerAction(g, "DeleteKey", "Destroy an imported key", (*importer.Service).DeleteKey),
		importerAction(g, "Encrypt", "AES-GCM encrypt with an imported key, in the token", (*importer.Service).Encrypt),
		importerAction(g, "Decrypt", "AES-GCM decrypt with an imported key, in the token", (*importer.Service).Decrypt),
	})...)
	return cmd
}
