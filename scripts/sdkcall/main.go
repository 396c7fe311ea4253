// Command sdkcall is the demo's server check: the official Alibaba Cloud KMS
// SDK for Go (kms-20160120/v3), unchanged, calls GenerateDataKey on a
// `p11kms serve` endpoint and then Decrypt on the blob, and prints both.
//
//	go run ./scripts/sdkcall ADDR ACCESS_KEY_ID ACCESS_KEY_SECRET KEY_ID
package main

import (
	"fmt"
	"os"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: sdkcall ADDR ACCESS_KEY_ID ACCESS_KEY_SECRET KEY_ID")
		os.Exit(2)
	}
	c, err := kms.NewClient(&openapi.Config{Endpoint: tea.String(os.Args[1]), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(os.Args[2]), AccessKeySecret: tea.String(os.Args[3])})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkcall:", err)
		os.Exit(1)
	}
	g, err := c.GenerateDataKey(&kms.GenerateDataKeyRequest{KeyId: tea.String(os.Args[4]),
		EncryptionContext: map[string]interface{}{"via": "sdk"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkcall: GenerateDataKey:", err)
		os.Exit(1)
	}
	d, err := c.Decrypt(&kms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob, EncryptionContext: map[string]interface{}{"via": "sdk"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkcall: Decrypt:", err)
		os.Exit(1)
	}
	fmt.Printf("GenerateDataKey KeyId=%s KeyVersionId=%s RequestId=%s\n", tea.StringValue(g.Body.KeyId), tea.StringValue(g.Body.KeyVersionId), tea.StringValue(g.Body.RequestId))
	if tea.StringValue(d.Body.Plaintext) != tea.StringValue(g.Body.Plaintext) {
		fmt.Fprintln(os.Stderr, "sdkcall: Decrypt returned a different key")
		os.Exit(1)
	}
	fmt.Println("Decrypt returned the same data key")
}
