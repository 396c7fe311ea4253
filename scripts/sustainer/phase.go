package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p11kms/p11kms/internal/bench"
)

// phase is one sustained run: one node in process or two on Redis.
type phase struct {
	name  string
	nodes int
	redis bool
}

// tally counts a phase's outcomes; safe for concurrent use.
type tally struct {
	honest, refused           atomic.Int64
	injected, replayAccepted  atomic.Int64
	mu                        sync.Mutex
	samples                   []string // the first refusals, for the report
	firstRate, lastRate       float64
	maxRSS, firstRSS          []float64
	intervals                 int
	replayRefusedOtherwiseCnt atomic.Int64
}

// note keeps the first few refusal messages (bounded).
func (t *tally) note(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.samples) < 5 {
		t.samples = append(t.samples, s)
	}
}

// runPhase starts the phase's nodes, loads them for --duration and
// returns its violations.
func (e *env) runPhase(ctx context.Context, ph phase) ([]string, error) {
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for i := range ph.nodes {
		n, err := e.startNode(fmt.Sprintf("sustain-%c", 'a'+i), ph.redis)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		fmt.Printf("== %s: node %s: %s\n", ph.name, n.addr, n.estimate)
	}
	keyID, err := e.createKey(nodes[0].addr)
	if err != nil {
		return nil, err
	}
	t := &tally{maxRSS: make([]float64, len(nodes)), firstRSS: make([]float64, len(nodes))}
	lctx, cancel := context.WithTimeout(ctx, e.o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range e.o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.honest(lctx, t, nodes[i%len(nodes)], bench.Signatures[i%len(bench.Signatures)], keyID)
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); e.inject(lctx, t, nodes, keyID) }()
	go func() { defer wg.Done(); report(lctx, t, nodes, e.o.every) }()
	wg.Wait()
	return t.verdict(ph, nodes, e.o.strict), nil
}

// createKey makes the CMK the phase uses, through the lean client.
func (e *env) createKey(addr string) (string, error) {
	s := bench.Signer{Scheme: bench.SignatureACS3, Host: addr, AccessKeyId: e.id, AccessKeySecret: e.secret}
	req, err := s.Sign("CreateKey", map[string]string{}, time.Now(), bench.NewNonce())
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ KeyMetadata struct{ KeyId string } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.KeyMetadata.KeyId == "" {
		return "", fmt.Errorf("CreateKey: HTTP %d: %v", resp.StatusCode, err)
	}
	return out.KeyMetadata.KeyId, nil
}

// honest sends GenerateDataKey as fast as the node answers, until ctx ends.
func (e *env) honest(ctx context.Context, t *tally, n *node, scheme bench.Signature, keyID string) {
	c := bench.NewClient(bench.Signer{Scheme: scheme, Host: n.addr, AccessKeyId: e.id, AccessKeySecret: e.secret}, 1)
	params := map[string]string{"KeyId": keyID, "KeySpec": "AES_256"}
	for ctx.Err() == nil {
		err := c.Call(ctx, "GenerateDataKey", params)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			t.refused.Add(1)
			t.note(fmt.Sprintf("%s to %s: %v", scheme, n.addr, err))
		default:
			t.honest.Add(1)
		}
	}
}

// inject sends, every second, an Alibaba request (ACS3 and RPC in turn)
// once and then again unchanged: with two nodes every other replay goes
// to the other node. The first send is honest; the second must be refused
// as a replay.
func (e *env) inject(ctx context.Context, t *tally, nodes []*node, keyID string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		first := nodes[k%len(nodes)]
		second := nodes[(k+k/len(nodes))%len(nodes)]
		scheme := []bench.Signature{bench.SignatureACS3, bench.SignatureRPC}[k%2]
		s := bench.Signer{Scheme: scheme, Host: first.addr, AccessKeyId: e.id, AccessKeySecret: e.secret}
		req, err := s.Sign("GenerateDataKey", map[string]string{"KeyId": keyID, "KeySpec": "AES_256"}, time.Now(), bench.NewNonce())
		if err != nil {
			t.note("signing: " + err.Error())
			return
		}
		if code := send(req, first.addr); code != "" {
			if ctx.Err() == nil {
				t.refused.Add(1)
				t.note(fmt.Sprintf("injected request's first send to %s: %s", first.addr, code))
			}
			continue
		}
		t.honest.Add(1)
		t.injected.Add(1)
		switch code := send(req, second.addr); code {
		case "SignatureNonceUsed":
		case "":
			t.replayAccepted.Add(1)
			t.note(fmt.Sprintf("replay of a %s request to %s accepted", scheme, second.addr))
		default:
			t.replayRefusedOtherwiseCnt.Add(1)
		}
	}
}

