package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/tencent"
	"github.com/p11kms/p11kms/provider/wire"
)

// kmsAction is the command of one core action (wire.CoreActions), with
// the request its flags fill (nil: the action's own).
func kmsAction(g *globals, a wire.Action, newReq func() any, call func(c *wire.Call, req any) (any, error)) action {
	if newReq == nil {
		newReq, call = a.New, a.Call
	}
	return action{
		Name:  a.Name,
		Short: a.Short,
		New:   newReq,
		Run: func(ctx context.Context, req any) (any, error) {
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			return call(&wire.Call{Ctx: ctx, KMS: svc, Action: a.Name}, req)
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
	var actions []action
	for _, a := range wire.CoreActions {
		if a.Name == "GenerateDataKey" {
			actions = append(actions, kmsAction(g, a, func() any { return new(generateDataKeyFlags) }, generateDataKey))
			continue
		}
		actions = append(actions, kmsAction(g, a, nil, nil))
	}
	cmd.AddCommand(actionCommands(append(actions, sweepAction(g)))...)
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
func generateDataKey(c *wire.Call, req any) (any, error) {
	f := req.(*generateDataKeyFlags)
	ex, err := tencent.ParseExporter(f.EncryptionPublicKey, f.EncryptionAlgorithm)
	if err != nil {
		return nil, err
	}
	r := f.GenerateDataKeyRequest
	r.Exporter = ex
	return c.KMS.GenerateDataKey(c.Ctx, &r)
}

// sweepAction runs the periodic work: deletions due, rotations due,
// expired material, and the token objects no metadata names (listed in
// Orphans; destroyed at once with --RepairOrphans).
func sweepAction(g *globals) action {
	type sweepRequest struct {
		RepairOrphans bool `help:"destroy at once the token objects no metadata names (orphaned versions and key pairs, wrapping keys of keys that do not exist); only while no serve or other writer uses the token"`
	}
	return action{
		Name:  "Sweep",
		Short: "Destroy keys whose deletion window passed, rotate keys that are due, find (--RepairOrphans: destroy) orphaned token objects",
		New:   func() any { return &sweepRequest{} },
		Run: func(ctx context.Context, req any) (any, error) {
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			return svc.SweepWith(ctx, provider.SweepOptions{RepairOrphans: req.(*sweepRequest).RepairOrphans})
		},
	}
}
