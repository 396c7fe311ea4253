package hsm

import (
	"context"
	"fmt"
	"io"
)

// maxRandomChunk bounds one C_GenerateRandom call.
const maxRandomChunk = 4096

// Random returns n bytes from the token's RNG (C_GenerateRandom).
func (t *Token) Random(ctx context.Context, n int) ([]byte, error) {
	if n <= 0 || n > 1<<20 {
		return nil, fmt.Errorf("hsm: Random: length %d: accepted 1 to %d", n, 1<<20)
	}
	return Do(ctx, t, func(s *Session) ([]byte, error) {
		out := make([]byte, 0, n)
		for len(out) < n {
			k := min(n-len(out), maxRandomChunk)
			b, err := t.api.GenerateRandom(s.handle, k)
			if err != nil {
				clear(out)
				return nil, ckr("C_GenerateRandom", err)
			}
			if len(b) != k {
				clear(out)
				return nil, fmt.Errorf("hsm: C_GenerateRandom returned %d bytes, asked %d", len(b), k)
			}
			out = append(out, b...)
			clear(b)
		}
		return out, nil
	})
}

// RandomReader returns an io.Reader over the token's RNG. Reads fill the
// whole buffer or fail.
func (t *Token) RandomReader(ctx context.Context) io.Reader { return &randReader{ctx: ctx, t: t} }

type randReader struct {
	ctx context.Context
	t   *Token
}

func (r *randReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		k := min(len(p)-n, 1<<20)
		b, err := r.t.Random(r.ctx, k)
		if err != nil {
			return n, err
		}
		copy(p[n:], b)
		clear(b)
		n += k
	}
	return n, nil
}