// send sends req unchanged (Host as signed) to addr and returns the
// Alibaba error code ("" on HTTP 200; the transport error otherwise).
func send(req *http.Request, addr string) string {
	r := req.Clone(context.Background())
	r.URL.Host = addr
	r.Body = http.NoBody
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var e struct{ Code string }
	if json.Unmarshal(b, &e) != nil || e.Code == "" {
		return fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return e.Code
}

// report prints throughput and RSS every interval until ctx ends.
func report(ctx context.Context, t *tally, nodes []*node, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	start, last, lastN := time.Now(), time.Now(), int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := t.honest.Load()
			rate := float64(n-lastN) / now.Sub(last).Seconds()
			var rss []string
			for i, nd := range nodes {
				r := nd.rssMiB()
				t.maxRSS[i] = max(t.maxRSS[i], r)
				if t.intervals == 0 {
					t.firstRSS[i] = r
				}
				rss = append(rss, fmt.Sprintf("%.0f MiB", r))
			}
			if t.intervals == 0 {
				t.firstRate = rate
			}
			t.lastRate, t.intervals = rate, t.intervals+1
			fmt.Printf("%6.0fs  %7.0f req/s  honest %d refused %d  replays %d accepted %d  RSS %s\n",
				now.Sub(start).Seconds(), rate, n, t.refused.Load(), t.injected.Load(), t.replayAccepted.Load(), strings.Join(rss, ", "))
			last, lastN = now, n
		}
	}
}

// verdict prints the phase's summary and returns its violations.
func (t *tally) verdict(ph phase, nodes []*node, strict bool) []string {
	var v []string
	if n := t.refused.Load(); n > 0 {
		v = append(v, fmt.Sprintf("%s: %d honest requests refused", ph.name, n))
	}
	if n := t.replayAccepted.Load(); n > 0 {
		v = append(v, fmt.Sprintf("%s: %d replays accepted", ph.name, n))
	}
	if t.injected.Load() == 0 {
		v = append(v, ph.name+": no replay was injected")
	}
	ratio := t.lastRate / max(t.firstRate, 1)
	fmt.Printf("== %s: %d honest requests, %d refused; %d replays injected, %d accepted, %d refused with another code; last/first interval throughput %.0f %%\n",
		ph.name, t.honest.Load(), t.refused.Load(), t.injected.Load(), t.replayAccepted.Load(), t.replayRefusedOtherwiseCnt.Load(), 100*ratio)
	for _, s := range t.samples {
		fmt.Println("   ", s)
	}
	for i, n := range nodes {
		ceiling := n.ceilingMiB()
		fmt.Printf("   node %s: RSS %.0f MiB after the first interval, peak %.0f MiB (start-up estimate: at most %.0f MiB)\n",
			n.addr, t.firstRSS[i], t.maxRSS[i], ceiling)
		if ceiling == 0 {
			v = append(v, fmt.Sprintf("%s: node %s printed no memory estimate at start-up", ph.name, n.addr))
		} else if strict && t.maxRSS[i] > ceiling {
			v = append(v, fmt.Sprintf("%s: node %s RSS peaked at %.0f MiB, above its start-up estimate %.0f MiB",
				ph.name, n.addr, t.maxRSS[i], ceiling))
		}
	}
	if strict && t.intervals > 1 && ratio < 0.9 {
		v = append(v, fmt.Sprintf("%s: last interval's throughput %.0f %% of the first", ph.name, 100*ratio))
	}
	return v
}
