// Command kmstokms is the demo's KMS-to-KMS check, over the official
// Alibaba Cloud KMS SDK for Go (kms-20160120/v3), unchanged, against two
// `p11kms serve` endpoints on two homes: B makes an asymmetric CMK (RSA_2048,
// then EC_SM2) and gives its public key (GetPublicKey); A makes a data key
// exported under it (GenerateAndExportDataKey); B decrypts the export inside
// its token (AsymmetricDecrypt); A decrypts its own CiphertextBlob (Decrypt).
// It prints both key check values per algorithm and exits 1 unless they agree.
//
//	go run ./scripts/kmstokms ADDR_A AK_A SECRET_A ADDR_B AK_B SECRET_B
package main

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/wrap"
)

func client(addr, ak, secret string) (*kms.Client, error) {
	return kms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(ak), AccessKeySecret: tea.String(secret)})
}

// receiverKey makes B's asymmetric CMK and returns it with its public key
// as base64 DER (the PublicKeyBlob A's export takes).
func receiverKey(b *kms.Client, spec string) (id, ver, blob string, err error) {
	k, err := b.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String(spec), KeyUsage: tea.String("ENCRYPT/DECRYPT")})
	if err != nil {
		return "", "", "", fmt.Errorf("B CreateKey %s: %w", spec, err)
	}
	id, ver = tea.StringValue(k.Body.KeyMetadata.KeyId), tea.StringValue(k.Body.KeyMetadata.PrimaryKeyVersion)
	p, err := b.GetPublicKey(&kms.GetPublicKeyRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver)})
	if err != nil {
		return "", "", "", fmt.Errorf("B GetPublicKey: %w", err)
	}
	block, _ := pem.Decode([]byte(tea.StringValue(p.Body.PublicKey)))
	if block == nil {
		return "", "", "", errors.New("B GetPublicKey: not PEM")
	}
	return id, ver, base64.StdEncoding.EncodeToString(block.Bytes), nil
}

// oneWay runs the flow for one key spec and returns A's and B's KCVs.
func oneWay(a, b *kms.Client, aKey, spec, alg string) (kcvA, kcvB string, err error) {
	bID, bVer, blob, err := receiverKey(b, spec)
	if err != nil {
		return "", "", err
	}
	x, err := a.GenerateAndExportDataKey(&kms.GenerateAndExportDataKeyRequest{KeyId: tea.String(aKey),
		PublicKeyBlob: tea.String(blob), WrappingKeySpec: tea.String(spec), WrappingAlgorithm: tea.String(alg)})
	if err != nil {
		return "", "", fmt.Errorf("A GenerateAndExportDataKey: %w", err)
	}
	d, err := a.Decrypt(&kms.DecryptRequest{CiphertextBlob: x.Body.CiphertextBlob})
	if err != nil {
		return "", "", fmt.Errorf("A Decrypt: %w", err)
	}
	r, err := b.AsymmetricDecrypt(&kms.AsymmetricDecryptRequest{KeyId: tea.String(bID), KeyVersionId: tea.String(bVer),
		Algorithm: tea.String(alg), CiphertextBlob: x.Body.ExportedDataKey})
	if err != nil {
		return "", "", fmt.Errorf("B AsymmetricDecrypt: %w", err)
	}
	if kcvA, err = kcv(tea.StringValue(d.Body.Plaintext)); err != nil {
		return "", "", err
	}
	kcvB, err = kcv(tea.StringValue(r.Body.Plaintext))
	return kcvA, kcvB, err
}

func kcv(b64 string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", err
	}
	defer wrap.ZeroBytes(k)
	return wrap.KCV(k)
}

func run(args []string) error {
	a, err := client(args[0], args[1], args[2])
	if err != nil {
		return err
	}
	b, err := client(args[3], args[4], args[5])
	if err != nil {
		return err
	}
	k, err := a.CreateKey(&kms.CreateKeyRequest{Description: tea.String("kms-to-kms sender")})
	if err != nil {
		return fmt.Errorf("A CreateKey: %w", err)
	}
	aKey := tea.StringValue(k.Body.KeyMetadata.KeyId)
	for _, c := range [][2]string{{"RSA_2048", "RSAES_OAEP_SHA_256"}, {"EC_SM2", "SM2PKE"}} {
		kcvA, kcvB, err := oneWay(a, b, aKey, c[0], c[1])
		if err != nil {
			return fmt.Errorf("%s: %w", c[1], err)
		}
		fmt.Printf("%-18s A Decrypt KCV %s   B AsymmetricDecrypt KCV %s\n", c[1], kcvA, kcvB)
		if kcvA != kcvB {
			return fmt.Errorf("%s: the key B decrypted is not A's data key", c[1])
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: kmstokms ADDR_A AK_A SECRET_A ADDR_B AK_B SECRET_B")
		os.Exit(2)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kmstokms:", err)
		os.Exit(1)
	}
	fmt.Println("kmstokms: B decrypted inside its token the data keys A exported to it")
}
