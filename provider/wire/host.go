package wire

import (
	"net"
	"strings"
)

// HostMatches reports whether a request's Host (as received, the value the
// signature covers where the scheme signs it) is the expected one:
// expected "" accepts every host; "name" accepts that name on any port;
// "name:port" only that port. Names compare case-insensitively. A server
// started with --expected-host refuses other hosts, so a request captured
// on its way to another instance sharing the access keys (kms.cn-hangzhou.
// aliyuncs.com, a sibling deployment) is not accepted here.
func HostMatches(expected, host string) bool {
	if expected == "" {
		return true
	}
	if _, _, err := net.SplitHostPort(expected); err != nil {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		expected = strings.TrimSuffix(strings.TrimPrefix(expected, "["), "]")
	}
	return strings.EqualFold(expected, host)
}
