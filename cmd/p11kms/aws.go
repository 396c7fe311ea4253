package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/awskms"
)

func newAWSCmd(g *globals) *cobra.Command {
	var region, account string
	cmd := &cobra.Command{
		Use:   "aws",
		Short: "AWS KMS operations, in the grammar of the AWS KMS API (`p11kms aws <Operation> --Param value`)",
		Long: `Each subcommand is one AWS KMS API operation, run on the token directly (no
signature, no access-key policy: the caller holds the token's PIN), with the
checks and answers of the AWS dialect of p11kms serve. Parameters are flags
named exactly as the API names them; blobs are base64; maps and lists are JSON
(--EncryptionContext '{"k":"v"}'). The response is printed as the API's JSON
on stdout; an error as AWS's {"__type","message"} on stderr with exit status 1
(2 for usage errors). --region and --account are those of the ARNs, as given
to serve.`,
	}
	cmd.PersistentFlags().StringVar(&region, "region", "cn-hangzhou", "region of the ARNs (as serve --region)")
	cmd.PersistentFlags().StringVar(&account, "account", "1234567890123456", "account of the ARNs (as serve --account)")
	var actions []action
	for _, name := range awskms.Operations() {
		actions = append(actions, action{
			Name: name, Short: awskms.Summary(name),
			New: func() any { return awskms.NewRequest(name) },
			Run: func(ctx context.Context, req any) (any, error) {
				tok, err := g.openToken(ctx)
				if err != nil {
					return nil, tokenOpenError(err)
				}
				defer tok.Close()
				svc := provider.New(tok, provider.Options{Region: region, Account: account})
				return awskms.NewLocal(svc).Call(ctx, name, req)
			},
			PrintError: printAWSError,
		})
	}
	cmd.AddCommand(actionCommands(actions)...)
	return cmd
}

// printAWSError prints err as AWS's error body on stderr (exit status 1).
func printAWSError(err error) error {
	code, _, msg := awskms.ErrorBody(err)
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, msg})
	fmt.Fprintln(os.Stderr, string(b))
	return exitError{1}
}
