package sigv4_test

import "net/http"

type httpRequest = http.Request

var readHTTP = http.ReadRequest
