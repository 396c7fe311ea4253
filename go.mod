module github.com/p11kms/p11kms

go 1.26.0

require (
	github.com/ThalesGroup/crypto11 v1.6.0
	github.com/emmansun/gmsm v0.44.0
	github.com/google/uuid v1.6.0
	github.com/miekg/pkcs11 v1.1.2
	github.com/spf13/cobra v1.10.2
	github.com/stefanberger/go-pkcs11uri v0.0.0-20230803200340-78284954bff6
	golang.org/x/crypto v0.53.0
)

require (
	github.com/alibabacloud-go/darabonba-openapi/v2 v2.0.9 // indirect
	github.com/alibabacloud-go/kms-20160120/v3 v3.2.3 // indirect
	github.com/alibabacloud-go/tea v1.2.2 // indirect
	github.com/aliyun/alibaba-cloud-sdk-go v1.63.107 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common v1.0.1000 // indirect
	github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms v1.0.1000 // indirect
	github.com/thales-e-security/pool v0.0.2 // indirect
	golang.org/x/time v0.16.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
