package wire

import (
	"net/http"
	"time"
)

// Dialect is what one wire API supplies to the pipeline's frame (Serve):
// the record it starts, the steps from authentication to the core call,
// and the encoding of the answer.
type Dialect interface {
	// NewRecord starts the request's record: Time, RequestId (made here,
	// once, in the dialect's format), SourceAddr, API.
	NewRecord(req *Request) Record
	// Run authenticates, checks replays and the rate limit, decodes,
	// authorizes (AuthorizeTouched) and calls the core; rec gets the access
	// key, the action and the keys as they become known. The context it
	// gives the core carries rec.RequestId (provider.WithRequestID).
	Run(req *Request, rec *Record) (any, error)
	// Write encodes the response, or err, in the dialect's shapes and
	// codes, and sets rec's Code, HTTPStatus and (for an internal
	// failure) Err.
	Write(w http.ResponseWriter, req *Request, rec *Record, resp any, err error)
}

// Serve runs one request through the pipeline: the record made once (with
// its RequestId), the dialect's steps with panics turned into
// InternalFailure, the answer, and one Record to obs (nil: none).
func Serve(w http.ResponseWriter, req *Request, d Dialect, obs Observer) {
	start := time.Now()
	rec := d.NewRecord(req)
	resp, err := run(d, req, &rec)
	d.Write(w, req, &rec, resp, err)
	rec.Latency = time.Since(start)
	if obs != nil {
		obs.Observe(rec)
	}
}

// run is Dialect.Run with RecoverRequest around it.
func run(d Dialect, req *Request, rec *Record) (resp any, err error) {
	defer RecoverRequest(&err)
	return d.Run(req, rec)
}
