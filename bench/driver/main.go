// Command driver runs the benchmark's multi-request scenarios, which wrk cannot express
// because one round trip spans several requests and two hosts:
//
//	signup: POST <wf>/<key>/run/send, POST <wf>/<key>/click (a known wrong secret),
//	        GET /restate/workflow/<wf>/<key>/attach (answers false).
//	blocks: POST <svc>/run/send, wait for the awakeable id on the service's GET /awakeables,
//	        POST /restate/awakeables/<id>/resolve, GET /restate/invocation/<id>/attach.
//
// C workers repeat the round trip for D seconds; it prints one JSON object with the count of
// completed round trips, errors, and the latency percentiles of a whole round trip.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Completed  int     `json:"completed"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Rps        float64 `json:"rps"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

var (
	ingress  = flag.String("ingress", "", "Restate ingress URL")
	service  = flag.String("service", "", "the service's own URL (blocks: GET /awakeables)")
	scenario = flag.String("scenario", "signup", "signup or blocks")
	name     = flag.String("name", "", "Restate service name (SignupWorkflow, MyServiceTs...)")
	workers  = flag.Int("c", 16, "concurrent round trips")
	duration = flag.Duration("d", 10*time.Second, "how long to run")
	tag      = flag.String("tag", "run", "unique prefix of workflow keys")
	poll     = flag.Duration("poll", 10*time.Millisecond, "interval of GET /awakeables")
)

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
}

// The services' /awakeables over h2c (one multiplexed connection), like Restate talks to them.
var serviceClient = func() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: protocols}}
}()

func call(c *http.Client, method, url, body string, want int) ([]byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("content-type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
	}
	return data, nil
}

// awakeables hands each waiting round trip its awakeable id, polling the service only while
// someone waits.
type awakeables struct {
	mu      sync.Mutex
	waiters map[string]chan string
}

func (a *awakeables) wait(invocationID string) chan string {
	ch := make(chan string, 1)
	a.mu.Lock()
	a.waiters[invocationID] = ch
	a.mu.Unlock()
	return ch
}

func (a *awakeables) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(*poll):
		}
		a.mu.Lock()
		n := len(a.waiters)
		a.mu.Unlock()
		if n == 0 {
			continue
		}
		data, err := call(serviceClient, "GET", *service+"/awakeables", "", 200)
		if err != nil {
			continue
		}
		pending := map[string]string{}
		if json.Unmarshal(data, &pending) != nil {
			continue
		}
		a.mu.Lock()
		for inv, id := range pending {
			if ch, ok := a.waiters[inv]; ok {
				ch <- id
				delete(a.waiters, inv)
			}
		}
		a.mu.Unlock()
	}
}

func signup(worker, n int) error {
	key := fmt.Sprintf("%s-%d-%d", *tag, worker, n)
	base := fmt.Sprintf("%s/%s/%s", *ingress, *name, key)
	if _, err := call(client, "POST", base+"/run/send", `{"name":"Bob","email":"bob@builder.com"}`, 202); err != nil {
		return err
	}
	if _, err := call(client, "POST", base+"/click", `"not-the-secret"`, 200); err != nil {
		return err
	}
	out, err := call(client, "GET", fmt.Sprintf("%s/restate/workflow/%s/%s/attach", *ingress, *name, key), "", 200)
	if err != nil {
		return err
	}
	if string(bytes.TrimSpace(out)) != "false" {
		return fmt.Errorf("attach answered %q, expected false", out)
	}
	return nil
}

func blocks(aw *awakeables) error {
	out, err := call(client, "POST", fmt.Sprintf("%s/%s/run/send", *ingress, *name), "", 202)
	if err != nil {
		return err
	}
	var sent struct {
		InvocationID string `json:"invocationId"`
	}
	if err := json.Unmarshal(out, &sent); err != nil || sent.InvocationID == "" {
		return fmt.Errorf("no invocationId in %q", out)
	}
	ch := aw.wait(sent.InvocationID)
	var id string
	select {
	case id = <-ch:
	case <-time.After(20 * time.Second):
		return fmt.Errorf("no awakeable for %s", sent.InvocationID)
	}
	if _, err := call(client, "POST", *ingress+"/restate/awakeables/"+id+"/resolve", `"hello"`, 202); err != nil {
		return err
	}
	_, err = call(client, "GET", *ingress+"/restate/invocation/"+sent.InvocationID+"/attach", "", 200)
	return err
}

func main() {
	flag.Parse()
	aw := &awakeables{waiters: map[string]chan string{}}
	stop := make(chan struct{})
	if *scenario == "blocks" {
		go aw.run(stop)
	}
	var (
		errors    atomic.Int64
		firstErr  atomic.Value
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	started := time.Now()
	deadline := started.Add(*duration)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				var err error
				if *scenario == "blocks" {
					err = blocks(aw)
				} else {
					err = signup(w, n)
				}
				if err != nil {
					errors.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(started).Seconds()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	r := result{
		Completed: len(latencies), Errors: errors.Load(), Seconds: elapsed,
		Rps: float64(len(latencies)) / elapsed, P50Ms: pct(0.50), P99Ms: pct(0.99),
	}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}
