package wire

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// Request is one HTTP request as the pipeline reads it: the body is read
// at most once, bounded by the configured limit, and the query string and
// a form body are parsed at most once, whoever asks first (the router or
// the dialect's verifier).
type Request struct {
	HTTP *http.Request
	// Max bounds the query string and the body together.
	Max int64

	bodyRead bool
	body     []byte
	bodyErr  error

	queryParsed bool
	query       url.Values
	queryErr    error

	formParsed bool
	form       url.Values
	formErr    error
}

// ErrTooLarge is Request.Body's error for a request whose query string and
// body together exceed Request.Max; each dialect answers it with its own code.
var ErrTooLarge = errors.New("the request exceeds the size limit")

// ErrUnreadable is Request.Body's error for a body that could not be read.
var ErrUnreadable = errors.New("the request body could not be read")

// NewRequest wraps r for the pipeline; nothing is read yet.
func NewRequest(r *http.Request, max int64) *Request { return &Request{HTTP: r, Max: max} }

// Body returns the request body, read once: ErrTooLarge if the query string
// and body together exceed Max (judged by Content-Length when given, so an
// oversized body is not read at all), ErrUnreadable if reading failed.
func (q *Request) Body() ([]byte, error) {
	if q.bodyRead {
		return q.body, q.bodyErr
	}
	q.bodyRead = true
	r := q.HTTP
	left := q.Max - int64(len(r.URL.RawQuery))
	if left < 0 || r.ContentLength > left {
		q.bodyErr = ErrTooLarge
		return nil, q.bodyErr
	}
	if r.Body == nil {
		return nil, nil
	}
	b, err := readBody(r.Body, r.ContentLength, left)
	switch {
	case err != nil:
		q.bodyErr = ErrUnreadable
	case int64(len(b)) > left:
		q.bodyErr = ErrTooLarge
	default:
		q.body = b
	}
	return q.body, q.bodyErr
}

// readBody reads at most left+1 bytes of body: into one buffer of exactly
// length bytes when the length is declared (net/http's body reader ends
// there), so a request's body costs one allocation instead of io.ReadAll's
// growing copies; otherwise as io.ReadAll does. A body shorter than its
// declared length is an error.
func readBody(body io.Reader, length, left int64) ([]byte, error) {
	if length < 0 {
		return io.ReadAll(io.LimitReader(body, left+1))
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Query returns the query string's parameters, parsed once.
func (q *Request) Query() (url.Values, error) {
	if !q.queryParsed {
		q.queryParsed = true
		q.query, q.queryErr = url.ParseQuery(q.HTTP.URL.RawQuery)
	}
	return q.query, q.queryErr
}

// IsForm reports whether the body is declared form-encoded
// (application/x-www-form-urlencoded).
func (q *Request) IsForm() bool {
	mt, _, err := mime.ParseMediaType(q.HTTP.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// Form returns a form body's parameters, parsed once (empty for an empty
// body); the body's own error (ErrTooLarge, ErrUnreadable) if it could not
// be read.
func (q *Request) Form() (url.Values, error) {
	if !q.formParsed {
		q.formParsed = true
		var b []byte
		if b, q.formErr = q.Body(); q.formErr == nil {
			q.form, q.formErr = url.ParseQuery(string(b))
		}
	}
	return q.form, q.formErr
}

// Handler is a dialect's front-end as the router drives it: it serves a
// request the router has already wrapped (and perhaps read).
type Handler interface {
	http.Handler
	ServeRequest(w http.ResponseWriter, req *Request)
}

// RequestWithBody wraps r whose body has already been read (tests,
// in-process callers): Body returns body.
func RequestWithBody(r *http.Request, body []byte) *Request {
	return &Request{HTTP: r, Max: int64(len(r.URL.RawQuery) + len(body)), bodyRead: true, body: body}
}
