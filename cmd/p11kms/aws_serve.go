package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/p11kms/p11kms/wrap/nitro"
)

// awsServeFlags are serve's flags for the AWS dialect: how a Recipient's
// attestation document is checked.
type awsServeFlags struct {
	attestationRoots string
	acceptUnsigned   bool
}

func (a *awsServeFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.attestationRoots, "aws-attestation-roots", "",
		"PEM file of the roots a Recipient's Nitro Enclaves attestation document must chain to (AWS GenerateDataKey/Decrypt/GenerateRandom with Recipient; none: Recipient is refused)")
	fl.BoolVar(&a.acceptUnsigned, "aws-accept-unsigned-attestation-for-tests", false,
		"TESTS ONLY: accept an unsigned attestation document, so anyone can name the key a data key is exported to")
}

// verifier reads the roots file into the attestation verifier.
func (a *awsServeFlags) verifier() (nitro.Verifier, error) {
	v := nitro.Verifier{AcceptUnsignedForTests: a.acceptUnsigned}
	if a.attestationRoots == "" {
		return v, nil
	}
	pemBytes, err := os.ReadFile(a.attestationRoots)
	if err != nil {
		return v, fmt.Errorf("--aws-attestation-roots: %w", err)
	}
	v.Roots = x509.NewCertPool()
	if !v.Roots.AppendCertsFromPEM(pemBytes) {
		return v, fmt.Errorf("--aws-attestation-roots %s: no PEM certificate in it", a.attestationRoots)
	}
	return v, nil
}
