package vod_test

import (
	"fmt"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

// AppIdentification comes in three forms, each with a canonical spelling
// (the one bound into the key file).
func ExampleNormalizeAppIdentification() {
	for _, id := range []string{
		"3b:6d:0a:1f:22:9c:ae:41:7b:8d:5f:60:13:c2:99:e4:0b:7a:d1:5c",
		"com.example.player",
		"{6F9619FF-8B86-D011-B42D-00C04FC964FF}",
		"com.example_player",
	} {
		c, kind, err := vod.NormalizeAppIdentification(id)
		if err != nil {
			fmt.Println(provider.ErrorCode(err), err.(*provider.Error).Message)
			continue
		}
		fmt.Println(kind, c)
	}
	// Output:
	// android 3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5C
	// ios com.example.player
	// windows 6f9619ff-8b86-d011-b42d-00c04fc964ff
	// InvalidParameter AppIdentification: an iOS bundle id must be reverse-DNS (com.example.app): part 2 holds a character other than ASCII letters, digits and '-'
}

func ExampleCheckAppDecryptKey() {
	for _, k := range []string{"Sup3rSecretKeyAbc", "sup3rsecretkeyabc", "Short1a"} {
		fmt.Println(vod.CheckAppDecryptKey(k))
	}
	// Output:
	// <nil>
	// InvalidParameter: AppDecryptKey: must contain at least one uppercase letter (A-Z)
	// InvalidParameter: AppDecryptKey: must be 16 to 32 characters, got 7
}
